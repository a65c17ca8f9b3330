"""Files: atomic writing (a killed run leaves either the old file or the new one, never half a
file), and data files that ship inside installed packages."""
from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600; give it the permissions an ordinary new file would get.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def clean_partial_files(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Remove temporaries that a killed run left behind; returns how many.

    With ``names``, only those of these files directly in ``folder`` (a folder the user chose may
    hold other things); without, every temporary below ``folder``.
    """
    folder = Path(folder)
    found = folder.rglob(".*.part") if names is None else (
        tmp for name in names for tmp in folder.glob(f".{glob.escape(name)}.*.part"))
    removed = 0
    for tmp in found:
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def printable_path(path: str) -> str:
    """``path`` as UTF-8 text, for tables and messages: the bytes of a name in another encoding
    (say latin-1 from an old zip), which Python keeps as surrogates, shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def package_file(package: str, relative: str, install_hint: str) -> Path:
    """Locate a data file inside an installed package without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed: {install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from package {package!r}: {install_hint}")
    return path
