"""CPU speed of the PyTorch model and of its ONNX export under onnxruntime, side by side.

    OMP_NUM_THREADS=2 python benchmarks/export.py [--model resnext50_lstm] [--video CLIP] [--repeats 5]

The model is randomly initialised (pretrained="none"): speed does not depend on the weights. It is
exported with ``dflib export``, then both backends run the same input in alternation (so that load
from other processes hits both alike): the model alone, batch 1 (one video, as prediction runs
it), and one video end to end through ``Predictor`` (decode, detect, crop, model). Both use the
same number of threads. Figures depend on the machine and its load: run on an idle one.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from dflib.checkpoint import NORMALIZATION, save_checkpoint  # noqa: E402
from dflib.config import LABELS, PreprocessConfig, to_dict  # noqa: E402
from dflib.export import OnnxScores, export  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.prediction import Predictor, TorchScores  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/videos/liveportrait_driving_real__d11.mp4"


def _timed(fn, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def _summary(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.3f} s (min {min(seconds):.3f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnext50_lstm")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        model = create_model(args.model, pretrained="none")
        checkpoint = save_checkpoint({
            "model_state": model.state_dict(), "model_config": to_dict(model.config), "label_map": dict(LABELS),
            "frames": args.frames, "size": args.size, "normalization": NORMALIZATION,
            "preprocess": to_dict(PreprocessConfig(frames=args.frames, size=args.size))}, Path(folder) / "best.pt")
        result = export(checkpoint, "onnx", folder)
        print(f"{args.model}, {args.frames} frames at {args.size} px; torch {torch.__version__}, onnxruntime "
              f"{onnxruntime.__version__}, {torch.get_num_threads()} threads; export {result['seconds']:.1f} s, "
              f"model.onnx {result['bytes'] / 2**20:.0f} MiB, checkpoint {checkpoint.stat().st_size / 2**20:.0f} MiB, "
              f"max |P(FAKE) difference| on random input {result['max_abs_diff']:.1e}")

        frames = torch.randn(args.frames, 3, args.size, args.size)
        backends = {"pytorch": TorchScores(model.eval(), torch.device("cpu"), LABELS["FAKE"]),
                    "onnxruntime": OnnxScores(result["model"], torch.device("cpu"))}
        times = {name: [] for name in backends}
        for name, scores in backends.items():
            scores(frames)  # warm-up: allocator, kernels
        for _ in range(args.repeats):
            for name, scores in backends.items():
                times[name] += _timed(lambda: scores(frames), 1)
        for name, seconds in times.items():
            print(f"model only, one video (batch 1): {name:12s} {_summary(seconds)}")
        ratio = statistics.median(times["pytorch"]) / statistics.median(times["onnxruntime"])
        print(f"onnxruntime / pytorch speed: {ratio:.2f}x")

        video = Path(args.video)
        if not video.is_file():
            print(f"no clip at {video}: pass --video FILE for the end-to-end figures", file=sys.stderr)
            return 0
        predictors = {"pytorch": Predictor((model, torch.load(checkpoint, weights_only=True)), device="cpu"),
                      "onnxruntime": Predictor(result["model"], device="cpu", backend="onnx")}
        ends = {name: [] for name in predictors}
        for name, predictor in predictors.items():
            predictor(video)
        for _ in range(args.repeats):
            for name, predictor in predictors.items():
                ends[name] += _timed(lambda: predictor(video), 1)
        for name, seconds in ends.items():
            print(f"end to end, {video.name}: {name:12s} {_summary(seconds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
