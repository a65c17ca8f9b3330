"""Training speed: our loop against a reproduction of the original design, and one epoch end to end.

Step time is one optimizer step (forward + backward + update) on a batch of clips, with the time to
fetch that batch from the DataLoader shown apart. Ours: crop files (.npz) read as they are,
channels_last. Baseline, as the original project trained: fp32, channels-first, each face-crop
video decoded again with OpenCV every epoch and every frame sent through PIL transforms.

    python benchmarks/train.py                      # synthetic clips, resnext50_lstm, B=4, T=20, 112 px
    python benchmarks/train.py --data DATA --model resnet18_lstm   # epoch time on a preprocessed folder
    python benchmarks/train.py --drive-only         # only the network-drive comparison (seconds)

Crops on a network drive (Google Drive on Colab) are simulated: every file opened under the
"drive" folder first sleeps ``--latency-ms`` (a stand-in for the network round trip of a first read;
throughput limits are not simulated), and a training step is a sleep of ``--gpu-step-ms`` (a GPU
step, which a CPU here cannot stand in for). The data-wait share is the time spent waiting for the
next batch over the whole step time, with dflib train's DataLoader (default workers, augmentation),
reading the drive folder directly against reading the copy ``dflib.localcopy`` makes first.
"""
from __future__ import annotations

import argparse
import builtins
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402

from dflib.config import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    save_json,
)
from dflib.cropfile import FaceClip, save_clip  # noqa: E402
from dflib.data import VideoClipDataset, collate_clips, read_manifest  # noqa: E402
from dflib.localcopy import copy_to_local  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.train import train  # noqa: E402


