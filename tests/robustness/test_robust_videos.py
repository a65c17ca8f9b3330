"""Every hostile video through ``dflib preprocess`` (a batch) and ``dflib predict``: each gets a row with
a status and a named reason, the batch goes on, and no input is touched."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hostile import (PREPROCESS, PREPROCESS_FLAGS, SUBPROCESS_ENV, VFR_PTS_MS, VIDEO_CASES, face_clip, ffmpeg,
                      run_dflib, tree_state, write_4k)
from dflib.config import PreprocessConfig
from dflib.cropfile import load_clip
from dflib.preprocess import MANIFEST, preprocess, read_manifest_rows
from dflib.synthetic import write_video
from dflib.video import VideoReader


def link_target_hash(folder):
    return hashlib.sha256((folder / "symlink.mp4").resolve().read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(hostile_videos, tmp_path_factory):
    """``python -m dflib preprocess`` over the whole hostile folder, once."""
    out = tmp_path_factory.mktemp("preprocessed") / "out"
    before, target = tree_state(hostile_videos), link_target_hash(hostile_videos)
    result = run_dflib("preprocess", "--videos", hostile_videos, "--out", out, *PREPROCESS_FLAGS, "--quiet")
    rows = read_manifest_rows(out) if (out / MANIFEST).is_file() else []
    return {"result": result, "out": out, "rows": rows, "by_name": {row.filename: row for row in rows},
            "unchanged": tree_state(hostile_videos) == before and link_target_hash(hostile_videos) == target}


@pytest.fixture(scope="module")
def predicted(hostile_videos, tiny_ckpt, tmp_path_factory):
    """``python -m dflib predict`` over the whole hostile folder, once, with --json and a CSV."""
    csv_path = tmp_path_factory.mktemp("predicted") / "results.csv"
    before, target = tree_state(hostile_videos), link_target_hash(hostile_videos)
    result = run_dflib("predict", hostile_videos, "--checkpoint", tiny_ckpt, "--device", "cpu", "--json",
                       "--quiet", "--out", csv_path)
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    rows = []
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    return {"result": result, "json": {os.path.basename(o["video"]): o for o in objects},
            "csv": {os.path.basename(r["filename"]): r for r in rows},
            "unchanged": tree_state(hostile_videos) == before and link_target_hash(hostile_videos) == target}


def test_preprocess_batch_finishes_and_loses_nothing(batch):
    result = batch["result"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    names = [row.filename for row in batch["rows"]]
    assert sorted(names) == sorted(VIDEO_CASES)  # every video once, none dropped
    assert batch["unchanged"]  # no input (nor the link's target) modified, added or removed
    assert not list(batch["out"].rglob("*.part"))
    assert f"{len(VIDEO_CASES)} rows" in result.stdout  # the summary names the count


@pytest.mark.parametrize("name", sorted(VIDEO_CASES))
def test_preprocess_names_the_outcome_of_each_video(batch, name):
    status, reason, _ = VIDEO_CASES[name]
    row = batch["by_name"][name]
    assert row.status == status, (row.status, row.reason)
    if reason:
        assert reason in row.reason, row.reason
        assert "unexpected error" not in row.reason
        assert "/" not in row.reason and "Errno" not in row.reason  # plain words: the row already names the file
    if status == "ok":
        clip = load_clip(batch["out"] / row.output)
        assert clip.crops.shape[1:] == (32, 32, 3) and clip.crops.dtype == np.uint8
        assert PREPROCESS["min_frames"] <= len(clip) == row.frames <= PREPROCESS["frames"]
    else:
        assert row.output == "" and row.frames == 0


@pytest.mark.parametrize("name", sorted(VIDEO_CASES))
def test_predict_names_the_outcome_of_each_video(predicted, name):
    _, reason, status = VIDEO_CASES[name]
    row, obj = predicted["csv"][name], predicted["json"][name]
    assert row["status"] == obj["status"] == status, (row["status"], row["reason"])
    if status == "ok":
        assert row["label"] in ("FAKE", "REAL") and 0.0 <= float(row["p_fake"]) <= 1.0
        assert obj["frames_used"] >= 1 and int(row["faces"]) >= 1
    else:
        assert row["label"] == ("NO_FACE" if status == "no_face" else "ERROR")
        assert row["p_fake"] == "" and row["confidence"] == "" and row["reason"]
        assert "unexpected error" not in row["reason"]
        if status == "error":
            assert reason in row["reason"]


def test_predict_batch_finishes_and_touches_nothing(predicted):
    result = predicted["result"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(predicted["csv"]) == sorted(VIDEO_CASES) == sorted(predicted["json"])
    assert predicted["unchanged"]
    assert f"{len(VIDEO_CASES)} videos" in result.stderr


def test_vertical_video_is_turned_upright(batch):
    row = batch["by_name"]["vertical_rotated.mp4"]
    clip = load_clip(batch["out"] / row.output)
    assert (row.width, row.height, clip.meta["rotation"]) == (120, 160, 90)
    assert row.faces_found == row.sampled  # upright (the stored frames hold it sideways), found in every frame


def test_grayscale_video_gives_three_channel_gray_crops(batch):
    clip = load_clip(batch["out"] / batch["by_name"]["grayscale.mkv"].output)
    assert clip.crops.shape[-1] == 3
    assert np.abs(clip.crops[..., 0].astype(int) - clip.crops[..., 2]).max() <= 2


def test_variable_frame_rate_keeps_true_timestamps(batch):
    row = batch["by_name"]["variable_rate.mkv"]
    clip = load_clip(batch["out"] / row.output)
    assert row.video_frames == len(VFR_PTS_MS)
    expected = np.array(VFR_PTS_MS)[clip.frame_indices] / 1000
    assert np.allclose(clip.timestamps, expected, atol=1e-3)


def test_truncated_stream_uses_the_frames_before_the_cut(batch):
    row = batch["by_name"]["truncated_stream.mkv"]
    assert 3 <= row.video_frames < 12 and row.sampled >= 3


def test_fewer_frames_than_asked_uses_all_there_are(batch):
    row = batch["by_name"]["four_frames.mp4"]
    assert (row.video_frames, row.sampled, row.frames) == (4, 4, 4)


def test_several_faces_the_main_one_by_default_every_one_when_asked(batch, predicted, hostile_videos, tiny_ckpt):
    assert batch["by_name"]["several_faces.mp4"].tracks >= 2
    assert int(predicted["csv"]["several_faces.mp4"]["faces"]) == 1
    result = run_dflib("predict", hostile_videos / "several_faces.mp4", "--checkpoint", tiny_ckpt, "--device", "cpu",
                       "--json", "--all-tracks")
    assert json.loads(result.stdout)["faces"] >= 2


@pytest.mark.parametrize("name", ["face_in_last_second.mp4", "single_frame.mp4"])
def test_a_face_in_fewer_frames_than_training_used_gets_no_verdict(predicted, name):
    """Both were skipped by preprocessing (too few face frames), so no training clip was like them:
    predict says so instead of feeding the model one crop over and over."""
    obj = predicted["json"][name]
    assert obj["label"] == "NO_FACE" and obj["p_fake"] is None
    assert "too few frames with a face" in obj["reason"] and "min_frames=3" in obj["reason"]


def test_odd_names_and_links_keep_their_names(batch, predicted, hostile_videos):
    for name in ("vidéo ünïcødé 名前.mp4", "with space.mp4", "symlink.mp4"):
        row = batch["by_name"][name]
        assert (batch["out"] / row.output).is_file() and row.output == f"crops/{name}.npz"
        assert predicted["csv"][name]["filename"] == str(hostile_videos / name)


def test_truncated_mid_stream_keeps_every_frame_before_the_damage(tmp_path):
    """A cut inside the data of an mp4 whose index comes first: every frame whose packets (and the
    packets before them in decoding order) arrived whole is decoded, not only the first."""
    import av

    source = write_video(tmp_path / "source.mp4", face_clip(12))
    whole = tmp_path / "faststart.mp4"
    ffmpeg("-i", source, "-c", "copy", "-movflags", "+faststart", whole)
    cut = whole.stat().st_size * 2 // 3
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[:cut])
    with av.open(str(whole)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    complete = []
    for pts, pos, size in packets:  # decoding order
        if pos + size > cut:
            break
        complete.append(pts)
    order = sorted(p for p, _, _ in packets)
    expected = sorted(order.index(p) for p in complete)
    assert len(expected) >= 2  # the test would say nothing otherwise
    reader = VideoReader(tmp_path / "cut.mp4")
    got, images = reader.read(range(reader.n_frames))
    assert got == expected and len(images) == len(got)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to measure peak memory")
def test_4k_video_memory_stays_bounded(tmp_path):
    """Peak memory grows with the frames sampled, not with the length of the video: 4 frames of a
    3 s and of a 9 s 4K video cost the same, far below what holding the video would."""
    short = write_4k(tmp_path / "uhd_3s.mp4", seconds=3, fps=10)
    long = write_4k(tmp_path / "uhd_9s.mp4", seconds=9, fps=10)
    small = write_video(tmp_path / "small.mp4", face_clip(6))
    # Each video in a fresh process: ru_maxrss survives fork and exec (it would report pytest's own
    # peak), and memory freed after one video stays mapped for the next. The kernel's high-water mark
    # (VmHWM) is reset after a warm-up, so only the video counts.
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from dflib.config import PreprocessConfig
        from dflib.faces import create_detector
        from dflib.preprocess import process_video

        def status(field):
            with open("/proc/self/status") as handle:
                return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))

        cfg = PreprocessConfig(frames=4, size=32, min_frames=3)
        detector = create_detector(cfg.detector, cfg.detect_long_side, cfg.min_face_score)
        process_video(Path(sys.argv[1]), cfg, detector)  # warm up: libraries, networks
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak to the current size
        baseline = status("VmRSS")
        clips, row = process_video(Path(sys.argv[2]), cfg, detector)
        print(json.dumps({"growth": status("VmHWM") - baseline, "status": row.status, "width": row.width,
                          "frames": row.video_frames, "sampled": row.sampled, "crops": [len(c) for c in clips]}))
    """)
    reports = []
    for video in (short, long):
        done = subprocess.run([sys.executable, "-c", script, str(small), str(video)], capture_output=True,
                              text=True, env=SUBPROCESS_ENV, timeout=300)
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["frames"] for r in reports] == [30, 90]
    for report in reports:
        assert report["status"] == "ok" and report["crops"] == [4] and report["width"] == 3840
        assert report["sampled"] == 4
    frame_bytes = 3840 * 2160 * 3  # 25 MB as RGB
    three, nine = (r["growth"] for r in reports)
    # The measure sees the 4 frames decoded (it can fail), the growth does not follow the length,
    # and it stays far below holding the video (the 9 s one is 2.2 GB as RGB; measured: ~280 MB).
    assert nine > 4 * frame_bytes, reports
    assert nine < three + 2 * frame_bytes, reports
    assert nine < 30 * frame_bytes, reports


