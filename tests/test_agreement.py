"""`dflib evaluate` must describe what `dflib predict` does: the same P(FAKE) for every video, under
either track policy, from crop files made by `dflib preprocess` and from the videos themselves."""
import json
import shutil

import numpy as np
import pytest

from dflib.config import PreprocessConfig, from_dict
from dflib.evaluate import evaluate
from dflib.prediction import Predictor
from dflib.preprocess import CONFIG_FILE, preprocess
from dflib.synthetic import face_photo, moving_face_frames, write_video
from tiny_checkpoint import tiny_checkpoint


def _agreement(videos_dir, labels, tmp_path, config: PreprocessConfig, frames: int, size: int, all_tracks: bool):
    """(evaluate's P(FAKE), predict's P(FAKE)) per video."""
    data = tmp_path / "data"
    preprocess(PreprocessConfig(**{**config.__dict__, "videos": str(videos_dir), "labels": str(labels),
                                   "out": str(data)}), progress=False)
    recorded = from_dict(PreprocessConfig, json.loads((data / CONFIG_FILE).read_text()))
    checkpoint = tiny_checkpoint(tmp_path / "ckpt.pt", frames=frames, size=size, preprocess=recorded, seed=3)
    evaluated = evaluate(checkpoint, data, split="all", progress=False, device="cpu", all_tracks=all_tracks)
    predictor = Predictor(checkpoint, device="cpu", all_tracks=all_tracks)
    predicted = {name: predictor(videos_dir / name).p_fake for name in evaluated.scores["filename"]}
    return evaluated.scores.set_index("filename")["p_fake"].to_dict(), predicted


@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "one_face.mp4", moving_face_frames(12, seed=1))
    write_video(folder / "other_face.mp4", moving_face_frames(12, seed=2, face_size=90))
    second = np.ascontiguousarray(face_photo()[:, ::-1])
    frames = [np.concatenate([left, right], axis=1) for left, right in
              zip(moving_face_frames(12, width=160, seed=3), moving_face_frames(12, width=160, seed=4, face=second))]
    write_video(folder / "two_faces.mp4", frames)
    labels = tmp_path_factory.mktemp("labels") / "labels.csv"
    labels.write_text("one_face.mp4,REAL\nother_face.mp4,FAKE\ntwo_faces.mp4,FAKE\n")
    return folder, labels


@pytest.mark.parametrize("all_tracks", [False, True])
def test_evaluate_gives_each_video_the_p_fake_predict_gives(synthetic_videos, tmp_path, all_tracks):
    folder, labels = synthetic_videos
    config = PreprocessConfig(frames=10, size=48, min_frames=4, all_tracks=True)
    evaluated, predicted = _agreement(folder, labels, tmp_path, config, frames=6, size=48, all_tracks=all_tracks)
    assert set(evaluated) == {"one_face.mp4", "other_face.mp4", "two_faces.mp4"}
    for name, p_fake in evaluated.items():
        assert predicted[name] == pytest.approx(p_fake, abs=1e-5), name


@pytest.mark.sample_data
def test_sample_clips_agree_between_evaluate_and_predict(sample_data, tmp_path):
    names = sorted(line.split(",")[0] for line in (sample_data / "labels.csv").read_text().splitlines())[::8]
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in names:
        shutil.copy(sample_data / "videos" / name, folder / name)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(line + "\n" for line in (sample_data / "labels.csv").read_text().splitlines()
                              if line.split(",")[0] in names))
    evaluated, predicted = _agreement(folder, labels, tmp_path, PreprocessConfig(frames=12, size=64, min_frames=6),
                                      frames=8, size=64, all_tracks=False)
    assert len(evaluated) >= len(names) - 1
    for name, p_fake in evaluated.items():
        assert predicted[name] == pytest.approx(p_fake, abs=1e-5), name
