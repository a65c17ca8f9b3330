"""Face detection choices on the sample clips: time per sampled frame, face-hit rate, box accuracy.

    python benchmarks/detect.py [--videos ../shared/data/videos] [--limit 62] [--frames 20] [--threads 1]

Each clip's frames are sampled as preprocessing samples them and decoded once; every choice then
detects on the same frames, one after the other in this process (no decoding beside it). The
reference is CenterFace through onnxruntime at a long side of 1280 px (at most the frame's own
size) on every frame. Box accuracy is the IoU of each frame's main face (the largest) with the
reference's, over the frames where both found one; "crop shift" is how far the square crop's
centre moves, as a share of its side. Choices: the backend (OpenCV's DNN, onnxruntime), the
detection scale (``detect_face_size``; 0 = always the full ``detect_long_side`` 640), batching
frames of one size through onnxruntime, and reusing the track: detecting every other sampled
frame and interpolating the boxes between. Figures depend on the machine and its load (printed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dflib.config import PreprocessConfig  # noqa: E402
from dflib.faces import DETECTION_SIZES, Detection, create_detector, detect_frames, square_box  # noqa: E402
from dflib.labels import find_videos  # noqa: E402
from dflib.tracking import iou  # noqa: E402
from dflib.video import VideoReader, sample_indices  # noqa: E402

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def main_face(found: list[Detection]) -> np.ndarray | None:
    if not found:
        return None
    return max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).box


def batched(detector, images: list[np.ndarray], face_size: int) -> tuple[list[list[Detection]], float]:
    """Every frame at the size the first frame's face asks for, through onnxruntime in one batch.

    Returns the faces (from one-at-a-time passes at that size: the same network outputs, so the
    same boxes) and the seconds of the batched way: the first detection, the resizes, one batch.
    """
    started = time.perf_counter()
    first = detect_frames(detector, images[:1], face_size)[0]
    side = max(images[0].shape[:2])
    long_side = detector.long_side
    if first:
        wanted = side * face_size / max(min(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in first)
        long_side = min(next((s for s in DETECTION_SIZES if s >= wanted), DETECTION_SIZES[-1]), long_side)
    scale = max(min(1.0, long_side / side), DETECTION_SIZES[0] / side)
    height, width = images[0].shape[:2]
    small = [cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                        interpolation=cv2.INTER_AREA) if scale != 1.0 else image for image in images]
    h, w = small[0].shape[:2]
    blob = cv2.dnn.blobFromImages(small, 1.0, (int(np.ceil(w / 32) * 32), int(np.ceil(h / 32) * 32)), (0, 0, 0),
                                  swapRB=False, crop=False)
    detector._session.run(detector.OUTPUTS, {"input.1": blob})
    spent = time.perf_counter() - started
    return [detector.detect(image, long_side) for image in images], spent


def every_other(detector, images: list[np.ndarray], face_size: int) -> list[list[Detection]]:
    """Detect on frames 0, 2, 4, ... (and the last); the main face's box in between is interpolated."""
    keep = sorted(set(range(0, len(images), 2)) | {len(images) - 1})
    found = dict(zip(keep, detect_frames(detector, [images[i] for i in keep], face_size)))
    result = []
    for i in range(len(images)):
        if i in found:
            result.append(found[i])
            continue
        before, after = main_face(found[i - 1]), main_face(found[i + 1])
        result.append([] if before is None or after is None else [Detection((before + after) / 2, 0.0)])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(DEFAULT_VIDEOS))
    parser.add_argument("--limit", type=int, default=62)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="detector threads (preprocessing workers use 1)")
    args = parser.parse_args(argv)
    folder = Path(args.videos)
    if not folder.is_dir():
        print(f"no videos at {folder}: pass --videos DIR", file=sys.stderr)
        return 2
    names = find_videos(folder)
    paths = [folder / name for name in names[:: max(1, len(names) // args.limit)][: args.limit]]
    cv2.setNumThreads(args.threads)
    cfg = PreprocessConfig(frames=args.frames)
    ort = create_detector("centerface", cfg.detect_long_side, cfg.min_face_score, "onnxruntime", args.threads)
    ocv = create_detector("centerface", cfg.detect_long_side, cfg.min_face_score, "opencv")
    reference = create_detector("centerface", 1280, cfg.min_face_score, "onnxruntime", args.threads)
    choices = {
        "opencv, face size 64 (dflib 0.1.0)": lambda images: detect_frames(ocv, images, 64),
        "onnxruntime, face size 64 (default)": lambda images: detect_frames(ort, images, 64),
        "onnxruntime, full 640 px": lambda images: detect_frames(ort, images, 0),
        "onnxruntime, face size 48": lambda images: detect_frames(ort, images, 48),
        "onnxruntime, face size 32": lambda images: detect_frames(ort, images, 32),
        "onnxruntime, batched, face size 64": lambda images: batched(ort, images, 64),  # (faces, seconds)
        "onnxruntime, every other frame + interpolation": lambda images: every_other(ort, images, 64),
    }
    print(f"{len(paths)} clips from {folder}, {args.frames} sampled frames each, {args.threads} detector thread(s), "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    seconds = {name: 0.0 for name in choices}
    hits = {name: 0 for name in choices}
    overlaps: dict[str, list[float]] = {name: [] for name in choices}
    shifts: dict[str, list[float]] = {name: [] for name in choices}
    total = reference_hits = 0
    for path in paths:
        reader = VideoReader(path)
        _, images = reader.read(sample_indices(reader.n_frames, cfg.frames))
        truth = [main_face(reference.detect(image)) for image in images]
        total += len(images)
        reference_hits += sum(box is not None for box in truth)
        for name, run in choices.items():
            started = time.perf_counter()
            found = run(images)
            spent = time.perf_counter() - started
            if isinstance(found, tuple):
                found, spent = found
            seconds[name] += spent
            for box, want in zip((main_face(f) for f in found), truth):
                hits[name] += box is not None
                if box is not None and want is not None:
                    overlaps[name].append(iou(box, want))
                    a, b = square_box(box, cfg.margin), square_box(want, cfg.margin)
                    shifts[name].append(float(np.hypot(*((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / (b[2] - b[0])))
    base = seconds["opencv, face size 64 (dflib 0.1.0)"]
    print(f"reference (onnxruntime at 1280 px): face-hit rate {reference_hits / total:.3f} on {total} frames\n")
    print(f"| choice | ms per frame | vs dflib 0.1.0 | face-hit rate | box IoU to reference (mean, 5th pct.) "
          f"| crop shift (mean, max) |")
    print("|---|---|---|---|---|---|")
    for name in choices:
        values = overlaps[name] or [0.0]
        moved = shifts[name] or [0.0]
        print(f"| {name} | {1000 * seconds[name] / total:.1f} | {seconds[name] / base:.2f}x | {hits[name] / total:.3f} "
              f"| {statistics.mean(values):.3f}, {np.percentile(values, 5):.3f} "
              f"| {100 * statistics.mean(moved):.1f}%, {100 * max(moved):.1f}% |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
