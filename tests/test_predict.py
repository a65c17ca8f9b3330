import argparse
import csv
import json
import math

import numpy as np
import pytest
import torch

from dflib.checkpoint import load_checkpoint, load_model
from dflib.cli import main
from dflib.config import PredictConfig, PreprocessConfig
from dflib.models import resolve_device
from dflib.cli import predict_cli
from dflib.prediction import CSV_COLUMNS, Prediction, Predictor, predict
from tiny_checkpoint import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="module")
def fake_checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "fake.pt", fake_logit=3.0)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor(checkpoint, device="cpu")


def _args(videos, out="", as_json=False):
    return argparse.Namespace(videos=[str(v) for v in videos], out=str(out), json=as_json, quiet=True)


def test_label_and_confidence_follow_the_threshold(predictor, face_video):
    first = predictor(face_video)
    p = first.p_fake
    assert first.label in ("FAKE", "REAL") and 0 < p < 1
    assert first.label == ("FAKE" if p >= 0.5 else "REAL")
    assert first.confidence == pytest.approx(max(p, 1 - p))
    for threshold, label in ((0.0, "FAKE"), (p, "FAKE"), (min(1.0, p + 1e-6), "REAL"), (1.0, "REAL")):
        predictor.threshold = threshold
        try:
            result = predictor(face_video)
        finally:
            predictor.threshold = 0.5
        assert result.p_fake == p
        assert result.label == label
        assert result.confidence == pytest.approx(p if label == "FAKE" else 1 - p)
        assert result.status == "ok"


def test_fake_checkpoint_gives_fake_with_its_confidence(fake_checkpoint, face_video):
    result = predict(face_video, fake_checkpoint, device="cpu")
    expected = 1 / (1 + math.exp(-3.0))
    assert result.label == "FAKE" and result.fake_track == 0
    assert result.p_fake == pytest.approx(expected, abs=1e-6)
    assert result.confidence == pytest.approx(expected, abs=1e-6)
    assert result.frame_scores == pytest.approx([expected] * 4, abs=1e-6)


def test_p_fake_is_the_model_forward_on_the_recorded_input(predictor, face_video):
    result, inputs = predictor.run(face_video)
    with torch.no_grad():
        logits = predictor.model(inputs[0].frames.unsqueeze(0))
        steps = predictor.model.sequence_logits(inputs[0].frames.unsqueeze(0))
    assert result.p_fake == pytest.approx(float(torch.softmax(logits[0], -1)[1]), abs=1e-6)
    assert result.frame_scores == pytest.approx(torch.softmax(steps[0], -1)[:, 1].tolist(), abs=1e-6)
    assert len(result.frame_indices) == len(result.boxes) == len(result.frame_scores) == 4
    assert result.faces == 1 and result.frames_used == 6 and result.frames_sampled == 6
    assert set(result.timings) >= {"decode", "detect", "model"}
    assert json.loads(json.dumps(result.to_dict()))["label"] == result.label


@pytest.mark.parametrize("frames,size,crop_size", [(4, 48, 48), (3, 32, 40)])
def test_preprocessing_and_input_shape_come_from_the_checkpoint(tmp_path, face_video, frames, size, crop_size):
    recorded = PreprocessConfig(frames=5, size=crop_size, margin=1.6, min_frames=5, all_tracks=False)
    path = tiny_checkpoint(tmp_path / "ckpt.pt", frames=frames, size=size, preprocess=recorded)
    assert not Predictor(path, device="cpu").preprocess.all_tracks
    predictor = Predictor(path, device="cpu", all_tracks=True)
    assert predictor.preprocess.margin == 1.6 and predictor.preprocess.frames == 5
    assert predictor.preprocess.all_tracks and predictor.preprocess.min_frames == 5
    result, inputs = predictor.run(face_video)
    assert inputs[0].clip.crops.shape[1:] == (crop_size, crop_size, 3)
    assert tuple(inputs[0].frames.shape) == (frames, 3, size, size)
    assert result.frames_sampled == 5 and len(result.frame_scores) == frames


def test_no_face_is_never_a_verdict(predictor, noise_video):
    result = predictor(noise_video)
    assert result.label == "NO_FACE" and result.status == "no_face"
    assert result.p_fake is None and result.confidence is None and result.faces == 0
    assert "no face" in result.reason


@pytest.mark.parametrize("content,cause", [(b"", "empty file"), (b"\x00garbage" * 100, "not a readable video"),
                                           (None, "file not found")])
