import csv
import hashlib
import json

import numpy as np
import pytest

from dflib.config import PreprocessConfig
from dflib.cropfile import load_clip
from dflib.faces import FaceDetector
from dflib.preprocess import MANIFEST, MANIFEST_COLUMNS, preprocess, process_video, read_manifest_rows
from dflib.synthetic import face_photo, moving_face_frames, noise_frames, write_video


def tree_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("input")
    write_video(folder / "real one.mp4", moving_face_frames(12, seed=1))
    (folder / "sub").mkdir()
    write_video(folder / "sub" / "fake_é.mp4", moving_face_frames(12, seed=2))
    write_video(folder / "noise.mp4", noise_frames(8))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.avi").write_text("not a video\n")
    (folder / "labels.csv").write_text(
        "real one.mp4,REAL\nsub/fake_é.mp4,FAKE\nnoise.mp4,REAL\nempty.mp4,FAKE\ngone.mp4,FAKE\n")
    return folder


def config(videos, out, **overrides):
    values = dict(videos=str(videos), out=str(out), labels=str(videos / "labels.csv"), frames=6, size=48,
                  min_frames=4, detect_long_side=320)
    return PreprocessConfig(**{**values, **overrides})


def test_batch_gives_every_video_a_status_and_reason(videos, tmp_path):
    before = tree_hashes(videos)
    summary = preprocess(config(videos, tmp_path / "out"), progress=False)
    rows = {row.filename: row for row in summary.rows}
    assert rows["real one.mp4"].status == "ok" and rows["sub/fake_é.mp4"].status == "ok"
    assert rows["noise.mp4"].status == "skipped" and "no face" in rows["noise.mp4"].reason
    assert rows["empty.mp4"].status == "failed" and "empty file" in rows["empty.mp4"].reason
    assert rows["notes.avi"].status == "failed" and rows["notes.avi"].label == ""
    assert rows["gone.mp4"].status == "failed" and "not found" in rows["gone.mp4"].reason
    assert summary.unlabeled == ["notes.avi"] and summary.missing == ["gone.mp4"]
    assert summary.counts() == {"ok": 2, "skipped": 1, "failed": 3}
    assert tree_hashes(videos) == before  # inputs untouched

    with open(tmp_path / "out" / MANIFEST, newline="") as handle:
        header = next(csv.reader(handle))
    assert header == MANIFEST_COLUMNS
    assert {"filename", "label", "status", "reason", "frames", "faces_found", "detector", "seconds"} <= set(header)
    saved = json.loads((tmp_path / "out" / "preprocess_config.json").read_text())
    assert saved["size"] == 48 and saved["detector"] == "centerface"


def test_crop_file_holds_rgb_face_crops_and_where_they_came_from(videos, tmp_path):
    summary = preprocess(config(videos, tmp_path / "out"), progress=False)
    row = next(r for r in summary.rows if r.filename == "real one.mp4")
    clip = load_clip(tmp_path / "out" / row.output)
    assert clip.crops.shape == (6, 48, 48, 3) and clip.crops.dtype == np.uint8
    assert list(clip.frame_indices) == [0, 2, 4, 7, 9, 11]  # spread over all 12 frames
    assert clip.boxes.shape == (6, 4) and (clip.scores > 0.5).all()
    assert clip.meta["label"] == "REAL" and clip.meta["preprocess"]["size"] == 48
    # The crop is centred on the face: its centre is skin-coloured (red > blue), not background grey.
    centre = clip.crops[:, 20:28, 20:28].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[2] + 20


def test_rerun_resumes_and_overwrite_redoes(videos, tmp_path):
    cfg = config(videos, tmp_path / "out")
    first = preprocess(cfg, progress=False)
    outputs = tree_hashes(tmp_path / "out" / "crops")
    again = preprocess(cfg, progress=False)
    assert [r.seconds for r in again.rows] == [r.seconds for r in first.rows]  # nothing was redone
    assert tree_hashes(tmp_path / "out" / "crops") == outputs
    (tmp_path / "out" / "crops" / "real one.mp4.npz").unlink()  # a lost output is redone
    assert preprocess(cfg, progress=False).counts()["ok"] == 2
    with pytest.raises(ValueError, match="size 48 -> 64"):
        preprocess(config(videos, tmp_path / "out", size=64), progress=False)
    redone = preprocess(config(videos, tmp_path / "out", size=64, overwrite=True), progress=False)
    assert load_clip(tmp_path / "out" / redone.rows[-1].output).crops.shape[1] == 64


