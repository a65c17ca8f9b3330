"""Checkpoints: the weights plus everything needed to use them, loadable without running code.

A checkpoint is a plain dict of tensors and Python built-ins, so ``torch.load(weights_only=True)``
reads it; a file that needs more than that (a pickle that would import or call something) is
refused rather than trusted.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
from pathlib import Path

import torch

import dflib
from dflib.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, from_dict
from dflib.io import atomic_path

FORMAT = "dflib-checkpoint"
FORMAT_VERSION = 1
NORMALIZATION = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "color": "RGB"}
MODEL_KEYS = ("model_state", "model_config", "label_map", "frames", "size", "normalization")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the cause."""


def save_checkpoint(ckpt: dict, path: str | os.PathLike) -> Path:
    """Write atomically, so a run killed while saving still leaves the previous checkpoint."""
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, "dflib_version": dflib.__version__, **ckpt}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    _check_container(path)
    try:
        with warnings.catch_warnings():
            # torch warns about a pickle protocol it did not write, on a file about to be refused anyway.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            # torch's own message suggests weights_only=False, which is exactly what must not be done.
            lines = [line.strip() for line in str(error).splitlines()]
            reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0])
            raise CheckpointError(
                f"{path}: refused for safety: the file holds more than tensors and plain values, so loading "
                f"it could run code ({reason}). dflib checkpoints never need that: it is not one, or it was tampered with."
            ) from error
        raise CheckpointError(f"{path}: corrupt checkpoint file ({error})") from error
    except Exception as error:  # a damaged pickle fails in many ways (KeyError, IndexError, ...)
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint file ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dflib checkpoint (no format={FORMAT!r} entry)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer dflib (format_version {version}, this dflib "
            f"{dflib.__version__} reads up to {FORMAT_VERSION}); upgrade dflib to use it"
        )
    missing = [key for key in MODEL_KEYS if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a complete dflib checkpoint (missing {', '.join(missing)})")
    label_map = ckpt["label_map"]
    if not isinstance(label_map, dict) or len(label_map) != 2 or [label_map.get("REAL"), label_map.get("FAKE")] not in (
            [0, 1], [1, 0]):
        raise CheckpointError(f"{path}: label_map {label_map!r} does not map REAL and FAKE to the outputs 0 and 1")
    return ckpt


def _check_container(path: Path) -> None:
    """A PyTorch file is a zip archive or (older format) a binary pickle; name anything else plainly
    rather than let the unpickler call it unsafe or fail with a bare opcode number."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return
    start = head.lstrip().lower()
    kind = ("an HTML page: the download probably failed" if start.startswith((b"<!doctype html", b"<html"))
            else f"it starts with {head[:16]!r}")
    raise CheckpointError(f"{path}: not a PyTorch checkpoint file ({kind})")


DEFAULT_THRESHOLD = 0.5


def decision_threshold(ckpt: dict, given: float | None = None) -> float:
    """``given`` where one is (None or negative: none, as the configs' default says), else the
    threshold the checkpoint was calibrated with (the shipped detector's flags at most 5% of REAL
    validation videos), else 0.5. Prediction and evaluation both decide with it."""
    if given is not None and given >= 0:
        return float(given)
    return float(ckpt.get("threshold", DEFAULT_THRESHOLD))


def load_model(path_or_ckpt: str | os.PathLike | dict, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, checkpoint dict); the architecture comes from the checkpoint."""
    from dflib.models import model_from_config

    if isinstance(path_or_ckpt, dict):
        ckpt, source = path_or_ckpt, "checkpoint"
    else:
        ckpt, source = load_checkpoint(path_or_ckpt), str(path_or_ckpt)
    config = from_dict(ModelConfig, ckpt["model_config"])
    model = model_from_config(dataclasses.replace(config, pretrained="none"))
    load_weights(model, ckpt["model_state"], f"{source} ({config.name})")
    return model.to(device).eval(), ckpt


def load_weights(model: torch.nn.Module, state: dict, source: str) -> None:
    """Strict load with a message that says which weights do not fit, instead of a wall of keys."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    resized = [
        f"{key} {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or resized:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", resized))
            if items
        ]
        raise CheckpointError(
            f"{source}: weights do not fit the model {type(model).__name__}, so the checkpoint is of another "
            f"architecture or size than its model_config says; " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)
