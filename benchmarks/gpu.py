"""GPU check: training throughput (AMP + channels_last against fp32), data wait, Grad-CAM, predict.

    python benchmarks/gpu.py                       # on a CUDA machine: resnext50_lstm, B=8, 20x112
    python benchmarks/gpu.py --device cpu --smoke  # tiny settings, any machine (the test suite runs this)

1. Training throughput in clips/s: optimizer steps of ``--model`` on random clips already on the
   device, fp32 channels-first against AMP + channels_last in the precision ``dflib train`` picks
   (dflib.precision: bf16 where the GPU has it natively, else fp16 with a GradScaler), as
   ``dflib train`` runs by default. On the CPU (--smoke) AMP is bf16, the only type CPU autocast takes.
2. The share of step time spent waiting for data: ``dflib train``'s DataLoader (default workers,
   augmentation on) over crop files it writes, feeding the AMP step.
3. Grad-CAM of one video in eval mode (cuDNN's LSTM has no backward pass there: dflib turns
   cuDNN off for that pass), seconds per video.
4. ``dflib predict`` on the device, end to end, as a ratio to decoding the same frames alone.

The model is randomly initialised (pretrained="none"): speed does not depend on the weights, and
nothing is downloaded. Everything runs in this one process; figures are medians of the timed steps.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from dflib.checkpoint import NORMALIZATION  # noqa: E402
from dflib.config import LABELS, AugmentConfig, PreprocessConfig, TrainConfig, to_dict  # noqa: E402
from dflib.cropfile import FaceClip, save_clip  # noqa: E402
from dflib.data import VideoClipDataset, collate_clips, read_manifest  # noqa: E402
from dflib.explanation import grad_cam_maps  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.precision import NAMES, autocast_dtype, describe  # noqa: E402
from dflib.prediction import Predictor  # noqa: E402
from dflib.preprocess import ManifestRow, write_manifest  # noqa: E402
from dflib.video import VideoReader, sample_indices  # noqa: E402

SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "shared/data/videos/lipsync_misc__wav2lip_gfpgan__kim_7s_raw.mp4"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(args, device: torch.device, channels_last: bool):
    model = create_model(args.model, pretrained="none", **({"hidden_size": 16} if args.smoke else {})).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def amp_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cpu" else autocast_dtype(device)


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


def step_seconds(model, optimizer, scaler, frames, labels, device, amp: bool) -> float:
    started = time.perf_counter()
    with autocast(device, amp):
        logits = model(frames)
    loss = torch.nn.functional.cross_entropy(logits.float(), labels)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - started


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Enabled for fp16 only, as in dflib train (a disabled scaler passes calls straight through)."""
    return torch.amp.GradScaler(device.type, enabled=amp and amp_dtype(device) == torch.float16)


def throughput(args, device: torch.device, amp: bool) -> float:
    """Clips per second of optimizer steps on clips already on the device."""
    model = build(args, device, channels_last=amp).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = torch.randn(args.batch, args.frames, 3, args.size, args.size, device=device)
    labels = torch.randint(0, 2, (args.batch,), device=device)
    scaler = grad_scaler(device, amp)
    times = [step_seconds(model, optimizer, scaler, frames, labels, device, amp)
             for _ in range(args.warmup + args.steps)]
    return args.batch / statistics.median(times[args.warmup:])


def crop_folder(root: Path, clips: int, frames: int, size: int) -> Path:
    """A preprocessed folder of random-texture crop files, as `dflib preprocess` writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(clips):
        name = f"clip{i:03d}.mp4"
        crops = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
        save_clip(root / "crops" / f"{name}.npz", FaceClip(
            crops=crops, frame_indices=np.arange(frames), timestamps=np.arange(frames) / 25.0,
            boxes=np.zeros((frames, 4), np.float32), scores=np.ones(frames, np.float32),
            landmarks=np.full((frames, 5, 2), np.nan, np.float32), interpolated=np.zeros(frames, bool)))
        rows.append(ManifestRow(filename=name, label=("REAL", "FAKE")[i % 2], frames=frames,
                                output=f"crops/{name}.npz"))
    write_manifest(root, rows)
    return root


def data_wait_share(args, device: torch.device, workers: int) -> tuple[float, float]:
    """(share of step time waiting for the next batch, clips/s) with the DataLoader training uses."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = crop_folder(Path(tmp), args.batch * (args.warmup + args.steps), args.frames + 4, args.size)
        dataset = VideoClipDataset(folder, read_manifest(folder), args.frames, args.size, train=True,
                                   augment=AugmentConfig())
        loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=workers,
                            collate_fn=collate_clips, pin_memory=device.type == "cuda",
                            persistent_workers=False)
        model = build(args, device, channels_last=True).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = grad_scaler(device, amp=True)
        waits, steps = [], []
        batches = iter(loader)
        for i in range(args.warmup + args.steps):
            started = time.perf_counter()
            frames, labels, _, lengths = next(batches)
            frames, labels = frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            sync(device)
            waited = time.perf_counter() - started
            stepped = step_seconds(model, optimizer, scaler, frames, labels, device, amp=True)
            if i >= args.warmup:
                waits.append(waited)
                steps.append(stepped)
        total = sum(waits) + sum(steps)
        return sum(waits) / total, args.batch * len(steps) / total


