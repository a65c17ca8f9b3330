"""Video-level metrics and figures of a checkpoint on the videos of one split.

The split comes from the checkpoint's own ``splits`` mapping, so "test" means the videos that
training set aside, never a fresh random draw that could overlap the training set. Evaluation is
what prediction does: the same frames of each crop file (no augmentation), one video per forward
pass, and the same track policy (``dflib.prediction.scored_tracks``): the main face by default, or
with ``all_tracks`` every face track with the video as its most suspicious track. So the P(FAKE)
of a video here is the one ``dflib predict`` gives it.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from dflib.io import atomic_write_text
from dflib.labels import SPLIT_NAMES
from dflib.metrics import save_metrics, video_metrics
from dflib.models import resolve_device
from dflib.plots import plot_confusion, plot_history, plot_roc, plot_score_histogram, save_figure

SCORE_COLUMNS = ["filename", "label", "p_fake", "track", "source", "split"]
FIGURE_FILES = {"confusion": "confusion.png", "roc": "roc.png", "histogram": "score_histogram.png",
                "history": "history.png"}


@dataclass
class EvalResult:
    split: str
    metrics: dict
    scores: pd.DataFrame  # one row per video: filename, label, p_fake, source, split
    figures: dict[str, Figure]
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def text(self) -> str:
        m = self.metrics
        lines = [f"split {self.split!r}: {m['n']} videos ({m['n_real']} REAL, {m['n_fake']} FAKE), "
                 f"threshold {m['threshold']:g}, {m['track_policy']}"]
        lines.append(f"  video-level ROC AUC {_number(m['roc_auc'])} (headline)")
        lines.append("  " + _line(m))
        lines.append(f"  confusion (rows: true REAL, FAKE; columns: predicted): {m['confusion']}")
        if m.get("by_method"):
            lines.append(f"  per method: its FAKE videos against all {m['n_real']} REAL videos of the split")
        for method, sub in sorted(m.get("by_method", {}).items()):
            lines.append(f"    {method}: {sub['n_fake']} FAKE, " + _line(sub))
        if len(m.get("by_source", {})) > 1:
            lines.append("  per source: its videos alone")
        for source, sub in sorted(m.get("by_source", {}).items() if len(m.get("by_source", {})) > 1 else ()):
            lines.append(f"    {source}: {sub['n']} videos ({sub['n_real']} REAL, {sub['n_fake']} FAKE), "
                         + _line(sub))
        lines += [f"  note: {note}" for note in self.notes + m["notes"]]
        if self.files:
            lines.append(f"  written to {Path(self.files['metrics']).parent}")
        return "\n".join(lines)


def _line(m: dict) -> str:
    names = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC"),
             ("average_precision", "AP"), ("eer", "EER"), ("f1", "F1"), ("log_loss", "log loss"))
    return ", ".join(f"{label} {_number(m.get(key))}" for key, label in names)


def _number(value: float | None) -> str:
    return "n/a" if value is None else format(value, ".3f")


def evaluate(checkpoint, data: str | os.PathLike, split: str = "test", out: str | os.PathLike | None = None,
             progress: bool = True, threshold: float | None = None, device: str = "auto",
             all_tracks: bool = False) -> EvalResult:
    """Score every video of ``split`` (train, val, test, or all labelled ok rows) in the
    preprocessed folder ``data``; with ``out``, write metrics.json, scores.csv and PNGs there.

    ``checkpoint`` is a path, a ``(model, ckpt)`` pair from ``dflib.checkpoint.load_model``, or
    empty for the detector that ships with dflib; ``threshold`` None (or negative) is the one stored
    in the checkpoint, as in ``dflib predict``; ``all_tracks`` as ``dflib predict --all-tracks``.
    """
    from dflib.checkpoint import decision_threshold, load_model
    from dflib.pretrained import shipped_detector_file
    from dflib.data import VideoClipDataset, read_manifest
    from dflib.prediction import scored_tracks, track_policy

    if split not in (*SPLIT_NAMES, "all"):
        raise ValueError(f"unknown split {split!r}: use train, val, test or all")
    if all_tracks:
        _check_all_tracks(data)
    torch_device = resolve_device(device)
    if isinstance(checkpoint, (tuple, list)):
        model, ckpt = checkpoint
        model = model.to(torch_device).eval()
    else:
        model, ckpt = load_model(checkpoint or shipped_detector_file(), torch_device)
    threshold = decision_threshold(ckpt, threshold)
    rows = read_manifest(data)
    splits = ckpt.get("splits") or {}
    notes = []
    if split == "all":
        selected = rows
    else:
        selected = [row for row in rows if splits.get(row.filename) == split]
        if not selected:
            raise ValueError(_empty_split_message(split, rows, splits, data))
        missing = {name for name, part in splits.items() if part == split} - {row.filename for row in rows}
        if missing:
            notes.append(f"{len(missing)} video(s) of split {split!r} are not usable in {data} (absent, not ok or "
                         f"unlabeled) and are left out, e.g. {sorted(missing)[0]}")

    tracks_of: dict[str, list[int]] = {}
    for row in selected:
        tracks_of.setdefault(row.filename, []).append(_track_number(row.track))
    kept = {name: scored_tracks(tracks, all_tracks) for name, tracks in tracks_of.items()}
    no_main = sorted(name for name, tracks in kept.items() if not tracks)
    if no_main:
        notes.append(f"{len(no_main)} video(s) have no main-track crop file (their main face had too few frames; "
                     f"prediction gives them NO_FACE) and are left out, e.g. {no_main[0]}")
    selected = [row for row in selected if _track_number(row.track) in kept[row.filename]]
    if not selected:
        raise ValueError(f"split {split!r} of {data}: no video has a main face track to evaluate")

    dataset = VideoClipDataset(data, selected, int(ckpt["frames"]), int(ckpt["size"]), train=False)
    fake_index = int(ckpt["label_map"]["FAKE"])
    per_video: dict[str, tuple[float, int]] = {}
    with torch.inference_mode():
        for index in tqdm(range(len(dataset)), desc=f"evaluate {split}", unit="clip", disable=not progress):
            frames, _, _ = dataset[index]
            logits = model(frames.unsqueeze(0).to(torch_device))
            p_fake = float(torch.softmax(logits[0].float(), dim=-1)[fake_index])
            row = selected[index]
            best = per_video.get(row.filename)
            if best is None or p_fake > best[0]:  # several tracks: the most suspicious decides
                per_video[row.filename] = (p_fake, _track_number(row.track))
    first_row = {}
    for row in selected:
        first_row.setdefault(row.filename, row)
    scores = pd.DataFrame(
        [[name, first_row[name].label, p, track, first_row[name].source or "unknown", splits.get(name, "")]
         for name, (p, track) in per_video.items()],
        columns=SCORE_COLUMNS,
    )

    metrics = video_metrics(scores["label"], scores["p_fake"], threshold, groups={"source": scores["source"]},
                            methods=scores["source"])
    metrics["track_policy"] = track_policy(all_tracks)
    figures = {
        "confusion": plot_confusion(metrics["confusion"]),
        "roc": plot_roc(scores["label"], scores["p_fake"]),
        "histogram": plot_score_histogram(scores["label"], scores["p_fake"], threshold),
        "history": plot_history(ckpt.get("history") or []),
    }
    result = EvalResult(split, metrics, scores, figures, notes)
    if out is not None:
        result.files = _write(result, Path(out), checkpoint, data)
    return result


def _track_number(value: str) -> int:
    return int(value or 0)


def _check_all_tracks(data) -> None:
    """Every face can only be scored where preprocessing kept every face."""
    from dflib.preprocess import CONFIG_FILE

    path = Path(data) / CONFIG_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    if not recorded.get("all_tracks"):
        raise ValueError(f"--all-tracks needs every face track, but {data} holds the main face only "
                         f"({CONFIG_FILE}: all_tracks is not true); rerun `dflib preprocess --all-tracks` "
                         "into another folder to evaluate that policy")


def _empty_split_message(split: str, rows, splits: dict, data) -> str:
    counts = Counter(splits.get(name, "none") for name in {row.filename for row in rows})
    listed = ", ".join(f"{name} {counts.get(name, 0)}" for name in (*SPLIT_NAMES, "none"))
    hint = "the checkpoint records no splits" if not splits else "none of its videos is usable here"
    return (f"split {split!r} has no videos in {data} ({hint}); usable videos per split of the checkpoint: {listed} "
            f"('none': not in the checkpoint's splits); use --split all to evaluate every labelled video")


def _write(result: EvalResult, out: Path, checkpoint, data) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    source = "(model in memory)" if isinstance(checkpoint, (tuple, list)) else str(checkpoint)
    files = {"scores": atomic_write_text(out / "scores.csv", result.scores.to_csv(index=False))}
    for name, filename in FIGURE_FILES.items():
        files[name] = save_figure(result.figures[name], out / filename)
    # Written last, so its presence says the evaluation finished.
    files["metrics"] = save_metrics({"split": result.split, "checkpoint": source, "data": str(data),
                                     **result.metrics, "notes": result.notes + result.metrics["notes"]},
                                    out / "metrics.json")
    return files
