"""A tiny checkpoint written the way ``dflib.train`` writes one, without training.

``fake_logit`` zeroes the head and sets its FAKE bias, so P(FAKE) = sigmoid(fake_logit) for any
video: tests can then demand an exact label and confidence.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dflib.checkpoint import NORMALIZATION, save_checkpoint
from dflib.config import LABELS, PreprocessConfig, TrainConfig, to_dict
from dflib.models import create_model


def tiny_checkpoint(path: Path, model: str = "mobilenet_v3_small_lstm", frames: int = 4, size: int = 48,
                    preprocess: PreprocessConfig | None = None, splits: dict | None = None,
                    history: list | None = None, fake_logit: float | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = create_model(model, hidden_size=16)
    if fake_logit is not None:
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.copy_(torch.tensor([0.0, fake_logit]))
    preprocess = preprocess or PreprocessConfig(frames=6, size=size, min_frames=3)
    return save_checkpoint({
        "model_state": net.state_dict(),
        "model_config": to_dict(net.config),
        "train_config": to_dict(TrainConfig(frames=frames, size=size)),
        "label_map": dict(LABELS),
        "frames": frames,
        "size": size,
        "normalization": NORMALIZATION,
        "preprocess": to_dict(preprocess),
        "splits": splits or {},
        "history": history or [],
        "optimizer_state": None,
    }, path)