def grad_cam_seconds(args, device: torch.device) -> float:
    model = build(args, device, channels_last=True).eval()
    frames = torch.randn(args.frames, 3, args.size, args.size)
    times = []
    for _ in range(args.warmup + args.steps):
        started = time.perf_counter()
        grad_cam_maps(model, frames, LABELS["FAKE"])
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times[args.warmup:])


def predict_ratio(args, device: torch.device, video: Path) -> tuple[float, float]:
    """(seconds per video, ratio to decode-only of the same frames) of `dflib predict` on the device."""
    model = build(args, device, channels_last=True)
    cfg = PreprocessConfig(frames=args.frames, size=args.size, min_frames=min(10, args.frames))
    ckpt = {"model_config": to_dict(model.config), "label_map": dict(LABELS), "frames": args.frames,
            "size": args.size, "normalization": NORMALIZATION, "preprocess": to_dict(cfg)}
    predictor = Predictor((model, ckpt), device=str(device))
    decode, predict = [], []
    for i in range(args.warmup + args.steps):
        started = time.perf_counter()
        reader = VideoReader(video)
        for _ in reader.frames(sample_indices(reader.n_frames, cfg.frames), cfg.snap_to_reference):
            pass
        decoded = time.perf_counter() - started
        started = time.perf_counter()
        predictor(video)
        sync(device)
        if i >= args.warmup:
            decode.append(decoded)
            predict.append(time.perf_counter() - started)
    return statistics.median(predict), statistics.median(predict) / statistics.median(decode)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="resnext50_lstm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--workers", type=int, default=TrainConfig().workers, help="DataLoader workers")
    parser.add_argument("--video", default=str(SAMPLE_CLIP), help="clip for the predict timing")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings (mobilenet_v3_small_lstm, B=2, 4x32, 2 steps) to check the script runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.batch, args.frames, args.size, args.steps, args.warmup = \
            "mobilenet_v3_small_lstm", 2, 4, 32, 2, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine, or pass --device cpu (add --smoke for a quick check)",
              file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; {args.model} (random init), batch {args.batch}, {args.frames}x{args.size} px, "
          f"{args.steps} timed steps after {args.warmup}; torch {torch.__version__}")
    if device.type == "cuda":
        print(f"dflib train's {describe(device, amp_dtype(device))}")

    fp32 = throughput(args, device, amp=False)
    amp = throughput(args, device, amp=True)
    print(f"training throughput: fp32 {fp32:.2f} clips/s, AMP {NAMES[amp_dtype(device)]} + channels_last "
          f"{amp:.2f} clips/s ({amp / fp32:.2f}x)")
    share, fed = data_wait_share(args, device, args.workers)
    print(f"data wait with {args.workers} DataLoader workers (augmentation on): {100 * share:.1f}% of step time "
          f"({fed:.2f} clips/s with loading)")
    print(f"Grad-CAM in eval mode: {grad_cam_seconds(args, device):.3f} s per video ({args.frames} frames)")
    video = Path(args.video)
    if not video.is_file():
        from dflib.synthetic import moving_face_frames, write_video

        video = write_video(Path(tempfile.mkdtemp()) / "face.mp4", moving_face_frames(48))
    seconds, ratio = predict_ratio(args, device, video)
    print(f"predict on {device.type} ({video.name}): {seconds:.2f} s end to end = {ratio:.2f}x decode-only")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
