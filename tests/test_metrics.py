import json
import math
import warnings

import pytest

from dflib.metrics import save_metrics, video_metrics

Y = [0, 0, 0, 1, 1, 1]
SEPARATED = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]


def test_perfect_separation():
    m = video_metrics(Y, SEPARATED)
    assert (m["n"], m["n_real"], m["n_fake"]) == (6, 3, 3)
    assert m["accuracy"] == m["balanced_accuracy"] == 1.0
    assert m["roc_auc"] == m["average_precision"] == 1.0
    assert m["eer"] == 0.0
    assert m["eer_threshold"] == 0.7  # lowest FAKE score: every FAKE caught, no REAL flagged
    assert m["precision"] == m["recall"] == m["f1"] == 1.0
    assert m["notes"] == []


def test_inverted_scores():
    m = video_metrics(Y, [1 - p for p in SEPARATED])
    assert m["roc_auc"] == 0.0
    assert m["eer"] == 1.0
    assert m["accuracy"] == 0.0
    assert m["confusion"] == [[0, 3], [3, 0]]


def test_eer_interpolates_between_roc_points():
    # Thresholds 0.8 / 0.6 / 0.4 / 0.2 give (FPR, FNR) = (0, .5), (.5, .5), ... : they meet at 0.5.
    m = video_metrics([0, 1, 0, 1], [0.2, 0.4, 0.6, 0.8])
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == 0.6
    # Constant scores: the ROC is the diagonal, the EER is 0.5 by interpolation.
    assert video_metrics([0, 1], [0.5, 0.5])["eer"] == pytest.approx(0.5)


def test_confusion_layout_rows_true_columns_predicted():
    # 2 REAL correct, 1 REAL called FAKE, 1 FAKE missed, 2 FAKE caught.
    m = video_metrics(Y, [0.1, 0.2, 0.6, 0.4, 0.8, 0.9])
    assert m["labels"] == ["REAL", "FAKE"]
    assert m["confusion"] == [[2, 1], [1, 2]]
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_threshold_moves_predictions_not_ranking_metrics():
    scores = [0.1, 0.2, 0.6, 0.4, 0.8, 0.9]
    low, high = video_metrics(Y, scores, threshold=0.3), video_metrics(Y, scores, threshold=0.85)
    assert low["confusion"] == [[2, 1], [0, 3]]
    assert high["confusion"] == [[3, 0], [2, 1]]
    assert low["roc_auc"] == high["roc_auc"]
    # A score equal to the threshold counts as FAKE.
    assert video_metrics([0, 1], [0.2, 0.6], threshold=0.6)["confusion"] == [[1, 0], [0, 1]]


