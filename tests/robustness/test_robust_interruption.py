"""kill -9 in the middle of work: a rerun finishes the job, every video is done once, no output is
partial or corrupt, and a killed training run resumes from its last epoch with the same split."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dflib.checkpoint import load_checkpoint
from dflib.cropfile import load_clip
from dflib.preprocess import RECORDS_DIR, read_manifest_rows
from dflib.synthetic import write_video
from hostile import PREPROCESS_FLAGS, REPO, SUBPROCESS_ENV, face_clip, tree_state

N_VIDEOS = 36


def start_dflib(*args):
    return subprocess.Popen([sys.executable, "-m", "dflib", *map(str, args)], cwd=REPO, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(process, ready, timeout: float = 240):
    """SIGKILL ``process`` as soon as ``ready()`` holds; fails if it finished first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"finished before it could be killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "never reached the point to kill at"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def records(out):
    folder = out / RECORDS_DIR
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.json")} if folder.is_dir() else {}


def assert_every_crop_file_loads(out):
    for path in (out / "crops").rglob("*.npz"):
        if not path.name.startswith("."):
            assert len(load_clip(path)) >= 3, path


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many") / "videos"
    (folder / "sub").mkdir(parents=True)
    data = write_video(folder.parent / "one.mp4", face_clip(6)).read_bytes()
    for i in range(N_VIDEOS):
        (folder / ("sub" if i % 3 == 0 else "") / f"clip_{i:02d}.mp4").write_bytes(data)
    return folder


def test_kill_9_during_preprocessing_then_rerun(many_videos, tmp_path):
    out = tmp_path / "out"
    before = tree_state(many_videos)
    command = ["preprocess", "--videos", many_videos, "--out", out, *PREPROCESS_FLAGS, "--quiet"]
    done_at_kill = []
    for at_least in (4, 16):  # killed twice, at different points
        process = start_dflib(*command)
        kill_when(process, lambda: len(records(out)) >= at_least)
        done_at_kill.append(records(out))
        assert len(done_at_kill[-1]) < N_VIDEOS
        assert_every_crop_file_loads(out)  # what a kill leaves is whole, or a hidden temporary
        for earlier in done_at_kill[:-1]:  # a rerun never redoes what was done
            assert all(done_at_kill[-1][name] == record for name, record in earlier.items())

    finished = subprocess.run([sys.executable, "-m", "dflib", *map(str, command)], cwd=REPO, env=SUBPROCESS_ENV,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    final = records(out)
    assert len(final) == N_VIDEOS
    assert all(final[name] == record for name, record in done_at_kill[-1].items())  # done once, not redone
    rows = read_manifest_rows(out)
    names = sorted(row.filename for row in rows)
    assert names == sorted({name for name in names}) and len(names) == N_VIDEOS  # every video, once
    assert {row.status for row in rows} == {"ok"}
    assert sorted(p.relative_to(out).as_posix() for p in (out / "crops").rglob("*") if p.is_file()) == sorted(
        row.output for row in rows)  # no leftover, no partial file
    assert_every_crop_file_loads(out)
    assert not list(out.rglob("*.part"))
    assert tree_state(many_videos) == before


TRAIN_FLAGS = ["--model", "mobilenet_v3_small_lstm", "--model-hidden-size", "16", "--weights", "none",
               "--frames", "4", "--size", "32", "--batch-size", "4", "--workers", "0", "--val-fraction", "0.5",
               "--test-fraction", "0", "--patience", "0", "--seed", "3", "--quiet"]
EPOCHS = 6


def test_kill_9_during_training_then_resume(tmp_path):
    from synthetic_clips import make_data_dir

    data = make_data_dir(tmp_path / "data", n_real=6, n_fake=6, frames=6, size=32, extra_rows=False)
    run = tmp_path / "run"
    process = start_dflib("train", "--data", data, "--out", run, "--epochs", EPOCHS, *TRAIN_FLAGS)
    kill_when(process, lambda: (run / "last.pt").is_file(), timeout=400)

    killed = load_checkpoint(run / "last.pt")
    assert 1 <= killed["epoch"] < EPOCHS
    splits_at_kill = (run / "splits.csv").read_text()
    config_at_kill = json.loads((run / "config.json").read_text())
    # What a kill in the middle of saving leaves (the timing above rarely hits it): a half-written temporary.
    (run / ".last.pt.k1ll3d.part").write_bytes((run / "last.pt").read_bytes()[:1000])

    resumed = subprocess.run([sys.executable, "-m", "dflib", "train", "--resume", str(run), "--quiet"], cwd=REPO,
                             env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(run / "last.pt")
    history = final["history"]
    assert [record["epoch"] for record in history] == list(range(1, EPOCHS + 1))
    # The epochs before the kill are carried over as they were (their timings too), not trained again.
    assert history[: killed["epoch"]] == killed["history"]
    assert final["splits"] == killed["splits"] and (run / "splits.csv").read_text() == splits_at_kill
    assert final["train_config"] == killed["train_config"]
    assert json.loads((run / "config.json").read_text()) == config_at_kill
    assert len(json.loads((run / "history.json").read_text())) == EPOCHS
    assert not list(run.glob(".*.part"))
