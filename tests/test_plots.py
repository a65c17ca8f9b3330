import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from dflib.plots import plot_confusion, plot_history, plot_roc, plot_score_histogram, save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Y = [0, 0, 0, 1, 1, 1]
P = [0.1, 0.6, 0.3, 0.4, 0.8, 0.9]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_history_two_panels_train_and_val():
    history = [
        {"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.2 / e, "val_acc": 0.5, "val_auc": 0.6}
        for e in (1, 2, 3)
    ]
    fig = plot_history(history)
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert legend_texts(loss_ax) == ["train", "val"]
    assert legend_texts(acc_ax) == ["train acc", "val acc", "val AUC"]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert list(loss_ax.lines[0].get_ydata()) == pytest.approx([1, 0.5, 1 / 3])


def test_history_tolerates_missing_keys_and_nan():
    history = [
        {"epoch": 1, "train_loss": 0.9, "train_acc": 0.5, "val_loss": float("nan")},
        {"epoch": 2, "train_loss": 0.7, "train_acc": 0.6, "val_loss": 0.8, "val_acc": None},
    ]
    loss_ax, acc_ax = plot_history(history).axes
    assert legend_texts(loss_ax) == ["train", "val"]
    assert math.isnan(loss_ax.lines[1].get_ydata()[0])  # a gap, not a made-up value
    assert legend_texts(acc_ax) == ["train acc"]  # no val_acc/val_auc ever recorded: no line


def test_history_without_epochs_shows_a_note():
    loss_ax, acc_ax = plot_history([]).axes
    assert not loss_ax.lines and not acc_ax.lines
    assert texts(loss_ax) == ["no values recorded yet"]


def test_confusion_heatmap_shows_counts_and_labels():
    fig = plot_confusion([[5, 1], [2, 0]])
    (ax,) = fig.axes
    assert texts(ax) == ["5\n(83%)", "1\n(17%)", "2\n(100%)", "0\n(0%)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["REAL", "FAKE"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["REAL", "FAKE"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")


def test_confusion_empty_row_shows_plain_count():
    assert texts(plot_confusion([[3, 1], [0, 0]]).axes[0])[2:] == ["0", "0"]


def test_confusion_shape_must_match_labels():
    with pytest.raises(ValueError, match="does not fit 2 labels"):
        plot_confusion([[1, 2, 3]])


def test_roc_legend_has_sklearn_auc_and_chance_line():
    (ax,) = plot_roc(Y, P).axes
    auc = roc_auc_score(Y, P)
    labels = legend_texts(ax)
    assert f"{auc:.2f}" in labels[0]
    assert any("chance" in label.lower() for label in labels)
    assert len(ax.lines) == 2
    assert not ax.texts


@pytest.mark.parametrize("label, name", [(0, "REAL"), (1, "FAKE")])
def test_roc_with_one_class_shows_a_note(label, name):
    (ax,) = plot_roc([label] * 3, [0.2, 0.5, 0.7]).axes
    assert len(ax.lines) == 1  # chance line only
    assert any(f"only {name}" in text for text in texts(ax))


def test_roc_rejects_bad_scores():
    with pytest.raises(ValueError, match="probabilities"):
        plot_roc(Y, [2, 0, 0, 0, 0, 0])


def test_score_histogram_by_class_with_threshold():
    (ax,) = plot_score_histogram(Y, P, threshold=0.3).axes
    assert legend_texts(ax) == ["REAL (n=3)", "FAKE (n=3)", "threshold 0.3"]
    assert ax.lines[0].get_xdata()[0] == 0.3
    real_bars, fake_bars = ax.containers
    assert sum(bar.get_height() for bar in real_bars) == sum(bar.get_height() for bar in fake_bars) == 3
    # One REAL video (0.6) scores above 0.5, one FAKE (0.4) below.
    assert sum(bar.get_height() for bar in real_bars if bar.get_x() >= 0.5) == 1
    assert sum(bar.get_height() for bar in fake_bars if bar.get_x() < 0.5) == 1


def test_score_histogram_with_one_class_only():
    (ax,) = plot_score_histogram([1, 1], [0.7, 0.9]).axes
    assert legend_texts(ax) == ["FAKE (n=2)", "threshold 0.5"]


def test_figures_are_not_held_by_pyplot():
    before = plt.get_fignums()
    plot_roc(Y, P)
    plot_history([])
    assert plt.get_fignums() == before


def test_save_figure_writes_png_atomically(tmp_path):
    fig = plot_roc(Y, P)
    path = save_figure(fig, tmp_path / "plots" / "roc.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]


def test_save_figure_closes_a_pyplot_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot(np.arange(3))
    save_figure(fig, tmp_path / "f.png")
    assert fig.number not in plt.get_fignums()
