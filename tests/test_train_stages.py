"""What the shipped detector's recipe needs from training: photographs beside videos at a chosen
share, the main face only, and a second stage that starts from the first and trains only the
sequence model."""
import csv
import dataclasses

import pytest
import torch

from dflib.checkpoint import load_checkpoint
from dflib.config import ModelConfig
from dflib.data import read_manifest
from dflib.metrics import threshold_for_false_alarms
from dflib.preprocess import MANIFEST_COLUMNS
from dflib.train import WeightedDistributedSampler, photo_share_weights, train
from synthetic_clips import make_data_dir
from test_train import tiny_config


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("mixed"), n_real=8, n_fake=8, frames=4, size=32, n_photos=24)


def test_photo_share_sets_the_share_of_draws(mixed_dir):
    rows = [row for row in read_manifest(mixed_dir)]
    weights = photo_share_weights(rows, 0.25)
    photos = torch.tensor([row.filename.endswith(".jpg") for row in rows])
    assert weights[photos].sum() == pytest.approx(0.25) and weights[~photos].sum() == pytest.approx(0.75)
    sampler = WeightedDistributedSampler(rows, weights, 1, 0, seed=0)
    drawn = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn += [rows[index].filename.endswith(".jpg") for index, _ in sampler]
    assert abs(sum(drawn) / len(drawn) - 0.25) < 0.05  # 24 of 40 clips are photos: unweighted, 0.6
    with pytest.raises(ValueError, match="needs photographs and videos"):
        photo_share_weights([row for row in rows if not row.filename.endswith(".jpg")], 0.5)


def test_photos_and_videos_train_together_in_padded_batches(mixed_dir, tmp_path):
    result = train(tiny_config(mixed_dir, tmp_path / "run", epochs=1, photo_share=0.5, pseudo_fakes=0.3),
                   progress=False)
    assert result["history"][0]["train_loss"] > 0


def test_photo_share_zero_trains_and_validates_on_videos_only(tmp_path):
    data = make_data_dir(tmp_path / "data", n_real=8, n_fake=8, frames=4, size=32, n_photos=6)
    for crop in (data / "crops").glob("photo_*"):
        crop.unlink()  # any use of a photo would now fail
    result = train(tiny_config(data, tmp_path / "run", epochs=1, photo_share=0.0), progress=False)
    assert result["history"][0]["val_auc"] == result["history"][0]["val_auc"]  # not NaN: both classes
    with pytest.raises(ValueError, match="photo_"):
        train(tiny_config(data, tmp_path / "run2", epochs=1, photo_share=-1), progress=False)


def test_training_takes_the_main_face_only_unless_told(tmp_path):
    data = make_data_dir(tmp_path / "data", n_real=8, n_fake=8, frames=4, size=32, extra_rows=False)
    with open(data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A bystander's face in a FAKE video: often untouched, and scored by no evaluation or prediction.
    rows.append({**rows[-1], "track": "1", "output": "crops/fake_015.mp4.track1.npz"})
    with open(data / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    train(tiny_config(data, tmp_path / "main", epochs=1), progress=False)
    with pytest.raises(ValueError, match="track1"):
        train(tiny_config(data, tmp_path / "all", epochs=1, tracks="all", val_fraction=0.01), progress=False)


def test_second_stage_starts_from_the_first_and_trains_only_the_sequence_model(mixed_dir, tmp_path):
    first = train(tiny_config(mixed_dir, tmp_path / "frames", epochs=1, frames=1, photo_share=0.5), progress=False)
    other_model = ModelConfig(name="mobilenet_v3_small_lstm", hidden_size=8, pretrained="none")
    second = train(tiny_config(mixed_dir, tmp_path / "sequence", epochs=2, init=first["best"], freeze_trunk=True,
                               photo_share=0.0, model=other_model), progress=False)
    before, after = load_checkpoint(first["best"]), load_checkpoint(second["last"])
    assert after["model_config"] == before["model_config"]  # the model it started from, not --model
    trunk = [key for key in before["model_state"] if key.startswith("trunk.")]
    assert trunk and all(torch.equal(before["model_state"][k], after["model_state"][k]) for k in trunk)
    assert not torch.equal(before["model_state"]["lstm.weight_ih_l0"], after["model_state"]["lstm.weight_ih_l0"])
    # and it resumes as any run does
    resumed = train(dataclasses.replace(tiny_config(mixed_dir, tmp_path / "x", epochs=3)), resume=tmp_path / "sequence",
                    progress=False)
    assert len(resumed["history"]) == 3


def test_threshold_flags_at_most_the_given_share_of_real_scores():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    for rate, flagged in ((0.0, 0), (0.05, 0), (0.1, 1), (0.25, 2)):
        threshold = threshold_for_false_alarms(scores, rate)
        assert sum(s >= threshold for s in scores) == flagged
        assert sum(s >= threshold - 1e-9 for s in scores) >= flagged  # and no higher than needed
    with pytest.raises(ValueError):
        threshold_for_false_alarms([], 0.05)
