"""Trees of empty placeholder videos with the real names of the public datasets.

The names, labels and official splits come from the files in ``../shared/datasets`` (see its
PROVENANCE.md); tests that use them skip when that folder is absent.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

SHARED_DATASETS = Path(os.environ.get("DFLIB_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
FF_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
SPLITS = ("train", "val", "test")


def shared(relative: str) -> Path:
    path = SHARED_DATASETS / relative
    if not path.is_file():
        pytest.skip(f"{path} not found (the public datasets' label files, see ../shared/datasets)")
    return path


def touch(root: Path, names) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def ff_pairs() -> dict[str, list[list[str]]]:
    return {split: json.loads(shared(f"faceforensics/{split}.json").read_text()) for split in SPLITS}


def actor_originals() -> list[str]:
    return shared("faceforensics/deepfakedetection_actor_originals.txt").read_text().split()


def actor_fakes(originals: list[str]) -> list[str]:
    """Fakes ``TT_SS__scene__HASH8``: each original with the faces of the next two actors (the real
    dataset pairs actors the same way, many partners per actor, so joining actors makes one group)."""
    actors = sorted({name.split("__")[0] for name in originals})
    fakes = []
    for number, name in enumerate(originals):
        target, scene = name[:-4].split("__")
        position = actors.index(target)
        for step in (1, 2):
            face = actors[(position + step) % len(actors)]
            fakes.append(f"{target}_{face}__{scene}__{number:04d}ABCD.mp4")
    return fakes


def faceforensics_tree(root: Path, compressions=("c23",), split_files: str = "root", actors: bool = True) -> Path:
    """original_sequences and manipulated_sequences as downloaded; split files at the root (DeepfakeBench,
    SelfBlendedImages), in ``splits/`` (the FaceForensics++ repository), or none."""
    pairs = ff_pairs()
    ids = sorted(video_id for split in pairs.values() for pair in split for video_id in pair)
    fakes = [f"{a}_{b}.mp4" for split in pairs.values() for x, y in split for a, b in ((x, y), (y, x))]
    originals = actor_originals()
    for compression in compressions:
        touch(root / "original_sequences" / "youtube" / compression / "videos", [f"{i}.mp4" for i in ids])
        for method in FF_METHODS:
            touch(root / "manipulated_sequences" / method / compression / "videos", fakes)
        if actors:
            touch(root / "original_sequences" / "actors" / compression / "videos", originals)
            touch(root / "manipulated_sequences" / "DeepFakeDetection" / compression / "videos", actor_fakes(originals))
    touch(root / "manipulated_sequences" / "Deepfakes" / "masks" / "videos", fakes[:10])
    if split_files != "none":
        target = root / "splits" if split_files == "splits" else root
        target.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            shutil.copy(shared(f"faceforensics/{split}.json"), target / f"{split}.json")
    return root


def celebdf_names() -> tuple[list[str], list[str]]:
    """(Celeb-real, Celeb-synthesis) file names, from the original design's label file that lists them all."""
    names = [line.split(",")[0] for line in shared("original_design/Gobal_metadata.csv").read_text().splitlines()]
    real = [name for name in names if re.fullmatch(r"id\d+_\d{4}\.mp4", name)]
    fake = [name for name in names if re.fullmatch(r"id\d+_id\d+_\d{4}\.mp4", name)]
    return real, fake


def celebdf_tree(root: Path, subfolder: str = "", youtube: str | None = "YouTube-real") -> Path:
    """Celeb-DF v2 (590 Celeb-real, 300 YouTube-real, 5,639 Celeb-synthesis) and its official test list;
    ``subfolder="videos"`` is the SelfBlendedImages/DeepfakeBench layout, ``youtube`` the folder's
    spelling (None: not downloaded)."""
    real, fake = celebdf_names()
    touch(root / "Celeb-real" / subfolder, real)
    touch(root / "Celeb-synthesis" / subfolder, fake)
    if youtube:
        touch(root / youtube / subfolder, [f"{i:05d}.mp4" for i in range(300)])
    shutil.copy(shared("celebdf/List_of_testing_videos.txt"), root / "List_of_testing_videos.txt")
    return root


def dfdc_metadata() -> dict:
    return json.loads(shared("dfdc/train_sample_videos_metadata.json").read_text())


def dfdc_sample_tree(root: Path, folder: str = "train_sample_videos") -> Path:
    """Kaggle's ``train_sample_videos/`` with its metadata.json, or the same part at another depth."""
    metadata = dfdc_metadata()
    touch(root / folder, metadata)
    shutil.copy(shared("dfdc/train_sample_videos_metadata.json"), root / folder / "metadata.json")
    return root
