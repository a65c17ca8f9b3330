"""Small synthetic videos from face photographs that ship inside installed packages.

Used by the tests and the demo, so both run offline with no data folder: real faces
(scikit-image's astronaut photo) moved, lit and compressed like camera footage.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import av
import cv2
import numpy as np

from dflib.io import atomic_path

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10.0,
                codec: str = "libx264", crf: int = 23) -> Path:
    """Encode RGB uint8 frames (even width and height for yuv420p) to a video file, atomically."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        # The temporary name hides the extension, so name the container format explicitly.
        container_format = CONTAINERS.get(path.suffix.lower(), "mp4")
        with av.open(str(tmp), mode="w", format=container_format) as container:
            stream = container.add_stream(codec, rate=int(round(fps)))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            for frame in [first, *frames]:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def face_photo() -> np.ndarray:
    """A real face photograph (NASA portrait, public domain) shipped with scikit-image, cropped to the head."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:260, 120:340])


def moving_face_frames(n_frames: int = 12, width: int = 320, height: int = 240, face_size: int = 120,
                       seed: int = 0, face: np.ndarray | None = None) -> list[np.ndarray]:
    """A face drifting over a textured background with slow lighting change and sensor noise."""
    rng = np.random.default_rng(seed)
    face = face_photo() if face is None else face
    face_h = face_size
    face_w = max(2, int(round(face.shape[1] * face_size / face.shape[0])))
    face = cv2.resize(face, (face_w, face_h), interpolation=cv2.INTER_AREA)
    background = cv2.GaussianBlur(rng.integers(40, 200, (height, width, 3), dtype=np.uint8), (0, 0), 8)
    start = np.array([rng.uniform(0, width - face_w), rng.uniform(0, height - face_h)])
    drift = rng.uniform(-3, 3, 2)
    frames = []
    for t in range(n_frames):
        x, y = np.clip(start + drift * t, 0, [width - face_w, height - face_h]).astype(int)
        frame = background.copy()
        frame[y:y + face_h, x:x + face_w] = face
        gain = 1.0 + 0.15 * np.sin(t / max(n_frames, 1) * np.pi)
        noisy = frame.astype(np.float32) * gain + rng.normal(0, 3, frame.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


def noise_frames(n_frames: int = 8, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    """Frames with no face at all."""
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
            for _ in range(n_frames)]
