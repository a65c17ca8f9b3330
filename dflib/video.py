"""Video decoding with PyAV: exactly the frames asked for, as RGB uint8, upright.

A cheap demux pass (no decoding) gives every frame's timestamp and the keyframes, so the
frame count is exact even when the container's header lies (variable frame rate, missing
counts). Decoding then seeks to a keyframe only when that skips frames, and converts to RGB
only the frames that were asked for: forward decoding stays cheap on short clips, seeking
wins on long ones. With ``snap_to_reference`` the decoder skips frames that no other frame is
predicted from (most B-frames of H.264), and each sampled position takes the nearest frame it
does decode: fewer frames decoded, the frames used differ by a frame or two. Frames can be
read as a stream (``VideoReader.frames``), and in a background thread (``read_ahead``), so the
next stage works while decoding goes on (PyAV and OpenCV release the GIL).
"""
from __future__ import annotations

import os
import queue
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dflib.config import PreprocessConfig


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


# A tag in another encoding than UTF-8 (old cameras, editors) made PyAV < 19 raise
# UnicodeDecodeError on open unless told to ignore it; PyAV 19 removed the argument (open() raises
# TypeError if given it) and reads every tag as UTF-8 with surrogateescape, which never fails.
_METADATA_OPTIONS = {"metadata_errors": "ignore"} if int(av.__version__.split(".")[0]) < 19 else {}


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
        container = av.open(str(path), **_METADATA_OPTIONS)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VideoError(path, _unreadable(path, error)) from error
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream (audio-only or not a video)")
    if container.streams.video[0].codec_context is None:  # FFmpeg found images it has no decoder for (an SVG)
        name = container.format.name
        container.close()
        raise VideoError(path, f"not a video (FFmpeg reads it as {name}, which it cannot decode)")
    return container


def _check_frame_size(container, path: Path, max_pixels: int) -> None:
    """Refuse frames too large to decode safely: a tiny file can declare 8192x8192 frames, and each
    decoded frame then costs hundreds of MB."""
    context = container.streams.video[0].codec_context
    if max_pixels and context.width * context.height > max_pixels:
        raise VideoError(path, f"frames of {context.width}x{context.height} pixels, more than the limit of "
                               f"{max_pixels:,} pixels (max_frame_pixels): refused before decoding")


def _too_many_frames(max_frames: int, count: str) -> str:
    return (f"{count} frames, over the limit of {max_frames:,} (max_video_frames): refused before decoding, "
            "as indexing that many costs memory and time")


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


