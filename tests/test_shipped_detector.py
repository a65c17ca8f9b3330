"""The detector that ships inside dflib: package data, used by every entry point when no checkpoint
is given, with the threshold it was calibrated at, and named in every verdict."""
import json
import math
import subprocess
import sys

import pytest
import torch

from dflib import pretrained
from dflib.checkpoint import load_checkpoint
from dflib.evaluate import evaluate
from dflib.prediction import Predictor
from synthetic_clips import make_data_dir
from tiny_checkpoint import tiny_checkpoint


@pytest.fixture(scope="module")
def shipped():
    path = pretrained.detector_file()
    assert path.is_file(), f"{path}: the shipped detector is missing from the package"
    return path, load_checkpoint(path)


def test_it_is_small_complete_package_data(shipped):
    path, ckpt = shipped
    assert path.stat().st_size < 25_000_000
    assert ckpt["detector"] == pretrained.DEFAULT_DETECTOR and ckpt["label_map"]["FAKE"] == 1
    assert all(v.dtype == torch.float16 for v in ckpt["model_state"].values() if v.is_floating_point())
    assert 0 < ckpt["threshold"] < 1 and ckpt["threshold_basis"]["real_videos"] > 0
    assert ckpt["preprocess"]["size"] == ckpt["size"] and ckpt["optimizer_state"] is None
    card = (pretrained.DETECTORS_DIR / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and f"{ckpt['threshold']:.4f}" in card
    model, _ = pretrained.load_pretrained()
    assert not model.training


def test_predict_without_a_checkpoint_uses_it_at_its_threshold(shipped, face_video):
    _, ckpt = shipped
    prediction = Predictor()(face_video)
    assert prediction.label in ("REAL", "FAKE") and prediction.detector == pretrained.DEFAULT_DETECTOR
    assert prediction.threshold == pytest.approx(ckpt["threshold"])
    assert (prediction.label == "FAKE") == (prediction.p_fake >= ckpt["threshold"])
    assert Predictor(threshold=0.9)(face_video).threshold == 0.9  # a threshold given wins


def test_the_command_line_needs_no_checkpoint(shipped, face_video):
    out = subprocess.run([sys.executable, "-m", "dflib", "predict", str(face_video), "--json", "--quiet"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["detector"] == pretrained.DEFAULT_DETECTOR and result["label"] in ("FAKE", "REAL")


def test_a_checkpoint_of_your_own_wins(tmp_path, face_video):
    own = tiny_checkpoint(tmp_path / "own.pt", fake_logit=3.0)
    prediction = Predictor(own)(face_video)
    assert prediction.detector == str(own) and prediction.threshold == 0.5  # it stores no threshold
    assert prediction.p_fake == pytest.approx(1 / (1 + math.exp(-3.0)), abs=1e-4)


def test_evaluate_without_a_checkpoint_uses_it(shipped, tmp_path):
    data = make_data_dir(tmp_path / "data", n_real=3, n_fake=3, frames=4, size=32)
    result = evaluate("", data, split="all", progress=False)
    assert result.metrics["threshold"] == pytest.approx(shipped[1]["threshold"]) and result.metrics["n"] == 6


def test_a_missing_shipped_detector_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "DETECTORS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="not in this installation.*--checkpoint"):
        Predictor()
    with pytest.raises(ValueError, match="unknown shipped detector"):
        pretrained.detector_file("nope")


def test_the_app_starts_with_it(shipped, monkeypatch):
    pytest.importorskip("gradio", reason="the web app needs dflib[app]")
    import dflib.app
    from dflib.config import AppConfig

    class Started(Exception):
        pass

    def launch(predictor, cfg):
        raise Started(predictor)

    monkeypatch.setattr(dflib.app, "launch", launch)
    with pytest.raises(Started) as started:
        dflib.app.app_cli(None, AppConfig(device="cpu"))
    predictor = started.value.args[0]
    assert predictor.name == pretrained.DEFAULT_DETECTOR and predictor.threshold == shipped[1]["threshold"]