def test_bad_file_is_error_with_its_cause(predictor, tmp_path, content, cause):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    result = predictor(path)
    assert result.label == "ERROR" and result.status == "error"
    assert cause in result.reason and result.p_fake is None and result.confidence is None


def test_with_all_tracks_every_face_is_scored_and_any_fake_face_makes_the_video_fake(checkpoint, two_faces_video):
    predictor = Predictor(checkpoint, device="cpu", all_tracks=True)
    result = predictor(two_faces_video)
    assert result.faces == 2 and [t.track for t in result.tracks] == [0, 1]
    scores = [t.p_fake for t in result.tracks]
    suspect = int(np.argmax(scores))
    assert result.p_fake == max(scores) and result.track == result.tracks[suspect].track
    assert result.frame_scores == result.tracks[suspect].frame_scores
    predictor.threshold = max(scores)
    try:
        assert predictor(two_faces_video).fake_track == result.tracks[suspect].track
        predictor.threshold = min(1.0, max(scores) + 1e-6)
        real = predictor(two_faces_video)
    finally:
        predictor.threshold = 0.5
    assert real.label == "REAL" and real.fake_track is None


def test_main_face_only_by_default_as_training_saw(checkpoint, two_faces_video):
    result = predict(two_faces_video, checkpoint)
    assert result.faces == 1 and result.track == 0 and [t.track for t in result.tracks] == [0]


def _face_then_noise(path, face_frames: int, total: int = 12):
    """A face drifting for ``face_frames`` frames, then noise only."""
    from dflib.synthetic import moving_face_frames, noise_frames, write_video

    frames = moving_face_frames(total, width=320, height=240)[:face_frames] + noise_frames(
        total - face_frames, width=320, height=240)
    return write_video(path, frames)


def test_a_face_in_fewer_than_min_frames_frames_gets_no_verdict(tmp_path):
    recorded = PreprocessConfig(frames=12, size=48, min_frames=6)
    path = tiny_checkpoint(tmp_path / "ckpt.pt", frames=4, size=48, preprocess=recorded)
    video = _face_then_noise(tmp_path / "glimpse.mp4", face_frames=3)
    for all_tracks in (False, True):
        result = predict(video, path, all_tracks=all_tracks)
        assert result.label == "NO_FACE" and result.p_fake is None
        assert "too few frames with a face" in result.reason and "min_frames=6" in result.reason


def test_a_short_track_is_a_shorter_sequence_never_repeated_crops(tmp_path):
    recorded = PreprocessConfig(frames=12, size=48, min_frames=4)
    path = tiny_checkpoint(tmp_path / "ckpt.pt", frames=8, size=48, preprocess=recorded)
    video = _face_then_noise(tmp_path / "short.mp4", face_frames=6)
    result, inputs = Predictor(path, device="cpu").run(video)
    assert result.label in ("FAKE", "REAL")
    used = result.frame_indices
    assert 4 <= len(used) < 8 and len(set(used)) == len(used) == len(result.frame_scores)
    assert len(inputs[0].frames) == len(used) == result.frames_used