def _deny_reading(monkeypatch, denied):
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if os.fspath(path) == os.fspath(denied) and mode & os.R_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def _unreadable_setup(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "good.mp4", face_clip(6))
    locked = write_video(folder / "locked.mp4", face_clip(6))
    return folder, locked


def _check_unreadable(folder, locked, tmp_path, tiny_ckpt):
    from dflib.prediction import predict

    summary = preprocess(PreprocessConfig(videos=str(folder), out=str(tmp_path / "out"), **PREPROCESS),
                         progress=False)
    rows = {row.filename: row for row in summary.rows}
    assert rows["good.mp4"].status == "ok"
    assert (rows["locked.mp4"].status, rows["locked.mp4"].reason) == ("failed", "permission denied")
    result = predict(locked, tiny_ckpt, device="cpu")
    assert (result.status, result.reason) == ("error", "permission denied")


def test_unreadable_file_is_named_simulated(tmp_path, monkeypatch, tiny_ckpt):
    """Root reads anything, so the permission check is simulated here; the next test uses chmod."""
    folder, locked = _unreadable_setup(tmp_path)
    _deny_reading(monkeypatch, locked)
    _check_unreadable(folder, locked, tmp_path, tiny_ckpt)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod 000 does not stop root from reading (simulated in the test above)")
