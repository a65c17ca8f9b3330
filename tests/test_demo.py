"""The offline demo on a tiny configuration: synthetic clips -> crops -> training -> evaluation ->
Grad-CAM -> report, and the same pipeline on a folder of the user's own videos."""
import csv
import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dflib.cli import main
from dflib.demo import CONFIG_FILE, SYNTHETIC_DISCLAIMER, USER_DATA_DISCLAIMER, DemoConfig, run_demo
from dflib.synthetic import render_pair
from dflib.video import VideoReader

pytestmark = pytest.mark.slow


def tiny_config(out, **changes) -> DemoConfig:
    """Two clips per person, short and small, two epochs: the whole demo in seconds."""
    cfg = DemoConfig(out=str(out), clips_per_identity=2, clip_frames=16, width=192, height=144)
    preprocess = dataclasses.replace(cfg.preprocess, frames=8, size=32, min_frames=4, workers=1)
    train = dataclasses.replace(cfg.train, epochs=2, frames=4, size=32, batch_size=4, val_fraction=0.34,
                                test_fraction=0.34)
    return dataclasses.replace(cfg, preprocess=preprocess, train=train, **changes)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("demo") / "out")
    return cfg, run_demo(cfg, progress=False)


def label_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_report_has_disclaimer_figures_and_held_out_metrics(demo):
    cfg, result = demo
    markdown = result.report_md.read_text()
    page = result.report_html.read_text()
    assert SYNTHETIC_DISCLAIMER in markdown
    assert "not a benchmark of deepfake detection" in page
    assert "same people" in markdown and "same people" in page
    # Every figure the Markdown links exists, and the HTML carries each one inside it.
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    for name in ("history.png", "eval/confusion.png", "eval/roc.png", "explain/cam_grid.png"):
        assert name in linked
    assert all((result.out / name).is_file() for name in linked)
    assert page.count('src="data:image/png;base64,') == len(linked)
    # The metrics are on the clips training set aside, all of them, both classes.
    splits = dict(label_rows(result.out / "run" / "splits.csv")[1:])
    test_clips = [name for name, split in splits.items() if split == "test"]
    assert result.split == "test" and result.metrics["n"] == len(test_clips) > 0
    assert result.metrics["n_real"] > 0 and result.metrics["n_fake"] > 0
    assert 0.0 <= result.metrics["roc_auc"] <= 1.0
    assert f"| ROC AUC | {result.metrics['roc_auc']:.3f} |" in markdown
    # The explained clip is a held-out fake.
    explained = Path(result.prediction["video"]).relative_to(result.out / "videos").as_posix()
    assert splits[explained] == "test" and explained.startswith("fake/")
    assert result.prediction["label"] in ("REAL", "FAKE")


def test_labels_are_the_original_headerless_format_and_list_every_video(demo):
    cfg, result = demo
    videos = result.out / "videos"
    rows = label_rows(videos / "labels.csv")
    assert all(len(row) == 2 and row[1] in ("REAL", "FAKE") for row in rows)  # no header, two columns
    on_disk = sorted(path.relative_to(videos).as_posix() for path in videos.rglob("*.mp4"))
    assert sorted(name for name, _ in rows) == on_disk
    assert len(rows) == 2 * 3 * cfg.clips_per_identity
    labels = dict(rows)
    for name, label in rows:
        folder, file = name.split("/")
        assert label == {"real": "REAL", "fake": "FAKE"}[folder]
        assert labels[f"{'fake' if folder == 'real' else 'real'}/{file}"] != label  # each fake has its real


def test_videos_decode_with_the_requested_size_and_length(demo):
    cfg, result = demo
    for path in sorted((result.out / "videos").rglob("*.mp4")):
        reader = VideoReader(path)
        info = reader.info()
        assert (info.width, info.height, info.n_frames) == (cfg.width, cfg.height, cfg.clip_frames), path
        indices, frames = reader.read([0, cfg.clip_frames - 1])
        assert indices == [0, cfg.clip_frames - 1]
        assert frames[0].shape == (cfg.height, cfg.width, 3) and frames[0].std() > 10


def decoded(path: Path, n_frames: int) -> np.ndarray:
    return np.stack(VideoReader(path).read(list(range(n_frames)))[1]).astype(np.float32)


