"""One folder per label: ``real/`` and ``fake/`` in any case; a first subfolder below them names the source."""
from __future__ import annotations

from pathlib import Path

from dflib.labels.common import LabelRow, Reading, children, find_videos, subfolders

NAME = "folders"
_LABELS = {"real": "REAL", "fake": "FAKE"}


def detect(folder: Path) -> bool:
    return any(name in _LABELS and path.is_dir() for name, path in children(folder).items())


def read(root: Path) -> Reading:
    rows = []
    for folder in subfolders(root):
        label = _LABELS.get(folder.name.lower())
        if label is None:
            continue
        for relative in find_videos(folder):
            parts = relative.split("/")
            rows.append(LabelRow(f"{folder.name}/{relative}", label, source=parts[0] if len(parts) > 1 else ""))
    return Reading(sorted(rows, key=lambda row: row.filename))
