"""Videos -> tracked, square face crops, one crop file per video (and per track on request).

Batch work never stops for one bad video: each gets a manifest row with a status (ok, skipped,
failed) and a named reason. Every output is written under a temporary name and renamed, and
each video's record is written last, so a killed run resumes where it stopped. Inputs are
only ever read. A dataset can be split over machines (``shard="K/N"``): each shard processes
the videos whose path hashes to it into the same output folder and leaves its rows in
``shards/``; the manifest is written once every shard is done (``merge_shards``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from dflib.config import PreprocessConfig, save_json, to_dict
from dflib.cropfile import SUFFIX, FaceClip, contact_sheet, save_clip
from dflib.faces import (
    FaceDetector,
    Landmarks68,
    clip_box,
    create_detector,
    crop_square,
    detect_frames,
    landmarks_in_crop,
    square_box,
)
from dflib.image import ImageReader, is_image
from dflib.io import atomic_path, atomic_write_text, clean_partial_files, printable_path
from dflib.labels import LabelRow, find_videos, match_videos, read_labels, select_compression
from dflib.tracking import fill_gaps, link_tracks
from dflib.video import VideoError, VideoReader, sample_indices

MANIFEST = "manifest.csv"
CONFIG_FILE = "preprocess_config.json"
CROP_RULES = ("centred", "clipped")
# What outputs and checkpoints made before a setting existed were made with: crops cut at the
# frame edge first, exactly the sampled frames, CenterFace through OpenCV.
LEGACY_SETTINGS = {"crop_rule": "clipped", "snap_to_reference": False, "detector_backend": "opencv"}
CROPS_DIR = "crops"
RECORDS_DIR = "records"
PREVIEWS_DIR = "previews"
SHARDS_DIR = "shards"
# Settings that change what a crop file holds: a rerun with other values must not mix outputs.
OUTPUT_SETTINGS = ("frames", "sampling", "stride", "fps", "snap_to_reference", "size", "margin", "crop_rule", "detector",
                   "detector_backend", "detect_long_side", "detect_face_size", "min_face_score", "min_frames", "max_gap",
                   "track_iou", "all_tracks", "landmarks68")


@dataclass
class ManifestRow:
    filename: str
    label: str = ""
    status: str = "ok"  # ok, skipped or failed
    reason: str = ""
    frames: int = 0  # face crops saved
    faces_found: int = 0  # sampled frames with at least one face
    detector: str = ""
    seconds: float = 0.0
    track: int = 0
    output: str = ""  # crop file, relative to the output folder
    group: str = ""
    source: str = ""
    split: str = ""
    sampled: int = 0  # frames decoded
    video_frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    tracks: int = 0
    decode_s: float = 0.0  # opening the video and waiting for decoded frames (decoding overlaps detection)
    detect_s: float = 0.0
    crop_s: float = 0.0


MANIFEST_COLUMNS = [f.name for f in fields(ManifestRow)]
REQUIRED_COLUMNS = ("filename", "label", "status", "output")


@dataclass
class Summary:
    out: Path
    rows: list[ManifestRow]
    missing: list[str] = field(default_factory=list)  # in the label file, not on disk
    unlabeled: list[str] = field(default_factory=list)  # on disk, not in the label file
    pending: str = ""  # a shard's run before every shard is done: what is left to do

    def counts(self) -> dict[str, int]:
        return {status: sum(row.status == status for row in self.rows) for status in ("ok", "skipped", "failed")}

    def text(self) -> str:
        counts = self.counts()
        where = f"this shard ({self.pending})" if self.pending else self.out / MANIFEST
        lines = [f"{len(self.rows)} rows in {where}: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
        reasons: dict[str, int] = {}
        for row in self.rows:
            if row.status != "ok":
                key = f"{row.status}: {row.reason.split(' (')[0]}"
                reasons[key] = reasons.get(key, 0) + 1
        lines += [f"  {n:4d} x {reason}" for reason, n in sorted(reasons.items(), key=lambda item: -item[1])]
        if self.unlabeled:
            lines.append(f"  {len(self.unlabeled)} video(s) have no label (kept, unlabeled; training ignores them): "
                         + ", ".join(self.unlabeled[:5]) + (" ..." if len(self.unlabeled) > 5 else ""))
        return "\n".join(lines)


def output_name(filename: str, track: int) -> str:
    return f"{CROPS_DIR}/{filename}" + (f".track{track}" if track else "") + SUFFIX


def config_detector(cfg: PreprocessConfig, threads: int = 0) -> FaceDetector:
    """The face detector ``cfg`` names, set up as it says (``threads`` 0: the library's choice)."""
    return create_detector(cfg.detector, cfg.detect_long_side, cfg.min_face_score, cfg.detector_backend, threads)


def process_video(path: Path, cfg: PreprocessConfig, detector: FaceDetector,
                  frames: dict[int, np.ndarray] | None = None,
                  landmarks68: Landmarks68 | None = None) -> tuple[list[FaceClip], ManifestRow]:
    """Decode, detect, track and crop one video (or photo, a clip of one frame). Raises VideoError
    for an unusable file.

    Frames are decoded in a background thread while the detector works on those already decoded.
    ``frames``, when given, receives the decoded frames (index -> RGB image), so a caller can draw
    on them without decoding the video again. With ``cfg.landmarks68``, ``landmarks68`` finds dlib's
    68 points in every kept face box.
    """
    if cfg.landmarks68 and landmarks68 is None:
        raise ValueError("cfg.landmarks68 is set: pass a dflib.faces.Landmarks68 to find them")
    row = ManifestRow(filename=path.name, detector=cfg.detector)
    started = time.perf_counter()
    photo = is_image(path)
    reader = ImageReader(path) if photo else VideoReader(path, cfg.max_frame_pixels, cfg.max_video_frames)
    info = reader.info()
    row.video_frames, row.width, row.height, row.fps = info.n_frames, info.width, info.height, round(info.fps, 3)
    wanted = sample_indices(reader.n_frames, cfg.frames, cfg.sampling, cfg.stride, cfg.fps, info.fps)
    indices, images = [], []
    detect_s = 0.0

    def decoded():
        nonlocal detect_s
        for index, image in reader.read_ahead(wanted, cfg.snap_to_reference):
            indices.append(index)
            images.append(image)
            handed = time.perf_counter()
            yield image
            detect_s += time.perf_counter() - handed

    per_frame = detect_frames(detector, decoded(), cfg.detect_face_size, keep_small=cfg.all_tracks)
    row.sampled = len(images)
    row.detect_s = detect_s
    row.decode_s = time.perf_counter() - started - detect_s
    if not images:
        raise VideoError(path, "no frame could be decoded")
    if frames is not None:
        frames.update(zip(indices, images))
    row.faces_found = sum(bool(found) for found in per_frame)
    tracks = link_tracks(per_frame, cfg.track_iou, cfg.max_gap)
    row.tracks = len(tracks)

    started = time.perf_counter()
    clips = []
    # A clip is numbered by its track's rank (0: the main face), kept or not, so track 0 always
    # means the main face whichever tracks had enough frames.
    min_frames = 1 if photo else cfg.min_frames
    for rank, track in enumerate(tracks if cfg.all_tracks else tracks[:1]):
        filled = fill_gaps(track, cfg.max_gap)
        if len(filled.positions) < min_frames:
            continue
        face_boxes = filled.boxes
        if cfg.crop_rule == "clipped":
            face_boxes = np.stack([clip_box(box, info.width, info.height) for box in face_boxes])
        crop_boxes = np.stack([square_box(box, cfg.margin) for box in face_boxes])
        crops = np.stack([crop_square(images[p], box, cfg.size) for p, box in zip(filled.positions, crop_boxes)])
        landmarks = np.stack([landmarks_in_crop(points, box, cfg.size)
                              for points, box in zip(filled.landmarks, crop_boxes)])
        dense = None
        if cfg.landmarks68:
            dense = np.stack([landmarks_in_crop(landmarks68(images[p], box), crop_box, cfg.size)
                              for p, box, crop_box in zip(filled.positions, filled.boxes, crop_boxes)])
        frame_indices = np.asarray(indices)[filled.positions]
        clips.append(FaceClip(
            crops=crops, frame_indices=frame_indices, timestamps=reader.timestamps(frame_indices),
            boxes=crop_boxes, scores=filled.scores, landmarks=landmarks, interpolated=filled.interpolated,
            meta={"video": str(path), "width": info.width, "height": info.height, "fps": info.fps,
                  "n_frames": info.n_frames, "rotation": info.rotation, "face_boxes": face_boxes.tolist(),
                  "track": rank, "preprocess": to_dict(cfg)}, landmarks68=dense))
    row.crop_s = time.perf_counter() - started
    if not clips:
        row.status = "skipped"
        if not tracks:
            row.reason = "no face found in the photo" if photo else f"no face found in {len(images)} sampled frames"
        else:
            best = len(fill_gaps(tracks[0], cfg.max_gap).positions)
            row.reason = f"too few frames with a face ({best} of {len(images)}; min_frames={cfg.min_frames})"
    return clips, row


_worker_detector: FaceDetector | None = None
_worker_landmarks68: Landmarks68 | None = None


def _init_worker(cfg: PreprocessConfig) -> None:
    global _worker_detector, _worker_landmarks68
    cv2.setNumThreads(1)  # one thread per worker: OpenMP detectors collapse when cores are shared
    _worker_detector = config_detector(cfg, threads=1)
    _worker_landmarks68 = Landmarks68() if cfg.landmarks68 else None


def _run_one(task: tuple[str, LabelRow | None, PreprocessConfig]) -> list[ManifestRow]:
    """Process one video into crop files and a record; never raises for a bad video."""
    filename, label_row, cfg = task
    out = Path(cfg.out)
    started = time.perf_counter()
    try:
        clips, row = process_video(Path(cfg.videos) / filename, cfg, _worker_detector,
                                   landmarks68=_worker_landmarks68)
        rows = []
        for clip in clips:
            track = clip.meta["track"]
            clip.meta["label"] = label_row.label if label_row else ""
            save_clip(out / output_name(filename, track), clip)
            rows.append(ManifestRow(**{**row.__dict__, "track": track, "frames": len(clip),
                                       "output": output_name(filename, track)}))
            if cfg.previews:
                _save_preview(out / PREVIEWS_DIR / f"{filename}.track{track}.png", clip.crops)
        rows = rows or [row]
    except VideoError as error:
        rows = [ManifestRow(filename=filename, status="failed", reason=error.cause, detector=cfg.detector)]
    except Exception as error:  # noqa: BLE001 - one broken video must never stop a batch
        rows = [ManifestRow(filename=filename, status="failed", detector=cfg.detector,
                            reason=f"unexpected error: {type(error).__name__}: {error}")]
    for row in rows:
        row.seconds = round(time.perf_counter() - started, 3)
        for name in ("decode_s", "detect_s", "crop_s"):
            setattr(row, name, round(getattr(row, name), 4))
    return _record(task, rows)


def _record(task: tuple[str, LabelRow | None, PreprocessConfig], rows: list[ManifestRow]) -> list[ManifestRow]:
    """Label the video's rows and write its record last: a video with a record is done."""
    filename, label_row, cfg = task
    for row in rows:
        row.filename = filename
        if label_row:
            row.label, row.group, row.source, row.split = label_row.label, label_row.group, label_row.source, label_row.split
    atomic_write_text(Path(cfg.out) / RECORDS_DIR / f"{filename}.json", json.dumps([r.__dict__ for r in rows]))
    return rows


def _save_preview(path: Path, crops: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(contact_sheet(crops), cv2.COLOR_RGB2BGR))
    if ok:
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())