def test_batch_csv_goes_on_after_a_bad_file(checkpoint, tmp_path, face_video, noise_video, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_face.mp4").write_bytes(face_video.read_bytes())
    (folder / "b_broken.mp4").write_bytes(b"")
    (folder / "c_noise.mp4").write_bytes(noise_video.read_bytes())
    out = tmp_path / "results.csv"
    assert predict_cli(_args([folder], out), PredictConfig(checkpoint=str(checkpoint))) == 0
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert [(r["status"], r["label"]) for r in rows] == [("ok", rows[0]["label"]), ("error", "ERROR"),
                                                        ("no_face", "NO_FACE")]
    assert rows[0]["label"] in ("FAKE", "REAL") and 0 <= float(rows[0]["p_fake"]) <= 1
    assert rows[1]["reason"] == "empty file (0 bytes)" and rows[1]["p_fake"] == ""
    assert "3 videos" in capsys.readouterr().err


def test_cli_prints_the_original_lines(fake_checkpoint, face_video, capsys):
    assert main(["predict", str(face_video), "--checkpoint", str(fake_checkpoint), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [str(face_video), "Confidence: 95.26%", "Prediction: FAKE",
                     f"Detector: {fake_checkpoint} (FAKE at P(FAKE) >= 0.5)"]


def test_cli_json_is_one_object_per_video(checkpoint, face_video, noise_video, capsys):
    assert main(["predict", str(face_video), str(noise_video), "--checkpoint", str(checkpoint), "--json",
                 "--quiet"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [o["video"] for o in objects] == [str(face_video), str(noise_video)]
    assert objects[1]["label"] == "NO_FACE" and objects[0]["status"] == "ok"
    assert isinstance(objects[0]["confidence"], float) and objects[1]["confidence"] is None


def test_score_does_not_depend_on_the_batch(checkpoint, face_video, noise_video, two_faces_video, capsys):
    alone = predict(face_video, checkpoint)
    main(["predict", str(two_faces_video), str(noise_video), str(face_video), "--checkpoint", str(checkpoint),
          "--json", "--quiet"])
    in_batch = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert in_batch["video"] == str(face_video)
    assert in_batch["p_fake"] == alone.p_fake and in_batch["frame_scores"] == alone.frame_scores


def test_missing_checkpoint_is_a_one_line_user_error(face_video, tmp_path, capsys):
    assert main(["predict", str(face_video), "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found" in err[0]


def test_nothing_to_predict_is_a_user_error(checkpoint, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.mp4"), "--checkpoint", str(checkpoint)]) == 2
    assert "no video found" in capsys.readouterr().err


def test_loaded_pair_and_device_choice(checkpoint, face_video):
    pair = load_model(checkpoint, "cpu")
    assert predict(face_video, pair).p_fake == predict(face_video, checkpoint).p_fake
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="threshold"):
        Predictor(pair, threshold=1.5)


def test_sample_videos(checkpoint, sample_data):
    videos = sorted((sample_data / "videos").glob("*.mp4"))
    video = next((v for v in videos if v.name == "pypi_pyfeat_real__single_face.mp4"), videos[0])
    result = predict(video, checkpoint)
    assert result.label in ("FAKE", "REAL") and result.faces >= 1
    no_face = sample_data / "edge" / "no_face.mp4"
    if no_face.is_file():
        assert predict(no_face, checkpoint).label == "NO_FACE"


def test_text_says_when_the_face_was_seen_in_few_frames():
    text = Prediction(video="v.mp4", label="REAL", p_fake=0.2, confidence=0.8, frames_used=3, frames_sampled=6).text()
    assert text.splitlines() == ["v.mp4", "Confidence: 80.00%", "Prediction: REAL", "Face in 3 of 6 sampled frames"]


def test_a_checkpoint_from_before_crop_rules_predicts_with_the_rule_its_data_had(tmp_path):
    path = tiny_checkpoint(tmp_path / "ckpt.pt")
    ckpt = load_checkpoint(path)
    assert Predictor(load_model(ckpt), device="cpu").preprocess.crop_rule == "centred"
    del ckpt["preprocess"]["crop_rule"]  # as dflib 0.1.0 recorded it
    assert Predictor(load_model(ckpt), device="cpu").preprocess.crop_rule == "clipped"


def test_a_checkpoint_from_before_reference_snapping_decodes_exactly_the_sampled_frames(tmp_path, face_video):
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "ckpt.pt"))
    recorded = Predictor(load_model(ckpt), device="cpu").preprocess
    assert recorded.snap_to_reference and recorded.detector_backend == "onnxruntime"
    for name in ("snap_to_reference", "detector_backend"):
        del ckpt["preprocess"][name]  # as dflib 0.1.0 recorded it
    old = Predictor(load_model(ckpt), device="cpu")
    assert not old.preprocess.snap_to_reference and old.preprocess.detector_backend == "opencv"
    assert old.detector.backend == "opencv"


def test_prediction_never_computes_the_68_landmarks_training_used(tmp_path, face_video, monkeypatch):
    import dflib.faces

    def no_landmarks(*args, **kwargs):
        raise AssertionError("prediction built the 68-point landmark predictor")

    monkeypatch.setattr(dflib.faces.Landmarks68, "__init__", no_landmarks)
    recorded = PreprocessConfig(frames=6, size=48, min_frames=3, landmarks68=True)
    predictor = Predictor(tiny_checkpoint(tmp_path / "dense.pt", preprocess=recorded, fake_logit=2.0), device="cpu")
    assert predictor.preprocess.landmarks68 is False
    prediction = predictor(face_video)
    assert prediction.label == "FAKE" and prediction.confidence == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-4)
