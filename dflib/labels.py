"""Read the label layouts people arrive with into one table of ``LabelRow``.

Every reader returns filenames as posix paths relative to the videos folder, labels as
REAL/FAKE, and a ``group`` that ties together videos which must never be split apart (a
fake and its original, one person's clips), so that ``dflib.splits`` can keep splits free
of leakage. Errors name the file (and line) and the cause; nothing is silently dropped.
"""
from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path, PurePosixPath

from dflib.io import atomic_write_text

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
LABEL_FORMATS = ("csv", "dfdc", "faceforensics", "celebdf", "folders")
SPLIT_NAMES = ("train", "val", "test")
CSV_COLUMNS = ("filename", "label", "group", "source", "split")

_LABEL_VALUES = {"REAL": "REAL", "0": "REAL", "FAKE": "FAKE", "1": "FAKE"}
_SPLIT_VALUES = {"": "", "train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Header names accepted per column; a header is recognised by a label and a filename column.
_HEADER_ALIASES = {
    "filename": ("filename", "file", "video", "path"),
    "label": ("label",),
    "group": ("group",),
    "source": ("source", "method"),
    "split": ("split",),
}
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")
_CELEBDF_FOLDERS = {"celeb-real": "REAL", "youtube-real": "REAL", "celeb-synthesis": "FAKE"}
_CELEBDF_TEST_LIST = "list_of_testing_videos.txt"


class LabelError(ValueError):
    """A label source that cannot be read; the message names the file, the line and the cause."""


@dataclass
class LabelRow:
    filename: str
    label: str
    group: str = ""
    source: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        # Rows are also built by hand (notebooks, other modules); bad values must fail here, not in training.
        if self.label not in ("REAL", "FAKE"):
            raise ValueError(f"{self.filename}: label must be REAL or FAKE, not {self.label!r}")
        if self.split not in ("", *SPLIT_NAMES):
            raise ValueError(f"{self.filename}: split must be one of '', train, val, test, not {self.split!r}")

    def group_key(self) -> str:
        """The unit that never crosses splits: the group, or the file's stem when no group is known."""
        return self.group or PurePosixPath(self.filename).stem


def list_label_formats() -> list[str]:
    return list(LABEL_FORMATS)


def is_video(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def find_videos(videos_dir: str | os.PathLike) -> list[str]:
    """Every video below ``videos_dir``, as sorted relative posix paths.

    Hidden files and folders are skipped (macOS ``._x.mp4`` resource forks are not videos);
    linked folders are followed once each, so a link loop cannot hang the scan.
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: videos folder does not exist or is not a folder")
    found = []
    visited = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            dirnames.clear()
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        relative = Path(folder).relative_to(root)
        found.extend(
            (relative / name).as_posix() for name in filenames if not name.startswith(".") and is_video(name)
        )
    return sorted(found)


def detect_label_formats(source: str | os.PathLike) -> list[str]:
    """Formats whose layout ``source`` matches; more than one means the caller must choose."""
    source = Path(source)
    if source.is_file():
        if source.name.lower() == _CELEBDF_TEST_LIST:
            return ["celebdf"]
        return ["dfdc"] if source.suffix.lower() == ".json" else ["csv"]
    children = _children(source)
    candidates = []
    if _find_labels_csv(source) is not None:
        candidates.append("csv")
    if _dfdc_metadata_files(source):
        candidates.append("dfdc")
    if {"original_sequences", "manipulated_sequences"} & children.keys():
        candidates.append("faceforensics")
    if (set(_CELEBDF_FOLDERS) | {_CELEBDF_TEST_LIST}) & children.keys():
        candidates.append("celebdf")
    if any(name in ("real", "fake") and path.is_dir() for name, path in children.items()):
        candidates.append("folders")
    return candidates


def read_labels(
    source: str | os.PathLike, videos_dir: str | os.PathLike | None = None, fmt: str = ""
) -> list[LabelRow]:
    """Read a label file or dataset folder into rows whose filenames are relative to the videos folder.

    ``videos_dir`` defaults to the dataset folder (or the folder of a DFDC ``metadata.json``);
    when given, dataset filenames are expressed relative to it, and absolute paths in a CSV
    are accepted when they lie inside it.
    """
    source = Path(source)
    if not source.exists():
        raise LabelError(f"{source}: no such file or folder")
    if fmt and fmt not in LABEL_FORMATS:
        raise LabelError(f"{source}: unknown label format {fmt!r}; choose one of {', '.join(LABEL_FORMATS)}")
    if not fmt:
        candidates = detect_label_formats(source)
        if len(candidates) != 1:
            found = f"it matches several: {', '.join(candidates)}" if candidates else "no known layout matches"
            raise LabelError(
                f"{source}: cannot tell the label format ({found}); pass fmt= one of {', '.join(LABEL_FORMATS)}"
            )
        fmt = candidates[0]
    videos = Path(videos_dir) if videos_dir is not None else None
    if fmt == "csv":
        rows = _read_csv(_csv_file(source), videos)
    else:
        root = source.parent if source.is_file() else source
        reader = {
            "dfdc": _read_dfdc,
            "faceforensics": _read_faceforensics,
            "celebdf": _read_celebdf,
            "folders": _read_folders,
        }[fmt]
        rows = _reroot(reader(source if fmt == "dfdc" else root), root, videos)
    if not rows:
        raise LabelError(f"{source}: no labelled videos found (read as {fmt})")
    return rows


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
    for path in videos:
        by_name.setdefault(posixpath.basename(path), []).append(path)
    matched: dict[str, LabelRow] = {}
    missing = []
    ambiguous = []
    for row in rows:
        path = row.filename
        if path not in on_disk and "/" not in path:
            candidates = by_name.get(path, [])
            if len(candidates) > 1:
                ambiguous.append(f"{path} ({', '.join(candidates)})")
            path = candidates[0] if len(candidates) == 1 else path
        if path not in on_disk:
            missing.append(row.filename)
            continue
        resolved = replace(row, filename=path)
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


def write_labels_csv(rows: list[LabelRow], path: str | os.PathLike, extra_columns: bool = True) -> Path:
    """Write rows atomically; without extra columns, in the original design's headerless ``filename,label``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if extra_columns:
        writer.writerow(CSV_COLUMNS)
        writer.writerows([row.filename, row.label, row.group, row.source, row.split] for row in rows)
    else:
        writer.writerows([row.filename, row.label] for row in rows)
    return atomic_write_text(path, buffer.getvalue())


def summary_frame(rows: list[LabelRow]):
    """Counts of REAL/FAKE overall, per source and per split, as a pandas DataFrame for notebooks."""
    import pandas as pd

    columns = ["REAL", "FAKE", "total", "% FAKE"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=["by", "value"]))
    frame = pd.DataFrame([asdict(row) for row in rows], columns=[f.name for f in fields(LabelRow)])
    frame["all"] = "all videos"
    frame["source"] = frame["source"].replace("", "(none)")
    frame["split"] = frame["split"].replace("", "(unassigned)")
    parts = {}
    for by in ("all", "source", "split"):
        counts = frame.groupby([by, "label"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=["REAL", "FAKE"], fill_value=0)
        if by == "split":
            order = [s for s in (*SPLIT_NAMES, "(unassigned)") if s in counts.index]
            counts = counts.reindex(order)
        counts["total"] = counts["REAL"] + counts["FAKE"]
        counts["% FAKE"] = (100 * counts["FAKE"] / counts["total"]).round(1)
        parts[by] = counts
    result = pd.concat(parts, names=["by", "value"])
    result.columns.name = None
    return result


def summarize(rows: list[LabelRow]) -> str:
    """A plain-text table of the label counts, for the CLI and for logs."""
    if not rows:
        return "0 videos"
    frame = summary_frame(rows)
    overall = frame.loc[("all", "all videos")]
    groups = len({row.group_key() for row in rows})
    lines = [
        f"{int(overall['total'])} videos in {groups} groups: {int(overall['REAL'])} REAL, "
        f"{int(overall['FAKE'])} FAKE ({overall['% FAKE']:.1f}% FAKE)"
    ]
    for by in ("source", "split"):
        table = frame.loc[by]
        width = max(len(f"by {by}"), *(len(str(value)) for value in table.index))
        lines += ["", f"{'by ' + by:<{width}}  {'REAL':>6}  {'FAKE':>6}  {'total':>6}  {'% FAKE':>6}"]
        lines += [
            f"{value:<{width}}  {row['REAL']:>6}  {row['FAKE']:>6}  {row['total']:>6}  {row['% FAKE']:>6.1f}"
            for value, row in table.astype(object).iterrows()
        ]
    return "\n".join(lines)


# --- shared helpers -------------------------------------------------------------------------


def _children(folder: Path) -> dict[str, Path]:
    """Entries of ``folder`` by lower-case name: dataset folders arrive unzipped with any case."""
    if not folder.is_dir():
        return {}
    return {child.name.lower(): child for child in sorted(folder.iterdir())}


def _subfolders(folder: Path) -> list[Path]:
    return [child for child in sorted(folder.iterdir()) if child.is_dir() and not child.name.startswith(".")]


def _parse_label(value: object) -> str | None:
    return _LABEL_VALUES.get(str(value).strip().upper())


def _parse_split(value: object) -> str | None:
    return _SPLIT_VALUES.get(str(value).strip().lower())


def _relative_name(name: str, videos_dir: Path | None = None) -> str:
    """Normalise a listed filename; raise ValueError when it points outside the videos folder."""
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


def _reroot(rows: list[LabelRow], root: Path, videos_dir: Path | None) -> list[LabelRow]:
    """Express dataset-relative filenames relative to the videos folder the user points at."""
    if videos_dir is None:
        return rows
    prefix = Path(os.path.relpath(os.path.abspath(root), os.path.abspath(videos_dir))).as_posix()
    if prefix == ".." or prefix.startswith("../"):
        raise LabelError(f"{root}: dataset folder is not inside the videos folder {videos_dir}")
    if prefix == ".":
        return rows
    return [replace(row, filename=f"{prefix}/{row.filename}") for row in rows]


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise LabelError(f"{path}: not UTF-8 text") from None


# --- csv -------------------------------------------------------------------------------------


def _find_labels_csv(folder: Path) -> Path | None:
    candidate = _children(folder).get("labels.csv")
    return candidate if candidate is not None and candidate.is_file() else None


def _csv_file(source: Path) -> Path:
    if source.is_file():
        return source
    found = _find_labels_csv(source)
    if found is None:
        raise LabelError(f"{source}: folder has no labels.csv; pass the label file itself")
    return found


def _read_csv(path: Path, videos_dir: Path | None) -> list[LabelRow]:
    """Read the original design's ``filename,label`` file, tolerating what spreadsheets do to it."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 CSV") from None
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if ";" in first_line and "," not in first_line else ","  # spreadsheets in some locales
    numbered = [
        (number, [cell.strip() for cell in cells])
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1)
    ]
    numbered = [(number, cells) for number, cells in numbered if any(cells)]
    if not numbered:
        raise LabelError(f"{path}: label file is empty")
    columns = _header_columns(path, numbered[0][0], numbered[0][1])
    if columns:
        numbered = numbered[1:]
    rows: list[LabelRow] = []
    first_seen: dict[str, tuple[int, LabelRow]] = {}
    duplicates = []
    for number, cells in numbered:
        row = _csv_row(path, number, cells, columns, videos_dir)
        if row.filename not in first_seen:
            first_seen[row.filename] = (number, row)
            rows.append(row)
            continue
        earlier_number, earlier = first_seen[row.filename]
        if earlier == row:
            duplicates.append((number, earlier_number))
            continue
        field = next(f.name for f in fields(LabelRow) if getattr(earlier, f.name) != getattr(row, f.name))
        raise LabelError(
            f"{path}: line {number}: {row.filename} has {field} {getattr(row, field)!r} here"
            f" but {getattr(earlier, field)!r} on line {earlier_number}"
        )
    if duplicates:
        number, earlier_number = duplicates[0]
        warnings.warn(
            f"{path}: {len(duplicates)} exact duplicate row(s) ignored (e.g. line {number} repeats line {earlier_number})",
            stacklevel=3,
        )
    return rows


def _header_columns(path: Path, number: int, cells: list[str]) -> dict[str, int]:
    """Column positions when the first row is a header; empty when the file has none."""
    names = [cell.lower() for cell in cells]
    if "label" not in names or _parse_label(cells[1] if len(cells) > 1 else "") is not None:
        return {}
    columns = {}
    for column, aliases in _HEADER_ALIASES.items():
        position = next((names.index(alias) for alias in aliases if alias in names), None)
        if position is not None:
            columns[column] = position
    if "filename" not in columns:
        raise LabelError(f"{path}: line {number}: header has no filename column (one of: filename, file, video, path)")
    return columns


def _csv_row(path: Path, number: int, cells: list[str], columns: dict[str, int], videos_dir: Path | None) -> LabelRow:
    where = f"{path}: line {number}"
    if not columns:
        while cells and not cells[-1]:
            cells = cells[:-1]  # trailing commas from spreadsheets
        if len(cells) != 2:
            raise LabelError(
                f"{where}: expected 'filename,label', got {len(cells)} column(s): {','.join(cells)!r}"
                " (add a header row to give extra columns)"
            )
        columns = {"filename": 0, "label": 1}
    values = {column: cells[position] if position < len(cells) else "" for column, position in columns.items()}
    try:
        filename = _relative_name(values["filename"], videos_dir)
    except ValueError as error:
        raise LabelError(f"{where}: {error}") from None
    label = _parse_label(values["label"])
    if label is None:
        raise LabelError(f"{where}: unknown label {values['label']!r} (expected REAL, FAKE, 0 or 1)")
    split = _parse_split(values.get("split", ""))
    if split is None:
        raise LabelError(f"{where}: unknown split {values['split']!r} (expected train, val, test or empty)")
    return LabelRow(filename, label, group=values.get("group", ""), source=values.get("source", ""), split=split)


# --- DFDC ------------------------------------------------------------------------------------


def _dfdc_metadata_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    own = folder / "metadata.json"
    parts = [part / "metadata.json" for part in _subfolders(folder)]
    return [path for path in ([own] + parts) if path.is_file()]


def _read_dfdc(source: Path) -> list[LabelRow]:
    """DFDC ``metadata.json`` files; a fake is grouped with its original so they share a split.

    Each DFDC training part marks every video ``split: train`` (the competition's training set).
    Kept as is, that would leave nothing to validate on, so when every video says ``train``
    the splits are left to the splitter; any other mix of values is kept.
    """
    root = source.parent if source.is_file() else source
    files = [source] if source.is_file() else _dfdc_metadata_files(source)
    rows = []
    for metadata in files:
        prefix = metadata.parent.relative_to(root).as_posix()
        entries = _load_json(metadata)
        if not isinstance(entries, dict):
            raise LabelError(f"{metadata}: expected a JSON object mapping video names to {{\"label\": ...}}")
        for name, info in entries.items():
            where = f"{metadata}: entry {name!r}"
            if not isinstance(info, dict) or "label" not in info:
                raise LabelError(f"{where}: has no label")
            label = _parse_label(info["label"])
            if label is None:
                raise LabelError(f"{where}: unknown label {info['label']!r} (expected REAL or FAKE)")
            split = _parse_split(info.get("split") or "")
            if split is None:
                raise LabelError(f"{where}: unknown split {info['split']!r}")
            try:
                filename = _relative_name(name if prefix == "." else f"{prefix}/{name}")
            except ValueError as error:
                raise LabelError(f"{where}: {error}") from None
            original = info.get("original") if label == "FAKE" else None
            rows.append(LabelRow(filename, label, group=str(original or name), source="dfdc", split=split))
    if {row.split for row in rows} == {"train"}:
        rows = [replace(row, split="") for row in rows]
    return rows


# --- FaceForensics++ -------------------------------------------------------------------------


def _faceforensics_ids(stem: str) -> list[str]:
    """The source videos a FaceForensics++ video is made of.

    ``A`` and ``A_B`` (target A, face of B) name YouTube ids. DeepFakeDetection videos
    ``01_02__scene__XXXX`` are built on actor 01's ``01__scene``; actors recur in every scene,
    so grouping by actor would merge the whole set into one group: they are grouped by scene video.
    """
    if "__" in stem:
        actors, scene = stem.split("__")[:2]
        return [f"{actors.split('_')[0]}__{scene}"]
    return stem.split("_")


def _read_faceforensics(root: Path) -> list[LabelRow]:
    """FaceForensics++: originals and every fake made from them share a group (union-find over ids)."""
    found = []
    for top_name, label in (("original_sequences", "REAL"), ("manipulated_sequences", "FAKE")):
        top = _children(root).get(top_name)
        if top is None or not top.is_dir():
            continue
        for kind in _subfolders(top):
            for compression in _subfolders(kind):
                videos = _children(compression).get("videos")
                if compression.name.lower() == "masks" or videos is None or not videos.is_dir():
                    continue
                source = kind.name if label == "FAKE" else f"original/{kind.name}"
                for relative in find_videos(videos):
                    filename = (videos / relative).relative_to(root).as_posix()
                    found.append((filename, label, source, _faceforensics_ids(PurePosixPath(relative).stem)))
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for _, _, _, ids in found:
        for other in ids[1:]:
            first, second = find(ids[0]), find(other)
            parent[max(first, second)] = min(first, second)  # the smallest id names the group
    split_of = _faceforensics_splits(root, find)
    return [
        LabelRow(filename, label, group=find(ids[0]), source=source, split=split_of.get(find(ids[0]), ""))
        for filename, label, source, ids in found
    ]


def _faceforensics_splits(root: Path, find) -> dict[str, str]:
    """Split per group from the official ``splits/{train,val,test}.json`` lists of id pairs."""
    split_of: dict[str, str] = {}
    where: dict[str, Path] = {}
    folder = _children(root).get("splits")
    for split in SPLIT_NAMES:
        path = _children(folder).get(f"{split}.json") if folder is not None else None
        if path is None:
            continue
        pairs = _load_json(path)
        if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and all(isinstance(item, str) for item in pair) for pair in pairs
        ):
            raise LabelError(f"{path}: expected a JSON list of id pairs like [[\"000\", \"003\"], ...]")
        for pair in pairs:
            for video_id in pair:
                group = find(video_id)
                if split_of.setdefault(group, split) != split:
                    raise LabelError(f"{path}: id {video_id} is also in {where[group]}; a group must stay in one split")
                where[group] = path
    return split_of


# --- Celeb-DF --------------------------------------------------------------------------------


def _celebdf_group(stem: str) -> str:
    """The real video a Celeb-DF video comes from: ``idN_idM_XXXX`` is made from ``idN_XXXX``.

    Grouping by identity is not possible: the official test list covers nearly every identity,
    and fakes pair identities until all of them join one group. Grouping by source video keeps
    each real video with every fake made from it, as the official split does; a celebrity
    can still appear in both training and test, as in the published protocol.
    """
    parts = stem.split("_")
    return f"{parts[0]}_{parts[2]}" if len(parts) == 3 else stem


def _read_celebdf(root: Path) -> list[LabelRow]:
    """Celeb-DF v1/v2; ``List_of_testing_videos.txt`` marks the test split (1 = real, 0 = fake there)."""
    rows: dict[str, LabelRow] = {}
    for folder in _subfolders(root):
        label = _CELEBDF_FOLDERS.get(folder.name.lower())
        if label is None:
            continue
        for relative in find_videos(folder):
            filename = f"{folder.name}/{relative}"
            rows[filename] = LabelRow(filename, label, group=_celebdf_group(PurePosixPath(relative).stem), source=folder.name)
    test_list = _children(root).get(_CELEBDF_TEST_LIST)
    if test_list is not None:
        for number, line in enumerate(test_list.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{test_list}: line {number}"
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise LabelError(f"{where}: expected '<1 for real, 0 for fake> <folder/video.mp4>', got {line.strip()!r}")
            label = "REAL" if parts[0] == "1" else "FAKE"
            try:
                filename = _relative_name(parts[1])
            except ValueError as error:
                raise LabelError(f"{where}: {error}") from None
            folder = filename.split("/")[0]
            if _CELEBDF_FOLDERS.get(folder.lower(), label) != label:
                raise LabelError(f"{where}: {filename} is listed as {label} but {folder}/ holds {_CELEBDF_FOLDERS[folder.lower()]} videos")
            # A listed video that is not on disk is kept, so match_videos reports it as missing.
            group = _celebdf_group(PurePosixPath(filename).stem)
            rows[filename] = LabelRow(filename, label, group=group, source=folder if "/" in filename else "", split="test")
    return sorted(rows.values(), key=lambda row: row.filename)


# --- one folder per label --------------------------------------------------------------------


def _read_folders(root: Path) -> list[LabelRow]:
    """``real/`` and ``fake/`` folders in any case; a first subfolder below them names the source."""
    rows = []
    for folder in _subfolders(root):
        label = {"real": "REAL", "fake": "FAKE"}.get(folder.name.lower())
        if label is None:
            continue
        for relative in find_videos(folder):
            parts = relative.split("/")
            rows.append(LabelRow(f"{folder.name}/{relative}", label, source=parts[0] if len(parts) > 1 else ""))
    return sorted(rows, key=lambda row: row.filename)
