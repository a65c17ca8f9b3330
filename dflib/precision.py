"""The floating-point type CUDA autocast runs in: bf16 only where the GPU computes it natively.

``torch.cuda.is_bf16_supported()`` defaults to ``including_emulation=True`` and then answers True on
a GPU of compute capability below 8 (the T4 of Colab's free tier, 7.5) whenever a bf16 tensor can be
made there: bf16 is emulated, with no tensor-core speed-up. Such a GPU runs fp16 on its tensor cores,
with a GradScaler so small gradients do not underflow; Ampere and newer (A100, L4, H100: 8.0+) run
bf16, which has fp32's range and needs no scaler.
"""
from __future__ import annotations

import torch

NAMES = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on a CUDA device of capability 8 or more (ROCm: always, as torch says), fp16 below,
    None (no autocast) off CUDA."""
    if device.type != "cuda":
        return None
    if torch.version.hip:
        return torch.bfloat16
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """One line for the training log: which precision runs, and on a GPU why."""
    if device.type != "cuda":
        note = " (mixed precision is CUDA only)" if dtype is None else ""
        return f"precision: {NAMES[dtype]} on {device.type}{note}"
    major, minor = torch.cuda.get_device_capability(device)
    gpu = f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    if dtype is None:
        return f"precision: fp32 ({gpu}; mixed precision off)"
    if dtype == torch.float16:
        return f"precision: fp16 autocast with gradient scaling ({gpu}: no native bf16)"
    return f"precision: bf16 autocast ({gpu})"
