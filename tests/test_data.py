import numpy as np
import pytest
import torch

from dflib.config import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, TrainConfig
from dflib.cropfile import load_clip, save_clip
from dflib.data import (
    ClipAugment,
    VideoClipDataset,
    choose_frames,
    class_weights,
    clip_to_tensor,
    make_splits,
    read_manifest,
)
from synthetic_clips import make_data_dir

ALL_ON = AugmentConfig(hflip=0.5, color_jitter=0.3, jpeg_prob=0.5, blur_prob=0.5, scale_shift=0.1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"), n_real=4, n_fake=4, frames=6, size=32)


def test_pure_red_normalises_with_rgb_statistics():
    red = np.zeros((2, 16, 16, 3), np.uint8)
    red[..., 0] = 255
    tensor = clip_to_tensor(red, 16)
    assert tensor.shape == (2, 3, 16, 16) and tensor.dtype == torch.float32
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1], -IMAGENET_MEAN[2] / IMAGENET_STD[2]]
    assert torch.allclose(tensor.mean(dim=(0, 2, 3)), torch.tensor(expected), atol=1e-5)
    assert torch.allclose(clip_to_tensor(red, 8).mean(dim=(0, 2, 3)), torch.tensor(expected), atol=1e-5)


def test_uniform_frames_take_the_middle_of_equal_bins():
    chosen = choose_frames(100, 20, "uniform")
    assert chosen.tolist() == list(range(2, 100, 5))
    assert np.array_equal(chosen, choose_frames(100, 20, "uniform"))


def test_short_clip_is_a_shorter_sequence_never_a_repeated_crop():
    for mode in ("uniform", "jitter"):
        assert choose_frames(3, 8, mode, np.random.default_rng(0)).tolist() == [0, 1, 2]
        assert choose_frames(8, 8, mode, np.random.default_rng(0)).tolist() == list(range(8))
    with pytest.raises(ValueError):
        choose_frames(0, 4, "uniform")
    with pytest.raises(ValueError, match="unknown frame sampling"):
        choose_frames(10, 4, "first")


def test_training_clips_keep_the_evaluation_span_and_stride():
    """60 crops, 20 frames: evaluation steps 3 crops at a time, and so must training."""
    evaluation = choose_frames(60, 20, "uniform")
    phases = set()
    for seed in range(30):
        chosen = choose_frames(60, 20, "jitter", np.random.default_rng(seed))
        assert np.array_equal(np.diff(chosen), np.diff(evaluation))
        assert abs(int(chosen[0]) - int(evaluation[0])) < 3 and chosen[-1] < 60
        phases.add(int(chosen[0]))
    assert phases == {0, 1, 2}


def test_augmentation_is_the_same_on_every_frame():
    frame = np.random.default_rng(1).integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
    clip = np.repeat(frame[None], 5, axis=0)
    changed = 0
    for seed in range(12):
        out = ClipAugment(ALL_ON, np.random.default_rng(seed))(clip)
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[0], other) for other in out[1:])
        changed += not np.array_equal(out, clip)
    assert changed == 12


def test_flip_applies_to_all_frames():
    clip = np.random.default_rng(2).integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    only_flip = AugmentConfig(hflip=1.0, color_jitter=0.0, jpeg_prob=0.0, blur_prob=0.0, scale_shift=0.0)
    out = ClipAugment(only_flip, np.random.default_rng(0))(clip)
    assert np.array_equal(out, clip[:, :, ::-1])
    assert ClipAugment(AugmentConfig(enabled=False), np.random.default_rng(0))(clip) is clip


