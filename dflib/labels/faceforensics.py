"""FaceForensics++ and its DeepFakeDetection actors: layout, groups and the official split.

Layout: ``original_sequences/{youtube,actors}/{raw,c23,c40}/videos/`` and
``manipulated_sequences/<method>/<compression>/videos/`` (``masks/`` are not samples).
Groups: a YouTube video ``A`` and the fakes ``A_B`` (target A, face of B) and ``B_A`` share a
group with ``B``, as in the official split. DeepFakeDetection actors recur in every scene and
fakes pair them all, so joining them would make one group: each actor is a person instead
(``actor01``) and a fake ``01_02__scene__HASH`` shows ``actor01+actor02``, kept only in a split
that holds both actors. The official split (``train.json``, ``val.json``, ``test.json``: 360/70/70
id pairs, 720/140/140 videos per method) is read from ``splits/`` or the dataset root, where
DeepfakeBench and SelfBlendedImages keep it, or from a folder given with ``label_splits``.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from dflib.labels.common import (
    GROUP_SEPARATOR,
    SPLIT_NAMES,
    LabelError,
    LabelRow,
    NameInfo,
    Reading,
    children,
    find_videos,
    load_json,
    subfolders,
    union_groups,
)

NAME = "faceforensics"
SOURCE = "FaceForensics++"
ACTORS_SOURCE = "DeepFakeDetection"
NAME_RULE = "NNN.mp4 and TTT_SSS.mp4: a fake joins the group of the ids TTT and SSS"
ACTORS_NAME_RULE = "NN__scene.mp4 and TT_SS__scene__HASH.mp4: the actors NN, TT and SS are the people"
_YOUTUBE = re.compile(r"\d{3}(?:_\d{3})?")
_ACTORS = re.compile(r"(\d{2})(?:_(\d{2}))?__(.+?)(?:__[A-Z0-9]{8})?")
_SPLITS_HELP = "the official train.json, val.json and test.json from github.com/ondyari/FaceForensics (dataset/splits)"


def name_info(stem: str) -> NameInfo | None:
    if _YOUTUBE.fullmatch(stem):
        ids = tuple(stem.split("_"))
        return NameInfo(SOURCE, ids, merge=True, sources=ids)
    actors = _ACTORS.fullmatch(stem)
    if actors:
        target, face, scene = actors.groups()
        people = tuple(f"actor{actor}" for actor in (target, face) if actor)
        return NameInfo(ACTORS_SOURCE, people, sources=(f"{target}__{scene}",))
    return None


def detect(folder: Path) -> bool:
    return bool({"original_sequences", "manipulated_sequences"} & children(folder).keys())


def read(root: Path, splits_dir: Path | None = None) -> Reading:
    found = []  # (filename, label, source, compression, name info)
    for top_name, label in (("original_sequences", "REAL"), ("manipulated_sequences", "FAKE")):
        top = children(root).get(top_name)
        for kind in subfolders(top) if top is not None and top.is_dir() else []:
            for compression in subfolders(kind):
                videos = children(compression).get("videos")
                if compression.name.lower() == "masks" or videos is None or not videos.is_dir():
                    continue
                source = kind.name if label == "FAKE" else f"original/{kind.name}"
                for relative in find_videos(videos):
                    stem = PurePosixPath(relative).stem
                    info = name_info(stem) or NameInfo(SOURCE, (stem,), merge=True)
                    found.append(((videos / relative).relative_to(root).as_posix(), label, source,
                                  compression.name.lower(), info))
    group_of = union_groups([info.keys for *_, info in found if info.merge])

    def group(info: NameInfo) -> str:
        return group_of[info.keys[0]] if info.merge else GROUP_SEPARATOR.join(info.keys)

    reading = Reading([])
    split_of = _official_splits(root, splits_dir, group_of, reading)
    reading.rows = [
        LabelRow(filename, label, group=group(info), source=source, split=split_of.get(group(info), ""),
                 compression=compression)
        for filename, label, source, compression, info in found
    ]
    actors = {key for *_, info in found if info.dataset == ACTORS_SOURCE for key in info.keys}
    if actors:
        reading.notes.append(
            f"DeepFakeDetection: {len(actors)} actors are the people; a fake showing two actors is used only"
            " where both are, so no actor is in two splits"
        )
    return reading


def _split_files(root: Path, splits_dir: Path | None) -> dict[str, Path]:
    if splits_dir is not None:
        found = {split: path for split in SPLIT_NAMES if (path := children(splits_dir).get(f"{split}.json"))}
        if not found:
            raise LabelError(f"{splits_dir}: no train.json, val.json or test.json here ({_SPLITS_HELP})",
                             option="label_splits")
        return found
    for folder in (children(root).get("splits"), root):
        found = {split: path for split in SPLIT_NAMES if folder and (path := children(folder).get(f"{split}.json"))}
        if found:
            return found
    return {}


def _official_splits(root: Path, splits_dir: Path | None, group_of: dict[str, str], reading: Reading) -> dict[str, str]:
    """Split per group from the official lists of id pairs; what is missing is said loudly."""
    files = _split_files(root, splits_dir)
    youtube = [key for key in group_of if _YOUTUBE.fullmatch(key)]
    if not files:
        if youtube:
            reading.warnings.append(
                f"{root}: this FaceForensics++ tree has no split files (splits/*.json, or train.json, val.json and"
                f" test.json at its root): the split will be dflib's random group-aware one, NOT the official"
                f" 720/140/140 per method, and results cannot be compared with published ones; add {_SPLITS_HELP}"
            )
        return {}
    split_of: dict[str, str] = {}
    where: dict[str, Path] = {}
    absent = {}
    for split, path in files.items():
        pairs = load_json(path)
        if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and all(isinstance(item, str) for item in pair) for pair in pairs
        ):
            raise LabelError(f"{path}: expected a JSON list of id pairs like [[\"000\", \"003\"], ...]")
        ids = [video_id for pair in pairs for video_id in pair]
        absent[split] = sum(video_id not in group_of for video_id in ids)
        for video_id in ids:
            group = group_of.get(video_id, video_id)
            if split_of.setdefault(group, split) != split:
                raise LabelError(f"{path}: id {video_id} is also in {where[group]}; a group must stay in one split")
            where[group] = path
    reading.notes.append(f"FaceForensics++: official split from {', '.join(str(path) for path in files.values())}")
    missing = {split: count for split, count in absent.items() if count}
    if missing:
        reading.warnings.append(
            "FaceForensics++: ids listed in the official split have no video here ("
            + ", ".join(f"{split} {count}" for split, count in missing.items()) + "): those splits are incomplete"
        )
    return split_of
