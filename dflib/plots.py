"""Figures of training and evaluation, returned to the caller: notebooks show them, the CLI saves them.

No backend is chosen here: matplotlib's own choice (inline in notebooks, Agg when headless, or the
user's MPLBACKEND) is kept. Each figure is made by pyplot, so the notebook's display hooks are
installed, and then released from pyplot at once: it is displayed exactly once when a cell returns
it, and a CLI that draws hundreds of figures does not keep them all alive.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import RocCurveDisplay

from dflib.io import atomic_path
from dflib.metrics import CLASS_NAMES, labels_and_scores

CLASS_COLORS = {"REAL": "tab:green", "FAKE": "tab:red"}
PNG_DPI = 120


def plot_history(history: Sequence[Mapping]) -> Figure:
    """Loss and accuracy per epoch; epochs without a value (no validation run, NaN) leave a gap."""
    fig, (loss_ax, acc_ax) = _figure(ncols=2, figsize=(10, 4))
    epochs = [row["epoch"] if isinstance(row.get("epoch"), (int, float)) else i + 1 for i, row in enumerate(history)]
    panels = [
        (loss_ax, "loss", [("train_loss", "train"), ("val_loss", "val")]),
        (acc_ax, "accuracy / AUC", [("train_acc", "train acc"), ("val_acc", "val acc"), ("val_auc", "val AUC")]),
    ]
    for ax, ylabel, series in panels:
        for key, label in series:
            values = [_number_or_nan(row.get(key)) for row in history]
            if any(math.isfinite(v) for v in values):
                ax.plot(epochs, values, marker="o", label=label, linestyle="--" if key == "val_auc" else "-")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend()
        else:
            _note(ax, "no values recorded yet")
    acc_ax.set_ylim(-0.02, 1.02)
    loss_ax.set_title("Loss")
    acc_ax.set_title("Accuracy and validation AUC")
    return fig


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str] = tuple(CLASS_NAMES)) -> Figure:
    """Counts with the share of each true class, since a skewed test set makes raw counts misleading."""
    counts = np.asarray(confusion, dtype=int)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not fit {len(labels)} labels")
    row_totals = counts.sum(axis=1, keepdims=True)
    annotations = [
        [f"{n}\n({n / total:.0%})" if total else str(n) for n in row]
        for row, total in zip(counts, row_totals[:, 0])
    ]
    fig, ax = _figure(figsize=(4.5, 4))
    sns.heatmap(
        counts, annot=np.array(annotations), fmt="", cmap="Blues", cbar=False, square=True,
        xticklabels=labels, yticklabels=labels, ax=ax, vmin=0,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return fig


def plot_roc(y_true: Sequence, p_fake: Sequence[float]) -> Figure:
    """ROC of FAKE detection with its AUC, or a note instead of a meaningless curve with one class."""
    y, p = labels_and_scores(y_true, p_fake)
    fig, ax = _figure(figsize=(5, 5))
    if 0 < y.sum() < len(y):
        RocCurveDisplay.from_predictions(y, p, pos_label=1, name="videos", ax=ax, plot_chance_level=True)
    else:
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance level")
        ax.legend(loc="lower right")
        _note(ax, f"ROC needs REAL and FAKE videos:\nonly {CLASS_NAMES[int(y[0])]} ones here")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (REAL called FAKE)")
    ax.set_ylabel("true positive rate (FAKE caught)")
    ax.set_title("ROC")
    return fig


def plot_score_histogram(y_true: Sequence, p_fake: Sequence[float], threshold: float = 0.5) -> Figure:
    """How far each class's scores sit from the threshold, which a single accuracy hides."""
    y, p = labels_and_scores(y_true, p_fake)
    fig, ax = _figure(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    for label, name in enumerate(CLASS_NAMES):
        scores = p[y == label]
        if len(scores):
            ax.hist(scores, bins=bins, alpha=0.6, color=CLASS_COLORS[name], label=f"{name} (n={len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(FAKE)")
    ax.set_ylabel("videos")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Scores by true class")
    ax.legend()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write a PNG atomically and release the figure, so batch runs neither leak nor leave half files."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _figure(ncols: int = 1, figsize: tuple[float, float] = (6, 4)):
    fig, axes = plt.subplots(ncols=ncols, figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig, axes


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "gray"})


def _number_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
