"""FAKE or REAL for new videos, made exactly the way the checkpoint's training data was made.

The face crops come from ``dflib.preprocess.process_video`` with the preprocessing settings the
checkpoint recorded (min_frames included), and the model input from ``dflib.data.choose_frames``/
``clip_to_tensor`` as in evaluation, so training and prediction cannot drift apart. By default the
main face is scored, as training saw it; ``all_tracks`` scores every face track and calls the video
FAKE if any is. ``dflib evaluate`` applies the same policy (``scored_tracks``). Each video goes
through the model on its own, in eval mode: its score never depends on the other videos of a
batch. A video without a usable face is NO_FACE and an unreadable one ERROR, each with its reason;
neither is ever guessed REAL.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from dflib.checkpoint import decision_threshold
from dflib.config import PreprocessConfig, from_dict
from dflib.cropfile import FaceClip
from dflib.io import atomic_write_text, printable_path
from dflib.models import resolve_device
from dflib.pretrained import shipped_detector_file
from dflib.scoring import OnnxScores, TorchScores
from dflib.video import VideoError

FAKE, REAL, NO_FACE, ERROR = "FAKE", "REAL", "NO_FACE", "ERROR"
STATUS = {FAKE: "ok", REAL: "ok", NO_FACE: "no_face", ERROR: "error"}
CSV_COLUMNS = ("filename", "label", "p_fake", "confidence", "faces", "status", "reason")
MAIN_TRACK = 0


def scored_tracks(tracks: list[int], all_tracks: bool) -> list[int]:
    """The face tracks (numbered by rank, 0 = the main face) a video's verdict rests on; the
    verdict is their highest P(FAKE). Shared by prediction and evaluation."""
    return sorted(tracks) if all_tracks else [track for track in tracks if track == MAIN_TRACK]


def track_policy(all_tracks: bool) -> str:
    return "every face track, the most suspicious decides" if all_tracks else "main face track only"


BACKENDS = ("auto", "torch", "onnx")
GRAD_CAM_NEEDS_TORCH = "Grad-CAM needs PyTorch: the onnx backend gives scores only (use the checkpoint, backend torch)"


@dataclass
class TrackScore:
    """One face track: its own score, and the frames the model saw."""

    track: int  # rank of the track in the video (0: the main face)
    p_fake: float
    frame_scores: list[float]  # running score: P(FAKE) of the video head after each input frame
    frame_indices: list[int]  # video frame index of each input frame, each frame once
    boxes: list[list[float]]  # face box x1, y1, x2, y2 in frame pixels, per input frame
    frames_used: int  # face crops in the track, before choosing the model's input frames


@dataclass
class Prediction:
    """The verdict on one video; ``to_dict()`` gives JSON-ready values."""

    video: str
    label: str  # FAKE, REAL, NO_FACE or ERROR
    p_fake: float | None = None  # of the deciding face track
    confidence: float | None = None  # probability of ``label``; None for NO_FACE and ERROR
    threshold: float = 0.5
    detector: str = ""  # which detector gave the verdict: a shipped one's name, or the checkpoint's path
    reason: str = ""
    frame_scores: list[float] = field(default_factory=list)  # running score of the deciding track
    frame_indices: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    faces: int = 0  # face tracks scored
    tracks: list[TrackScore] = field(default_factory=list)
    track: int | None = None  # rank of the deciding track (0: the main face), whose frames are shown
    fake_track: int | None = None  # the track that made the video FAKE
    frame_influence: list[float] = field(default_factory=list)  # explanations only: P(FAKE) minus P(FAKE)
    # with that input frame left out, per input frame of the deciding track
    frames_used: int = 0  # face crops of the deciding track
    frames_sampled: int = 0  # frames decoded from the video
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def status(self) -> str:
        return STATUS[self.label]

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status}

    def text(self) -> str:
        """The original design's output, plus what it could not say (faces, reasons)."""
        lines = [self.video]
        if self.confidence is not None:
            lines.append(f"Confidence: {100 * self.confidence:.2f}%")
        lines.append(f"Prediction: {self.label}")
        if self.detector:
            lines.append(f"Detector: {self.detector} (FAKE at P(FAKE) >= {self.threshold:.3g})")
        if self.reason:
            lines.append(f"Reason: {self.reason}")
        if 0 < self.frames_used < self.frames_sampled:
            lines.append(f"Face in {self.frames_used} of {self.frames_sampled} sampled frames")
        if self.faces > 1:
            scores = ", ".join(f"track {t.track}: {t.p_fake:.3f}" for t in self.tracks)
            verdict = f"; track {self.fake_track} is FAKE" if self.fake_track is not None else ""
            lines.append(f"Faces: {self.faces} (P(FAKE) {scores}{verdict})")
        return "\n".join(lines)