def test_read_manifest_keeps_ok_labelled_rows(data_dir, tmp_path):
    rows = read_manifest(data_dir)
    assert len(rows) == 8
    assert {row.label for row in rows} == {"REAL", "FAKE"}
    assert all(row.group.startswith("person") and row.source == "synthetic" for row in rows)
    with pytest.raises(FileNotFoundError, match="dflib preprocess") as error:
        read_manifest(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_evaluation_is_deterministic_and_training_varies(data_dir):
    rows = read_manifest(data_dir)
    evaluation = VideoClipDataset(data_dir, rows, frames=4, size=32, train=False, augment=ALL_ON)
    x, label, index = evaluation[1]
    assert x.shape == (4, 3, 32, 32) and index == 1 and label == (rows[1].label == "FAKE")
    evaluation.set_epoch(5)
    assert torch.equal(evaluation[1][0], x)
    # Evaluation uses the uniform frames, untouched.
    crops = load_clip(data_dir / rows[1].output).crops
    assert torch.equal(x, clip_to_tensor(crops[choose_frames(6, 4, "uniform")], 32))

    training = VideoClipDataset(data_dir, rows, frames=4, size=32, train=True, augment=ALL_ON, seed=3)
    again = VideoClipDataset(data_dir, rows, frames=4, size=32, train=True, augment=ALL_ON, seed=3)
    assert torch.equal(training[2][0], again[2][0])  # what a worker draws depends on (seed, epoch, index) only
    draws = set()
    for epoch in range(4):
        training.set_epoch(epoch)
        draws.add(training[2][0].numpy().tobytes())
    assert len(draws) > 1


def test_dataset_accepts_filenames_and_names_a_broken_crop_file(data_dir, tmp_path):
    rows = read_manifest(data_dir)
    by_name = VideoClipDataset(data_dir, [rows[0].filename], frames=4, size=32, train=False)
    assert by_name.rows == [rows[0]]
    with pytest.raises(ValueError, match="not usable"):
        VideoClipDataset(data_dir, ["nowhere.mp4"], frames=4, size=32, train=False)
    broken = tmp_path / "broken"
    make_data_dir(broken, n_real=1, n_fake=1)
    (broken / read_manifest(broken)[0].output).write_bytes(b"not a crop file")
    dataset = VideoClipDataset(broken, read_manifest(broken), frames=4, size=32, train=False)
    with pytest.raises(ValueError, match="real_000.mp4"):
        dataset[0]


def test_pseudo_fakes_turn_real_clips_into_fakes(data_dir):
    rows = read_manifest(data_dir)
    plain = VideoClipDataset(data_dir, rows, frames=4, size=32, train=True, augment=AugmentConfig(enabled=False))
    pseudo = VideoClipDataset(
        data_dir, rows, frames=4, size=32, train=True, augment=AugmentConfig(enabled=False), pseudo_fakes=1.0
    )
    for index, row in enumerate(rows):
        x, label, _ = pseudo[index]
        if row.label == "REAL":
            assert label == 1 and not torch.equal(x, plain[index][0])
        else:  # a FAKE video stays FAKE (as the real half of a pair, it may get the frame change: test_pseudofake_pairs)
            assert label == 1


@pytest.mark.parametrize("choice", ["auto", "68", "5"])
def test_pseudo_fake_masks_follow_the_68_landmarks_when_stored(tmp_path, monkeypatch, choice):
    import dflib.pseudofake

    root = make_data_dir(tmp_path / "data", n_real=1, n_fake=0, frames=6, size=32)
    row = read_manifest(root)[0]
    clip = load_clip(root / row.output)
    dense = np.zeros((6, 68, 2), np.float32)
    seen = []
    monkeypatch.setattr(dflib.pseudofake, "make_pseudo_fake",
                        lambda crops, landmarks, rng, landmarks68=None: seen.append(landmarks68) or (crops, None, None))
    for stored in (None, dense):
        clip.landmarks68 = stored
        save_clip(root / row.output, clip)
        train_set = VideoClipDataset(root, [row], frames=4, size=32, train=True, pseudo_fakes=1.0,
                                     augment=AugmentConfig(enabled=False), pseudo_fake_landmarks=choice)
        val_set = VideoClipDataset(root, [row], frames=4, size=32, train=False, fake_copies=True,
                                   pseudo_fake_landmarks=choice)
        if stored is None and choice == "68":
            with pytest.raises(ValueError, match="--landmarks68"):
                train_set[0]
            continue
        train_set[0], val_set[1]
    used = [item is not None for item in seen]
    assert used == {"auto": [False, False, True, True], "68": [True, True], "5": [False] * 4}[choice]
    assert all(item.shape == (4, 68, 2) for item in seen if item is not None)


def test_splits_are_saved_and_reused(data_dir, tmp_path):
    rows = read_manifest(data_dir)
    cfg = TrainConfig(val_fraction=0.25, test_fraction=0.25, seed=1)
    first = make_splits(rows, cfg, tmp_path)
    assert (tmp_path / "splits.csv").is_file()
    assert set(first) == {row.filename for row in rows} and set(first.values()) == {"train", "val", "test"}
    assert make_splits(rows, TrainConfig(val_fraction=0.5, seed=99), tmp_path) == first


def test_class_weights_follow_the_imbalance(tmp_path):
    rows = read_manifest(make_data_dir(tmp_path, n_real=3, n_fake=17, extra_rows=False))
    weights = class_weights(rows)
    assert weights[0] / weights[1] == pytest.approx(17 / 3)
    assert float(weights.mean()) == pytest.approx(1.0)


def test_class_weights_count_pseudo_fakes_as_fake(tmp_path):
    rows = read_manifest(make_data_dir(tmp_path, n_real=10, n_fake=10, extra_rows=False))
    # Half the REAL clips become FAKE: 5 REAL against 15 FAKE per epoch.
    weights = class_weights(rows, pseudo_fakes=0.5)
    assert weights[0] / weights[1] == pytest.approx(3.0)
    assert class_weights(rows[:10], pseudo_fakes=0.5).tolist() == pytest.approx([1.0, 1.0])  # 10 REAL only


def test_each_draw_of_a_clip_gets_its_own_frames_and_augmentation(tmp_path):
    data = make_data_dir(tmp_path, n_real=2, n_fake=2, frames=12, size=32, extra_rows=False)
    dataset = VideoClipDataset(data, read_manifest(data), frames=4, size=32, train=True, augment=ALL_ON,
                               pseudo_fakes=0.5, seed=3)
    draws = [dataset[(0, draw)][0] for draw in range(4)]
    assert torch.equal(dataset[(0, 2)][0], draws[2])  # a draw is reproducible
    assert all(not torch.equal(draws[0], other) for other in draws[1:])
    assert torch.equal(dataset[0][0], draws[0])  # a plain index is draw 0


def test_colour_jitter_does_what_its_parameters_say():
    clip = np.random.default_rng(3).integers(20, 200, size=(3, 8, 8, 3), dtype=np.uint8)
    neutral = {"hflip": False, "scale": 1.0, "shift": [0.0, 0.0], "blur_sigma": 0.0, "jpeg_quality": 0,
               "brightness": 1.0, "contrast": 1.0, "saturation": 1.0}
    assert np.array_equal(ClipAugment.apply(clip, neutral), clip)
    gray = ClipAugment.apply(clip, {**neutral, "saturation": 0.0})
    assert np.abs(gray.astype(int) - gray[..., :1]).max() <= 1
    brighter = ClipAugment.apply(clip, {**neutral, "brightness": 1.2})
    assert np.abs(brighter.astype(float) - np.clip(clip * 1.2, 0, 255)).max() <= 1
