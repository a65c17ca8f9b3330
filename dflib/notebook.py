"""What the notebooks show: dflib results turned into tables, figures and media for IPython.

The stage modules do the work; these helpers only present it, so a notebook cell stays a few
lines and the CLI computes exactly what the notebooks display. Nothing here depends on Colab:
the notebooks' setup cell handles Drive and installation before dflib can even be imported.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, Image, Video, display
from matplotlib.figure import Figure

from dflib.config import PredictConfig, PreprocessConfig, TrainConfig
from dflib.widgets import STYLE, ConfigForm, config_form

DEVICES = ["auto", "cuda", "cpu"]
MANIFEST_TABLE_COLUMNS = ["filename", "label", "status", "reason", "frames", "faces_found", "tracks", "seconds"]
METRIC_COLUMNS = ["n", "n_real", "n_fake", "accuracy", "balanced_accuracy", "roc_auc", "average_precision",
                  "eer", "precision", "recall", "f1", "log_loss"]
STATUS_ORDER = {"failed": 0, "skipped": 1, "ok": 2}
VERDICT_COLORS = {"FAKE": "#c62828", "REAL": "#2e7d32"}


def _choices(config) -> dict[str, list]:
    """Dropdown values: registries are asked directly; the short fixed lists mirror the checks in
    dflib.video, dflib.data and dflib.train."""
    from dflib.data import CLIP_SAMPLINGS
    from dflib.faces import list_detectors
    from dflib.labels import list_label_formats
    from dflib.labels.registry import COMPRESSIONS
    from dflib.models import READOUTS, list_models
    from dflib.splits import TEST_OVERLAPS

    if isinstance(config, PreprocessConfig):
        return {
            "label_format": [("detect", ""), *((name, name) for name in list_label_formats())],
            "compression": ["auto", "all", *COMPRESSIONS],
            "sampling": ["uniform", "first", "stride"],
            "detector": list_detectors(),
        }
    if isinstance(config, TrainConfig):
        return {
            "model.name": list_models(),
            "model.readout": list(READOUTS),
            "clip_sampling": list(CLIP_SAMPLINGS),
            "optimizer": ["adamw", "adam"],
            "scheduler": ["cosine", "step", "none"],
            "balance": ["loss_weights", "sampler", "none"],
            "test_overlap": list(TEST_OVERLAPS),
            "device": DEVICES,
        }
    if isinstance(config, PredictConfig):
        return {"device": DEVICES}
    return {}


# Labels where the field name alone would not tell a notebook user what to type.
_DESCRIPTIONS = {
    PreprocessConfig: {"videos": "Videos folder", "out": "Output folder", "labels": "Label file or dataset folder",
                       "label_format": "Label format", "frames": "Frames per video", "size": "Crop size (px)",
                       "detector": "Face detector", "previews": "Contact sheet per video"},
    TrainConfig: {"data": "Preprocessed folder", "out": "Run folder", "model": "Model", "model.name": "Backbone",
                  "model.pretrained": "Pretrained (auto, none or a file)", "augment": "Augmentation",
                  "frames": "Frames per clip", "size": "Image size (px)", "lr": "Learning rate",
                  "amp": "Mixed precision (CUDA)", "patience": "Early-stop patience (epochs)"},
    PredictConfig: {"checkpoint": "Checkpoint (best.pt)", "explain": "Folder for explanations",
                    "all_tracks": "Score every face"},
}


def settings_form(config) -> ConfigForm:
    """``config_form`` over every field of a stage's config, with dropdowns where the values are a
    fixed set, so a notebook user picks a valid backbone or detector instead of typing one."""
    return config_form(config, choices=_choices(config), descriptions=_DESCRIPTIONS.get(type(config)))


def text_box(description: str, value: str) -> ipywidgets.Text:
    """One path outside the stage configs (the video to explain), styled like the forms."""
    return ipywidgets.Text(value=value, description=description, style=STYLE, layout={"width": "80%"})


def image(rgb: np.ndarray) -> Image:
    """An RGB uint8 array as a PNG display object (crops, overlays, annotated frames)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode an image of shape {rgb.shape} as PNG")
    return Image(data=encoded.tobytes(), format="png")