@dataclass
class TrackInput:
    """What the model saw for one track, kept so ``dflib.explanation`` needs no second decode."""

    clip: FaceClip
    chosen: np.ndarray  # positions in the clip of the model's input frames
    frames: torch.Tensor  # (T, 3, size, size) normalised, on the CPU
    features: torch.Tensor | None  # (T, D) the trunk's per-frame features on the model's device (torch backend)
    images: dict[int, np.ndarray]  # the whole decoded frame (RGB) of each input frame, by video frame index


@lru_cache(maxsize=4)
def _detector(name: str, long_side: int, min_score: float, backend: str):
    """One detector per setting for the whole process: building one costs a network (one per input
    shape with OpenCV)."""
    from dflib.faces import create_detector

    return create_detector(name, long_side, min_score, backend)


def backend_for(checkpoint, backend: str = "auto") -> str:
    """``auto``: onnx for an ONNX file, or a folder holding the model.onnx ``dflib export`` writes;
    torch for anything else. A file's kind is plain from its name: asking for a backend as well
    only adds a way to get it wrong."""
    if backend != "auto":
        return backend
    if isinstance(checkpoint, (str, os.PathLike)) and checkpoint:
        path = Path(checkpoint).expanduser()
        if path.suffix.lower() == ".onnx" or (path.is_dir() and (path / "model.onnx").is_file()):
            return "onnx"
    return "torch"