def _check_paths(cfg: PreprocessConfig) -> tuple[Path, Path]:
    videos, out = Path(cfg.videos).expanduser().resolve(), Path(cfg.out).expanduser().resolve()
    if not cfg.videos or not videos.is_dir():
        raise FileNotFoundError(f"videos folder not found: {cfg.videos or '(none given)'}")
    if not cfg.out:
        raise ValueError("no output folder given (--out)")
    if out == videos:
        raise ValueError(f"output folder {out} is the videos folder: choose another, inputs are never written to")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a folder")
    labels = Path(cfg.labels).expanduser().resolve() if cfg.labels else None
    if labels in (out / MANIFEST, out / CONFIG_FILE):
        raise ValueError(f"label file {labels} is where preprocess writes its {labels.name}: "
                         "move the label file or choose another --out, inputs are never written to")
    return videos, out


def check_settings(cfg: PreprocessConfig) -> None:
    """Refuse, before any work, settings under which no video could ever be kept."""
    if cfg.sampling in ("uniform", "first") and cfg.frames < cfg.min_frames:
        raise ValueError(f"--frames {cfg.frames} samples fewer frames than --min-frames {cfg.min_frames} needs with "
                         "a face, so every video would be skipped: raise --frames or lower --min-frames")
    if cfg.min_frames < 1:
        raise ValueError(f"--min-frames must be at least 1, got {cfg.min_frames}")
    if cfg.crop_rule not in CROP_RULES:
        raise ValueError(f"--crop-rule must be one of {', '.join(CROP_RULES)}, not {cfg.crop_rule!r}")