def test_unreadable_file_is_named_chmod(tmp_path, tiny_ckpt):
    folder, locked = _unreadable_setup(tmp_path)
    locked.chmod(0)
    try:
        _check_unreadable(folder, locked, tmp_path, tiny_ckpt)
    finally:
        locked.chmod(0o644)


def test_file_name_that_is_not_utf8_does_not_sink_the_batch(tmp_path, tiny_ckpt, capsys):
    """A name in another encoding (an old zip's latin-1): preprocess gives it a failed row saying so,
    predict still predicts it; both write their table, where the name shows its bytes as \\xNN."""
    from dflib.cli import main

    folder = tmp_path / "videos"
    folder.mkdir()
    data = write_video(tmp_path / "face.mp4", face_clip(6)).read_bytes()
    latin1 = folder / os.fsdecode(b"caf\xe9.mp4")
    latin1.write_bytes(data)
    (folder / "ok.mp4").write_bytes(data)
    before = tree_state(folder)
    out = tmp_path / "out"
    assert main(["preprocess", "--videos", str(folder), "--out", str(out), *PREPROCESS_FLAGS, "--quiet"]) == 0
    rows = {row.filename: row for row in read_manifest_rows(out)}
    assert rows["ok.mp4"].status == "ok"
    assert rows["caf\\xe9.mp4"].status == "failed" and "not valid UTF-8" in rows["caf\\xe9.mp4"].reason
    results = tmp_path / "results.csv"
    assert main(["predict", str(folder), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--quiet",
                 "--out", str(results)]) == 0
    with open(results, newline="", encoding="utf-8") as handle:
        predicted = {os.path.basename(row["filename"]): row for row in csv.DictReader(handle)}
    assert predicted["caf\\xe9.mp4"]["status"] == predicted["ok.mp4"]["status"] == "ok"
    assert tree_state(folder) == before
    capsys.readouterr()
