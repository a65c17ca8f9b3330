"""Copying a preprocessed folder to local disk before training (crops on Google Drive)."""
from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from dflib import localcopy
from dflib.localcopy import LocalCopyError, copy_to_local, default_destination, lies_under
from synthetic_clips import make_data_dir


@pytest.fixture
def source(tmp_path):
    data = make_data_dir(tmp_path / "drive" / "preprocessed", n_real=3, n_fake=3, frames=4, size=16)
    (data / "previews").mkdir()
    (data / "previews" / "real_000.mp4.track0.png").write_bytes(b"png")
    return data


def snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_copy_holds_what_training_reads_byte_for_byte_and_leaves_the_source_alone(source, tmp_path):
    from dflib.data import read_manifest

    before = snapshot(source)
    copy = copy_to_local(source, tmp_path / "local", progress=False)
    assert snapshot(source) == before
    copied = {p.relative_to(copy) for p in copy.rglob("*") if p.is_file() and p.name != localcopy.COPY_RECORD}
    crops = {p.relative_to(source) for p in (source / "crops").iterdir()}
    assert copied == {Path("manifest.csv"), Path("preprocess_config.json")} | crops
    assert all((copy / name).read_bytes() == (source / name).read_bytes() for name in copied)
    assert [row.filename for row in read_manifest(copy)] == [row.filename for row in read_manifest(source)]


def test_a_second_call_reuses_verified_files_and_recopies_changed_or_damaged_ones(source, tmp_path, monkeypatch):
    copy = copy_to_local(source, tmp_path / "local", progress=False)
    copied = []
    real_copy = localcopy._copy_file
    monkeypatch.setattr(localcopy, "_copy_file",
                        lambda src, dst, bar: copied.append(src.name) or real_copy(src, dst, bar))
    assert copy_to_local(source, tmp_path / "local", progress=False) == copy and copied == []

    (copy / "crops" / "real_000.mp4.npz").write_bytes(b"damaged on the local disk")
    changed = source / "crops" / "fake_004.mp4.npz"
    changed.write_bytes(changed.read_bytes() + b"\0")
    copy_to_local(source, tmp_path / "local", progress=False)
    assert sorted(copied) == ["fake_004.mp4.npz", "real_000.mp4.npz"]
    assert (copy / "crops" / "real_000.mp4.npz").read_bytes() == (source / "crops" / "real_000.mp4.npz").read_bytes()
    assert (copy / changed.relative_to(source)).read_bytes() == changed.read_bytes()


def test_not_enough_free_space_stops_before_copying(source, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(LocalCopyError, match="GiB to copy from .* but only 0.00 GiB free"):
        copy_to_local(source, tmp_path / "local", progress=False)
    assert not list((tmp_path / "local").rglob("*.npz"))


def test_a_copy_that_reads_back_wrong_is_an_error_naming_the_file(source, tmp_path, monkeypatch):
    monkeypatch.setattr(localcopy, "_sha256", lambda path: "0" * 64)
    with pytest.raises(LocalCopyError, match=r"manifest.csv: the copy does not match .*manifest.csv \(checksum\)"):
        copy_to_local(source, tmp_path / "local", progress=False)


def test_missing_crop_file_is_named(source, tmp_path):
    (source / "crops" / "real_001.mp4.npz").unlink()
    with pytest.raises(LocalCopyError, match="missing, e.g. crops/real_001.mp4.npz"):
        copy_to_local(source, tmp_path / "local", progress=False)


def test_lies_under_follows_links_and_the_default_copy_is_per_source(tmp_path):
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)
    os.symlink(tmp_path / "drive" / "MyDrive", tmp_path / "shortcut")
    assert lies_under(tmp_path / "shortcut" / "preprocessed", tmp_path / "drive")
    assert not lies_under(tmp_path / "elsewhere", tmp_path / "drive")
    assert default_destination(tmp_path / "a" / "crops") != default_destination(tmp_path / "b" / "crops")
    assert not lies_under(default_destination(tmp_path / "a"), tmp_path)  # on the local temporary disk