def _changed_settings(previous: dict, cfg: PreprocessConfig) -> tuple[str, str]:
    """The output settings in which ``cfg`` differs from a saved config, and the options that give
    the saved values (both '' if none)."""
    previous = {**LEGACY_SETTINGS, **previous}
    changed = [name for name in OUTPUT_SETTINGS if name in previous and previous[name] != getattr(cfg, name)]
    options = [(f"--{name}" if previous[name] else f"--no-{name}") if isinstance(previous[name], bool)
               else f"--{name} {previous[name]}" for name in changed]
    return (", ".join(f"{name} {previous[name]!r} -> {getattr(cfg, name)!r}" for name in changed),
            " ".join(option.replace("_", "-") for option in options))


def _check_previous_settings(cfg: PreprocessConfig, out: Path) -> None:
    if cfg.overwrite:
        return
    saved = [(out / CONFIG_FILE, json.loads((out / CONFIG_FILE).read_text()))] if (out / CONFIG_FILE).exists() else []
    saved += [(path, shard["config"]) for path, shard in _read_shards(out)]
    for path, previous in saved:
        detail, options = _changed_settings(previous, cfg)
        if detail:
            raise ValueError(f"{out} was made with other settings ({detail}, in {path.relative_to(out)}); "
                             f"to continue it pass {options}, or use --overwrite or another --out")