def test_partial_files_from_a_killed_run_are_cleaned(videos, tmp_path):
    out = tmp_path / "out"
    (out / "crops").mkdir(parents=True)
    (out / "crops" / ".real one.mp4.npz.abc.part").write_bytes(b"half")
    preprocess(config(videos, out), progress=False)
    assert not list(out.rglob("*.part"))


def test_workers_give_the_same_results(videos, tmp_path):
    one = preprocess(config(videos, tmp_path / "a"), progress=False)
    two = preprocess(config(videos, tmp_path / "b", workers=2), progress=False)
    assert [(r.filename, r.status, r.frames) for r in one.rows] == [(r.filename, r.status, r.frames) for r in two.rows]
    for row in (r for r in one.rows if r.status == "ok"):
        a, b = load_clip(tmp_path / "a" / row.output), load_clip(tmp_path / "b" / row.output)
        assert np.array_equal(a.crops, b.crops) and np.array_equal(a.boxes, b.boxes)


def test_output_in_videos_folder_is_refused_or_kept_apart(videos, tmp_path):
    with pytest.raises(ValueError, match="is the videos folder"):
        preprocess(config(videos, videos), progress=False)
    with pytest.raises(FileNotFoundError, match="videos folder not found"):
        preprocess(config(tmp_path / "nope", tmp_path / "out"), progress=False)


