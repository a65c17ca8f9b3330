"""Video-level metrics, computed by scikit-learn and returned as plain JSON-ready values.

A video counts as FAKE (label 1) when its score is >= the threshold. The headline is video-level
ROC AUC, as the literature reports it; ``by_method`` scores each fake source (manipulation method)
against all REAL videos of the split, the FaceForensics++ protocol, since a dataset's sources
usually hold one class each. Metrics that are undefined
for the data given (AUC with one class, precision with no FAKE prediction...) are None with a
sentence in ``notes``, so a tiny or lopsided evaluation set reports what it cannot measure
instead of crashing or printing a misleading 0.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from dflib.config import LABELS
from dflib.io import atomic_write_text

CLASS_NAMES = ["REAL", "FAKE"]  # index = label, so FAKE = 1 as in every checkpoint
# Keeps one confidently wrong video from dominating the mean: its loss is capped at -log(1e-7) ~ 16.
LOG_LOSS_EPS = 1e-7
EER_TOLERANCE = 1e-9


HEADLINE = "roc_auc"


def video_metrics(
    y_true: Sequence,
    p_fake: Sequence[float],
    threshold: float = 0.5,
    groups: Mapping[str, Sequence] | None = None,
    methods: Sequence | None = None,
) -> dict:
    """Metrics of one evaluation, one score per video.

    ``y_true`` holds 0/1 (or "REAL"/"FAKE") per video and ``p_fake`` the probability of FAKE.
    ``groups`` such as ``{"source": [...]}`` add ``by_source``: the videos of each value alone.
    ``methods`` (each video's source or manipulation method) adds ``by_method``: every value that
    holds FAKE videos, scored as those FAKE videos against all REAL videos.
    """
    y, p = labels_and_scores(y_true, p_fake)
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    metrics = {"headline": HEADLINE, **_metrics(y, p, threshold)}
    for name, values in (groups or {}).items():
        keys = _keys(values, len(y), name)
        metrics[f"by_{name}"] = {
            str(key): _metrics(y[keys == key], p[keys == key], threshold) for key in sorted(set(keys))
        }
    if methods is not None:
        keys = _keys(methods, len(y), "methods")
        real = y == 0
        metrics["by_method"] = {
            str(key): _metrics(y[real | (keys == key)], p[real | (keys == key)], threshold)
            for key in sorted(set(keys[~real]))
        }
    return metrics


def _keys(values: Sequence, n: int, name: str) -> np.ndarray:
    values = list(values)
    if len(values) != n:
        raise ValueError(f"group {name!r} has {len(values)} values for {n} videos")
    return np.array([str(v) for v in values])


def save_metrics(metrics: dict, path: str | os.PathLike) -> Path:
    """Write ``metrics`` as strict JSON (no NaN), so any JSON reader can load it."""
    return atomic_write_text(Path(path), json.dumps(metrics, indent=2, allow_nan=False) + "\n")


def labels_and_scores(y_true: Sequence, p_fake: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate one label (0/1 or "REAL"/"FAKE") and one probability per video, as arrays."""
    y = np.asarray([LABELS.get(v.upper(), v) if isinstance(v, str) else v for v in y_true])
    p = np.asarray(p_fake, dtype=float)
    if y.ndim != 1 or p.ndim != 1 or len(y) != len(p):
        raise ValueError(f"need one label and one score per video, got shapes {y.shape} and {p.shape}")
    if len(y) == 0:
        raise ValueError("no videos to evaluate")
    if not np.isin(y, [0, 1]).all():
        bad = sorted({str(v) for v in y[~np.isin(y, [0, 1])]})
        raise ValueError(f"labels must be 0 (REAL) or 1 (FAKE), got {', '.join(bad[:5])}")
    bad_scores = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad_scores.any():
        raise ValueError(f"{int(bad_scores.sum())} score(s) are not probabilities in [0, 1], e.g. {p[bad_scores][0]}")
    return y.astype(int), p


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    predicted = (p >= threshold).astype(int)
    n_fake = int(y.sum())
    notes: list[str] = []
    both_classes = 0 < n_fake < len(y)
    if not both_classes:
        present = CLASS_NAMES[int(y[0])]
        notes.append(
            f"only {present} videos: roc_auc, average_precision and eer need both classes;"
            f" balanced_accuracy is the accuracy on {present} alone"
        )

    with warnings.catch_warnings():
        # One class only: sklearn warns, then averages recall over the class that is present.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y, predicted)
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, predicted, labels=[1], average=None, zero_division=np.nan
        )
    precision, recall, f1 = (_none_if_nan(v[0]) for v in (precision, recall, f1))
    if precision is None:
        notes.append(f"no video scored >= {threshold}: precision for FAKE is undefined")
    if recall is None:
        notes.append("no FAKE videos: recall for FAKE is undefined")
    if f1 is None and precision is not None and recall is not None:
        notes.append("precision and recall for FAKE are both 0: F1 is undefined")

    eer, eer_threshold = _equal_error_rate(y, p) if both_classes else (None, None)
    return {
        "n": len(y),
        "n_real": len(y) - n_fake,
        "n_fake": n_fake,
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced),
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else None,
        "average_precision": float(average_precision_score(y, p)) if both_classes else None,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "log_loss": float(log_loss(y, np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), labels=[0, 1])),
        "labels": list(CLASS_NAMES),
        "confusion": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "notes": notes,
    }


def _equal_error_rate(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Where the false-positive and false-negative rates meet, interpolated along the ROC curve.

    The threshold is the highest one at which misses no longer outnumber false alarms. Rates are
    ratios of counts, so an exact crossing (1/3 against 1 - 2/3) can differ by one rounding step:
    the comparison allows for that.
    """
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    gap = fpr - (1 - tpr)  # starts at -1 (threshold above every score), ends at +1
    i = int(np.argmax(gap >= -EER_TOLERANCE))
    fraction = -gap[i - 1] / (gap[i] - gap[i - 1])
    eer = fpr[i - 1] + fraction * (fpr[i] - fpr[i - 1])
    return float(eer), float(thresholds[i])


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def threshold_for_false_alarms(real_scores: Sequence[float], rate: float) -> float:
    """The lowest P(FAKE) threshold (FAKE at or above it) that calls at most ``rate`` of these REAL
    scores FAKE. Set on real videos, not on pseudo-fakes: those are easier than real deepfakes, so a
    threshold chosen on them would let real ones through."""
    if not 0 <= rate < 1:
        raise ValueError(f"the false-alarm rate must be in [0, 1), got {rate}")
    ranked = np.sort(np.asarray(real_scores, dtype=np.float64))[::-1]
    if not len(ranked):
        raise ValueError("no REAL scores to set a threshold on")
    return float(np.nextafter(ranked[int(np.floor(rate * len(ranked)))], 1.0))
