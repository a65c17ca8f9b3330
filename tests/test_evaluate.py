import csv
import json

import numpy as np
import pytest
import torch

from dflib.checkpoint import load_model
from dflib.cli import main
from dflib.cropfile import load_clip, save_clip
from dflib.data import choose_frames, clip_to_tensor
from dflib.evaluate import evaluate
from synthetic_clips import MANIFEST_COLUMNS, make_data_dir, synthetic_clip
from tiny_checkpoint import tiny_checkpoint

SPLITS = {"real_000.mp4": "train", "real_001.mp4": "train", "real_002.mp4": "test", "real_003.mp4": "test",
          "fake_004.mp4": "train", "fake_005.mp4": "val", "fake_006.mp4": "test", "fake_007.mp4": "test",
          "gone.mp4": "test"}
HISTORY = [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.69, "train_acc": 0.5, "val_acc": 0.5, "val_auc": 0.5}]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"), n_real=4, n_fake=4, frames=6, size=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt.pt", model="resnet18_lstm", size=32,
                           splits=SPLITS, history=HISTORY)


def test_test_split_metrics_and_files(checkpoint, data, tmp_path):
    out = tmp_path / "eval"
    result = evaluate(checkpoint, data, split="test", out=out, progress=False, device="cpu")
    expected = sorted(name for name, split in SPLITS.items() if split == "test" and name != "gone.mp4")
    assert sorted(result.scores["filename"]) == expected
    assert list(result.scores.columns) == ["filename", "label", "p_fake", "track", "source", "split"]
    assert set(result.scores["split"]) == {"test"} and set(result.scores["source"]) == {"synthetic"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"split", "checkpoint", "n", "n_real", "n_fake", "accuracy", "balanced_accuracy", "roc_auc",
            "average_precision", "eer", "log_loss", "confusion", "precision", "recall", "f1", "by_source",
            "by_method", "headline", "track_policy", "notes"} <= set(metrics)
    assert metrics["headline"] == "roc_auc" and metrics["track_policy"] == "main face track only"
    assert metrics["by_method"]["synthetic"]["n"] == 4
    assert metrics["split"] == "test" and (metrics["n"], metrics["n_real"], metrics["n_fake"]) == (4, 2, 2)
    assert metrics["by_source"]["synthetic"]["n"] == 4
    assert any("gone.mp4" in note for note in metrics["notes"])
    with open(out / "scores.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    for name in ("confusion.png", "roc.png", "score_histogram.png", "history.png"):
        assert (out / name).stat().st_size > 0
    assert set(result.figures) == {"confusion", "roc", "histogram", "history"}
    assert "split 'test': 4 videos (2 REAL, 2 FAKE)" in result.text()
    assert "video-level ROC AUC" in result.text().splitlines()[1]


def test_scores_are_the_uniform_frames_forward(checkpoint, data):
    model, ckpt = load_model(checkpoint, "cpu")
    result = evaluate((model, ckpt), data, split="train", progress=False)
    assert sorted(result.scores["filename"]) == ["fake_004.mp4", "real_000.mp4", "real_001.mp4"]
    clip = load_clip(data / "crops" / "real_000.mp4.npz")
    frames = clip_to_tensor(clip.crops[choose_frames(len(clip), ckpt["frames"], "uniform")], ckpt["size"])
    with torch.no_grad():
        expected = float(torch.softmax(model(frames.unsqueeze(0))[0], -1)[1])
    got = result.scores.set_index("filename").loc["real_000.mp4", "p_fake"]
    assert got == pytest.approx(expected, abs=1e-6)
    again = evaluate((model, ckpt), data, split="train", progress=False)
    assert again.scores["p_fake"].tolist() == result.scores["p_fake"].tolist()


def test_all_is_every_labelled_ok_row(checkpoint, data):
    result = evaluate(checkpoint, data, split="all", progress=False)
    assert len(result.scores) == 8 and "broken.mp4" not in set(result.scores["filename"])
    assert "unlabeled.mp4" not in set(result.scores["filename"])


def test_empty_split_names_the_split_and_the_counts(tmp_path, data):
    splits = {name: split for name, split in SPLITS.items() if split != "val"}
    path = tiny_checkpoint(tmp_path / "ckpt.pt", size=32, splits={**splits, "fake_005.mp4": "train"})
    with pytest.raises(ValueError, match=r"split 'val' has no videos .*train 4, val 0, test 4"):
        evaluate(path, data, split="val", progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(path, data, split="validation", progress=False)


def test_track_policy_is_the_one_predict_uses(tmp_path, checkpoint):
    root = make_data_dir(tmp_path / "data", n_real=2, n_fake=2, frames=6, size=32, extra_rows=False)
    save_clip(root / "crops/real_000.mp4.track1.npz", synthetic_clip("FAKE", 6, 32, np.random.default_rng(5)))
    with open(root / "manifest.csv", "a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS).writerow(
            {"filename": "real_000.mp4", "label": "REAL", "status": "ok", "frames": 6, "track": 1,
             "output": "crops/real_000.mp4.track1.npz", "source": "synthetic"})
    model, ckpt = load_model(checkpoint, "cpu")
    per_track = []
    for output in ("crops/real_000.mp4.npz", "crops/real_000.mp4.track1.npz"):
        clip = load_clip(root / output)
        frames = clip_to_tensor(clip.crops[choose_frames(len(clip), 4, "uniform")], 32)
        with torch.no_grad():
            per_track.append(float(torch.softmax(model(frames.unsqueeze(0))[0], -1)[1]))
    assert per_track[0] != per_track[1]
    main_only = evaluate((model, ckpt), root, split="all", progress=False).scores.set_index("filename")
    assert len(main_only) == 4 and main_only.loc["real_000.mp4", "p_fake"] == pytest.approx(per_track[0], abs=1e-6)
    with pytest.raises(ValueError, match="--all-tracks needs every face track.*preprocess --all-tracks"):
        evaluate((model, ckpt), root, split="all", progress=False, all_tracks=True)

    config = json.loads((root / "preprocess_config.json").read_text())
    (root / "preprocess_config.json").write_text(json.dumps({**config, "all_tracks": True}))
    every = evaluate((model, ckpt), root, split="all", progress=False, all_tracks=True)
    scores = every.scores.set_index("filename")
    assert scores.loc["real_000.mp4", "p_fake"] == pytest.approx(max(per_track), abs=1e-6)
    assert scores.loc["real_000.mp4", "track"] == int(np.argmax(per_track))
    assert every.metrics["track_policy"].startswith("every face track")


def test_cli_evaluate(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    assert "split 'test'" in capsys.readouterr().out and (out / "metrics.json").is_file()
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                 "--split", "nope", "--quiet"]) == 2
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--quiet"]) == 2
    assert "--out is required" in capsys.readouterr().err
