"""Pseudo-fakes without a shortcut: a change the fakes make to the whole frame (SBI alters the frame
around the face half the time: blur by resampling, sharpening, colour) must reach the REAL clips as
often, or the hair, background and crop borders alone tell the classes apart."""
import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dflib import pseudofake
from dflib.config import AugmentConfig
from dflib.data import VideoClipDataset
from synthetic_clips import make_data_dir

SIZE = 64


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("pairs"), n_real=8, n_fake=0, frames=4, size=SIZE, extra_rows=False)


def top_strip_sharpness(frames) -> float:
    """High-frequency energy of the crop's top eighth: hair and background, never the face."""
    strip = frames[:, :, : SIZE // 8].numpy().astype(np.float32)
    return float(np.mean([np.abs(cv2.Laplacian(channel, cv2.CV_32F)).mean() for clip in strip for channel in clip]))


def cue_auc(dataset: VideoClipDataset, epochs: int = 12) -> float:
    scores, labels = [], []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            frames, label, _ = dataset[index]
            scores.append(top_strip_sharpness(frames))
            labels.append(label)
    assert 0.3 < np.mean(labels) < 0.7  # both classes drawn
    # Blurring lowers the energy and sharpening raises it: the cue is the distance from the usual level.
    log_energy = np.log(scores)
    return roc_auc_score(labels, np.abs(log_energy - np.median(log_energy)))


def training_set(data_dir):
    return VideoClipDataset(data_dir, [f"real_{i:03d}.mp4" for i in range(8)], frames=2, size=SIZE, train=True,
                            augment=AugmentConfig(enabled=False), pseudo_fakes=0.5, seed=3)


def test_a_detector_of_the_background_change_is_at_chance(real_clips, monkeypatch):
    assert abs(cue_auc(training_set(real_clips)) - 0.5) < 0.12
    # The same detector separates them when REAL clips never get the change (dflib before the pairs).
    monkeypatch.setattr(pseudofake, "paired_real", lambda crops, *args, **kwargs: crops)
    assert abs(cue_auc(training_set(real_clips)) - 0.5) > 0.15


def test_paired_real_is_the_fakes_target_exactly():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    altered = 0
    for seed in range(12):
        fake, mask, params = pseudofake.make_pseudo_fake(crops, None, seed)
        real = pseudofake.paired_real(crops, None, seed)
        outside = np.broadcast_to(mask == 0, fake.shape[:3])
        # Where the mask is 0 the fake is its target: the REAL half of the pair has the same pixels.
        assert np.array_equal(fake[outside], real[outside])
        if params.alter == "target":
            altered += 1
            assert not np.array_equal(real, crops)
        else:
            assert np.array_equal(real, crops)
    assert 0 < altered < 12


def test_validation_reals_are_the_pairs_of_their_fixed_fakes(real_clips):
    val = VideoClipDataset(real_clips, [f"real_{i:03d}.mp4" for i in range(8)], frames=2, size=SIZE, train=False,
                           seed=5, fake_copies=True)
    first = [val[i][0] for i in range(len(val))]
    assert [val[i][1] for i in range(len(val))] == [0] * 8 + [1] * 8
    assert all((a == b).all() for a, b in zip(first, (val[i][0] for i in range(len(val)))))  # fixed
