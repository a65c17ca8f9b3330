"""Video decoding with PyAV: exactly the frames asked for, as RGB uint8, upright.

A cheap demux pass (no decoding) gives every frame's timestamp and the keyframes, so the
frame count is exact even when the container's header lies (variable frame rate, missing
counts). Decoding then seeks to a keyframe only when that skips frames, and converts to RGB
only the frames that were asked for: forward decoding stays cheap on short clips, seeking
wins on long ones.
"""
from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """A video that cannot be used; the message names the file and the cause."""

    def __init__(self, path, cause: str):
        self.path, self.cause = str(path), cause
        super().__init__(f"{path}: {cause}")

    def __reduce__(self):
        return type(self), (self.path, self.cause)


@dataclass
class VideoInfo:
    path: str
    width: int  # as displayed, after rotation
    height: int
    fps: float
    n_frames: int
    duration: float
    rotation: int  # degrees counter-clockwise applied for display
    codec: str


@dataclass
class _Index:
    """Presentation-ordered timestamps and keyframe positions of one video stream."""

    pts: list[int]
    keyframes: list[int]  # positions (into pts) of keyframes, ascending


def _open(path: Path):
    if not path.exists():
        raise VideoError(path, "file not found")
    if path.is_dir():
        raise VideoError(path, "is a folder, not a video")
    if not os.access(path, os.R_OK):
        raise VideoError(path, "permission denied")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VideoError(path, _unreadable(path, error)) from error
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream (audio-only or not a video)")
    return container


def _detail(error: Exception) -> str:
    """FFmpeg's words for an error, without the errno number and the path the caller already names."""
    return getattr(error, "strerror", None) or str(error)


def _unreadable(path: Path, error: Exception) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":  # an MP4 or MOV header: what is missing is the index, written last
        return (f"not a readable video: MP4 or MOV file without a usable index, most likely cut short "
                f"(an incomplete download or copy) ({_detail(error)})")
    return f"not a readable video ({_detail(error)})"


def _build_index(container, path: Path) -> _Index:
    stream = container.streams.video[0]
    entries = []
    try:
        for packet in container.demux(stream):
            # Discarded packets are pre-roll frames before an edit list's start: never shown.
            if packet.size == 0 or packet.pts is None or packet.is_discard:
                continue
            entries.append((packet.pts, packet.is_keyframe))
    except av.FFmpegError as error:
        if not entries:
            raise VideoError(path, f"corrupt video ({_detail(error)})") from error
        # A truncated file: keep the frames that were demuxed before the damage.
    entries.sort()
    if not entries:
        raise VideoError(path, "video stream has no frames")
    pts = [p for p, _ in entries]
    keyframes = sorted({0} | {i for i, (_, key) in enumerate(entries) if key})
    return _Index(pts=pts, keyframes=keyframes)


def _decode(container, stream):
    """Decoded frames until the end or the first damaged packet; then the frames the decoder still
    holds (a threaded or B-frame decoder holds several) are drained rather than thrown away."""
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.FFmpegError:
        try:
            yield from stream.codec_context.decode(None)
        except av.FFmpegError:
            pass


def _to_rgb(frame) -> np.ndarray:
    """RGB uint8, turned upright according to the display-matrix rotation (phone videos)."""
    image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
    turns = (int(round(frame.rotation or 0)) % 360) // 90
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


