"""``dflib export``: ONNX and TorchScript files that give PyTorch's scores, and the onnx backend of prediction."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from dflib.checkpoint import load_checkpoint
from dflib.cli import main
from dflib.explanation import explain
from dflib.export import METADATA_FILE, METADATA_KEY, export
from dflib.scoring import OnnxScores
from dflib.prediction import Predictor
from tiny_checkpoint import tiny_checkpoint

pytest.importorskip("onnxruntime", reason="the onnx backend needs dflib[export]")
pytest.importorskip("onnxscript", reason="ONNX export needs dflib[export]")

# Different sources, sizes and frame rates; a few, to keep the suite quick.
SAMPLE_CLIPS = ["vexpress_vasa1_emo__RD_Radio10_0_clip_0.mp4", "liveportrait_driving_real__d18.mp4",
                "sadtalker_video_lipsync_pairs__face_dain_50fps.mp4", "pypi_pyfeat_real__WolfgangLanger_Pexels.mp4"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # A margin and frame count other than the defaults: they must travel to the export.
    from dflib.config import PreprocessConfig

    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    tiny_checkpoint(path, seed=5, preprocess=PreprocessConfig(frames=7, size=48, margin=1.5, min_frames=3))
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    return export(checkpoint, "onnx", tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def torch_predictor(checkpoint):
    return Predictor(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def onnx_predictor(exported):
    return Predictor(exported["model"], device="cpu", backend="onnx")


def _same_scores(torch_result, onnx_result, tolerance=1e-4):
    assert onnx_result.label == torch_result.label and onnx_result.faces == torch_result.faces
    assert onnx_result.p_fake == pytest.approx(torch_result.p_fake, abs=tolerance)
    for ours, theirs in zip(onnx_result.tracks, torch_result.tracks, strict=True):
        assert ours.frame_scores == pytest.approx(theirs.frame_scores, abs=tolerance)


@pytest.mark.sample_data
def test_onnx_backend_gives_pytorchs_scores_on_sample_clips(sample_data, torch_predictor, onnx_predictor):
    for name in SAMPLE_CLIPS:
        video = sample_data / "videos" / name
        _same_scores(torch_predictor(video), onnx_predictor(video))


def test_onnx_backend_gives_pytorchs_scores(torch_predictor, onnx_predictor, face_video, two_faces_video):
    for video in (face_video, two_faces_video):
        _same_scores(torch_predictor(video), onnx_predictor(video))
    assert onnx_predictor.model is None and onnx_predictor.backend == "onnx"


def test_export_records_the_preprocessing_in_the_file_and_beside_it(checkpoint, exported):
    import onnx

    ckpt = load_checkpoint(checkpoint)
    beside = json.loads((exported["model"].parent / METADATA_FILE).read_text())
    inside = json.loads({p.key: p.value for p in onnx.load(str(exported["model"])).metadata_props}[METADATA_KEY])
    assert beside == inside
    for key in ("frames", "size", "label_map", "normalization", "preprocess", "model_config"):
        assert beside[key] == ckpt[key], key
    assert (beside["preprocess"]["margin"], beside["preprocess"]["frames"]) == (1.5, 7)
    assert beside["input"]["shape"] == ["batch", "time", 3, ckpt["size"], ckpt["size"]]
    assert beside["input"]["max_time"] == ckpt["frames"]
    assert exported["max_abs_diff"] < 1e-5


def test_the_metadata_alone_makes_the_input_without_pytorch(exported, torch_predictor, face_video):
    """A deployment without PyTorch: numpy + onnxruntime + model.json give the same score."""
    import onnxruntime

    info = json.loads((exported["model"].parent / METADATA_FILE).read_text())
    result, inputs = torch_predictor.run(face_video)
    crops = inputs[0].clip.crops[inputs[0].chosen].astype(np.float32) / 255  # (T, H, W, 3) RGB at the crop size
    assert crops.shape[1] == info["size"]
    frames = (crops - info["normalization"]["mean"]) / info["normalization"]["std"]
    session = onnxruntime.InferenceSession(str(exported["model"]), providers=["CPUExecutionProvider"])
    logits, _ = session.run(None, {info["input"]["name"]: frames.transpose(0, 3, 1, 2)[None].astype(np.float32)})
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert p[info["label_map"]["FAKE"]] == pytest.approx(result.p_fake, abs=1e-4)


def test_onnx_batch_is_dynamic(exported, torch_predictor):
    import onnxruntime

    frames = torch.randn(3, torch_predictor.frames, 3, torch_predictor.size, torch_predictor.size)
    session = onnxruntime.InferenceSession(str(exported["model"]), providers=["CPUExecutionProvider"])
    logits, step_logits = session.run(None, {"frames": frames.numpy()})
    with torch.inference_mode():
        assert logits == pytest.approx(torch_predictor.model(frames).numpy(), abs=1e-5)
        assert step_logits == pytest.approx(torch_predictor.model.sequence_logits(frames).numpy(), abs=1e-5)


def test_onnx_scores_a_short_track_as_pytorch_does_and_refuses_a_longer_one(exported, torch_predictor):
    scores = OnnxScores(exported["model"], torch.device("cpu"))
    size = torch_predictor.size
    for steps in range(1, torch_predictor.frames + 1):
        frames = torch.randn(steps, 3, size, size)
        _, onnx_steps, onnx_video = scores(frames)
        _, torch_steps, torch_video = torch_predictor._scores(frames)
        assert onnx_video == pytest.approx(torch_video, abs=1e-5) and len(onnx_steps) == steps
        assert onnx_steps == pytest.approx(torch_steps, abs=1e-5)
    with pytest.raises(ValueError, match=f"1 to {torch_predictor.frames} frames per face track.*got "
                                         f"{torch_predictor.frames + 1}"):
        scores(torch.zeros(torch_predictor.frames + 1, 3, size, size))


def test_torchscript_export_matches_and_carries_the_metadata(checkpoint, tmp_path, torch_predictor):
    result = export(checkpoint, "torchscript", tmp_path)
    extra = {METADATA_FILE: ""}
    scripted = torch.jit.load(str(result["model"]), _extra_files=extra)
    assert json.loads(extra[METADATA_FILE])["frames"] == torch_predictor.frames
    frames = torch.randn(2, torch_predictor.frames, 3, torch_predictor.size, torch_predictor.size)
    with torch.inference_mode():
        logits, _ = scripted(frames)
        assert torch.allclose(logits, torch_predictor.model(frames), atol=1e-5)
    assert result["max_abs_diff"] < 1e-5


def test_explain_with_onnx_says_grad_cam_needs_pytorch(onnx_predictor, face_video, tmp_path):
    explanation = explain(face_video, onnx_predictor, out_dir=tmp_path)
    assert explanation.prediction.label in ("FAKE", "REAL") and explanation.maps is None
    assert "Grad-CAM needs PyTorch" in explanation.note
    assert set(explanation.files) == {"timeline", "prediction"}


def test_cli_exports_and_predicts_with_onnx(checkpoint, tmp_path, face_video, capsys):
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert "max |P(FAKE) difference|" in capsys.readouterr().out
    for backend, model in (("torch", checkpoint), ("onnx", tmp_path / "model.onnx")):
        assert main(["predict", str(face_video), "--checkpoint", str(model), "--backend", backend, "--json",
                     "--device", "cpu"]) == 0
    torch_line, onnx_line = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert onnx_line["p_fake"] == pytest.approx(torch_line["p_fake"], abs=1e-4)


def test_predict_takes_the_backend_from_the_model_file(checkpoint, exported, face_video, capsys):
    from dflib.prediction import backend_for

    assert main(["predict", str(face_video), "--checkpoint", str(exported["model"]), "--json", "--device", "cpu"]) == 0
    assert "p_fake" in json.loads(capsys.readouterr().out)
    assert Predictor(exported["model"], device="cpu").backend == "onnx"
    assert backend_for(exported["model"].parent) == "onnx" and backend_for(checkpoint) == "torch"
    assert backend_for(exported["model"], "torch") == "torch"  # as asked


def test_onnx_backend_given_a_checkpoint_says_how_to_export(checkpoint, face_video, capsys):
    assert main(["predict", str(face_video), "--checkpoint", str(checkpoint), "--backend", "onnx"]) == 2
    assert "dflib export" in capsys.readouterr().err


def test_export_without_onnx_says_how_to_install(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert main(["export", str(checkpoint), "--out", str(tmp_path)]) == 2
    assert "pip install 'dflib[export]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
