"""Checkpoints from elsewhere: a pickle that would run code is refused without running it; a cut,
foreign or mismatched file is a one-line error naming the cause, in every command that loads one."""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from dflib.checkpoint import load_checkpoint, save_checkpoint
from dflib.cli import main
from dflib.synthetic import write_video
from hostile import assert_one_line_error, face_clip, run_dflib


class RunsCode:
    """Unpickling this calls ``function(argument)``: what a malicious checkpoint does."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def touch_command(marker):
    return f"touch '{marker}'"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "face.mp4", face_clip(6))


@pytest.fixture(scope="module")
def bad(tiny_ckpt, tmp_path_factory):
    """name -> (path, fragments the error must hold, marker file that must never appear)."""
    folder = tmp_path_factory.mktemp("bad_checkpoints")
    good = load_checkpoint(tiny_ckpt)
    data = tiny_ckpt.read_bytes()
    cases = {}

    def evil(name, write):
        marker = folder / f"{name}.ran"
        path = folder / f"{name}.pt"
        write(path, marker)
        cases[name] = (path, ["refused for safety", "could run code"], marker)

    evil("evil_zip", lambda path, marker: torch.save(
        {"format": "dflib-checkpoint", "model_state": RunsCode(os.system, touch_command(marker))}, path))
    evil("evil_legacy", lambda path, marker: torch.save(
        {"format": "dflib-checkpoint", "model_state": RunsCode(os.system, touch_command(marker))}, path,
        _use_new_zipfile_serialization=False))
    evil("evil_eval_inside_real", lambda path, marker: torch.save(
        {**good, "history": [RunsCode(eval, f"open({str(marker)!r}, 'w').close()")]}, path))
    # A bare pickle stream (no torch container) is refused too, whichever way torch words it.
    raw = folder / "evil_raw_pickle.pt"
    raw_marker = folder / "evil_raw_pickle.ran"
    raw.write_bytes(pickle.dumps(RunsCode(os.system, touch_command(raw_marker))))
    cases["evil_raw_pickle"] = (raw, ["refused for safety"], raw_marker)

    def plain(name, content, fragments):
        """Bytes as they are, or a dict saved the way dflib saves checkpoints."""
        path = folder / f"{name}.pt"
        path.write_bytes(content) if isinstance(content, bytes) else save_checkpoint(content, path)
        cases[name] = (path, fragments, folder / "never.ran")

    plain("truncated", data[: len(data) // 2], ["truncated or corrupt checkpoint"])
    plain("zero_bytes", b"", ["empty file (0 bytes)"])
    plain("random_bytes", b"\x13" + np.random.default_rng(0).bytes(4095), ["not a PyTorch checkpoint file"])
    plain("text_file", b"weights are on the other drive\n" * 20, ["not a PyTorch checkpoint file", "weights are"])
    plain("html_page", b"<!DOCTYPE html><html><head><title>Virus scan warning</title></head></html>\n",
          ["not a PyTorch checkpoint file", "an HTML page"])
    plain("damaged_pickle", b"\x80\x02" + b"hello" * 50, ["truncated or corrupt checkpoint"])
    torch.save({"lstm.weight": torch.zeros(2)}, folder / "foreign_state_dict.pt")  # e.g. another project's weights
    cases["foreign_state_dict"] = (folder / "foreign_state_dict.pt", ["not a dflib checkpoint"], folder / "never.ran")
    strip = {key: value for key, value in good.items() if key not in ("format", "format_version", "dflib_version")}
    plain("other_architecture", {**strip, "model_config": {**good["model_config"], "name": "resnet18_lstm"}},
          ["weights do not fit", "resnet18_lstm", "missing", "unexpected"])
    plain("other_size", {**strip, "model_config": {**good["model_config"], "hidden_size": 32}},
          ["weights do not fit", "shape mismatch", "lstm.weight"])
    plain("unknown_model", {**strip, "model_config": {**good["model_config"], "name": "evil_net"}},
          ["unknown model 'evil_net'"])
    plain("newer_format", {**strip, "format_version": 99}, ["newer dflib"])
    plain("incomplete", {key: value for key, value in strip.items() if key != "model_state"},
          ["missing model_state"])
    plain("other_label_map", {**strip, "label_map": {"real": 0, "fake": 1}}, ["label_map", "REAL", "FAKE"])
    cases["missing_file"] = (folder / "nope.pt", ["checkpoint not found"], folder / "never.ran")
    return cases


CASES = ["evil_zip", "evil_legacy", "evil_eval_inside_real", "evil_raw_pickle", "truncated", "zero_bytes",
         "random_bytes", "text_file", "html_page", "damaged_pickle", "foreign_state_dict", "other_architecture",
         "other_size", "unknown_model", "newer_format", "incomplete", "other_label_map", "missing_file"]


@pytest.mark.parametrize("name", CASES)
def test_predict_refuses_with_one_line(bad, video, name, capsys):
    path, fragments, marker = bad[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(video), "--checkpoint", str(path), "--device", "cpu", "--quiet"]) == 2
    assert_one_line_error(capsys.readouterr().err, "dflib predict: error:", *fragments)
    assert not marker.exists()  # the payload never ran
    assert [str(w.message) for w in caught] == []  # on a terminal, a warning adds lines to the one-line error


@pytest.mark.parametrize("name", ["evil_zip", "evil_eval_inside_real", "truncated", "other_size"])
def test_evaluate_refuses_with_one_line(bad, name, tmp_path, capsys):
    from synthetic_clips import make_data_dir

    path, fragments, marker = bad[name]
    data = make_data_dir(tmp_path / "data", n_real=2, n_fake=2, frames=4, size=32, extra_rows=False)
    assert main(["evaluate", "--checkpoint", str(path), "--data", str(data), "--split", "all",
                 "--out", str(tmp_path / "eval")]) == 2
    assert_one_line_error(capsys.readouterr().err, "dflib evaluate: error:", *fragments)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["evil_zip", "evil_legacy", "truncated"])
def test_train_resume_refuses_with_one_line(bad, name, tmp_path, capsys):
    path, fragments, marker = bad[name]
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(path.read_bytes())
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert_one_line_error(capsys.readouterr().err, "dflib train: error:", "last.pt", *fragments[:1])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["evil_zip", "truncated", "other_architecture"])
def test_cli_in_a_fresh_process_exits_2_without_traceback(bad, video, name):
    path, fragments, marker = bad[name]
    done = run_dflib("predict", video, "--checkpoint", path, "--device", "cpu", timeout=300)
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, "dflib predict: error:", str(path), *fragments)
    assert done.stdout == ""
    assert not marker.exists()


def test_payload_would_run_if_loaded_unsafely(bad):
    """The evil files are real: unpickled the unsafe way, they do run code (so the tests above can fail)."""
    path, _, marker = bad["evil_zip"]
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
