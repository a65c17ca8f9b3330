"""End-to-end prediction time for one clip: decode, detect, model, Grad-CAM; and peak memory.

    OMP_NUM_THREADS=2 python benchmarks/predict.py [--video CLIP] [--model resnext50_lstm] [--device cpu]

The model is randomly initialised (pretrained="none"): its speed does not depend on the weights,
and no download is needed. Each predict run is one video through the whole pipeline, as
``dflib predict`` does it; the explain run adds Grad-CAM (a backward pass) and writes every
figure. The first run pays one-off costs (allocator warm-up, the detector's network for this
frame size). Figures depend on the machine and its load: run on an idle one.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from dflib.checkpoint import NORMALIZATION  # noqa: E402
from dflib.config import LABELS, PreprocessConfig, to_dict  # noqa: E402
from dflib.explanation import explain  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.prediction import Predictor  # noqa: E402
from dflib.video import VideoReader  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/videos/liveportrait_driving_real__d11.mp4"


def _stages(timings: dict) -> str:
    named = " + ".join(f"{name} {timings.get(name, 0.0):.2f}" for name in ("decode", "detect", "crop", "model"))
    return f"{named} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--model", default="resnext50_lstm")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="predict runs (the first one is cold)")
    args = parser.parse_args(argv)
    video = Path(args.video)
    if not video.is_file():
        print(f"no clip at {video}: pass --video FILE", file=sys.stderr)
        return 2
    info = VideoReader(video).info()
    print(f"{video.name}: {info.duration:.1f} s, {info.width}x{info.height}, {info.n_frames} frames; "
          f"{args.model} (random init), {args.frames} frames at {args.size} px, device {args.device}, "
          f"{torch.get_num_threads()} torch threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    started = time.perf_counter()
    model = create_model(args.model, pretrained="none")
    ckpt = {"model_config": to_dict(model.config), "label_map": dict(LABELS), "frames": args.frames,
            "size": args.size, "normalization": NORMALIZATION,
            "preprocess": to_dict(PreprocessConfig(frames=args.frames, size=args.size))}
    predictor = Predictor((model, ckpt), device=args.device)
    print(f"setup (build model, detector): {time.perf_counter() - started:.2f} s")

    for run in range(1, args.repeats + 1):
        started = time.perf_counter()
        prediction = predictor(video)
        seconds = time.perf_counter() - started
        print(f"predict run {run}: {seconds:.2f} s end to end = {_stages(prediction.timings)} "
              f"({prediction.label}, {prediction.faces} face track(s), {prediction.frames_used} crops)")

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = explain(video, predictor, out_dir=out)
        seconds = time.perf_counter() - started
    timings = result.prediction.timings
    rest = seconds - timings["total"] - timings.get("cam", 0.0)
    print(f"explain: {seconds:.2f} s end to end = {_stages(timings)} + cam {timings.get('cam', 0.0):.2f} s "
          f"+ re-decode, figures and files {rest:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak memory (max RSS): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