def test_decoded_fakes_differ_from_their_reals_inside_the_face_only(demo):
    cfg, result = demo
    videos = result.out / "videos"
    for name in ("astronaut_00.mp4", "cameraman_01.mp4"):
        identity, index = name[:-7], int(name[-6:-4])
        pair = render_pair(identity, index, cfg.seed, cfg.clip_frames, cfg.width, cfg.height)
        real, fake = decoded(videos / "real" / name, cfg.clip_frames), decoded(videos / "fake" / name, cfg.clip_frames)
        # The file is the clip that render_pair rebuilds (up to compression).
        assert np.abs(real - pair.real.frames).mean() < 8
        difference = np.abs(fake - real).mean(axis=-1)
        face, background = pair.masks > 0.5, pair.masks == 0
        assert face.sum() > 0.005 * face.size and background.sum() > 0.5 * background.size
        inside, outside = difference[face].mean(), difference[background].mean()
        assert inside > 4 and inside > 3 * outside, (name, inside, outside)


def test_fake_frames_equal_the_real_ones_exactly_outside_the_mask():
    pair = render_pair("grace_hopper", 3, seed=7, n_frames=6, width=160, height=120)
    difference = np.abs(pair.fake.astype(int) - pair.real.frames).max(axis=-1)
    assert difference.shape == pair.masks.shape
    assert difference[pair.masks == 0].max() == 0
    assert (difference[pair.masks > 0.5] > 0).mean() > 0.5
    # One draw of blend parameters for the whole clip: the face changes in every frame.
    assert all((difference[t][pair.masks[t] > 0.5] > 0).any() for t in range(len(difference)))


def fingerprint(folder: Path) -> dict:
    return {path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_rerun_reuses_videos_and_training_and_refuses_other_settings(demo):
    cfg, first = demo
    videos, checkpoint = fingerprint(first.out / "videos"), (first.out / "run" / "last.pt").stat().st_mtime_ns
    again = run_demo(cfg, progress=False)
    assert {"synthetic videos", "training"} <= set(again.reused)
    assert fingerprint(first.out / "videos") == videos
    assert (first.out / "run" / "last.pt").stat().st_mtime_ns == checkpoint
    assert again.metrics == first.metrics
    with pytest.raises(ValueError, match="clips_per_identity 2 -> 3"):
        run_demo(dataclasses.replace(cfg, clips_per_identity=3), progress=False)


def test_own_videos_and_labels_run_without_the_synthetic_step_and_stay_untouched(demo, tmp_path):
    cfg, result = demo
    user = tmp_path / "my videos"
    shutil.copytree(result.out / "videos", user, ignore=shutil.ignore_patterns("clips.json"))
    (user / "labels.csv").rename(tmp_path / "my labels.csv")
    before = fingerprint(user)
    out = tmp_path / "out"
    own = run_demo(tiny_config(out, videos=str(user), labels=str(tmp_path / "my labels.csv")), progress=False)
    assert fingerprint(user) == before
    assert not (out / "videos").exists() and not own.reused
    markdown = own.report_md.read_text()
    assert USER_DATA_DISCLAIMER in markdown and SYNTHETIC_DISCLAIMER not in markdown
    assert Path(own.prediction["video"]).parent.parent == user
    manifest = {row[0] for row in label_rows(out / "crops" / "manifest.csv")[1:]}
    assert manifest == {name for name, _ in label_rows(tmp_path / "my labels.csv")}
    assert own.metrics["n"] > 0 and (out / CONFIG_FILE).is_file()


def test_cli_refuses_half_given_inputs_and_an_output_inside_the_videos(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (tmp_path / "labels.csv").write_text("a.mp4,REAL\n")
    assert main(["demo", "--out", str(tmp_path / "out"), "--videos", str(videos)]) == 2
    assert "both --videos and --labels" in capsys.readouterr().err
    assert main(["demo", "--out", str(videos / "out"), "--videos", str(videos), "--labels",
                 str(tmp_path / "labels.csv")]) == 2
    assert "inside the videos folder" in capsys.readouterr().err
    assert list(videos.iterdir()) == []
