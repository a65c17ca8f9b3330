"""A tiny preprocessed data folder, written the way ``dflib preprocess`` writes one.

FAKE clips carry a bright square (an easy, learnable cue); REAL clips are noise only.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dflib.config import PreprocessConfig, to_dict
from dflib.cropfile import FaceClip, save_clip
from dflib.preprocess import MANIFEST_COLUMNS



def synthetic_clip(label: str, frames: int, size: int, rng: np.random.Generator) -> FaceClip:
    crops = rng.integers(0, 120, size=(frames, size, size, 3), dtype=np.uint8)
    if label == "FAKE":
        side = size // 3
        x, y = rng.integers(0, size - side, size=2)
        crops[:, y : y + side, x : x + side] = 250
    landmarks = np.tile(np.float32([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.4, 0.7], [0.6, 0.7]]) * size, (frames, 1, 1))
    return FaceClip(
        crops=crops,
        frame_indices=np.arange(frames) * 5,
        timestamps=np.arange(frames) / 6.0,
        boxes=np.tile(np.float32([0, 0, size, size]), (frames, 1)),
        scores=np.ones(frames, np.float32),
        landmarks=landmarks,
        interpolated=np.zeros(frames, bool),
        meta={"label": label},
    )


def make_data_dir(
    root: Path, n_real: int, n_fake: int, frames: int = 6, size: int = 32, seed: int = 0, extra_rows: bool = True,
    n_photos: int = 0,
) -> Path:
    """Write crops/*.npz, manifest.csv and preprocess_config.json under ``root``; returns ``root``.

    With ``extra_rows``, the manifest also lists a failed video and an unlabeled one, which
    training must ignore. ``n_photos`` REAL photographs (one-frame clips) come after the videos.
    """
    rng = np.random.default_rng(seed)
    rows = []
    clips = [(label, f"{label.lower()}_{i:03d}.mp4", frames) for i, label in enumerate(["REAL"] * n_real + ["FAKE"] * n_fake)]
    clips += [("REAL", f"photo_{i:03d}.jpg", 1) for i in range(n_photos)]
    for i, (label, filename, length) in enumerate(clips):
        output = f"crops/{filename}.npz"
        save_clip(root / output, synthetic_clip(label, length, size, rng))
        rows.append({"filename": filename, "label": label, "status": "ok", "frames": length, "output": output,
                     "group": f"person{i}", "source": "synthetic"})
    if extra_rows:
        rows.append({"filename": "broken.mp4", "label": "FAKE", "status": "failed", "reason": "no face"})
        save_clip(root / "crops/unlabeled.mp4.npz", synthetic_clip("REAL", frames, size, rng))
        rows.append({"filename": "unlabeled.mp4", "label": "", "status": "ok", "output": "crops/unlabeled.mp4.npz"})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (root / "preprocess_config.json").write_text(json.dumps(to_dict(PreprocessConfig(frames=frames, size=size))))
    return root