def synthetic_folder(root: Path, clips: int, frames: int, size: int) -> Path:
    """Crop files, the same crops as small mp4 files (for the baseline), and a manifest."""
    rng = np.random.default_rng(0)
    (root / "videos").mkdir(parents=True)
    lines = ["filename,label,status,reason,frames,faces_found,detector,seconds,track,output,group,source,split"]
    for i in range(clips):
        base = cv2.GaussianBlur(rng.integers(0, 255, (size * 2, size * 2, 3), dtype=np.uint8), (0, 0), 3)
        crops = np.stack([base[t % size : t % size + size, t % size : t % size + size] for t in range(frames)])
        name = f"clip{i:03d}.mp4"
        save_clip(root / "crops" / f"{name}.npz", FaceClip(
            crops=crops, frame_indices=np.arange(frames), timestamps=np.arange(frames) / 25.0,
            boxes=np.zeros((frames, 4), np.float32), scores=np.ones(frames, np.float32),
            landmarks=np.full((frames, 5, 2), np.nan, np.float32), interpolated=np.zeros(frames, bool),
        ))
        writer = cv2.VideoWriter(str(root / "videos" / name), cv2.VideoWriter_fourcc(*"mp4v"), 25, (size, size))
        for crop in crops:
            writer.write(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        writer.release()
        label = "FAKE" if i % 2 else "REAL"
        lines.append(f"{name},{label},ok,,{frames},{frames},synthetic,0,0,crops/{name}.npz,g{i},synthetic,")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    save_json(PreprocessConfig(frames=frames, size=size, detector="synthetic"), root / "preprocess_config.json")
    return root


class DecodeEveryEpoch(Dataset):
    """The original design's data path: cv2 decode of the face-crop video, PIL transforms per frame."""

    def __init__(self, videos: list[Path], frames: int, size: int):
        self.videos, self.frames = videos, frames
        self.transform = transforms.Compose([
            transforms.ToPILImage(), transforms.Resize((size, size)), transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        capture, frames = cv2.VideoCapture(str(self.videos[index])), []
        while len(frames) < self.frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(self.transform(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        capture.release()
        return torch.stack(frames), index % 2, index


def step_times(name, loader, model_name, steps, channels_last):
    model = create_model(model_name, pretrained="none")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data_s, step_s = [], []
    batches = iter(loader)
    for step in range(steps + 1):  # the first is a warm-up
        started = time.perf_counter()
        frames, labels, _ = next(batches)
        fetched = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(frames), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            data_s.append(fetched - started)
            step_s.append(time.perf_counter() - fetched)
    print(f"{name:<44} data {statistics.mean(data_s):6.3f} s/batch   step {statistics.mean(step_s):6.2f} s "
          f"(min {min(step_s):.2f}, {steps} steps)", flush=True)
    del model, optimizer
    gc.collect()


def data_only(name, dataset, batch, repeats=3):
    started = time.perf_counter()
    for _ in range(repeats):
        for index in range(batch):
            dataset[index]
    print(f"{name:<44} {(time.perf_counter() - started) / repeats:6.3f} s per batch of {batch} clips", flush=True)


def epoch_time(data_dir: Path, out: Path, args) -> None:
    cfg = TrainConfig(
        data=str(data_dir), out=str(out), model=ModelConfig(name=args.model, pretrained="none"),
        frames=args.frames, size=args.size, batch_size=args.batch, epochs=1, workers=args.workers,
        val_fraction=0.25, test_fraction=0.0 if args.data is None else 0.15,
    )
    started = time.perf_counter()
    result = train(cfg, progress=False)
    record = result["history"][0]
    rows = read_manifest(data_dir)
    print(f"epoch on {len(rows)} clips ({args.model}, B={args.batch}, T={args.frames}, {args.size} px, "
          f"workers={args.workers}): train+val {record['seconds']:.1f} s, "
          f"with model build and checkpoint writing {time.perf_counter() - started:.1f} s", flush=True)


@contextlib.contextmanager
def slow_opens(folder: Path, latency_s: float):
    """Every ``open`` of a file under ``folder`` sleeps ``latency_s`` first (numpy's crop loading and
    the copy both open through it); DataLoader workers are forked, so they inherit it."""
    original, prefix = builtins.open, str(folder.resolve())

    def open_slowly(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file).startswith(prefix):
            time.sleep(latency_s)
        return original(file, *args, **kwargs)

    builtins.open = open_slowly
    try:
        yield
    finally:
        builtins.open = original


def data_wait(folder: Path, args, epochs: int = 2) -> tuple[float, float]:
    """(share of step time spent waiting for data, seconds per epoch) over ``epochs`` epochs of
    simulated GPU steps, with dflib train's DataLoader settings."""
    cfg = TrainConfig()
    dataset = VideoClipDataset(folder, read_manifest(folder), args.frames, args.size, train=True,
                               augment=AugmentConfig())
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=cfg.workers,
                        collate_fn=collate_clips, persistent_workers=False)
    waited = stepped = 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        for _batch in loader:
            fetched = time.perf_counter()
            waited += fetched - started
            time.sleep(args.gpu_step_ms / 1000)
            started = time.perf_counter()
            stepped += started - fetched
    return waited / (waited + stepped), (waited + stepped) / epochs


def drive_comparison(tmp: Path, args) -> None:
    drive = synthetic_folder(tmp / "drive" / "preprocessed", args.drive_clips, args.frames, args.size)
    print(f"\n-- crops on a network drive (simulated: {args.latency_ms:g} ms per file open, GPU step "
          f"{args.gpu_step_ms:g} ms), {args.drive_clips} clips, B={args.batch}, T={args.frames}, {args.size} px, "
          f"{TrainConfig().workers} DataLoader workers, augmentation on, 2 epochs")
    with slow_opens(tmp / "drive", args.latency_ms / 1000):
        share, epoch = data_wait(drive, args)
        print(f"{'read from the drive every epoch':<44} data wait {100 * share:5.1f}% of step time, "
              f"{epoch:6.2f} s per epoch", flush=True)
        started = time.perf_counter()
        local = copy_to_local(drive, tmp / "local", progress=False)
        copied = time.perf_counter() - started
        share, epoch = data_wait(local, args)
    print(f"{'local copy made once (dflib.localcopy)':<44} data wait {100 * share:5.1f}% of step time, "
          f"{epoch:6.2f} s per epoch; the copy took {copied:.2f} s once", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a preprocessed data folder for the epoch time (default: synthetic)")
    parser.add_argument("--model", default="resnext50_lstm")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant, after one warm-up")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--clips", type=int, default=16, help="synthetic clips (at least batch x (steps + 1))")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="simulated network-drive latency per file open (an assumption, not a measurement)")
    parser.add_argument("--gpu-step-ms", type=float, default=150.0, help="simulated GPU training step")
    parser.add_argument("--drive-clips", type=int, default=64, help="clips in the network-drive comparison")
    parser.add_argument("--drive-only", action="store_true", help="run only the network-drive comparison")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        drive_comparison(tmp, args)
        if args.drive_only:
            return 0
        clips = max(args.clips, args.batch * (args.steps + 1))
        synthetic = synthetic_folder(tmp / "synthetic", clips, args.frames, args.size)
        ours = VideoClipDataset(synthetic, read_manifest(synthetic), args.frames, args.size, train=True,
                                augment=AugmentConfig())
        baseline = DecodeEveryEpoch(sorted((synthetic / "videos").glob("*.mp4")), args.frames, args.size)
        print(f"\n-- data only (T={args.frames}, {args.size} px)")
        plain = VideoClipDataset(synthetic, read_manifest(synthetic), args.frames, args.size, train=False)
        data_only("crop files (.npz), no augmentation (ours)", plain, args.batch)
        data_only("crop files (.npz) + augmentation (ours)", ours, args.batch)
        data_only("cv2 decode + PIL transforms (baseline)", baseline, args.batch)
        print(f"\n-- training step, {args.model}, B={args.batch}, T={args.frames}, {args.size} px, fp32 CPU")
        loader_options = dict(batch_size=args.batch, num_workers=args.workers, shuffle=False)
        step_times("ours: crop files, channels_last", DataLoader(ours, **loader_options), args.model, args.steps, True)
        step_times("baseline: decode mp4 every epoch, NCHW", DataLoader(baseline, **loader_options), args.model,
                   args.steps, False)
        print("\n-- one epoch with dflib.train")
        epoch_time(args.data or synthetic, tmp / "run", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
