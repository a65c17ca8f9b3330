"""Preprocessing throughput on the sample clips: dflib vs decode-only vs the original design.

    python benchmarks/preprocess.py [--videos ../shared/data/videos] [--limit 8] [--workers 2]

Prints videos/s, ms per sampled frame split into decode / detect / crop+write, and the face-hit
rate (sampled frames with a face); batch runs with 1 and ``--workers`` workers as ratios to
decoding the same frames alone (measured in the same run), and the time to merge three shards. The baseline reproduces the original design: OpenCV reads
the first 150 frames, dlib's HOG detector (face_recognition's default, one upsampling) runs on
every one of them, the first face is cropped; it runs only when dlib is installed
(`pip install 'dflib[dlib]'`). Figures depend on the machine and its load: run on an idle one.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dflib.config import PreprocessConfig  # noqa: E402
from dflib.cropfile import save_clip  # noqa: E402

from dflib.labels import find_videos  # noqa: E402
from dflib.preprocess import config_detector, merge_shards, preprocess, process_video  # noqa: E402
from dflib.video import VideoReader, sample_indices  # noqa: E402

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def run_dflib(paths: list[Path], cfg: PreprocessConfig) -> dict:
    detector = config_detector(cfg, threads=1)
    totals = dict(decode=0.0, detect=0.0, crop_write=0.0, frames=0, hits=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for path in paths:
            clips, row = process_video(path, cfg, detector)
            write_start = time.perf_counter()
            for track, clip in enumerate(clips):
                save_clip(Path(out) / f"{path.name}.{track}.npz", clip)
            totals["decode"] += row.decode_s
            totals["detect"] += row.detect_s
            totals["crop_write"] += row.crop_s + time.perf_counter() - write_start
            totals["frames"] += row.sampled
            totals["hits"] += row.faces_found
    totals["seconds"] = time.perf_counter() - started
    return totals


def run_decode_only(paths: list[Path], cfg: PreprocessConfig) -> dict:
    frames = 0
    started = time.perf_counter()
    for path in paths:
        reader = VideoReader(path)
        reader.info()
        got, _ = reader.read(sample_indices(reader.n_frames, cfg.frames, cfg.sampling), cfg.snap_to_reference)
        frames += len(got)
    return dict(seconds=time.perf_counter() - started, frames=frames)


def run_original_design(paths: list[Path], first_frames: int = 150, size: int = 112) -> dict | None:
    try:
        import dlib
    except ImportError:
        return None
    detector = dlib.get_frontal_face_detector()
    frames = hits = 0
    started = time.perf_counter()
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        for _ in range(first_frames):
            ok, frame = capture.read()
            if not ok:
                break
            frames += 1
            rgb = frame[:, :, ::-1]
            faces = detector(np.ascontiguousarray(rgb), 1)
            if faces:
                hits += 1
                face = faces[0]
                top, bottom = max(face.top(), 0), max(face.bottom(), 0)
                left, right = max(face.left(), 0), max(face.right(), 0)
                crop = frame[top:bottom, left:right]
                if crop.size:
                    cv2.resize(crop, (size, size))
        capture.release()
    return dict(seconds=time.perf_counter() - started, frames=frames, hits=hits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(DEFAULT_VIDEOS))
    parser.add_argument("--limit", type=int, default=8, help="clips to use (the baseline is slow)")
    parser.add_argument("--workers", type=int, default=2, help="workers for the batch run")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(args.videos)
    if not folder.is_dir():
        print(f"no videos at {folder}: pass --videos DIR", file=sys.stderr)
        return 2
    all_paths = [folder / name for name in find_videos(folder)]
    # Every k-th clip, so the subset mixes sources, sizes and lengths.
    paths = all_paths[:: max(1, len(all_paths) // args.limit)][: args.limit]
    cfg = PreprocessConfig()
    cv2.setNumThreads(1)
    print(f"{len(paths)} clips from {folder}; {cfg.frames} frames each, detector {cfg.detector}, "
          f"long side {cfg.detect_long_side}, {os.cpu_count()} CPUs")

    ours = run_dflib(paths, cfg)
    n, f = len(paths), ours["frames"]
    print(f"dflib (1 process):   {n / ours['seconds']:.2f} videos/s, {1000 * ours['seconds'] / f:.1f} ms/frame "
          f"(decode {1000 * ours['decode'] / f:.1f}, detect {1000 * ours['detect'] / f:.1f}, "
          f"crop+write {1000 * ours['crop_write'] / f:.1f}), face-hit rate {ours['hits'] / f:.3f}")

    decode = run_decode_only(paths, cfg)
    print(f"decode only:         {n / decode['seconds']:.2f} videos/s, {1000 * decode['seconds'] / decode['frames']:.1f} ms/frame"
          f"; dflib takes {ours['seconds'] / decode['seconds']:.2f}x its time")

    with tempfile.TemporaryDirectory() as tmp:
        links = Path(tmp) / "videos"
        links.mkdir()
        for path in paths:
            (links / path.name).symlink_to(path.resolve())
        for workers in sorted({1, args.workers}):
            started = time.perf_counter()
            preprocess(PreprocessConfig(videos=str(links), out=str(Path(tmp) / f"out{workers}"), workers=workers),
                       progress=False)
            batch = time.perf_counter() - started
            print(f"dflib batch ({workers} worker{'s' if workers > 1 else ''}): {n / batch:.2f} videos/s "
                  f"({batch / decode['seconds']:.2f}x decode-only time)")
        sharded = Path(tmp) / "sharded"
        for part in (1, 2):
            preprocess(PreprocessConfig(videos=str(links), out=str(sharded), shard=f"{part}/3"), progress=False)
        preprocess(PreprocessConfig(videos=str(links), out=str(sharded), shard="3/3"), progress=False)
        started = time.perf_counter()
        merge_shards(sharded)
        print(f"merging 3 shards of {n} videos: {time.perf_counter() - started:.3f} s")

    if not args.no_baseline:
        base = run_original_design(paths)
        if base is None:
            print("original design: skipped (dlib not installed: pip install 'dflib[dlib]')")
        else:
            print(f"original design:     {n / base['seconds']:.3f} videos/s, {1000 * base['seconds'] / base['frames']:.1f} ms/frame, "
                  f"face-hit rate {base['hits'] / base['frames']:.3f}; dflib 1 process is "
                  f"{base['seconds'] / ours['seconds']:.1f}x faster, batch {base['seconds'] / batch:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
