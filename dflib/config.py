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


@dataclass
class PreprocessConfig:
    """How videos become face-crop files (``dflib preprocess``)."""

    videos: str = ""
    out: str = ""
    labels: str = ""
    label_format: str = ""
    frames: int = 20
    sampling: str = "uniform"  # uniform: evenly over the whole video; first: first N consecutive; stride
    stride: int = 0  # with sampling="stride": every k-th frame (0: derive from fps)
    fps: float = 0.0  # with sampling="stride": frames per second to take
    size: int = 112
    margin: float = 1.3
    detector: str = "centerface"
    detect_long_side: int = 640
    detect_face_size: int = 64  # once a face is found, detect at the scale where it is this big (0: always full)
    min_face_score: float = 0.5
    min_frames: int = 10
    max_gap: int = 3  # missed detections bridged by interpolation, in sampled frames
    track_iou: float = 0.3
    all_tracks: bool = False
    workers: int = 1
    previews: bool = False
    overwrite: bool = False


@dataclass
class ModelConfig:
    """Architecture of the detector; stored in every checkpoint."""

    name: str = "resnext50_lstm"
    hidden_size: int = 2048
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.4
    readout: str = "mean"  # mean over time, or "last" step
    pretrained: str = "auto"  # auto: ImageNet weights if they can be had; "none"; or a local weights file


@dataclass
class AugmentConfig:
    """Augmentations applied identically to every frame of a clip, in training only."""

    enabled: bool = True
    hflip: float = 0.5
    color_jitter: float = 0.2
    jpeg_prob: float = 0.3
    jpeg_quality_min: int = 40
    blur_prob: float = 0.1
    scale_shift: float = 0.05


@dataclass
class TrainConfig:
    """Every training hyperparameter (``dflib train``)."""

    data: str = ""
    out: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    frames: int = 20
    size: int = 112
    clip_sampling: str = "random_window"  # training clips: random_window or uniform
    batch_size: int = 4
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 1e-3
    optimizer: str = "adamw"
    scheduler: str = "cosine"  # cosine, step or none
    warmup_epochs: int = 1
    grad_clip: float = 1.0
    accumulate: int = 1
    amp: bool = True  # on CUDA only; bf16 where supported
    channels_last: bool = True
    workers: int = 2
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    balance: str = "loss_weights"  # loss_weights, sampler or none
    patience: int = 5  # epochs without a better validation AUC before stopping (0: never)
    pseudo_fakes: float = 0.0
    device: str = "auto"


@dataclass
class PredictConfig:
    """Options of ``dflib predict``; preprocessing settings come from the checkpoint."""

    checkpoint: str = ""
    threshold: float = 0.5
    device: str = "auto"
    explain: str = ""
    all_tracks: bool = True


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
