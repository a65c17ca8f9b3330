"""Mixed precision: bf16 only where the GPU has it natively, fp16 with a GradScaler below capability 8.

No GPU is needed: the device's compute capability is mocked, and with it what torch's own
``is_bf16_supported()`` would say (True on a T4 through emulation)."""
from __future__ import annotations

import logging

import pytest
import torch

from dflib.precision import autocast_dtype, describe


@pytest.fixture
def gpu(monkeypatch):
    """A pretend CUDA device whose capability the test sets; torch claims bf16 support everywhere,
    as its default including_emulation=True does on a T4."""
    def set_capability(major: int, minor: int):
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU {major}.{minor}")
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        return torch.device("cuda", 0)

    return set_capability


def test_t4_capability_7_5_gets_fp16_even_where_torch_says_bf16_is_supported(gpu):
    device = gpu(7, 5)
    assert autocast_dtype(device) == torch.float16
    assert "fp16" in describe(device, torch.float16) and "7.5" in describe(device, torch.float16)


@pytest.mark.parametrize("capability", [(8, 0), (8, 9), (9, 0)])  # A100, L4, H100
def test_capability_8_and_up_gets_bf16(gpu, capability):
    device = gpu(*capability)
    assert autocast_dtype(device) == torch.bfloat16
    assert describe(device, torch.bfloat16).startswith("precision: bf16")


def test_no_autocast_off_cuda():
    assert autocast_dtype(torch.device("cpu")) is None
    assert describe(torch.device("cpu"), None) == "precision: fp32 on cpu (mixed precision is CUDA only)"


@pytest.mark.parametrize("capability, expected, scaled", [((7, 5), "fp16", True), ((8, 0), "bf16", False)])
def test_training_runs_the_chosen_precision_scales_fp16_only_and_records_it(
        gpu, monkeypatch, tmp_path, caplog, capability, expected, scaled):
    """train() with the precision chosen for a mocked GPU, run on the CPU (whose autocast takes both
    types): the scaler is on for fp16 only, and the checkpoint and the log name the precision."""
    import dflib.train as train_module
    from dflib.checkpoint import load_checkpoint
    from synthetic_clips import make_data_dir
    from test_train import tiny_config

    chosen = autocast_dtype(gpu(*capability))
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, device_type, enabled):
            scalers.append(enabled)
            super().__init__("cpu", enabled=False)  # no CUDA here to scale on

    monkeypatch.setattr(train_module, "autocast_dtype", lambda device: chosen)
    monkeypatch.setattr(train_module.torch.amp, "GradScaler", RecordingScaler)
    data = make_data_dir(tmp_path / "data", n_real=4, n_fake=4, frames=4, size=32)
    with caplog.at_level(logging.INFO, logger="dflib.train"):
        train_module.train(tiny_config(data, tmp_path / "run", epochs=1), progress=False)
    assert scalers == [scaled]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["precision"] == expected
    assert any(record.getMessage().startswith(f"precision: {expected}") for record in caplog.records)


def test_cpu_training_records_fp32(tmp_path, caplog):
    from dflib.checkpoint import load_checkpoint
    from dflib.train import train
    from synthetic_clips import make_data_dir
    from test_train import tiny_config

    data = make_data_dir(tmp_path / "data", n_real=4, n_fake=4, frames=4, size=32)
    with caplog.at_level(logging.INFO, logger="dflib.train"):
        train(tiny_config(data, tmp_path / "run", epochs=1), progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["precision"] == "fp32"
    assert "precision: fp32 on cpu (mixed precision is CUDA only)" in caplog.messages
