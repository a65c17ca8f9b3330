"""Video-level metrics and figures of a checkpoint on the videos of one split.

The split comes from the checkpoint's own ``splits`` mapping, so "test" means the videos that
training set aside, never a fresh random draw that could overlap the training set. Evaluation is
deterministic (frames spread evenly over each clip, no augmentation), one video per forward pass
as in prediction, and a video with several face tracks scores as its most suspicious track, as
``dflib.prediction`` does.
"""
from __future__ import annotations

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

SCORE_COLUMNS = ["filename", "label", "p_fake", "source", "split"]
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
                 f"threshold {m['threshold']:g}"]
        lines.append("  " + _line(m))
        lines.append(f"  confusion (rows: true REAL, FAKE; columns: predicted): {m['confusion']}")
        for source, sub in sorted(m.get("by_source", {}).items()):
            lines.append(f"  {source}: {sub['n']} videos, " + _line(sub))
        lines += [f"  note: {note}" for note in self.notes + m["notes"]]
        if self.files:
            lines.append(f"  written to {Path(self.files['metrics']).parent}")
        return "\n".join(lines)


def _line(m: dict) -> str:
    names = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC"),
             ("average_precision", "AP"), ("eer", "EER"), ("f1", "F1"), ("log_loss", "log loss"))
    return ", ".join(f"{label} {'n/a' if m.get(key) is None else format(m[key], '.3f')}" for key, label in names)


def evaluate(checkpoint, data: str | os.PathLike, split: str = "test", out: str | os.PathLike | None = None,
             progress: bool = True, threshold: float = 0.5, device: str = "auto") -> EvalResult:
    """Score every video of ``split`` (train, val, test, or all labelled ok rows) in the
    preprocessed folder ``data``; with ``out``, write metrics.json, scores.csv and PNGs there.

    ``checkpoint`` is a path or a ``(model, ckpt)`` pair from ``dflib.checkpoint.load_model``.
    """
    from dflib.checkpoint import load_model
    from dflib.data import VideoClipDataset, read_manifest

    if split not in (*SPLIT_NAMES, "all"):
        raise ValueError(f"unknown split {split!r}: use train, val, test or all")
    torch_device = resolve_device(device)
    if isinstance(checkpoint, (tuple, list)):
        model, ckpt = checkpoint
        model = model.to(torch_device).eval()
    else:
        model, ckpt = load_model(checkpoint, torch_device)
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

    dataset = VideoClipDataset(data, selected, int(ckpt["frames"]), int(ckpt["size"]), train=False)
    fake_index = int(ckpt["label_map"]["FAKE"])
    per_video: dict[str, float] = {}
    with torch.inference_mode():
        for index in tqdm(range(len(dataset)), desc=f"evaluate {split}", unit="clip", disable=not progress):
            frames, _, _ = dataset[index]
            logits = model(frames.unsqueeze(0).to(torch_device))
            p_fake = float(torch.softmax(logits[0].float(), dim=-1)[fake_index])
            name = selected[index].filename
            per_video[name] = max(p_fake, per_video.get(name, 0.0))  # several tracks: the most suspicious
    first_row = {}
    for row in selected:
        first_row.setdefault(row.filename, row)
    scores = pd.DataFrame(
        [[name, first_row[name].label, p, first_row[name].source or "unknown", splits.get(name, "")]
         for name, p in per_video.items()],
        columns=SCORE_COLUMNS,
    )

    metrics = video_metrics(scores["label"], scores["p_fake"], threshold, groups={"source": scores["source"]})
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