class Predictor:
    """A checkpoint loaded once, for any number of videos.

    ``checkpoint`` is a path, a ``(model, ckpt)`` pair from ``dflib.checkpoint.load_model``, or
    empty for the detector that ships with dflib; with ``backend="onnx"``, the ``model.onnx``
    written by ``dflib export`` (or its folder), run by onnxruntime: the same scores, no PyTorch
    model (``model`` is None), so no Grad-CAM. ``threshold`` None (or negative, the configs'
    "stored") takes the one stored in the checkpoint, 0.5 where it stores none.
    """

    def __init__(self, checkpoint="", threshold: float | None = None, device: str = "auto", all_tracks: bool = False,
                 backend: str = "auto"):
        from dflib.checkpoint import load_model
        from dflib.preprocess import LEGACY_SETTINGS

        if threshold is not None and threshold > 1.0:
            raise ValueError(f"threshold must be in [0, 1] (or negative: the checkpoint's), got {threshold}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
        backend = backend_for(checkpoint, backend)
        self.device = resolve_device(device)
        self.backend = backend
        if backend == "onnx":
            if not checkpoint:
                raise ValueError("no model given: pass --checkpoint DIR/model.onnx (written by `dflib export`)")
            self._scores = OnnxScores(checkpoint, self.device)
            self.model, self.ckpt = None, self._scores.ckpt
        elif isinstance(checkpoint, (tuple, list)):
            model, self.ckpt = checkpoint
            self.model = model.to(self.device).eval()
        else:
            checkpoint = Path(checkpoint).expanduser() if checkpoint else shipped_detector_file()
            if not checkpoint.is_file():
                raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
            self.model, self.ckpt = load_model(checkpoint, self.device)
        self.threshold = decision_threshold(self.ckpt, threshold)
        self.name = self.ckpt.get("detector") or (str(checkpoint) if not isinstance(checkpoint, (tuple, list)) else "")
        self.frames, self.size = int(self.ckpt["frames"]), int(self.ckpt["size"])
        self.fake_index = int(self.ckpt["label_map"]["FAKE"])
        if backend == "torch":
            self._scores = TorchScores(self.model, self.device, self.fake_index)
        recorded = self.ckpt.get("preprocess") or {}
        if not recorded:
            warnings.warn("the checkpoint does not record how its training faces were cropped: "
                          "using the default preprocessing, which may not match", stacklevel=2)
        self.all_tracks = bool(all_tracks)
        # Exactly the recorded preprocessing (min_frames included: no verdict on fewer face frames than
        # training ever saw; a checkpoint from before a setting existed keeps what its data had);
        # scoring every face needs every track kept.
        recorded = {**LEGACY_SETTINGS, **recorded} if recorded else {}
        # The 68 landmarks only shape training's pseudo-fakes: the model never sees them.
        self.preprocess = dataclasses.replace(from_dict(PreprocessConfig, recorded), landmarks68=False)
        if self.all_tracks:
            self.preprocess = dataclasses.replace(self.preprocess, all_tracks=True)
        self.detector = _detector(self.preprocess.detector, self.preprocess.detect_long_side,
                                  self.preprocess.min_face_score, self.preprocess.detector_backend)

    def __call__(self, video_path) -> Prediction:
        return self.run(video_path)[0]

    def run(self, video_path) -> tuple[Prediction, list[TrackInput]]:
        """The prediction and, per track, the model's input frames."""
        from dflib.data import choose_frames, clip_to_tensor
        from dflib.preprocess import process_video

        started = time.perf_counter()
        video = str(video_path)
        result = Prediction(video=video, label=ERROR, threshold=self.threshold, detector=self.name)
        decoded: dict[int, np.ndarray] = {}
        try:
            clips, row = process_video(Path(video_path), self.preprocess, self.detector, frames=decoded)
        except VideoError as error:
            result.reason = error.cause
            result.timings["total"] = time.perf_counter() - started
            return result, []
        result.frames_sampled = row.sampled
        result.timings.update(decode=row.decode_s, detect=row.detect_s, crop=row.crop_s)
        wanted = scored_tracks([clip.meta["track"] for clip in clips], self.all_tracks)
        clips = [clip for clip in clips if clip.meta["track"] in wanted]
        if not clips:
            result.label, result.reason = NO_FACE, row.reason or (
                f"the main face is in too few frames (min_frames={self.preprocess.min_frames}); other faces "
                "have enough: --all-tracks scores them")
            result.timings["total"] = time.perf_counter() - started
            return result, []

        model_started = time.perf_counter()
        inputs, scores = [], []
        for clip in clips:
            chosen = choose_frames(len(clip), self.frames, "uniform")
            frames = clip_to_tensor(clip.crops[chosen], self.size)
            features, frame_p, video_p = self._scores(frames)
            face_boxes = np.asarray(clip.meta.get("face_boxes", clip.boxes), dtype=np.float64)
            frame_indices = np.asarray(clip.frame_indices)[chosen].tolist()
            inputs.append(TrackInput(clip, chosen, frames, features, {i: decoded[i] for i in frame_indices}))
            scores.append(TrackScore(
                track=clip.meta["track"], p_fake=video_p, frame_scores=frame_p, frame_indices=frame_indices,
                boxes=face_boxes[chosen].tolist(), frames_used=len(clip)))
        result.timings["model"] = time.perf_counter() - model_started

        # With every face scored, the video is FAKE if any face is: the most suspicious track decides.
        deciding = max(scores, key=lambda track: track.p_fake)
        result.p_fake = deciding.p_fake
        result.label = FAKE if deciding.p_fake >= self.threshold else REAL
        result.confidence = deciding.p_fake if result.label == FAKE else 1.0 - deciding.p_fake
        result.track = deciding.track
        result.fake_track = deciding.track if result.label == FAKE else None
        result.frame_scores, result.frame_indices = deciding.frame_scores, deciding.frame_indices
        result.boxes, result.frames_used = deciding.boxes, deciding.frames_used
        result.faces, result.tracks = len(scores), scores
        result.timings["total"] = time.perf_counter() - started
        return result, inputs


def predict(video_path, checkpoint="", **options) -> Prediction:
    """Predict one video. ``checkpoint``: a path, a ``(model, ckpt)`` pair, a ``Predictor``, or empty
    for the detector that ships with dflib;
    ``options`` are PredictConfig's threshold, device, all_tracks and backend."""
    predictor = checkpoint if isinstance(checkpoint, Predictor) else Predictor(checkpoint, **options)
    return predictor(video_path)


def expand_videos(inputs: list[str]) -> list[tuple[Path, str]]:
    """(path, name) per video; folders are searched, and a missing file stays in the list so its
    row says so. Fails only when nothing at all was found."""
    from dflib.labels import find_videos

    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += [(path / name, name) for name in find_videos(path)]
        else:
            found.append((path, path.name))
    if not any(path.is_file() for path, _ in found):
        raise FileNotFoundError(f"no video found in: {', '.join(inputs)}")
    return found


def write_csv(predictions: list[Prediction], path: str | os.PathLike) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        writer.writerow([printable_path(p.video), p.label, "" if p.p_fake is None else f"{p.p_fake:.6f}",
                         "" if p.confidence is None else f"{p.confidence:.6f}", p.faces, p.status,
                         printable_path(p.reason)])
    return atomic_write_text(Path(path), buffer.getvalue())