def parse_shard(text: str) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; ``""`` -> None."""
    if not text:
        return None
    try:
        part, count = (int(value) for value in text.split("/"))
    except ValueError:
        part = count = 0
    if not 1 <= part <= count:
        raise ValueError(f"--shard must be K/N with 1 <= K <= N (e.g. 1/3, 2/3, 3/3), not {text!r}")
    return part, count


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) of a video, from a hash of its path relative to the videos folder: the
    same on every machine and Python process (unlike ``hash()``), whatever the other videos."""
    digest = hashlib.sha256(Path(name).as_posix().encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def _shard_path(out: Path, part: int, count: int) -> Path:
    return out / SHARDS_DIR / f"shard-{part}-of-{count}.json"


def _read_shards(out: Path) -> list[tuple[Path, dict]]:
    folder = out / SHARDS_DIR
    shards = []
    for path in sorted(folder.glob("shard-*-of-*.json")) if folder.is_dir() else []:
        try:
            shards.append((path, json.loads(path.read_text())))
        except ValueError as error:
            raise ValueError(f"{path}: not a readable shard file ({error}); run that shard again") from error
    return shards


def merge_shards(out: str | os.PathLike) -> Summary:
    """Write the manifest and config of a folder that N shards preprocessed, once all N are done.

    Refuses shards of different splits or made with other settings: their crops must not be mixed.
    """
    out = Path(out).expanduser().resolve()
    shards = _read_shards(out)
    if not shards:
        raise FileNotFoundError(f"{out}: no shard results in {SHARDS_DIR}/; run `dflib preprocess --shard K/N` "
                                "with this --out first")
    counts = {parse_shard(shard["config"]["shard"])[1] for _, shard in shards}
    if len(counts) > 1:
        raise ValueError(f"{out}: shards of different splits ({', '.join(f'N={n}' for n in sorted(counts))}) "
                         f"in {SHARDS_DIR}/; remove the ones of the split you no longer use")
    (count,) = counts
    first_path, first = shards[0]
    reference = PreprocessConfig(**{**first["config"], "shard": ""})
    for path, shard in shards[1:]:
        detail, _ = _changed_settings(shard["config"], reference)
        if detail:
            raise ValueError(f"{path.name} was made with other settings than {first_path.name} ({detail}): "
                             "rerun that shard with the same settings")
    done = {parse_shard(shard["config"]["shard"])[0] for _, shard in shards}
    if len(done) < count:
        left = ", ".join(f"{part}/{count}" for part in range(1, count + 1) if part not in done)
        raise ValueError(f"{out}: shard(s) {left} not done yet; merge when every shard has finished")
    clean_partial_files(out, (MANIFEST, CONFIG_FILE))
    for folder in (CROPS_DIR, RECORDS_DIR, PREVIEWS_DIR):
        clean_partial_files(out / folder)
    results = {name: [ManifestRow(**row) for row in rows] for _, shard in shards for name, rows in shard["results"]}
    rows = [row for name in sorted(results) for row in results[name]]
    save_json(reference, out / CONFIG_FILE)
    write_manifest(out, rows)
    return Summary(out, rows, sorted(n for _, shard in shards for n in shard["missing"]),
                   sorted(n for _, shard in shards for n in shard["unlabeled"]))


def _load_records(out: Path) -> dict[str, list[ManifestRow]]:
    records = {}
    for path in sorted((out / RECORDS_DIR).rglob("*.json")) if (out / RECORDS_DIR).is_dir() else []:
        try:
            rows = [ManifestRow(**data) for data in json.loads(path.read_text())]
        except (ValueError, TypeError):
            continue  # an unreadable record: the video is simply done again
        if all(row.status != "ok" or (out / row.output).is_file() for row in rows):
            records[rows[0].filename] = rows
    return records


def write_manifest(out: Path, rows: list[ManifestRow]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, name) for name in MANIFEST_COLUMNS])
    return atomic_write_text(out / MANIFEST, buffer.getvalue())


