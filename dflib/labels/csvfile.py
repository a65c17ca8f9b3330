"""The original design's ``filename,label`` CSV, tolerating what spreadsheets do to it, and dflib's own.

A file without a ``group`` column (the original design's ``Gobal_metadata.csv`` mixes
FaceForensics++, Celeb-DF and DFDC names) gets its groups from the datasets' naming rules, so a
fake never lands on the other side of the split from the video it was made from.
"""
from __future__ import annotations

import csv
import io
import os
import warnings
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path, PurePosixPath

from dflib.io import atomic_write_text
from dflib.labels import celebdf, dfdc, faceforensics
from dflib.labels.common import (
    CSV_COLUMNS,
    GROUP_SEPARATOR,
    LabelError,
    LabelRow,
    NameInfo,
    Reading,
    children,
    parse_label,
    parse_split,
    relative_name,
    union_groups,
)

NAME = "csv"
# Header names accepted per column; a header is recognised by a label and a filename column.
_HEADER_ALIASES = {
    "filename": ("filename", "file", "video", "path"),
    "label": ("label",),
    "group": ("group",),
    "source": ("source", "method"),
    "split": ("split",),
    "compression": ("compression", "quality"),
}
NAME_RULES = {
    faceforensics.SOURCE: faceforensics.NAME_RULE,
    faceforensics.ACTORS_SOURCE: faceforensics.ACTORS_NAME_RULE,
    celebdf.SOURCE: celebdf.NAME_RULE,
    dfdc.SOURCE: dfdc.NAME_RULE,
}


def name_info(filename: str) -> NameInfo | None:
    """What the public datasets' naming rules say about a file, or None when no rule fits."""
    stem = PurePosixPath(filename).stem
    return faceforensics.name_info(stem) or celebdf.name_info(stem) or dfdc.name_info(stem)


def find_labels_csv(folder: Path) -> Path | None:
    candidate = children(folder).get("labels.csv")
    return candidate if candidate is not None and candidate.is_file() else None


def detect(folder: Path) -> bool:
    return find_labels_csv(folder) is not None


def read(source: Path, videos_dir: Path | None) -> Reading:
    path = source if source.is_file() else find_labels_csv(source)
    if path is None:
        raise LabelError(f"{source}: folder has no labels.csv; pass the label file itself")
    return _infer_groups(_read_rows(path, videos_dir), path, videos_dir)


def write_labels_csv(rows: list[LabelRow], path: str | os.PathLike, extra_columns: bool = True) -> Path:
    """Write rows atomically; without extra columns, in the original design's headerless ``filename,label``.

    The compression column is written only when some row has one.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if extra_columns:
        columns = [c for c in CSV_COLUMNS if c != "compression" or any(row.compression for row in rows)]
        writer.writerow(columns)
        writer.writerows([getattr(row, column) for column in columns] for row in rows)
    else:
        writer.writerows([row.filename, row.label] for row in rows)
    return atomic_write_text(path, buffer.getvalue())


def _infer_groups(rows: list[LabelRow], path: Path, videos_dir: Path | None) -> Reading:
    """Groups (and the dataset as source) from the naming rules, for rows that give no group.

    A DFDC fake's original comes from the DFDC metadata.json files below the videos folder, or
    beside the label file when no videos folder is given.
    """
    infos = {row.filename: name_info(row.filename) for row in rows if not row.group}
    infos = {filename: info for filename, info in infos.items() if info is not None}
    if not infos:
        return Reading(rows)
    group_of = union_groups([info.keys for info in infos.values() if info.merge])
    originals, search = {}, videos_dir if videos_dir is not None else path.parent
    if any(info.dataset == dfdc.SOURCE for info in infos.values()):
        if videos_dir is not None and videos_dir.is_dir():
            metadata = dfdc.find_label_files(videos_dir)[0]
        else:
            metadata = [beside for beside in [path.parent / "metadata.json"] if dfdc.is_metadata(beside)]
        originals = dfdc.originals(metadata)
    inferred = []
    for row in rows:
        info = infos.get(row.filename)
        if info is None:
            inferred.append(row)
            continue
        if info.dataset == dfdc.SOURCE:
            group = originals.get(PurePosixPath(row.filename).name, info.keys[0])
        elif info.merge:
            group = group_of[info.keys[0]]
        else:
            group = GROUP_SEPARATOR.join(info.keys)
        inferred.append(replace(row, group=group, source=row.source or info.dataset))
    notes = []
    for dataset, count in sorted(Counter(info.dataset for info in infos.values()).items()):
        mine = [row for row in inferred if row.filename in infos and infos[row.filename].dataset == dataset]
        if all(infos[row.filename].merge for row in mine):
            found = f"{len({row.group for row in mine})} groups"
        else:
            found = f"{len({key for row in mine for key in row.group_keys()})} people"
        line = f"{dataset}: {count} videos without a group, grouped from their names ({NAME_RULES[dataset]}): {found}"
        if dataset == dfdc.SOURCE:
            with_original = sum(1 for name in infos if PurePosixPath(name).name in originals)
            line += f"; {with_original} fakes grouped with their original from metadata.json files in {search}"
        notes.append(line)
    return Reading(inferred, notes)


def _read_rows(path: Path, videos_dir: Path | None) -> list[LabelRow]:
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
            stacklevel=4,
        )
    return rows


def _header_columns(path: Path, number: int, cells: list[str]) -> dict[str, int]:
    """Column positions when the first row is a header; empty when the file has none."""
    names = [cell.lower() for cell in cells]
    if "label" not in names or parse_label(cells[1] if len(cells) > 1 else "") is not None:
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
        filename = relative_name(values["filename"], videos_dir)
    except ValueError as error:
        raise LabelError(f"{where}: {error}") from None
    label = parse_label(values["label"])
    if label is None:
        raise LabelError(f"{where}: unknown label {values['label']!r} (expected REAL, FAKE, 0 or 1)")
    split = parse_split(values.get("split", ""))
    if split is None:
        raise LabelError(f"{where}: unknown split {values['split']!r} (expected train, val, test or empty)")
    return LabelRow(filename, label, group=values.get("group", ""), source=values.get("source", ""), split=split,
                    compression=values.get("compression", "").lower())
