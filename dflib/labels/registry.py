"""Which layout a label source has, and reading it into rows relative to the videos folder."""
from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

from dflib.labels import celebdf, csvfile, dfdc, faceforensics, folders
from dflib.labels.common import LabelError, LabelRow, Reading, reroot

READERS = {module.NAME: module for module in (csvfile, dfdc, faceforensics, celebdf, folders)}
LABEL_FORMATS = tuple(READERS)
COMPRESSIONS = ("c23", "c40", "raw")  # the order "auto" prefers: c23 is the benchmark most papers report


def list_label_formats() -> list[str]:
    return list(LABEL_FORMATS)


def detect_label_formats(source: str | os.PathLike) -> list[str]:
    """Formats whose layout ``source`` matches; more than one means the caller must choose."""
    source = Path(source)
    if source.is_file():
        if source.name.lower() == celebdf.TEST_LIST:
            return [celebdf.NAME]
        return [dfdc.NAME] if source.suffix.lower() == ".json" else [csvfile.NAME]
    return [name for name, reader in READERS.items() if reader.detect(source)]


def read_dataset(
    source: str | os.PathLike, videos_dir: str | os.PathLike | None = None, fmt: str = "",
    splits_dir: str | os.PathLike | None = None,
) -> tuple[str, Reading]:
    """(format, what was read): rows relative to the videos folder, with notes and warnings.

    A dataset layout wins over a ``labels.csv`` beside it (often one that ``dflib labels --out``
    wrote there), with a note; ``fmt="csv"`` reads that file instead.
    """
    source = Path(source)
    if not source.exists():
        raise LabelError(f"{source}: no such file or folder")
    notes = []
    if fmt and fmt not in READERS:
        raise LabelError(f"{source}: unknown label format {fmt!r}; choose one of {', '.join(LABEL_FORMATS)}",
                         option="label_format")
    if not fmt:
        fmt, notes = _choose_format(source)
    videos = Path(videos_dir) if videos_dir else None
    splits = Path(splits_dir) if splits_dir else None
    if splits is not None and not splits.is_dir():
        raise LabelError(f"{splits}: split folder does not exist", option="label_splits")
    if fmt == csvfile.NAME:
        reading = csvfile.read(source, videos)
    else:
        root = source.parent if source.is_file() else source
        if fmt == dfdc.NAME:
            reading = dfdc.read(source)
        elif fmt == faceforensics.NAME:
            reading = faceforensics.read(root, splits)
        else:
            reading = READERS[fmt].read(root)
        reading.rows = reroot(reading.rows, root, videos)
    if not reading.rows:
        raise LabelError(f"{source}: no labelled videos found (read as {fmt})", option="label_format")
    reading.notes[:0] = notes
    return fmt, reading


def read_labels(
    source: str | os.PathLike, videos_dir: str | os.PathLike | None = None, fmt: str = "",
    splits_dir: str | os.PathLike | None = None,
) -> list[LabelRow]:
    """Read a label file or dataset folder into rows whose filenames are relative to the videos folder.

    ``videos_dir`` defaults to the dataset folder (or the folder of a DFDC ``metadata.json``);
    when given, dataset filenames are expressed relative to it, and absolute paths in a CSV
    are accepted when they lie inside it. Listed videos that are not on disk are kept, so
    that ``match_videos`` can report them. What makes the result incomparable with published
    protocols (no official split found) is raised as a warning.
    """
    _, reading = read_dataset(source, videos_dir, fmt, splits_dir)
    for message in reading.warnings:
        warnings.warn(message, stacklevel=2)
    return reading.rows


def select_compression(rows: list[LabelRow], compression: str = "auto") -> tuple[list[LabelRow], list[LabelRow], str]:
    """(rows used, rows of other compressions, the compression used) for trees holding several.

    ``auto`` uses c23 when present (then c40, then raw); ``all`` uses every one. Rows without a
    compression are always used.
    """
    present = Counter(row.compression for row in rows if row.compression)
    if compression == "all" or not present:
        return rows, [], compression if compression == "all" else ""
    if compression in ("", "auto"):
        compression = next((name for name in COMPRESSIONS if name in present), min(present))
    elif compression not in present:
        raise LabelError(
            f"no {compression} videos here: the compressions present are {', '.join(sorted(present))} (or use auto, all)",
            option="compression",
        )
    used = [row for row in rows if not row.compression or row.compression == compression]
    return used, [row for row in rows if row.compression and row.compression != compression], compression


def _choose_format(source: Path) -> tuple[str, list[str]]:
    candidates = detect_label_formats(source)
    layouts = [name for name in candidates if name != csvfile.NAME]
    if len(layouts) == 1:
        notes = [f"{source}: read as {layouts[0]}; its labels.csv is not used (the csv format reads it)"] if (
            csvfile.NAME in candidates) else []
        return layouts[0], notes
    if candidates == [csvfile.NAME]:
        return csvfile.NAME, []
    found = f"it matches several: {', '.join(layouts)}" if layouts else "no known layout matches"
    raise LabelError(f"{source}: cannot tell the label format ({found}); choose one of {', '.join(LABEL_FORMATS)}",
                     option="label_format")