@pytest.mark.parametrize("label, name", [(0, "REAL"), (1, "FAKE")])
def test_one_class_gives_none_with_note(label, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = video_metrics([label] * 3, [0.2, 0.4, 0.9])
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["eer"] is None and m["eer_threshold"] is None
    assert any(f"only {name} videos" in note and "roc_auc" in note for note in m["notes"])
    assert m["accuracy"] == pytest.approx(2 / 3 if label == 0 else 1 / 3)  # 0.2, 0.4 REAL; 0.9 FAKE
    assert math.isfinite(m["log_loss"])


def test_undefined_precision_is_none_with_note():
    m = video_metrics([0, 1], [0.1, 0.2])
    assert m["precision"] is None
    assert m["recall"] == 0.0
    assert any("precision" in note for note in m["notes"])


def test_log_loss_is_clipped_and_matches_hand_value():
    assert video_metrics([0, 1], [0.5, 0.5])["log_loss"] == pytest.approx(math.log(2))
    confidently_wrong = video_metrics([0, 1], [1.0, 0.0])["log_loss"]
    assert math.isfinite(confidently_wrong) and confidently_wrong > 10


def test_string_labels_accepted():
    assert video_metrics(["REAL", "fake"], [0.1, 0.9]) == video_metrics([0, 1], [0.1, 0.9])


def test_groups_break_down_per_value():
    sources = ["a", "a", "b", "b", "b", "a"]
    m = video_metrics(Y, [0.1, 0.2, 0.6, 0.4, 0.8, 0.9], groups={"source": sources})
    assert set(m["by_source"]) == {"a", "b"}
    a, b = m["by_source"]["a"], m["by_source"]["b"]
    assert (a["n_real"], a["n_fake"], a["accuracy"]) == (2, 1, 1.0)
    assert b["confusion"] == [[0, 1], [1, 1]]
    assert a["roc_auc"] == 1.0 and b["roc_auc"] == 0.5


def test_group_with_one_class_does_not_crash():
    m = video_metrics(Y, SEPARATED, groups={"source": ["x", "x", "x", "y", "y", "y"]})
    assert m["by_source"]["x"]["roc_auc"] is None and m["by_source"]["x"]["notes"]
    assert m["roc_auc"] == 1.0


@pytest.mark.parametrize(
    "y, p, match",
    [
        ([0, 1], [0.5], "one label and one score"),
        ([], [], "no videos"),
        ([0, 2], [0.1, 0.9], "labels must be 0"),
        (["REAL", "maybe"], [0.1, 0.9], "maybe"),
        ([0, 1], [0.1, 1.5], "not probabilities"),
        ([0, 1], [0.1, float("nan")], "not probabilities"),
    ],
)
def test_bad_input_is_a_clear_error(y, p, match):
    with pytest.raises(ValueError, match=match):
        video_metrics(y, p)


def test_group_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="group 'source' has 2 values for 6 videos"):
        video_metrics(Y, SEPARATED, groups={"source": ["a", "b"]})


def test_json_round_trip(tmp_path):
    m = video_metrics([0, 0, 1], [0.1, 0.2, 0.3], groups={"source": ["a", "b", "b"]})
    path = save_metrics(m, tmp_path / "out" / "metrics.json")
    assert json.loads(path.read_text()) == m
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_save_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        save_metrics({"auc": float("nan")}, tmp_path / "metrics.json")
    assert not (tmp_path / "metrics.json").exists()


def test_threshold_outside_unit_interval_is_a_clear_error():
    with pytest.raises(ValueError, match="threshold"):
        video_metrics(Y, SEPARATED, threshold=50)


def test_each_method_is_scored_against_every_real_video():
    """FaceForensics++ style: each source holds one class, so per-source AUC is undefined; per method
    the fakes of that method are ranked against all REAL videos."""
    labels = [0, 0, 0, 1, 1, 1, 1]
    sources = ["youtube", "youtube", "actors", "Deepfakes", "Deepfakes", "FaceSwap", "FaceSwap"]
    scores = [0.1, 0.5, 0.3, 0.9, 0.6, 0.4, 0.2]
    m = video_metrics(labels, scores, groups={"source": sources}, methods=sources)
    assert m["headline"] == "roc_auc"
    assert all(part["roc_auc"] is None for part in m["by_source"].values())
    assert set(m["by_method"]) == {"Deepfakes", "FaceSwap"}
    deepfakes, faceswap = m["by_method"]["Deepfakes"], m["by_method"]["FaceSwap"]
    assert (deepfakes["n_real"], deepfakes["n_fake"]) == (3, 2) and (faceswap["n_real"], faceswap["n_fake"]) == (3, 2)
    assert deepfakes["roc_auc"] == 1.0  # 0.9 and 0.6 above every real score
    assert faceswap["roc_auc"] == pytest.approx(3 / 6)  # 0.4 beats 0.1 and 0.3; 0.2 beats 0.1
    assert m["roc_auc"] == pytest.approx(video_metrics(labels, scores)["roc_auc"])


def test_eer_threshold_finds_an_exact_crossing_despite_rounding():
    # At threshold 0.7 one of three REAL and one of three FAKE videos are wrong: 1/3 against 1 - 2/3,
    # which differ by one float rounding step.
    m = video_metrics([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["eer_threshold"] == 0.7
