"""Celeb-DF v1/v2: layout, groups and the official test list.

Layout: ``Celeb-real/``, ``YouTube-real/`` and ``Celeb-synthesis/`` in any case and spelling of
case (``Youtube-real``), with the videos directly inside or in a subfolder (``Celeb-real/videos/``,
as DeepfakeBench and SelfBlendedImages keep them). Groups: the celebrities, ``id0`` for a real
``id0_0003.mp4`` and ``id0+id1`` for the fake ``id0_id1_0003.mp4`` (id0's video with id1's face),
so that train and validation never share a person. The official test split is
``List_of_testing_videos.txt`` exactly (v2: 518 videos, 178 REAL, 340 FAKE); it lets a celebrity,
and even a source video, appear in training too (see ``dflib.splits.overlap_with_test``).
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from dflib.labels.common import (
    GROUP_SEPARATOR,
    LabelError,
    LabelRow,
    NameInfo,
    Reading,
    children,
    find_videos,
    relative_name,
    subfolders,
)

NAME = "celebdf"
SOURCE = "Celeb-DF"
NAME_RULE = "idA_MMMM.mp4 and idA_idB_MMMM.mp4: the celebrities idA and idB are the people"
TEST_LIST = "list_of_testing_videos.txt"
# Folder (lower case) -> (label, the dataset's own spelling).
FOLDERS = {
    "celeb-real": ("REAL", "Celeb-real"),
    "youtube-real": ("REAL", "YouTube-real"),
    "celeb-synthesis": ("FAKE", "Celeb-synthesis"),
}
_NAME = re.compile(r"(id\d+)(?:_(id\d+))?_(\d{4})")


def name_info(stem: str) -> NameInfo | None:
    match = _NAME.fullmatch(stem)
    if match is None:
        return None
    target, face, clip = match.groups()
    return NameInfo(SOURCE, tuple(person for person in (target, face) if person), sources=(f"{target}_{clip}",))


def detect(folder: Path) -> bool:
    return bool((set(FOLDERS) | {TEST_LIST}) & children(folder).keys())


def _group(stem: str) -> str:
    info = name_info(stem)
    return GROUP_SEPARATOR.join(info.keys) if info else ""


def read(root: Path) -> Reading:
    rows: dict[str, LabelRow] = {}
    on_disk: dict[tuple[str, str], str] = {}  # (folder in lower case, file name) -> path
    for folder in subfolders(root):
        kind = FOLDERS.get(folder.name.lower())
        if kind is None:
            continue
        label, source = kind
        for relative in find_videos(folder):
            filename = f"{folder.name}/{relative}"
            name = PurePosixPath(relative).name
            on_disk[(folder.name.lower(), name)] = filename
            rows[filename] = LabelRow(filename, label, group=_group(PurePosixPath(name).stem), source=source)
    reading = Reading([])
    test_list = children(root).get(TEST_LIST)
    if test_list is not None:
        listed = _read_test_list(test_list, on_disk)
        for row in listed:
            rows[row.filename] = row
        reading.notes.append(f"Celeb-DF: the test split is {test_list} exactly ({len(listed)} videos listed)")
    else:
        reading.warnings.append(
            f"{root}: no List_of_testing_videos.txt: the split will be dflib's random one, not Celeb-DF's official test set"
        )
    reading.rows = sorted(rows.values(), key=lambda row: row.filename)
    return reading


def _read_test_list(path: Path, on_disk: dict[tuple[str, str], str]) -> list[LabelRow]:
    """``<1 real | 0 fake> <folder/video.mp4>`` per line; each listed video resolved to its file on disk.

    A listed video that is not on disk keeps its listed name, so that matching reports it missing.
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise LabelError(f"{where}: expected '<1 for real, 0 for fake> <folder/video.mp4>', got {line.strip()!r}")
        label = "REAL" if parts[0] == "1" else "FAKE"
        try:
            listed = relative_name(parts[1])
        except ValueError as error:
            raise LabelError(f"{where}: {error}") from None
        folder, name = (listed.split("/")[0], PurePosixPath(listed).name) if "/" in listed else ("", listed)
        folder_label, source = FOLDERS.get(folder.lower(), (label, folder))
        if folder_label != label:
            raise LabelError(f"{where}: {listed} is listed as {label} but {folder}/ holds {folder_label} videos")
        filename = on_disk.get((folder.lower(), name), listed)
        rows.append(LabelRow(filename, label, group=_group(PurePosixPath(name).stem), source=source, split="test"))
    return rows
