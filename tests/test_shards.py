"""`dflib preprocess --shard K/N` splits a dataset over machines; the merged folder is a single run's."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dflib.cli import main
from dflib.config import PreprocessConfig
from dflib.cropfile import load_clip
from dflib.preprocess import (
    CONFIG_FILE,
    MANIFEST,
    OUTPUT_SETTINGS,
    merge_shards,
    parse_shard,
    preprocess,
    read_manifest_rows,
    shard_of,
)

TIMINGS = ("seconds", "decode_s", "detect_s", "crop_s")


def _rows(out):
    return [{k: v for k, v in row.__dict__.items() if k not in TIMINGS} for row in read_manifest_rows(out)]


def _crops(out):
    clips = {}
    for path in sorted((out / "crops").rglob("*.npz")):
        clip = load_clip(path)
        clip.meta["preprocess"] = {k: clip.meta["preprocess"][k] for k in OUTPUT_SETTINGS}
        clips[path.relative_to(out).as_posix()] = clip
    return clips


def test_shard_of_is_a_stable_partition():
    names = [f"part{i // 10}/video_{i}.mp4" for i in range(300)]
    shards = [shard_of(name, 3) for name in names]
    assert set(shards) == {1, 2, 3} and all(60 < shards.count(k) < 140 for k in (1, 2, 3))
    # Another interpreter, with another string-hash seed, splits the same way.
    code = "import sys; from dflib.preprocess import shard_of; print([shard_of(n, 3) for n in sys.argv[1:]])"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code, *names[:40]], capture_output=True, text=True, env=env, check=True)
    assert json.loads(other.stdout) == shards[:40]
    assert parse_shard("2/3") == (2, 3) and parse_shard("") is None
    for bad in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


@pytest.fixture(scope="module")
def sample_folder(sample_data, tmp_path_factory):
    """Twelve sample clips of mixed sources and a label file that also lists a missing video."""
    names = sorted(line.split(",")[0] for line in (sample_data / "labels.csv").read_text().splitlines())[::5]
    folder = tmp_path_factory.mktemp("videos")
    for name in names:
        shutil.copy(sample_data / "videos" / name, folder / name)
    lines = [line for line in (sample_data / "labels.csv").read_text().splitlines() if line.split(",")[0] in names]
    (folder / "labels.csv").write_text("\n".join(lines + ["missing_video.mp4,FAKE"]) + "\n")
    return folder


def _config(folder, out, **overrides):
    return PreprocessConfig(**{**dict(videos=str(folder), out=str(out), labels=str(folder / "labels.csv"), frames=8,
                                      size=48, min_frames=4), **overrides})


@pytest.mark.sample_data
def test_three_shards_merge_into_what_one_run_writes(sample_folder, tmp_path):
    single = tmp_path / "single"
    preprocess(_config(sample_folder, single), progress=False)
    sharded = tmp_path / "sharded"
    for part in (1, 3):
        summary = preprocess(_config(sample_folder, sharded, shard=f"{part}/3"), progress=False)
        assert "of 3 shards done" in summary.text() and not (sharded / MANIFEST).exists()
        assert summary.rows and all(shard_of(row.filename, 3) == part for row in summary.rows)
    with pytest.raises(ValueError, match="2/3 not done"):
        merge_shards(sharded)
    summary = preprocess(_config(sample_folder, sharded, shard="2/3"), progress=False)  # the last one merges
    assert (sharded / MANIFEST).is_file() and len(summary.rows) == len(read_manifest_rows(single))
    assert _rows(sharded) == _rows(single)
    assert any(row["reason"].startswith("listed in the label file") for row in _rows(sharded))
    single_crops, sharded_crops = _crops(single), _crops(sharded)
    assert single_crops.keys() == sharded_crops.keys() and single_crops
    for name, clip in single_crops.items():
        other = sharded_crops[name]
        assert np.array_equal(clip.crops, other.crops) and np.array_equal(clip.frame_indices, other.frame_indices)
        assert {k: v for k, v in clip.meta.items() if k != "video"} == \
            {k: v for k, v in other.meta.items() if k != "video"}
    saved = json.loads((sharded / CONFIG_FILE).read_text())
    assert saved["shard"] == "" and saved["size"] == 48
    # Merging again on the command line gives the same manifest.
    before = (sharded / MANIFEST).read_text()
    assert main(["preprocess", "--merge", str(sharded)]) == 0
    assert (sharded / MANIFEST).read_text() == before


def test_shards_made_with_other_settings_are_refused(face_video, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):
        shutil.copy(face_video, folder / f"clip{i}.mp4")
    out = tmp_path / "out"
    base = dict(videos=str(folder), out=str(out), frames=6, size=48, min_frames=4)
    preprocess(PreprocessConfig(**base, shard="1/2"), progress=False)
    with pytest.raises(ValueError, match="other settings.*size 48 -> 64"):
        preprocess(PreprocessConfig(**{**base, "size": 64}, shard="2/2"), progress=False)
    # A shard made elsewhere with other settings and copied in is refused at the merge.
    other = tmp_path / "other"
    preprocess(PreprocessConfig(**{**base, "out": str(other), "size": 64}, shard="2/2"), progress=False)
    shutil.copy(other / "shards" / "shard-2-of-2.json", out / "shards")
    with pytest.raises(ValueError, match="shard-2-of-2.json was made with other settings"):
        merge_shards(out)
    assert not (out / MANIFEST).exists()
    assert main(["preprocess", "--merge", str(tmp_path / "nothing")]) == 2
