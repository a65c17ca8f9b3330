"""Fixtures of the robustness suite: the hostile videos and a tiny checkpoint, made once per session."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dflib.config import PreprocessConfig
from dflib.synthetic import noise_frames, write_video
from hostile import (PREPROCESS, VFR_PTS_MS, VIDEO_CASES, face_clip, ffmpeg, several_faces_frames, write_vertical,
                     write_vfr)


@pytest.fixture(scope="session")
def hostile_videos(tmp_path_factory) -> Path:
    """One folder holding every hostile video of VIDEO_CASES (and a link target outside it)."""
    root = tmp_path_factory.mktemp("hostile")
    folder, work = root / "videos", root / "work"
    folder.mkdir()
    work.mkdir()
    face = write_video(work / "face.mp4", face_clip(12))
    data = face.read_bytes()

    (folder / "zero_bytes.mp4").write_bytes(b"")
    # A download cut short: an mp4 whose index (moov, written last) never arrived.
    (folder / "truncated_index.mp4").write_bytes(data[: len(data) // 2])
    # Cut mid-stream with the index intact (mkv writes as it goes): the frames before the cut remain.
    mkv = write_video(work / "face.mkv", face_clip(12))
    (folder / "truncated_stream.mkv").write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 2 // 3])
    (folder / "random_bytes.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (folder / "text_file.avi").write_text("this is a text file, not a video\n" * 30)
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", folder / "audio_only.mp4")
    write_video(folder / "single_frame.mp4", face_clip(1))
    write_video(folder / "four_frames.mp4", face_clip(4))
    write_vertical(folder / "vertical_rotated.mp4", work)
    ffmpeg("-i", face, "-pix_fmt", "gray", "-c:v", "ffv1", folder / "grayscale.mkv")
    write_vfr(folder / "variable_rate.mkv", face_clip(len(VFR_PTS_MS)), VFR_PTS_MS)
    write_video(folder / "tiny_64x48.mp4", face_clip(6, width=64, height=48, face_size=30))
    write_video(folder / "no_face.mp4", noise_frames(8, 160, 120))
    # 3 s of 10 fps: a face only in the last second (frames 20-29); 6 uniform samples see it twice.
    write_video(folder / "face_in_last_second.mp4", noise_frames(20, 160, 120) + face_clip(10))
    write_video(folder / "several_faces.mp4", several_faces_frames())
    (folder / "vidéo ünïcødé 名前.mp4").write_bytes(data)
    (folder / "with space.mp4").write_bytes(data)
    outside = work / "linked_target.mp4"
    outside.write_bytes(data)
    (folder / "symlink.mp4").symlink_to(outside)
    (folder / "dangling_symlink.mp4").symlink_to(work / "deleted.mp4")
    assert sorted(p.name for p in folder.iterdir()) == sorted(VIDEO_CASES)
    return folder


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A tiny checkpoint (MobileNetV3-small + 16-unit LSTM, 32 px) recording the PREPROCESS settings."""
    from tiny_checkpoint import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", frames=4, size=32,
                           preprocess=PreprocessConfig(**PREPROCESS))