def read_manifest_rows(out: str | os.PathLike) -> list[ManifestRow]:
    """Every row of a preprocessing manifest (all statuses), typed."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{out}: no {MANIFEST} in this folder; run `dflib preprocess` on your videos first "
                                "and point at its output folder")
    types = {f.name: f.type for f in fields(ManifestRow)}
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; is it a dflib preprocess manifest?")
        for record in reader:
            values = {}
            for name, value in record.items():
                if name in types:
                    kind = types[name]
                    values[name] = int(float(value or 0)) if kind in ("int", int) else (
                        float(value or 0) if kind in ("float", float) else value or "")
            rows.append(ManifestRow(**values))
    return rows


def _pool(cfg: PreprocessConfig, workers: int) -> ProcessPoolExecutor:
    # Spawned, not forked: a child forked from a process that has used OpenCV's thread pool
    # (any earlier cv2 call in a notebook) hangs in its first cv2 call.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(cfg,))


def _run_in_pool(tasks: list, cfg: PreprocessConfig) -> Iterator[list[ManifestRow]]:
    """Rows of each video as workers finish them.

    A video that kills its worker (a decoder crash, the out-of-memory killer) breaks the whole
    pool; the videos still pending are then retried one per fresh worker, so only the culprit is
    recorded as failed (and a rerun does not stumble on it again).
    """
    pending = {task[0]: task for task in tasks}
    try:
        with _pool(cfg, cfg.workers) as pool:
            futures = [pool.submit(_run_one, task) for task in tasks]
            for future in as_completed(futures):
                rows = future.result()
                del pending[rows[0].filename]
                yield rows
    except BrokenProcessPool:
        for filename, task in list(pending.items()):
            try:
                with _pool(cfg, 1) as pool:
                    rows = pool.submit(_run_one, task).result()
            except BrokenProcessPool:
                rows = _record(task, [ManifestRow(
                    filename=filename, status="failed", detector=cfg.detector,
                    reason="the worker process died on this video (decoder crash or out of memory)")])
            yield rows


def preprocess(cfg: PreprocessConfig, progress: bool = True) -> Summary:
    """Preprocess every video under ``cfg.videos`` into ``cfg.out``; resumes a killed run."""
    check_settings(cfg)
    videos, out = _check_paths(cfg)
    shard = parse_shard(cfg.shard)
    cfg = PreprocessConfig(**{**to_dict(cfg), "videos": str(videos), "out": str(out)})
    config_detector(cfg)  # fail fast on a bad detector name or a missing backend
    if cfg.landmarks68:
        Landmarks68()  # and on a missing dlib, before any video
    _check_previous_settings(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    if not shard:  # other shards may be writing beside a shard: the merge cleans up after them all
        # Only our own files: a user may point --out at a folder that holds other things, even the videos.
        clean_partial_files(out, (MANIFEST, CONFIG_FILE))
        for folder in (CROPS_DIR, RECORDS_DIR, PREVIEWS_DIR):
            clean_partial_files(out / folder)

    # An output folder inside the videos folder is not input; a videos folder inside --out still is.
    found = [name for name in find_videos(videos)
             if videos.is_relative_to(out) or not (videos / name).resolve().is_relative_to(out)]
    # A name that is not UTF-8 cannot be written as text (manifest, records), nor be in a label file.
    misnamed = {name for name in found if printable_path(name) != name}
    found = [name for name in found if name not in misnamed]
    missing: list[str] = []
    unlabeled: list[str] = []
    labels: dict[str, LabelRow] = {}
    listed: dict[str, LabelRow] = {}
    other_compressions: list[LabelRow] = []
    if cfg.labels:
        rows = read_labels(cfg.labels, videos, cfg.label_format, cfg.label_splits)
        rows, other_compressions, compression = select_compression(rows, cfg.compression)
        on_disk = set(found)
        other_compressions = [row for row in other_compressions if row.filename in on_disk]
        set_aside = {row.filename for row in other_compressions}
        found = [name for name in found if name not in set_aside]
        listed = {row.filename: row for row in rows}
        matched, missing, unlabeled = match_videos(rows, videos)
        labels = {row.filename: row for row in matched}
        unlabeled = sorted(set(unlabeled) & set(found))
    todo_names = sorted(set(found) | set(labels))
    if shard:
        part, count = shard
        todo_names, missing, unlabeled = ([name for name in names if shard_of(name, count) == part]
                                          for names in (todo_names, missing, unlabeled))
        misnamed = {name for name in misnamed if shard_of(name, count) == part}
    else:
        save_json(cfg, out / CONFIG_FILE)

    done = {} if cfg.overwrite else _load_records(out)
    if shard:  # the other shards' videos are theirs to report
        mine = set(todo_names)
        done = {name: rows for name, rows in done.items() if name in mine}
    tasks = [(name, labels.get(name), cfg) for name in todo_names if name not in done]
    results = dict(done)
    with tqdm(total=len(todo_names), initial=len(todo_names) - len(tasks), desc="preprocess", unit="video",
              disable=not progress) as bar:
        if cfg.workers > 1 and len(tasks) > 1:
            for rows in _run_in_pool(tasks, cfg):
                results[rows[0].filename] = rows
                bar.update()
        else:
            _init_worker(cfg)
            for task in tasks:
                results[task[0]] = _run_one(task)
                bar.update()
    for name in missing:
        label_row = listed.get(name)
        results[name] = [ManifestRow(filename=name, label=label_row.label if label_row else "", status="failed",
                                     reason="listed in the label file but not found in the videos folder",
                                     detector=cfg.detector)]
    for row in other_compressions:  # also over records of an earlier run that used them
        results[row.filename] = [ManifestRow(filename=row.filename, label=row.label, status="skipped",
                                             reason=f"{row.compression} copy: --compression uses {compression}",
                                             detector=cfg.detector)]
    for name in misnamed:
        results[name] = [ManifestRow(filename=printable_path(name), status="failed", detector=cfg.detector,
                                     reason="file name is not valid UTF-8 (another encoding, e.g. from an old zip):"
                                            " rename the file")]
    all_rows = [row for name in sorted(results) for row in results[name]]
    if not shard:
        write_manifest(out, all_rows)
        return Summary(out, all_rows, missing, unlabeled)
    # Written last: its presence says the shard is done. The last shard to finish merges.
    atomic_write_text(_shard_path(out, *shard), json.dumps({
        "config": to_dict(cfg), "missing": missing, "unlabeled": unlabeled,
        "results": [[name, [row.__dict__ for row in results[name]]] for name in sorted(results)]}))
    done_parts = {parse_shard(other["config"]["shard"]) for _, other in _read_shards(out)}
    if all((part, shard[1]) in done_parts for part in range(1, shard[1] + 1)):
        return merge_shards(out)
    return Summary(out, all_rows, missing, unlabeled,
                   pending=f"shard {cfg.shard}, {len(done_parts)} of {shard[1]} shards done; the last one to finish "
                           f"writes {MANIFEST}, or run `dflib preprocess --merge {out}`")
