"""A trained detector as a single ONNX or TorchScript file, and how to open the ONNX file with
onnxruntime (``dflib.scoring.OnnxScores`` scores with it).

The file takes a batch of face-crop sequences ``frames`` (batch, T, 3, size, size), float32, RGB
normalised as recorded, with a dynamic batch and T from 1 up to the checkpoint's sequence length
(a face track with fewer crops is a shorter sequence, as in PyTorch), and returns ``logits``
(batch, 2) and ``step_logits`` (batch, T, 2): the video head's read-out and its value after each
frame, as ``dflib.prediction`` uses them. Everything needed to make that input
from a video (frames, sampling, crop size, margin, face detector, normalisation, label map) is
written to ``model.json`` beside the file and, for ONNX, into the file's metadata too, so the
file alone is enough to reproduce the checkpoint's predictions.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import dflib
from dflib.io import atomic_path, atomic_write_text

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
METADATA_FILE = "model.json"
METADATA_KEY = "dflib"  # ONNX metadata_props key holding the same JSON as model.json
EXPORT_FORMAT = "dflib-export"
INPUT, OUTPUTS = "frames", ("logits", "step_logits")
INSTALL_HINT = "pip install 'dflib[export]'"


class _Logits(nn.Module):
    """Video and per-step logits from one pass, as ``Predictor`` computes them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.model.sequence_logits(frames)
        # The head is linear and dropout is off in eval mode: the read-out of the step logits is forward()'s.
        return self.model.readout(steps), steps


def metadata(ckpt: dict, source: Path, file_format: str) -> dict:
    """What a deployment needs besides the weights, from the checkpoint."""
    frames, size = int(ckpt["frames"]), int(ckpt["size"])
    return {
        "format": EXPORT_FORMAT, "format_version": 1, "dflib_version": dflib.__version__,
        "model_format": file_format, "source_checkpoint": source.name,
        "epoch": ckpt.get("epoch"), "best_metric": ckpt.get("best_metric"), "monitor": ckpt.get("monitor"),
        "model_config": ckpt["model_config"], "label_map": ckpt["label_map"],
        "frames": frames, "size": size, "normalization": ckpt["normalization"],
        # How the face crops were made (frames sampled per video, sampling, margin, detector, ...).
        "preprocess": ckpt.get("preprocess") or {},
        "input": {"name": INPUT, "shape": ["batch", "time", 3, size, size], "max_time": frames, "dtype": "float32",
                  "layout": "RGB in [0, 1], minus normalization.mean, divided by normalization.std",
                  "frame_choice": f"the crops of one face track cut into {frames} equal bins, the middle crop of "
                                  f"each; every crop, in order, when the track has {frames} or fewer "
                                  "(dflib.data.choose_frames 'uniform')"},
        "outputs": {"logits": ["batch", 2], "step_logits": ["batch", "time", 2],
                    "p_fake": "softmax(logits)[label_map.FAKE]"},
    }


def export(checkpoint: str | os.PathLike, file_format: str = "onnx", out: str | os.PathLike = "") -> dict:
    """Write the model file and ``model.json`` to ``out``; returns paths, sizes and the check against PyTorch."""
    from dflib.checkpoint import load_model

    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}: use {' or '.join(FORMATS)}")
    if not out:
        raise ValueError("no output folder given: pass --out DIR")
    source = Path(checkpoint).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint not found: {source}")
    if file_format == "onnx":
        _require("onnx", "onnxscript")
    model, ckpt = load_model(source, "cpu")
    wrapper = _Logits(model).eval()
    info = metadata(ckpt, source, file_format)
    example = torch.zeros(2, info["frames"], 3, info["size"], info["size"])
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FORMATS[file_format]
    started = time.perf_counter()
    with torch.no_grad(), atomic_path(path) as tmp:
        (_write_onnx if file_format == "onnx" else _write_torchscript)(wrapper, example, info, Path(tmp))
    seconds = time.perf_counter() - started
    info_path = atomic_write_text(out_dir / METADATA_FILE, json.dumps(info, indent=2) + "\n")
    return {"model": path, "metadata": info_path, "bytes": path.stat().st_size, "seconds": seconds,
            "max_abs_diff": _check(wrapper, path, file_format, info)}


def _write_onnx(wrapper: nn.Module, example: torch.Tensor, info: dict, path: Path) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1, max=4096)
    time_steps = torch.export.Dim("time", min=1, max=info["frames"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_shapes={"frames": {0: batch, 1: time_steps}}, dynamo=True, external_data=False,
                          verbose=False)
    model = onnx.load(str(path))
    # The exporter writes the example's length into the output's declared shape; the graph itself
    # follows the input, so declare that axis as the input's.
    model.graph.output[1].type.tensor_type.shape.dim[1].dim_param = "time"
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(model, str(path))


def _write_torchscript(wrapper: nn.Module, example: torch.Tensor, info: dict, path: Path) -> None:
    with warnings.catch_warnings():
        # torch.jit is deprecated upstream but still what libtorch (C++) loads; the input check in
        # frame_features is constant for this fixed input layout.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example[:1])
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(info)})


def _check(wrapper: nn.Module, path: Path, file_format: str, info: dict) -> float:
    """Largest |P(FAKE) difference| between PyTorch and the written file on random input (batch 3)."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(3, info["frames"], 3, info["size"], info["size"], generator=generator)
    with torch.inference_mode():
        expected = [output.numpy() for output in wrapper(frames)]
        if file_format == "onnx":
            session = onnx_session(path, "cpu")
            got = session.run(list(OUTPUTS), {INPUT: frames.numpy()})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
                got = [output.numpy() for output in torch.jit.load(str(path))(frames)]
    fake = int(info["label_map"]["FAKE"])
    return max(float(np.abs(p_fake(a, fake) - p_fake(b, fake)).max()) for a, b in zip(expected, got))


def p_fake(logits: np.ndarray, fake_index: int) -> np.ndarray:
    """Softmax over the last axis, the FAKE column, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True))[..., fake_index]


def _require(*modules: str) -> None:
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"{' and '.join(missing)} not installed: {INSTALL_HINT}")


def onnx_file(path: str | os.PathLike) -> Path:
    """The .onnx file named by ``path`` (the file, or the export folder holding model.onnx)."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / FORMATS["onnx"]
    if path.suffix == ".pt":
        raise ValueError(f"{path}: the onnx backend runs an exported file, not a checkpoint: run "
                         f"`dflib export {path} --format onnx --out DIR` and pass DIR/model.onnx")
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    return path


def onnx_session(path: Path, device: str):
    _require("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same thread budget as the PyTorch backend
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ValueError("onnxruntime here has no CUDA provider: install onnxruntime-gpu, or use --device cpu")
        providers.insert(0, "CUDAExecutionProvider")
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def export_cli(args, cfg) -> int:
    """``dflib export``: the file, its size and how closely it matches PyTorch."""
    result = export(cfg.checkpoint, cfg.format, cfg.out)
    print(f"wrote {result['model']} ({result['bytes'] / 2**20:.1f} MiB, {result['seconds']:.1f} s) "
          f"and {result['metadata']}")
    print(f"checked against PyTorch on random input: max |P(FAKE) difference| = {result['max_abs_diff']:.1e}")
    return 0
