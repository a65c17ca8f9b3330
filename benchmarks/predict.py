"""Prediction and explanation time per clip, as ratios to decoding the same frames alone.

    OMP_NUM_THREADS=2 python benchmarks/predict.py [--video CLIP ...] [--model resnext50_lstm] [--device cpu]

Without ``--video`` it uses the two 1920x1080 sample clips, a 512x512 one, and a 10 s 1920x1080
30 fps clip it makes once from a 1080p sample clip (played forward then backward, re-encoded with
x264's defaults: keyframes every 250 frames, B-frames, as DFDC and FaceForensics++ clips are) and
keeps in the system's temporary folder. For each clip, in one run and alternating: decode-only
(open, index and decode the frames prediction uses, nothing else), ``dflib predict`` end to end,
the same with the preprocessing settings of dflib 0.1.0 (every sampled frame decoded exactly,
CenterFace through OpenCV), and an explanation with every figure and file. Medians of
``--repeats`` runs after a warm-up run. The model is randomly initialised (pretrained="none"):
its speed does not depend on the weights, and no download is needed. Figures depend on the
machine and its load (printed): compare the ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dflib.checkpoint import NORMALIZATION  # noqa: E402
from dflib.config import LABELS, PreprocessConfig, to_dict  # noqa: E402
from dflib.explanation import explain  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.prediction import Predictor  # noqa: E402
from dflib.preprocess import LEGACY_SETTINGS  # noqa: E402
from dflib.video import VideoReader, sample_indices  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEFAULT_CLIPS = ("lipsync_misc__wav2lip_gfpgan__kim_7s_raw.mp4", "lipsync_misc__wav2lip_gfpgan__kim_lip_synced.mp4",
                 "liveportrait_driving_real__d11.mp4")
MADE_CLIP = Path(tempfile.gettempdir()) / "dflib-benchmarks" / "kim_1080p_10s_x264.mp4"


def make_10s_1080p_clip(source: Path, path: Path = MADE_CLIP, frames: int = 300) -> Path:
    """A 10 s 1920x1080 30 fps H.264 clip (x264 defaults: B-frames, keyframes every 250) from ``source``."""
    if path.is_file():
        return path
    reader = VideoReader(source)
    _, images = reader.read(range(reader.n_frames))
    order = list(range(len(images))) + list(range(len(images) - 2, 0, -1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "bframes": "3", "keyint": "250"}
        for i in range(frames):
            image = images[order[i % len(order)]]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())
    tmp.rename(path)
    return path


def decode_only(video: Path, cfg: PreprocessConfig) -> float:
    """Seconds to open, index and decode the frames preprocessing ``cfg`` uses, nothing else."""
    started = time.perf_counter()
    reader = VideoReader(video)
    info = reader.info()
    wanted = sample_indices(reader.n_frames, cfg.frames, cfg.sampling, cfg.stride, cfg.fps, info.fps)
    for _ in reader.frames(wanted, cfg.snap_to_reference):
        pass
    return time.perf_counter() - started


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", action="append", help="clip(s) to time (default: see above)")
    parser.add_argument("--model", default="resnext50_lstm")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per clip, after one warm-up run")
    args = parser.parse_args(argv)
    if args.video:
        videos = [Path(v) for v in args.video]
    else:
        if not SAMPLES.is_dir():
            print(f"no sample clips at {SAMPLES}: pass --video FILE", file=sys.stderr)
            return 2
        videos = [SAMPLES / name for name in DEFAULT_CLIPS]
        started = time.perf_counter()
        videos.append(make_10s_1080p_clip(videos[0]))
        print(f"10 s 1080p clip: {videos[-1]} ({time.perf_counter() - started:.1f} s to make or find)")
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        print(f"not found: {', '.join(missing)}", file=sys.stderr)
        return 2

    model = create_model(args.model, pretrained="none")
    current = PreprocessConfig(frames=args.frames, size=args.size)
    legacy = dataclasses.replace(current, **{k: v for k, v in LEGACY_SETTINGS.items() if k != "crop_rule"})

    def predictor(cfg: PreprocessConfig) -> Predictor:
        ckpt = {"model_config": to_dict(model.config), "label_map": dict(LABELS), "frames": args.frames,
                "size": args.size, "normalization": NORMALIZATION, "preprocess": to_dict(cfg)}
        return Predictor((model, ckpt), device=args.device)

    ours, old = predictor(current), predictor(legacy)
    print(f"{args.model} (random init), {args.frames} frames at {args.size} px, device {args.device}, "
          f"{torch.get_num_threads()} torch threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print("ratios are to decode-only of the same frames, measured alternately in this run; medians of "
          f"{args.repeats} runs")
    for video in videos:
        info = VideoReader(video).info()
        print(f"\n{video.name}: {info.duration:.1f} s, {info.width}x{info.height}, {info.n_frames} frames, {info.codec}")
        runs: dict[str, list[float]] = {"decode": [], "predict": [], "decode_old": [], "predict_old": [], "explain": []}
        stages: dict[str, list[float]] = {}
        explain_parts: dict[str, list[float]] = {}
        for repeat in range(args.repeats + 1):
            measured = {
                "decode": timed(lambda: decode_only(video, current))[1],
                "predict": timed(lambda: ours(video)),
                "decode_old": timed(lambda: decode_only(video, legacy))[1],
                "predict_old": timed(lambda: old(video)),
            }
            with tempfile.TemporaryDirectory() as out:
                measured["explain"] = timed(lambda: explain(video, ours, out_dir=out))
            if repeat == 0:
                continue  # warm-up: allocator, detector sessions, first-touch costs
            for name, value in measured.items():
                runs[name].append(value if isinstance(value, float) else value[0])
            for name, seconds in measured["predict"][1].timings.items():
                stages.setdefault(name, []).append(seconds)
            seconds, result = measured["explain"]
            for name in ("cam", "influence"):
                explain_parts.setdefault(name, []).append(result.prediction.timings.get(name, 0.0))
            explain_parts.setdefault("figures and files", []).append(
                seconds - result.prediction.timings["total"] - sum(result.prediction.timings.get(n, 0.0)
                                                                   for n in ("cam", "influence")))
        med = {name: statistics.median(values) for name, values in runs.items()}
        stage_text = ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in stages.items()
                               if name != "total")
        print(f"  decode only            {med['decode']:.2f} s")
        print(f"  predict end to end     {med['predict']:.2f} s = {med['predict'] / med['decode']:.2f}x decode-only "
              f"({stage_text}; decode here is the wait for frames, detection overlapping it)")
        print(f"  0.1.0 settings         decode only {med['decode_old']:.2f} s, predict {med['predict_old']:.2f} s = "
              f"{med['predict_old'] / med['decode_old']:.2f}x its decode-only, "
              f"{med['predict_old'] / med['predict']:.2f}x today's predict")
        parts = ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in explain_parts.items())
        print(f"  explain end to end     {med['explain']:.2f} s = {med['explain'] / med['decode']:.2f}x decode-only "
              f"(prediction + {parts})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\npeak memory (max RSS): {peak:.0f} MiB; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
