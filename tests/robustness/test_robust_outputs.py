"""Where outputs go: never onto or into what the user gave, whatever folders they name."""
from __future__ import annotations

import csv
import os
import stat

import pytest

from dflib.cli import main
from dflib.preprocess import read_manifest_rows
from dflib.synthetic import noise_frames, write_video
from hostile import PREPROCESS_FLAGS, assert_one_line_error, face_clip, tree_state


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "face.mp4", face_clip(6))
    write_video(folder / "sub" / "noise.mp4", noise_frames(4, 64, 48))
    (folder / "labels.csv").write_text("face.mp4,REAL\nsub/noise.mp4,FAKE\n")
    return folder


def preprocess_args(videos, out, *extra):
    return ["preprocess", "--videos", str(videos), "--out", str(out), *PREPROCESS_FLAGS, "--quiet", *extra]


def test_output_folder_equal_to_the_videos_folder_is_refused(videos, capsys):
    before = tree_state(videos)
    assert main(preprocess_args(videos, videos)) == 2
    assert_one_line_error(capsys.readouterr().err, "is the videos folder")
    assert main(preprocess_args(videos, videos / "sub" / "..")) == 2  # the same folder, spelled otherwise
    assert_one_line_error(capsys.readouterr().err, "is the videos folder")
    assert tree_state(videos) == before


def test_output_folder_inside_the_videos_folder_keeps_inputs_apart(videos, capsys):
    before = tree_state(videos)
    out = videos / "out"
    for _ in range(2):  # a rerun must not take the outputs for inputs either
        assert main(preprocess_args(videos, out, "--labels", str(videos / "labels.csv"))) == 0
        rows = read_manifest_rows(out)
        assert sorted(row.filename for row in rows) == ["face.mp4", "sub/noise.mp4"]
    after = {name: value for name, value in tree_state(videos).items() if name != "out" and not name.startswith("out/")}
    assert after == before
    capsys.readouterr()


def test_videos_folder_inside_the_output_folder_is_left_alone(tmp_path, capsys):
    """--out names a parent of the videos: a file there that looks like a temporary of ours is the
    user's, not ours to delete, and nothing under the videos folder changes."""
    out = tmp_path / "project"
    videos = out / "videos"
    videos.mkdir(parents=True)
    write_video(videos / "face.mp4", face_clip(6))
    (videos / ".holiday.mp4.a1b2c3.part").write_bytes(b"the user's half-downloaded file")
    (out / "notes").mkdir()
    (out / "notes" / ".draft.txt.x9.part").write_text("the user's")
    before = tree_state(videos), tree_state(out / "notes")
    assert main(preprocess_args(videos, out)) == 0
    assert [(row.filename, row.status) for row in read_manifest_rows(out)] == [("face.mp4", "ok")]
    assert (tree_state(videos), tree_state(out / "notes")) == before
    capsys.readouterr()


def test_label_file_where_the_manifest_goes_is_not_overwritten(videos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    labels = out / "manifest.csv"
    labels.write_text("face.mp4,REAL\nsub/noise.mp4,FAKE\n")
    before = tree_state(out)
    assert main(preprocess_args(videos, out, "--labels", str(labels))) == 2
    assert_one_line_error(capsys.readouterr().err, str(labels), "label file")
    assert tree_state(out) == before


def test_output_path_that_is_a_file_is_refused(videos, tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    assert main(preprocess_args(videos, existing)) == 2
    assert_one_line_error(capsys.readouterr().err, "exists and is not a folder")
    assert existing.read_text() == "keep me"


@pytest.fixture
def read_only(videos):
    """The videos folder and everything in it made read-only (root can still write: the tests check
    that nothing was written, rather than relying on a permission error)."""
    paths = sorted(videos.rglob("*"), reverse=True) + [videos]
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(stat.S_IMODE(modes[path]) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield videos
    for path in reversed(paths):
        path.chmod(modes[path])


def test_read_only_videos_folder_works_and_stays_as_it_was(read_only, tmp_path, tiny_ckpt, capsys):
    before = tree_state(read_only)
    assert main(preprocess_args(read_only, tmp_path / "out", "--labels", str(read_only / "labels.csv"))) == 0
    assert {row.filename: row.status for row in read_manifest_rows(tmp_path / "out")} == {
        "face.mp4": "ok", "sub/noise.mp4": "skipped"}
    assert main(["predict", str(read_only), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "results.csv")]) == 0
    with open(tmp_path / "results.csv", newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["ok", "no_face"]
    assert tree_state(read_only) == before
    if os.geteuid() != 0:
        assert not os.access(read_only, os.W_OK)
    capsys.readouterr()


def test_predict_refuses_to_write_its_csv_over_an_input(videos, tiny_ckpt, capsys):
    before = tree_state(videos)
    target = videos / "face.mp4"
    assert main(["predict", str(videos), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                 "--out", str(target)]) == 2
    assert_one_line_error(capsys.readouterr().err, "dflib predict: error:", str(target))
    assert main(["predict", str(target), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                 "--out", str(target)]) == 2
    capsys.readouterr()
    assert tree_state(videos) == before


def test_predict_refuses_a_folder_as_csv_before_any_work(videos, tiny_ckpt, tmp_path, capsys):
    assert main(["predict", str(videos), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, "dflib predict: error:", str(tmp_path), "folder")
    assert captured.out == ""  # refused before predicting anything


def test_train_refuses_the_data_folder_as_run_folder(tmp_path, capsys):
    from synthetic_clips import make_data_dir

    data = make_data_dir(tmp_path / "data", n_real=2, n_fake=2, frames=4, size=32, extra_rows=False)
    before = tree_state(data)
    assert main(["train", "--data", str(data), "--out", str(data), "--quiet"]) == 2
    assert_one_line_error(capsys.readouterr().err, "must not be the data folder")
    assert tree_state(data) == before


def test_predict_explanations_inside_the_videos_folder_are_not_inputs_next_time(tmp_path, tiny_ckpt, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "face.mp4", face_clip(6))
    before = tree_state(videos)
    explained = videos / "explained"
    for _ in range(2):
        assert main(["predict", str(videos), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                     "--explain", str(explained), "--out", str(tmp_path / "results.csv")]) == 0
        with open(tmp_path / "results.csv", newline="") as handle:
            assert [row["filename"] for row in csv.DictReader(handle)] == [str(videos / "face.mp4")]
    assert (explained / "face.mp4" / "annotated.mp4").is_file()
    assert not (explained / "explained").exists()
    assert {name: value for name, value in tree_state(videos).items() if not name.startswith("explained")} == before
    capsys.readouterr()
