"""The per-video output of preprocessing: one face track's crops plus where they came from.

Stored as an uncompressed ``.npz`` so training loads a clip in milliseconds without decoding
any video, and without pickle (``allow_pickle=False``), so a crop file can never run code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dflib.io import atomic_path

SUFFIX = ".npz"


@dataclass
class FaceClip:
    """One face track of one video, sampled at ``frame_indices``."""

    crops: np.ndarray  # (T, S, S, 3) uint8 RGB
    frame_indices: np.ndarray  # (T,) int64, index of each crop's frame in the decoded video
    timestamps: np.ndarray  # (T,) float64 seconds
    boxes: np.ndarray  # (T, 4) float32 x1, y1, x2, y2 of the square crop box, in frame pixels
    scores: np.ndarray  # (T,) float32 detector score; 0 where the box was interpolated
    landmarks: np.ndarray  # (T, 5, 2) float32 in crop pixels; NaN where the detector gives none
    interpolated: np.ndarray  # (T,) bool
    meta: dict = field(default_factory=dict)  # video, size, fps, rotation, detector, config, label
    landmarks68: np.ndarray | None = None  # (T, 68, 2) float32 dlib points in crop pixels (preprocess --landmarks68)

    def __len__(self) -> int:
        return len(self.crops)


def save_clip(path: str | os.PathLike, clip: FaceClip) -> Path:
    path = Path(path)
    optional = {} if clip.landmarks68 is None else {"landmarks68": np.asarray(clip.landmarks68, dtype=np.float32)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                **optional,
                crops=np.ascontiguousarray(clip.crops, dtype=np.uint8),
                frame_indices=np.asarray(clip.frame_indices, dtype=np.int64),
                timestamps=np.asarray(clip.timestamps, dtype=np.float64),
                boxes=np.asarray(clip.boxes, dtype=np.float32),
                scores=np.asarray(clip.scores, dtype=np.float32),
                landmarks=np.asarray(clip.landmarks, dtype=np.float32),
                interpolated=np.asarray(clip.interpolated, dtype=bool),
                meta=np.array(json.dumps(clip.meta)),
            )
    return path


def load_clip(path: str | os.PathLike) -> FaceClip:
    """Load a crop file; raises ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        clip = FaceClip(meta=meta, **arrays)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        raise ValueError(f"{path}: not a readable dflib crop file ({error})") from error
    if clip.crops.ndim != 4 or clip.crops.shape[-1] != 3 or len(clip.frame_indices) != len(clip.crops):
        raise ValueError(f"{path}: crop file has inconsistent shapes {clip.crops.shape}")
    return clip


def contact_sheet(crops: np.ndarray, columns: int = 10, gap: int = 2) -> np.ndarray:
    """All crops of a clip tiled into one RGB image, for a quick look at what was kept."""
    count, size = len(crops), crops.shape[1]
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    sheet = np.full((rows * (size + gap) + gap, columns * (size + gap) + gap, 3), 255, dtype=np.uint8)
    for i, crop in enumerate(crops):
        top, left = gap + (i // columns) * (size + gap), gap + (i % columns) * (size + gap)
        sheet[top:top + size, left:left + size] = crop
    return sheet