def manifest_table(summary) -> pd.DataFrame:
    """The preprocessing manifest with problems first: what a user checks before training."""
    frame = pd.DataFrame([dataclasses.asdict(row) for row in summary.rows])
    if frame.empty:
        return pd.DataFrame(columns=MANIFEST_TABLE_COLUMNS)
    frame = frame[MANIFEST_TABLE_COLUMNS]
    order = frame["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER))
    return frame.assign(_order=order).sort_values(["_order", "filename"], kind="stable").drop(columns="_order") \
        .reset_index(drop=True)


def crop_sheets(out: str | os.PathLike, rows: Sequence, limit: int = 6) -> Figure | None:
    """Contact sheets of the crops of up to ``limit`` videos, REAL and FAKE alternating, so a
    wrong face or a bad crop shows at a glance. ``rows`` are manifest rows (``Summary.rows``)."""
    from dflib.cropfile import contact_sheet, load_clip

    usable = [row for row in rows if row.status == "ok" and row.output]
    by_label: dict[str, list] = {}
    for row in usable:
        by_label.setdefault(row.label or "unlabeled", []).append(row)
    picked = []
    while len(picked) < min(limit, len(usable)):
        for queue in by_label.values():
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    if not picked:
        return None
    sheets = [contact_sheet(load_clip(Path(out) / row.output).crops) for row in picked]
    width = max(sheet.shape[1] for sheet in sheets)
    heights = [sheet.shape[0] / width * 10 for sheet in sheets]
    fig, axes = plt.subplots(len(sheets), 1, figsize=(10, sum(heights) + 0.45 * len(sheets)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False, layout="constrained")
    plt.close(fig)  # shown once, when the cell displays it
    for ax, sheet, row in zip(axes[:, 0], sheets, picked):
        ax.imshow(sheet)
        ax.set_xlim(0, width)
        ax.axis("off")
        ax.set_title(f"{row.filename}  {row.label or 'unlabeled'}  ({row.frames} crops)", fontsize=9, loc="left")
    return fig


class LiveHistory:
    """``on_epoch_end`` callback that redraws the training curves in place after every epoch.

    The (empty) curves are shown at once, so they stay above the training log, and then updated
    in place (an IPython display_id) rather than by clearing the cell, which would also wipe the
    progress bars and epoch lines.
    """

    def __init__(self):
        from dflib.plots import plot_history

        self._handle = display(plot_history([]), display_id=True)

    def __call__(self, history: list[dict]) -> None:
        from dflib.plots import plot_history

        self._handle.update(plot_history(history))


def metrics_table(metrics: Mapping) -> pd.DataFrame:
    """One row for all videos (ROC AUC there is the headline, video level), one per method (its FAKE
    videos against every REAL video, as FaceForensics++ reports them) and, with several sources,
    one per source (its videos alone): a drop on one method hides in the overall number."""
    by_method, by_source = metrics.get("by_method", {}), metrics.get("by_source", {})
    parts = {"all videos": metrics,
             **{f"method: {name} vs all REAL": sub for name, sub in by_method.items()},
             **({f"source: {name}": sub for name, sub in by_source.items()} if len(by_source) > 1 else {})}
    table = pd.DataFrame.from_dict(
        {name: {key: part.get(key) for key in METRIC_COLUMNS} for name, part in parts.items()}, orient="index"
    )
    return table.apply(pd.to_numeric).round(3)  # an undefined metric (None) shows as NaN, like the others


def side_by_side(*figures: Figure) -> HTML:
    """Figures in one row at one height, scaled to the page, instead of a long vertical scroll."""
    pngs = []
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        pngs.append(buffer.getvalue())
    # A PNG's IHDR holds width and height at bytes 16-24: columns proportional to each aspect ratio.
    ratios = [int.from_bytes(png[16:20], "big") / int.from_bytes(png[20:24], "big") for png in pngs]
    columns = " ".join(f"{ratio:.3f}fr" for ratio in ratios)
    images = "".join(f'<img style="width:100%" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'
                     for png in pngs)
    return HTML(f'<div style="display:grid;grid-template-columns:{columns};gap:12px">{images}</div>')


def describe_checkpoint(predictor) -> str:
    """What a prediction rests on: which model, what input, how well it did in training."""
    ckpt = predictor.ckpt
    pre = predictor.preprocess
    lines = [f"detector {predictor.name}: FAKE at P(FAKE) >= {predictor.threshold:.3g}"
             + (f" ({ckpt['threshold_basis']['basis']})" if "threshold_basis" in ckpt else ""),
             f"model {ckpt.get('model_config', {}).get('name', '?')}: {predictor.frames} frames of "
             f"{predictor.size}x{predictor.size} face crops ({pre.detector} detector, {pre.sampling} sampling), "
             f"on {predictor.device}"]
    if ckpt.get("epoch"):
        best = ckpt.get("best_metric")
        lines.append(f"weights after epoch {ckpt['epoch']}; best {ckpt.get('monitor', 'validation metric')} "
                     f"{'n/a' if best is None else format(best, '.3f')} (epoch {ckpt.get('best_epoch')})")
    return "\n".join(lines)


class Verdict:
    """A prediction's verdict: large and coloured in a notebook, its ``text()`` anywhere else."""

    def __init__(self, prediction):
        self.prediction = prediction

    def _repr_html_(self) -> str:
        p = self.prediction
        color = VERDICT_COLORS.get(p.label, "#616161")
        if p.confidence is not None:
            detail = (f"{100 * p.confidence:.1f}% confidence (P(FAKE) = {p.p_fake:.3f}, threshold {p.threshold:g}); "
                      f"{p.faces} face track(s), {p.frames_used} face frames")
        else:
            detail = p.reason
        return (f'<div style="font-size:1.8em;font-weight:bold;color:{color}">{html.escape(p.label)}</div>'
                f"<div>{html.escape(Path(p.video).name)}: {html.escape(detail)}</div>")

    def __repr__(self) -> str:
        return self.prediction.text()


def show_explanation(explanation, names: Sequence[str]) -> None:
    """Display the named figures of an explanation, or why there are none (no face, unreadable)."""
    if not explanation.figures:
        p = explanation.prediction
        print(f"nothing to show: {p.label}: {p.reason}")
        return
    for name in names:
        figure = explanation.figures.get(name)
        if isinstance(figure, np.ndarray):
            display(image(figure))
        elif figure is not None:
            display(figure)
        elif explanation.note:
            print(f"no {name.replace('_', ' ')}: {explanation.note}")


def annotated_clip(explanation) -> Video | Image | HTML:
    """The annotated clip embedded in the notebook: the MP4 the explanation wrote, or one written
    to a temporary file when it was made without an output folder (a GIF where no encoder works)."""
    from dflib.explanation import write_animation

    path = explanation.files.get("animation")
    if path is not None:
        return _media(Path(path))
    frames = explanation.figures.get("animation")
    if frames is None:
        return HTML(f"<i>no annotated clip: {html.escape(explanation.prediction.reason or 'no face frames')}</i>")
    with tempfile.TemporaryDirectory() as folder:
        return _media(write_animation(frames, Path(folder) / "annotated.mp4"))


def _media(path: Path) -> Video | Image:
    # Read now: the display object must not depend on the file still being there.
    data = path.read_bytes()
    if path.suffix.lower() == ".gif":
        return Image(data=data, format="gif")
    return Video(data=data, embed=True, mimetype="video/mp4", html_attributes="controls loop autoplay muted")


def predictions_table(predictions: Sequence) -> pd.DataFrame:
    """One row per video with the columns of the CLI's CSV, the file's name for its path."""
    from dflib.prediction import CSV_COLUMNS

    return pd.DataFrame(
        [[Path(p.video).name, p.label, p.p_fake, p.confidence, p.faces, p.status, p.reason] for p in predictions],
        columns=list(CSV_COLUMNS),
    )
