"""What every label reader shares: the row, the error, videos on disk, and small parsing helpers."""
from __future__ import annotations

import json
import os
import posixpath
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from dflib.image import is_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
SPLIT_NAMES = ("train", "val", "test")
CSV_COLUMNS = ("filename", "label", "group", "source", "split", "compression")
GROUP_SEPARATOR = "+"

_LABEL_VALUES = {"REAL": "REAL", "0": "REAL", "FAKE": "FAKE", "1": "FAKE"}
_SPLIT_VALUES = {"": "", "train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


class LabelError(ValueError):
    """A label source that cannot be read; the message names the file, the line and the cause.

    ``option`` names the setting that would fix it (a ``PreprocessConfig`` field such as
    ``label_format``), so the command line can name its own flag for it.
    """

    def __init__(self, message: str, option: str = ""):
        super().__init__(message)
        self.option = option


@dataclass
class LabelRow:
    filename: str
    label: str
    group: str = ""
    source: str = ""
    split: str = ""
    compression: str = ""

    def __post_init__(self) -> None:
        # Rows are also built by hand (notebooks, other modules); bad values must fail here, not in training.
        if self.label not in ("REAL", "FAKE"):
            raise ValueError(f"{self.filename}: label must be REAL or FAKE, not {self.label!r}")
        if self.split not in ("", *SPLIT_NAMES):
            raise ValueError(f"{self.filename}: split must be one of '', train, val, test, not {self.split!r}")

    def group_key(self) -> str:
        """The unit that never crosses splits: the group, or the file's stem when no group is known."""
        return self.group or PurePosixPath(self.filename).stem

    def group_keys(self) -> tuple[str, ...]:
        """The people (or source videos) the video shows: ``a+b`` for a face swap of a and b.

        Each key is dealt to one split; a video is kept only in the split that holds all of its keys.
        """
        if GROUP_SEPARATOR not in self.group:
            return (self.group_key(),)
        return tuple(key for key in (part.strip() for part in self.group.split(GROUP_SEPARATOR)) if key) or (
            self.group_key(),
        )


@dataclass
class Reading:
    """What a reader found: the rows, what it inferred or assumed (``notes``), and what makes results
    incomparable with published ones (``warnings``)."""

    rows: list[LabelRow]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NameInfo:
    """What a dataset's naming rule says about one video.

    ``keys`` are the people or source ids it shows. With ``merge`` they join one group (a
    FaceForensics++ fake ``A_B`` with the originals ``A`` and ``B``); otherwise each key is a
    person and the group is ``a+b``. ``sources`` are the real videos it was made from.
    """

    dataset: str
    keys: tuple[str, ...]
    merge: bool = False
    sources: tuple[str, ...] = ()


def is_video(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def walk_files(root: Path) -> Iterator[tuple[str, list[str]]]:
    """(folder relative to ``root`` as posix, file names) for every folder below ``root``.

    Hidden files and folders are skipped (macOS ``._x.mp4`` resource forks are not videos);
    linked folders are followed once each, so a link loop cannot hang the scan.
    """
    visited = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            dirnames.clear()
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(folder).relative_to(root).as_posix(), [name for name in filenames if not name.startswith(".")]


def find_videos(videos_dir: str | os.PathLike) -> list[str]:
    """Every video and photo below ``videos_dir`` (a photo is a clip of one frame), as sorted
    relative posix paths."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: videos folder does not exist or is not a folder")
    return sorted(
        name if folder == "." else f"{folder}/{name}"
        for folder, names in walk_files(root)
        for name in names
        if is_video(name) or is_image(name)
    )


def match_videos(
    rows: list[LabelRow], videos_dir: str | os.PathLike
) -> tuple[list[LabelRow], list[str], list[str]]:
    """Pair rows with the videos on disk: (matched rows, labelled files missing, videos without a label).

    A bare name (no folder) that is not at the top of ``videos_dir`` matches a video of that
    name in a subfolder when exactly one exists; the matched row carries the real path.
    """
    videos = find_videos(videos_dir)
    on_disk = set(videos)
    by_name: dict[str, list[str]] = {}
    matched: dict[str, LabelRow] = {}
    missing = []
    ambiguous = []
    for row in rows:
        path = row.filename
        if path not in on_disk and "/" not in path:
            if not by_name:
                for video in videos:
                    by_name.setdefault(posixpath.basename(video), []).append(video)
            candidates = by_name.get(path, [])
            if len(candidates) > 1:
                ambiguous.append(f"{path} ({', '.join(candidates)})")
            path = candidates[0] if len(candidates) == 1 else path
        if path not in on_disk:
            missing.append(row.filename)
            continue
        resolved = row if path == row.filename else replace(row, filename=path)
        earlier = matched.setdefault(path, resolved)
        if earlier.label != resolved.label:
            raise LabelError(
                f"{videos_dir}/{path}: labelled {earlier.label} as {earlier.filename!r} in one row"
                f" but {resolved.label} as {row.filename!r} in another"
            )
    if ambiguous:
        warnings.warn(
            f"{len(ambiguous)} bare filename(s) match several videos and were left unmatched: "
            + "; ".join(ambiguous[:5]),
            stacklevel=2,
        )
    unlabeled = sorted(on_disk - matched.keys())
    return list(matched.values()), missing, unlabeled


def children(folder: Path) -> dict[str, Path]:
    """Entries of ``folder`` by lower-case name: dataset folders arrive unzipped with any case."""
    if not folder.is_dir():
        return {}
    return {child.name.lower(): child for child in sorted(folder.iterdir())}


def subfolders(folder: Path) -> list[Path]:
    return [child for child in sorted(folder.iterdir()) if child.is_dir() and not child.name.startswith(".")]


def parse_label(value: object) -> str | None:
    return _LABEL_VALUES.get(str(value).strip().upper())


def parse_split(value: object) -> str | None:
    return _SPLIT_VALUES.get(str(value).strip().lower())


def relative_name(name: str, videos_dir: Path | None = None) -> str:
    """Normalise a listed filename; raise ValueError when it points outside the videos folder."""
    if "/" not in name and "\\" not in name and name not in ("", ".", "..") and name == name.strip():
        return name  # a plain file name, as in every DFDC metadata.json: nothing to normalise
    name = name.strip().replace("\\", "/")
    if not name:
        raise ValueError("empty filename")
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        relative = ".."
        if videos_dir is not None and os.path.isabs(name):
            relative = Path(os.path.relpath(os.path.normpath(name), os.path.abspath(videos_dir))).as_posix()
        if relative == ".." or relative.startswith("../"):
            raise ValueError(f"filename {name!r} is an absolute path outside the videos folder")
        return relative
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"filename {name!r} points outside the videos folder ('..')")
    if normal == ".":
        raise ValueError(f"filename {name!r} names no file")
    return normal


def reroot(rows: list[LabelRow], root: Path, videos_dir: Path | None) -> list[LabelRow]:
    """Express dataset-relative filenames relative to the videos folder the user points at."""
    if videos_dir is None:
        return rows
    prefix = Path(os.path.relpath(os.path.abspath(root), os.path.abspath(videos_dir))).as_posix()
    if prefix == ".." or prefix.startswith("../"):
        raise LabelError(f"{root}: dataset folder is not inside the videos folder {videos_dir}")
    if prefix == ".":
        return rows
    return [replace(row, filename=f"{prefix}/{row.filename}") for row in rows]


def load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise LabelError(f"{path}: not UTF-8 text") from None


def union_groups(keys_per_video: list[tuple[str, ...]]) -> dict[str, str]:
    """Each key's group when videos join their keys (a fake ``A_B`` joins ``A`` and ``B``): the smallest key."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for keys in keys_per_video:
        for other in keys[1:]:
            first, second = find(keys[0]), find(other)
            parent[max(first, second)] = min(first, second)
        find(keys[0])
    return {key: find(key) for key in parent}
