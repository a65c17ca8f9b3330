"""DFDC (Deepfake Detection Challenge): ``metadata.json`` per training part, and the public test set.

Layouts read: a single ``metadata.json``; part folders at any depth
(``DFDC/train/dfdc_train_part_N/metadata.json``, Kaggle's ``train_sample_videos/metadata.json``);
and the public test set's ``labels.csv`` (``filename,label``, label 0/1), which is the test split.
A fake is grouped with the real video it was made from (its ``original``), so they share a split.
Every training entry says ``split: train`` (the competition's training set), which leaves nothing
to validate on, so such splits are left to the splitter, which never adds to a published test set.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path, PurePosixPath

from dflib.labels.common import (
    LabelError,
    LabelRow,
    NameInfo,
    Reading,
    find_videos,
    load_json,
    parse_label,
    parse_split,
    relative_name,
    walk_files,
)

NAME = "dfdc"
SOURCE = "DFDC"
PERSON_WARNING = ("DFDC splits follow the original video, but one actor appears in many originals and "
                  "metadata.json does not say who: the same person can sit in train and test, which flatters "
                  "test scores")
NAME_RULE = "ten lower-case letters (aaqaifqrwn.mp4): no relation in the name; its own group unless a metadata.json gives its original"
_METADATA = "metadata.json"
_TEST_LABELS = "labels.csv"
_NAME = re.compile(r"[a-z]{10}")
# A DFDC metadata.json starts with an entry like {"aaqaifqrwn.mp4": {"label": ...
_METADATA_START = re.compile(r'\s*\{\s*"[^"]+\.mp4"\s*:\s*\{')


def name_info(stem: str) -> NameInfo | None:
    return NameInfo(SOURCE, (f"{stem}.mp4",), merge=True) if _NAME.fullmatch(stem) else None


def is_metadata(path: Path) -> bool:
    """A ``metadata.json`` in DFDC's shape, judged by its first bytes (parts are megabytes)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return bool(_METADATA_START.match(handle.read(512)))
    except OSError:
        return False


def _candidates(root: Path):
    """Every file below ``root`` named metadata.json or labels.csv (in any case)."""
    for folder, names in walk_files(root):
        for name in names:
            if name.lower() in (_METADATA, _TEST_LABELS):
                yield root / folder / name


def find_label_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(DFDC metadata.json files, public-test labels.csv files) anywhere below ``root``."""
    metadata, tests = [], []
    for path in _candidates(root):
        if path.name.lower() == _METADATA and is_metadata(path):
            metadata.append(path)
        elif path.name.lower() == _TEST_LABELS and _is_test_labels(path):
            tests.append(path)
    # A filename,label file at the top is the user's own unless the folder is just the test set.
    tests = [path for path in tests if path.parent != root or not metadata]
    return metadata, tests


def detect(folder: Path) -> bool:
    return any(path.name.lower() == _METADATA and is_metadata(path) for path in _candidates(folder))


def read(source: Path) -> Reading:
    root = source.parent if source.is_file() else source
    if source.is_file():
        metadata, tests = [source], []
    else:
        metadata, tests = find_label_files(source)
    if not metadata and not tests:
        raise LabelError(
            f"{source}: no DFDC labels found: looked in this folder and every folder below it for a "
            f"metadata.json (training parts, Kaggle train_sample_videos) and for a labels.csv with the "
            f"header filename,label (the public test set)",
            option="label_format",
        )
    rows = [row for path in metadata for row in _read_metadata(path, root)]
    if {row.split for row in rows} == {"train"}:
        for row in rows:
            row.split = ""
    test_rows = [row for path in tests for row in _read_test_labels(path, root)]
    notes = [f"DFDC: {len(metadata)} metadata.json file(s); each fake is grouped with its original video"]
    if tests:
        notes.append(f"DFDC public test set: {len(test_rows)} videos from {', '.join(str(p) for p in tests)} are the test split")
    # The metadata names each fake's original video but not who is in it, and DFDC's actors each
    # appear in many originals: groups by original keep a video and its fakes together, not a person.
    warnings = [PERSON_WARNING] if rows else []
    return Reading(rows + test_rows, notes, warnings)


def originals(metadata: list[Path]) -> dict[str, str]:
    """Video name -> the name of its original, from DFDC metadata.json files."""
    found = {}
    for path in metadata:
        entries = load_json(path)
        if isinstance(entries, dict):
            found.update(
                (name, info["original"]) for name, info in entries.items() if isinstance(info, dict) and info.get("original")
            )
    return found


def _read_metadata(metadata: Path, root: Path) -> list[LabelRow]:
    prefix = metadata.parent.relative_to(root).as_posix()
    entries = load_json(metadata)
    if not isinstance(entries, dict):
        raise LabelError(f"{metadata}: expected a JSON object mapping video names to {{\"label\": ...}}")
    rows = []
    for name, info in entries.items():
        where = f"{metadata}: entry {name!r}"
        if not isinstance(info, dict) or "label" not in info:
            raise LabelError(f"{where}: has no label")
        label = parse_label(info["label"])
        if label is None:
            raise LabelError(f"{where}: unknown label {info['label']!r} (expected REAL or FAKE)")
        split = parse_split(info.get("split") or "")
        if split is None:
            raise LabelError(f"{where}: unknown split {info['split']!r}")
        try:
            filename = relative_name(name)
        except ValueError as error:
            raise LabelError(f"{where}: {error}") from None
        filename = filename if prefix == "." else f"{prefix}/{filename}"
        original = info.get("original") if label == "FAKE" else None
        rows.append(LabelRow(filename, label, group=str(original or name), source=SOURCE, split=split))
    return rows


def _is_test_labels(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return False
    return [cell.strip().lower() for cell in header.split(",")] == ["filename", "label"]


def _read_test_labels(path: Path, root: Path) -> list[LabelRow]:
    """The public test set's ``filename,label`` (0 real, 1 fake); videos beside it or below it."""
    folder = path.parent
    on_disk = {PurePosixPath(name).name: name for name in find_videos(folder)}
    prefix = folder.relative_to(root).as_posix()
    rows = []
    lines = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    for number, cells in enumerate(lines, 1):
        if number == 1 or not any(cell.strip() for cell in cells):
            continue
        where = f"{path}: line {number}"
        label = parse_label(cells[1]) if len(cells) == 2 else None
        if label is None:
            raise LabelError(f"{where}: expected 'filename,0 or 1', got {','.join(cells)!r}")
        try:
            name = relative_name(cells[0])
        except ValueError as error:
            raise LabelError(f"{where}: {error}") from None
        found = on_disk.get(PurePosixPath(name).name, name)
        rows.append(LabelRow(found if prefix == "." else f"{prefix}/{found}", label, group=PurePosixPath(name).name,
                             source=SOURCE, split="test"))
    return rows
