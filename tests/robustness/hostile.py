"""Hostile and broken inputs, generated at test time (nothing large is committed).

Every helper here makes small files fast: 160x120 clips of a real face photograph, a few frames
each, plus files made with ffmpeg for what PyAV cannot write (rotation metadata, audio only).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from dflib.synthetic import face_photo, moving_face_frames, write_video

REPO = Path(__file__).resolve().parents[2]
# Preprocessing settings small enough for a shared 2-core machine; the checkpoint records the same.
PREPROCESS = dict(frames=6, size=32, min_frames=3, detect_long_side=320)
PREPROCESS_FLAGS = ["--frames", "6", "--size", "32", "--min-frames", "3", "--detect-long-side", "320"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "Agg",
                  "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True,
                   timeout=120)


def tree_state(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed): kind, size, mode and content hash or link target."""
    state = {}
    for root, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(root) / name
            info = path.lstat()
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                state[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                state[relative] = ("dir", info.st_mode)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if os.access(path, os.R_OK) else "?"
                state[relative] = ("file", info.st_size, info.st_mode, info.st_mtime_ns, digest)
    return state


def run_dflib(*args: str, timeout: float = 300, **options) -> subprocess.CompletedProcess:
    """``python -m dflib ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dflib", *map(str, args)], capture_output=True, text=True,
                          env=SUBPROCESS_ENV, timeout=timeout, cwd=options.pop("cwd", REPO), **options)


def assert_one_line_error(stderr: str, *fragments: str) -> str:
    """A fatal user error: exactly one line ``dflib CMD: error: ...`` naming the cause, no traceback."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dflib ") and ": error: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def face_clip(n_frames: int = 12, width: int = 160, height: int = 120, face_size: int = 70, seed: int = 1):
    return moving_face_frames(n_frames, width, height, face_size=face_size, seed=seed)


def several_faces_frames(n_frames: int = 8) -> list[np.ndarray]:
    """Two faces (the photograph and its mirror image) far apart, drifting apart."""
    rng = np.random.default_rng(4)
    face = cv2.resize(face_photo(), (60, 70), interpolation=cv2.INTER_AREA)
    background = cv2.GaussianBlur(rng.integers(40, 200, (180, 320, 3), dtype=np.uint8), (0, 0), 8)
    frames = []
    for t in range(n_frames):
        frame = background.copy()
        frame[20 + t:90 + t, 10 + t:70 + t] = face
        frame[90 - t:160 - t, 240 - t:300 - t] = face[:, ::-1]
        frames.append(frame)
    return frames


def write_vfr(path: Path, frames: list[np.ndarray], pts_ms: list[int]) -> Path:
    """A variable-frame-rate file: each frame at its own millisecond timestamp (lossless ffv1 in mkv)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=1000)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.time_base = Fraction(1, 1000)
        for image, pts in zip(frames, pts_ms):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = pts, stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_vertical(path: Path, work: Path) -> Path:
    """A phone video: a portrait scene stored sideways (landscape pixels) with 90-degree display rotation."""
    upright = face_clip(8, width=120, height=160, seed=5)
    stored = write_video(work / "stored_sideways.mp4", [np.ascontiguousarray(np.rot90(f, k=-1)) for f in upright])
    ffmpeg("-display_rotation", "90", "-i", stored, "-c", "copy", path)
    return path


def write_4k(path: Path, seconds: int = 3, fps: int = 10) -> Path:
    """A 3840x2160 clip with a large face: one second encoded from a still image (keyframe first),
    then looped by stream copy, since encoding 4K takes ~0.5 s a frame on a shared core."""
    frame = np.full((2160, 3840, 3), 90, np.uint8)
    face = cv2.resize(face_photo(), (760, 900), interpolation=cv2.INTER_LINEAR)
    frame[500:1400, 1500:2260] = face
    still, second = path.with_suffix(".png"), path.with_suffix(".1s.mp4")
    cv2.imwrite(str(still), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    ffmpeg("-loop", "1", "-framerate", fps, "-i", still, "-frames:v", fps, "-c:v", "libx264", "-preset", "ultrafast",
           "-g", fps, "-pix_fmt", "yuv420p", second)
    ffmpeg("-stream_loop", seconds - 1, "-i", second, "-c", "copy", path)
    still.unlink()
    second.unlink()
    return path


# Each hostile video: (file name, what preprocess must say, what predict must say).
# Preprocess status is ok/skipped/failed with a reason fragment; predict status is ok/no_face/error.
# Predict keeps the checkpoint's min_frames, so what preprocessing skips for too few face frames, it does not score.
VIDEO_CASES = {
    "zero_bytes.mp4": ("failed", "empty file", "error"),
    "truncated_index.mp4": ("failed", "not a readable video: MP4 or MOV file without a usable index, "
                                      "most likely cut short", "error"),
    "truncated_stream.mkv": ("ok", "", "ok"),
    "random_bytes.mp4": ("failed", "not a readable video", "error"),
    "text_file.avi": ("failed", "not a readable video", "error"),
    "audio_only.mp4": ("failed", "no video stream", "error"),
    "single_frame.mp4": ("skipped", "too few frames with a face (1 of 1; min_frames=3)", "no_face"),
    "four_frames.mp4": ("ok", "", "ok"),
    "vertical_rotated.mp4": ("ok", "", "ok"),
    "grayscale.mkv": ("ok", "", "ok"),
    "variable_rate.mkv": ("ok", "", "ok"),
    "tiny_64x48.mp4": ("ok", "", "ok"),
    "no_face.mp4": ("skipped", "no face found in 6 sampled frames", "no_face"),
    "face_in_last_second.mp4": ("skipped", "too few frames with a face (2 of 6; min_frames=3)", "no_face"),
    "several_faces.mp4": ("ok", "", "ok"),
    "vidéo ünïcødé 名前.mp4": ("ok", "", "ok"),
    "with space.mp4": ("ok", "", "ok"),
    "symlink.mp4": ("ok", "", "ok"),
    "dangling_symlink.mp4": ("failed", "file not found", "error"),
}
VFR_PTS_MS = [0, 40, 80, 300, 340, 900, 950, 1500]