def _build_index(container, path: Path, max_frames: int = 0) -> _Index:
    """The index, refused when the header or the demuxed packets pass ``max_frames``: every packet
    costs an entry (a 20 MB file can hold 20 million one-byte packets)."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    declared = max(stream.frames, int(container.duration / av.time_base * rate) if container.duration and rate else 0)
    if max_frames and declared > max_frames:
        raise VideoError(path, _too_many_frames(max_frames, f"about {declared:,}"))
    entries = []
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += packet.size > 0
            if max_frames and packets > max_frames:
                raise VideoError(path, _too_many_frames(max_frames, f"at least {packets:,}"))
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
    """Random access to a video's frames by index (presentation order).

    Videos whose frames have more than ``max_frame_pixels`` pixels, or that hold more than
    ``max_video_frames`` frames, are refused (VideoError) before any frame is decoded; 0: no limit.
    """

    def __init__(self, path: str | os.PathLike, max_frame_pixels: int = PreprocessConfig.max_frame_pixels,
                 max_video_frames: int = PreprocessConfig.max_video_frames):
        self.path = Path(path)
        container = _open(self.path)
        try:
            _check_frame_size(container, self.path, max_frame_pixels)
            self._index = _build_index(container, self.path, max_video_frames)
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

    def read(self, indices, snap_to_reference: bool = False) -> tuple[list[int], list[np.ndarray]]:
        """Decode the frames at ``indices`` (sorted, unique). Returns those decoded and their images.

        A truncated video yields the frames before the damage; the caller sees fewer frames than
        asked rather than an exception, so it can decide whether that is enough.
        """
        pairs = list(self.frames(indices, snap_to_reference))
        return [index for index, _ in pairs], [image for _, image in pairs]

    def frames(self, indices, snap_to_reference: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB image) of each frame at ``indices`` as it is decoded, in order; see ``read``.

        With ``snap_to_reference`` (used only where sampled positions are at least
        ``SNAP_MIN_GAP`` frames apart, so that two positions hardly ever share a frame), frames that
        are no reference of another are not decoded, and each position takes the nearest decoded
        frame (the earlier one on a tie); the indices returned are those of the frames used.
        """
        wanted = sorted({int(i) for i in indices if 0 <= int(i) < self.n_frames})
        if not wanted:
            return
        snap = snap_to_reference and all(b - a >= SNAP_MIN_GAP for a, b in zip(wanted, wanted[1:]))
        last = -1
        for index, image in self._frames(wanted, "AUTO", snap):
            last = index
            yield index, image
        if wanted[-1] - last > (SNAP_MAX_SHIFT if snap else 0):
            # Damage: frame-threaded decoding silently drops the frames in flight when it meets a
            # broken packet, so decode once more on one thread, which keeps every frame before it.
            for index, image in self._frames([i for i in wanted if i > last], "SLICE", snap):
                if index > last:
                    last = index
                    yield index, image

    def _frames(self, wanted: list[int], thread_type: str, snap: bool) -> Iterator[tuple[int, np.ndarray]]:
        pts_to_index = {p: i for i, p in enumerate(self._index.pts)}
        keyframes = self._index.keyframes
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = thread_type
            if snap:
                stream.codec_context.skip_frame = "NONREF"
            decoded = None  # (index, frame) pairs as the decoder gives them
            position = -1  # index of the last frame taken from the decoder
            at_or_before = ahead = None  # the decoded frames around the target: index <= target, > target
            used = -1  # index of the last frame given out
            for target in wanted:
                key = keyframes[bisect_right(keyframes, target) - 1]
                if decoded is None or key > position + 1:
                    container.seek(self._index.pts[key], stream=stream, backward=True, any_frame=False)
                    decoded = ((pts_to_index[f.pts], f) for f in _decode(container, stream) if f.pts in pts_to_index)
                    at_or_before = ahead = None
                while ahead is None or ahead[0] <= target:
                    if ahead is not None:
                        at_or_before, ahead = ahead, None
                        if at_or_before[0] == target:
                            break
                    candidate = next(decoded, None)
                    if candidate is None:
                        break
                    if candidate[0] > position:
                        position, ahead = candidate[0], candidate
                if not snap:
                    chosen = at_or_before if at_or_before is not None and at_or_before[0] == target else None
                    if chosen is None and ahead is None:
                        return  # stream ended early: a truncated file
                elif at_or_before is None or (ahead is not None and ahead[0] - target < target - at_or_before[0]):
                    chosen = ahead
                else:
                    chosen = at_or_before
                if chosen is not None and chosen[0] > used:
                    used = chosen[0]
                    yield chosen[0], _to_rgb(chosen[1])
                elif chosen is None and ahead is None and at_or_before is None:
                    return
        except av.FFmpegError:
            pass  # damage mid-stream: keep what was decoded before it
        finally:
            container.close()

    def read_ahead(self, indices, snap_to_reference: bool = False, depth: int = 4) -> Iterator[tuple[int, np.ndarray]]:
        """``frames`` decoded in a background thread, at most ``depth`` frames ahead of the caller."""
        return read_ahead(self.frames(indices, snap_to_reference), depth)


# Snapping to reference frames is used only for sparse sampling, where it saves decoding.
SNAP_MIN_GAP = 4
# Runs of non-reference frames are short (x264 makes at most 3 B-frames in a row by default, the
# format allows 16): a sampled position farther than this from the last decoded frame means damage.
SNAP_MAX_SHIFT = 16


def read_ahead(items: Iterable, depth: int = 4) -> Iterator:
    """The items of ``items``, produced in a background thread at most ``depth`` ahead of the caller.

    An exception in the producer is raised in the caller; a caller that stops early stops the
    producer at its next item.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put((done, error))

    thread = threading.Thread(target=produce, name="dflib-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


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
