"""A preprocessed folder copied once to the machine's own disk, for training from a network drive.

Google Drive on Colab is a network file system: every first read of a small crop file waits on the
network, and training reads every crop file every epoch, so the GPU waits on Drive. The crops are
copied once (a progress bar in bytes, a free-space check first, each file's SHA-256 taken as it is
read and checked again on the copy) and training reads the copy; the run folder stays where the user
put it. The source is only ever read. A second call reuses the files already copied and verified.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from dflib.io import atomic_path, atomic_write_text
from dflib.preprocess import read_manifest_rows

COPY_RECORD = ".dflib_local_copy.json"  # in the copy: what was copied, from where, with its checksums
SPARE_BYTES = 512 * 2**20  # left free on the local disk after copying, for checkpoints and temp files
CHUNK = 4 * 2**20


class LocalCopyError(OSError):
    """The copy cannot be made (no space, a file changed or read back wrong); the message says which."""


def lies_under(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` is ``root`` or inside it, after resolving links (Drive's MyDrive, /content/drive)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def default_destination(data_dir: str | os.PathLike) -> Path:
    """A folder on the local disk (the temporary folder: on Colab the runtime's own disk), one per source."""
    source = Path(data_dir).resolve()
    key = hashlib.sha256(str(source).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "dflib_local" / f"{source.name}-{key}"


def files_to_copy(data_dir: Path) -> list[Path]:
    """What training reads, relative to the folder: its top-level files (manifest, preprocessing
    settings) and the crop file of every usable video; previews and records stay behind."""
    top = sorted(p.relative_to(data_dir) for p in data_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    crops = sorted({Path(row.output) for row in read_manifest_rows(data_dir) if row.status == "ok" and row.output})
    return top + crops


def copy_to_local(data_dir: str | os.PathLike, destination: str | os.PathLike | None = None,
                  progress: bool = True) -> Path:
    """Copy a preprocessed folder to local disk, verified; returns the copy's path.

    Raises LocalCopyError before copying anything when the local disk lacks the room, and when a
    copied file does not read back with the checksum of what was read from the source.
    """
    source = Path(data_dir)
    target = Path(destination) if destination is not None else default_destination(source)
    if lies_under(target, source) or lies_under(source, target):
        raise LocalCopyError(f"{target}: the copy of {source} cannot be inside it, nor hold it")
    names = files_to_copy(source)
    missing = [str(name) for name in names if not (source / name).is_file()]
    if missing:
        raise LocalCopyError(f"{source}: {len(missing)} file(s) named in the manifest are missing, e.g. {missing[0]}")
    record = _read_record(target, source)
    sizes = {name: (source / name).stat().st_size for name in names}
    todo = [name for name in names if not _still_good(source, target, name, record.get(str(name)))]
    needed = sum(sizes[name] for name in todo)
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if needed + SPARE_BYTES > free:
        raise LocalCopyError(f"{target}: {needed / 2**30:.2f} GiB to copy from {source} but only {free / 2**30:.2f} "
                             f"GiB free (keeping {SPARE_BYTES / 2**30:.1f} GiB spare): train from the source folder "
                             "instead, or free some space")
    with tqdm(total=needed, unit="B", unit_scale=True, unit_divisor=1024, desc="copy to local disk",
              disable=not progress) as bar:
        for name in todo:
            digest = _copy_file(source / name, target / name, bar)
            if _sha256(target / name) != digest:
                raise LocalCopyError(f"{target / name}: the copy does not match {source / name} (checksum); "
                                     "run again to copy it anew")
            stat = (source / name).stat()
            record[str(name)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
            if len(record) % 100 == 0:  # a disconnect keeps what was copied so far
                _write_record(target, source, record)
    _write_record(target, source, {str(name): record[str(name)] for name in names})
    return target


def _copy_file(source: Path, target: Path, bar) -> str:
    """Copy through a temporary file (a killed copy never leaves half a file); SHA-256 of what was read."""
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, open(source, "rb") as reader, open(tmp, "wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _still_good(source: Path, target: Path, name: Path, entry: dict | None) -> bool:
    """A file copied before is kept if the source has not changed since (size, modification time)
    and the copy still has the checksum recorded for it."""
    if entry is None or not (target / name).is_file():
        return False
    stat = (source / name).stat()
    if (stat.st_size, stat.st_mtime_ns) != (entry["size"], entry["mtime_ns"]):
        return False
    return _sha256(target / name) == entry["sha256"]


def _read_record(target: Path, source: Path) -> dict:
    try:
        saved = json.loads((target / COPY_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return saved["files"] if saved.get("source") == str(source.resolve()) else {}


def _write_record(target: Path, source: Path, files: dict) -> None:
    atomic_write_text(target / COPY_RECORD, json.dumps({"source": str(source.resolve()), "files": files}, indent=1))