class VideoReader:
    """Random access to a video's frames by index (presentation order)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        container = _open(self.path)
        try:
            self._index = _build_index(container, self.path)
            stream = container.streams.video[0]
            self._time_base = float(stream.time_base) if stream.time_base else 0.0
            rate = stream.average_rate or stream.guessed_rate
            self._codec = stream.codec_context.name
        finally:
            container.close()
        n = len(self._index.pts)
        span = (self._index.pts[-1] - self._index.pts[0]) * self._time_base
        self._fps = float(rate) if rate else (n - 1) / span if span > 0 else 0.0
        self._first_frame_shape: tuple[int, int, int] | None = None

    @property
    def n_frames(self) -> int:
        return len(self._index.pts)

    def timestamps(self, indices) -> np.ndarray:
        start = self._index.pts[0]
        return np.array([(self._index.pts[i] - start) * self._time_base for i in indices], dtype=np.float64)

    def info(self) -> VideoInfo:
        """Metadata; decodes the first frame to learn the displayed size and rotation."""
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise VideoError(self.path, f"cannot decode ({_detail(error)})") from error
        finally:
            container.close()
        if frame is None:
            raise VideoError(self.path, "no decodable frame")
        height, width = _to_rgb(frame).shape[:2]
        duration = self.n_frames / self._fps if self._fps else 0.0
        return VideoInfo(str(self.path), width, height, self._fps, self.n_frames, duration,
                         int(round(frame.rotation or 0)) % 360, self._codec)

    def read(self, indices) -> tuple[list[int], list[np.ndarray]]:
        """Decode the frames at ``indices`` (sorted, unique). Returns those decoded and their images.

        A truncated video yields the frames before the damage; the caller sees fewer frames than
        asked rather than an exception, so it can decide whether that is enough.
        """
        wanted = sorted({int(i) for i in indices if 0 <= int(i) < self.n_frames})
        if not wanted:
            return [], []
        got_indices, images = self._read(wanted, "AUTO")
        if len(got_indices) < len(wanted):
            # Damage: frame-threaded decoding silently drops the frames in flight when it meets a
            # broken packet, so decode once more on one thread, which keeps every frame before it.
            retry = self._read(wanted, "SLICE")
            if len(retry[0]) > len(got_indices):
                got_indices, images = retry
        return got_indices, images

    def _read(self, wanted: list[int], thread_type: str) -> tuple[list[int], list[np.ndarray]]:
        pts_to_index = {p: i for i, p in enumerate(self._index.pts)}
        keyframes = self._index.keyframes
        got_indices: list[int] = []
        images: list[np.ndarray] = []
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = thread_type
            position = -1  # index of the last decoded frame
            frames = None
            for target in wanted:
                key = keyframes[bisect_right(keyframes, target) - 1]
                if frames is None or key > position + 1:
                    container.seek(self._index.pts[key], stream=stream, backward=True, any_frame=False)
                    frames = _decode(container, stream)
                for frame in frames:
                    if frame.pts is None:
                        continue
                    position = pts_to_index.get(frame.pts, position)
                    if position == target:
                        got_indices.append(target)
                        images.append(_to_rgb(frame))
                        break
                    if position > target:  # the target frame was not decodable
                        break
                else:
                    break  # stream ended early: a truncated file
        except av.FFmpegError:
            pass  # damage mid-stream: keep what was decoded before it
        finally:
            container.close()
        return got_indices, images


def sample_indices(n_frames: int, frames: int, sampling: str = "uniform", stride: int = 0,
                   fps: float = 0.0, video_fps: float = 0.0) -> np.ndarray:
    """Which frames to decode.

    uniform: ``frames`` indices evenly spread over the whole video (the original design took the
    first N frames only, which sees a fraction of a second of a long video);
    first: the first ``frames`` consecutive frames, as the original design did;
    stride: every ``stride``-th frame (or ``fps`` frames per second) across the whole video.
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if sampling == "uniform":
        if frames >= n_frames:
            return np.arange(n_frames, dtype=np.int64)
        return np.unique(np.round(np.linspace(0, n_frames - 1, frames)).astype(np.int64))
    if sampling == "first":
        return np.arange(min(frames, n_frames), dtype=np.int64)
    if sampling == "stride":
        step = stride or (max(1, round(video_fps / fps)) if fps > 0 and video_fps > 0 else 0)
        if step <= 0:
            raise ValueError("sampling='stride' needs stride > 0, or fps > 0 and a known video frame rate")
        return np.arange(0, n_frames, step, dtype=np.int64)
    raise ValueError(f"unknown sampling {sampling!r}: use uniform, first or stride")