def test_too_few_face_frames_is_skipped_with_counts(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_video(folder / "late_face.mp4", noise_frames(9, 320, 240) + moving_face_frames(3))
    summary = preprocess(PreprocessConfig(videos=str(folder), out=str(tmp_path / "out"), frames=12, size=32,
                                          min_frames=5, detect_long_side=320), progress=False)
    row = summary.rows[0]
    assert row.status == "skipped" and "too few frames with a face (3 of 12; min_frames=5)" in row.reason


def test_all_tracks_gives_one_output_per_identity(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    face = face_photo()
    frames = []
    for t in range(6):
        frame = np.full((300, 600, 3), 80, np.uint8)
        small = face[::2, ::2]
        frame[20:20 + face.shape[0], 10 + 3 * t:10 + 3 * t + face.shape[1]] = face
        frame[100:100 + small.shape[0], 450:450 + small.shape[1]] = small
        frames.append(frame)
    write_video(folder / "two.mp4", frames)
    cfg = PreprocessConfig(videos=str(folder), out=str(tmp_path / "all"), frames=6, size=32, min_frames=3,
                           all_tracks=True)
    rows = preprocess(cfg, progress=False).rows
    assert [r.track for r in rows] == [0, 1] and rows[1].output.endswith(".track1.npz")
    first, second = (load_clip(tmp_path / "all" / r.output) for r in rows)
    assert first.boxes[0][2] - first.boxes[0][0] > second.boxes[0][2] - second.boxes[0][0]  # main face first
    main_only = preprocess(PreprocessConfig(**{**cfg.__dict__, "out": str(tmp_path / "main"), "all_tracks": False}),
                           progress=False).rows
    assert len(main_only) == 1


def test_previews_and_manifest_reads_back(videos, tmp_path):
    preprocess(config(videos, tmp_path / "out", previews=True), progress=False)
    previews = list((tmp_path / "out" / "previews").rglob("*.png"))
    assert len(previews) == 2 and previews[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_manifest_rows(tmp_path / "out")
    assert {r.status for r in rows} == {"ok", "skipped", "failed"} and isinstance(rows[0].frames, int)


def test_sample_clips_and_edge_cases(sample_data, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ["pypi_pyfeat_real__single_face.mp4", "sadtalker_hdtf_and_generated__art_2__RD_Radio31_000.mp4"]:
        (folder / name).symlink_to(sample_data / "videos" / name)
    for name in ["no_face.mp4", "face_noface.mov"]:
        (folder / name).symlink_to(sample_data / "edge" / name)
    summary = preprocess(PreprocessConfig(videos=str(folder), out=str(tmp_path / "out"), frames=10, min_frames=6),
                         progress=False)
    status = {r.filename: (r.status, r.reason) for r in summary.rows}
    assert status["pypi_pyfeat_real__single_face.mp4"][0] == "ok"
    assert status["sadtalker_hdtf_and_generated__art_2__RD_Radio31_000.mp4"][0] == "ok"
    assert status["no_face.mp4"] == ("skipped", "no face found in 10 sampled frames")
    assert status["face_noface.mov"][0] == "skipped" and "too few frames" in status["face_noface.mov"][1]


def test_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from dflib.io import atomic_write_text

    previous = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by teammates, not 0600


def test_a_video_that_kills_its_worker_fails_alone(videos, tmp_path, monkeypatch):
    import shutil

    import crashing_worker
    from dflib import preprocess as module

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("real one.mp4", "noise.mp4"):
        shutil.copy(videos / name, folder / name)
    shutil.copy(videos / "real one.mp4", folder / "crash.mp4")
    monkeypatch.setattr(module, "_run_one", crashing_worker.run_one_or_die)
    cfg = PreprocessConfig(videos=str(folder), out=str(tmp_path / "out"), frames=6, size=32, min_frames=4,
                           detect_long_side=320, workers=2)
    rows = {row.filename: row for row in preprocess(cfg, progress=False).rows}
    assert rows["crash.mp4"].status == "failed" and "worker process died" in rows["crash.mp4"].reason
    assert rows["real one.mp4"].status == "ok" and rows["noise.mp4"].status == "skipped"
    again = {row.filename: row for row in preprocess(cfg, progress=False).rows}  # the rerun does not stumble
    assert again["crash.mp4"].reason == rows["crash.mp4"].reason


def test_tracks_are_numbered_by_rank_so_track_0_is_always_the_main_face(tmp_path):
    """The main (large) face leaves after 3 of 8 frames (too few to keep); a small face stays. Its
    crop file is track 1, so nothing calls it the main face."""
    folder = tmp_path / "in"
    folder.mkdir()
    face = face_photo()
    frames = []
    for t in range(8):
        frame = np.full((300, 600, 3), 80, np.uint8)
        if t < 3:
            frame[20:20 + face.shape[0], 10:10 + face.shape[1]] = face
        small = face[::3, ::3]
        frame[100:100 + small.shape[0], 450 - t:450 - t + small.shape[1]] = small
        frames.append(frame)
    write_video(folder / "two.mp4", frames)
    rows = preprocess(PreprocessConfig(videos=str(folder), out=str(tmp_path / "all"), frames=8, size=32, min_frames=4,
                                       all_tracks=True), progress=False).rows
    assert [(r.status, r.track, r.tracks) for r in rows] == [("ok", 1, 2)]
    assert rows[0].output.endswith(".track1.npz")


class _EdgeDetector(FaceDetector):
    """A face box reaching 20 px past the left edge of the frame, as a detector gives for a face cut by it."""

    def _detect(self, image):
        return (np.float32([[-20, 60, 40, 140]]), np.float32([0.9]), None)


@pytest.mark.parametrize("rule, centre_x", [("centred", 10.0), ("clipped", 20.0)])
def test_a_face_at_the_frame_edge_is_squared_before_it_is_clipped(tmp_path, rule, centre_x):
    video = write_video(tmp_path / "edge.mp4", moving_face_frames(6))
    cfg = PreprocessConfig(frames=6, size=32, min_frames=3, detect_face_size=0, crop_rule=rule)
    clips, _ = process_video(video, cfg, _EdgeDetector(long_side=320))
    boxes = clips[0].boxes
    assert np.allclose((boxes[:, 0] + boxes[:, 2]) / 2, centre_x) and np.allclose((boxes[:, 1] + boxes[:, 3]) / 2, 100)
    assert clips[0].meta["preprocess"]["crop_rule"] == rule
    # The padded side of the crop is black: the crop reaches 20 + 0.15 * 80 = 32 px past the edge.
    if rule == "centred":
        assert clips[0].crops[:, :, :5].max() == 0


def test_settings_that_can_keep_no_video_are_refused_before_any_work(videos, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"--frames 8 .*--min-frames 10"):
        preprocess(config(videos, out, frames=8, min_frames=10), progress=False)
    assert not out.exists()
    with pytest.raises(ValueError, match="--crop-rule"):
        preprocess(config(videos, out, crop_rule="tight"), progress=False)


def test_outputs_of_the_older_crop_rule_are_not_mixed_with_new_ones(videos, tmp_path):
    out = tmp_path / "out"
    preprocess(config(videos, out), progress=False)
    saved = json.loads((out / "preprocess_config.json").read_text())
    del saved["crop_rule"]  # as dflib 0.1.0 wrote it
    (out / "preprocess_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"crop_rule 'clipped' -> 'centred'"):
        preprocess(config(videos, out), progress=False)


def test_a_folder_of_dflib_0_1_0_resumes_only_with_its_own_decoding_and_detection(videos, tmp_path):
    out = tmp_path / "out"
    preprocess(config(videos, out), progress=False)
    saved = json.loads((out / "preprocess_config.json").read_text())
    for name in ("crop_rule", "snap_to_reference", "detector_backend"):
        del saved[name]  # as dflib 0.1.0 wrote it, with its default detection scale
    (out / "preprocess_config.json").write_text(json.dumps({**saved, "detect_face_size": 64}))
    with pytest.raises(ValueError, match="snap_to_reference False -> True.*detector_backend 'opencv' -> 'onnxruntime'"
                                         ".*pass --no-snap-to-reference --crop-rule clipped --detector-backend opencv "
                                         "--detect-face-size 64"):
        preprocess(config(videos, out), progress=False)
    summary = preprocess(config(videos, out, snap_to_reference=False, crop_rule="clipped", detector_backend="opencv",
                                detect_face_size=64), progress=False)
    assert summary.counts()["ok"] == 2


def test_landmarks68_are_stored_in_the_crop_file_only_when_asked(videos, tmp_path):
    pytest.importorskip("dlib", reason="the 68-point landmarks need dflib[dlib]")
    summary = preprocess(config(videos, tmp_path / "dense", landmarks68=True), progress=False)
    row = next(r for r in summary.rows if r.filename == "real one.mp4")
    clip = load_clip(tmp_path / "dense" / row.output)
    assert clip.landmarks68.shape == (6, 68, 2) and clip.landmarks68.dtype == np.float32
    # dlib's eyes and mouth corners agree with the detector's 5 points, inside the crop.
    eyes = np.stack([clip.landmarks68[:, 36:42].mean(axis=1), clip.landmarks68[:, 42:48].mean(axis=1)], axis=1)
    assert np.abs(eyes - clip.landmarks[:, :2]).max() < 0.06 * 48
    assert np.abs(clip.landmarks68[:, [48, 54]] - clip.landmarks[:, 3:]).max() < 0.08 * 48
    plain = preprocess(config(videos, tmp_path / "plain"), progress=False)
    assert load_clip(tmp_path / "plain" / next(r for r in plain.rows if r.filename == "real one.mp4").output
                     ).landmarks68 is None
    with pytest.raises(ValueError, match="landmarks68 False -> True"):
        preprocess(config(videos, tmp_path / "plain", landmarks68=True), progress=False)


def test_preprocess_refuses_videos_over_the_size_limits_with_the_reason(tmp_path, face_video):
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(face_video, videos / "face.mp4")
    cfg = PreprocessConfig(videos=str(videos), out=str(tmp_path / "out"), frames=12, min_frames=1,
                           max_frame_pixels=320 * 240 - 1)
    (row,) = preprocess(cfg, progress=False).rows
    assert row.status == "failed" and row.reason.startswith("frames of 320x240 pixels, more than the limit")
    cfg = PreprocessConfig(videos=str(videos), out=str(tmp_path / "out2"), frames=12, min_frames=1, max_video_frames=11)
    (row,) = preprocess(cfg, progress=False).rows
    assert row.status == "failed" and "frames, over the limit of 11 (max_video_frames)" in row.reason
