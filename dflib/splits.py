"""Train/val/test splits that never put one group (person, source video) on both sides.

A random split per video lets the same face, or a fake and its original, leak from training
into validation and inflate every metric; here whole groups are assigned, stratified by label.
A group ``a+b`` (a face swap showing a and b) deals a and b each to a split, and the video is
used only where both are. A predefined split is kept exactly as given and never extended: a published
test list stays exactly the published test set, and the other videos go to train and val.
"""
from __future__ import annotations

import csv
import io
import os
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dflib.io import atomic_write_text
from dflib.labels import SPLIT_NAMES, LabelError, LabelRow, name_info

LABEL_NAMES = ("REAL", "FAKE")
TEST_OVERLAPS = ("keep", "source", "person")


@dataclass
class SplitPlan:
    """``splits``: filename -> train/val/test for every video used; ``left_out``: filename -> why not."""

    splits: dict[str, str]
    left_out: dict[str, str]


@dataclass
class Overlap:
    """What videos outside a predefined test split share with it (allowed by e.g. Celeb-DF's protocol)."""

    people: int  # groups (people, pairs of source ids) with videos on both sides
    sources: int  # real source videos with videos on both sides
    videos_sharing_source: int
    videos_sharing_person: int  # a person or a source video

    def text(self) -> str:
        return (
            f"{self.videos_sharing_person} videos outside the test split share a person or a source video with it"
            f" ({self.people} people or groups and {self.sources} source videos on both sides;"
            f" {self.videos_sharing_source} of the videos share a source video)"
        )


def split_options(cfg) -> dict:
    """The splitter's settings from a ``TrainConfig``: training and ``dflib labels`` split alike."""
    return {"val_fraction": cfg.val_fraction, "test_fraction": cfg.test_fraction, "seed": cfg.seed,
            "test_overlap": cfg.test_overlap}


def assign_splits(
    rows: list[LabelRow], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 42,
    test_overlap: str = "keep",
) -> dict[str, str]:
    """Map each filename to train/val/test (see ``plan_splits``); videos left out are not in it, with a warning."""
    plan = plan_splits(rows, val_fraction, test_fraction, seed, test_overlap)
    if plan.left_out:
        reasons = Counter(plan.left_out.values())
        warnings.warn(f"{len(plan.left_out)} video(s) are in no split: "
                      + "; ".join(f"{count} {reason}" for reason, count in reasons.most_common()), stacklevel=2)
    return plan.splits


def plan_splits(
    rows: list[LabelRow], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 42,
    test_overlap: str = "keep",
) -> SplitPlan:
    """Split keeping groups whole and predefined splits exactly as given.

    Videos with a predefined split stay there; a predefined test split is closed (nothing is
    added to it), so the other videos are dealt to train and val in the ratio of their fractions.
    Group keys are dealt per majority label and source, largest first, each to the split furthest
    below its share of those videos, so each split gets about its fraction, both labels and every source. When a
    label has too few groups to reach every split, train, then val, then test get one group each
    where another split can spare it; what stays empty is reported in a warning. With
    ``test_overlap`` ``source`` (or ``person``), videos sharing a source video (or also a person)
    with a predefined test video are left out.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 and sum below 1"
        )
    if test_overlap not in TEST_OVERLAPS:
        raise LabelError(f"test overlap must be one of {', '.join(TEST_OVERLAPS)}, not {test_overlap!r}",
                         option="test_overlap")
    seen = set()
    for row in rows:
        if row.filename in seen:
            raise ValueError(f"{row.filename} appears in more than one row; each video needs one label row")
        seen.add(row.filename)
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    closed = {row.split for row in rows if row.split == "test"}
    left_out = {}
    if test_overlap != "keep":
        reason = f"share a {'source video' if test_overlap == 'source' else 'person or source video'} with a test video"
        left_out = dict.fromkeys(_sharing_with_test(rows, test_overlap == "person"), reason)
    used = [row for row in rows if row.filename not in left_out]
    open_splits = [split for split in SPLIT_NAMES if fractions[split] > 0 and split not in closed]
    open_total = sum(fractions[split] for split in open_splits)
    shares = {split: fractions[split] / open_total for split in open_splits}
    free = [row for row in used if not row.split]
    keys_of = {row.filename: row.group_keys() for row in free}
    units: dict[str, list[LabelRow]] = {}
    for row in free:
        for key in keys_of[row.filename]:
            units.setdefault(key, []).append(row)
    # A video showing k keys counts 1/k for each, so the units' weights add up to the number of videos.
    weight = {key: sum(1 / len(keys_of[row.filename]) for row in members) for key, members in units.items()}
    strata: dict[tuple[str, str], list[str]] = {}
    for key, members in sorted(units.items()):
        strata.setdefault(_stratum(members, keys_of), []).append(key)
    given = Counter((row.label, row.source, row.split) for row in used if row.split and row.split in open_splits)

    rng = random.Random(seed)
    key_split: dict[str, str] = {}
    for (label, source), keys in sorted(strata.items(), key=lambda item: (LABEL_NAMES.index(item[0][0]), item[0][1])):
        filled = Counter({split: given[(label, source, split)] for split in open_splits})
        total = sum(weight[key] for key in keys) + sum(filled.values())
        rng.shuffle(keys)
        keys.sort(key=lambda key: -weight[key])  # stable: random order among equal sizes
        dealt: dict[str, list[str]] = {split: [] for split in open_splits}
        for key in keys:
            split = max(open_splits, key=lambda s: shares[s] * total - filled[s])
            key_split[key] = split
            filled[split] += weight[key]
            dealt[split].append(key)
        _reach_every_split(dealt, open_splits, keys, key_split, weight)

    mapping = {row.filename: row.split for row in used if row.split}
    for row in free:
        splits = {key_split[key] for key in keys_of[row.filename]}
        if len(splits) == 1:
            mapping[row.filename] = splits.pop()
        else:
            left_out[row.filename] = "show people dealt to different splits (a group a+b)"
    checked = [split for split in SPLIT_NAMES if fractions[split] > 0 or split in closed]
    problems = _coverage_problems([row for row in rows if row.filename in mapping], mapping, checked)
    if problems:
        warnings.warn(f"too few groups ({len(units)}) for a full split: {'; '.join(problems)}", stacklevel=3)
    return SplitPlan(mapping, left_out)


def overlap_with_test(rows: list[LabelRow]) -> Overlap | None:
    """What the videos outside a predefined test split share with it; None without such a split."""
    test = [row for row in rows if row.split == "test"]
    others = [row for row in rows if row.split != "test"]
    if not test or not others:
        return None
    test_people = {key for row in test for key in row.group_keys()}
    test_sources = {source for row in test for source in _sources(row)}
    return Overlap(
        people=len(test_people & {key for row in others for key in row.group_keys()}),
        sources=len(test_sources & {source for row in others for source in _sources(row)}),
        videos_sharing_source=len(_sharing_with_test(rows, people=False)),
        videos_sharing_person=len(_sharing_with_test(rows, people=True)),
    )


def _sources(row: LabelRow) -> tuple[str, ...]:
    """The real videos a video was made from: by its dataset's naming rule, else its group."""
    info = name_info(row.filename)
    return info.sources if info is not None and info.sources else row.group_keys()


def _sharing_with_test(rows: list[LabelRow], people: bool) -> list[str]:
    """Videos outside the test split that share a source video (or, with ``people``, also a group key) with it."""
    test = [row for row in rows if row.split == "test"]
    sources = {source for row in test for source in _sources(row)}
    keys = {key for row in test for key in row.group_keys()} if people else set()
    return [
        row.filename for row in rows
        if row.split != "test" and (sources.intersection(_sources(row)) or keys.intersection(row.group_keys()))
    ]


def _stratum(members: list[LabelRow], keys_of: dict[str, tuple[str, ...]]) -> tuple[str, str]:
    """(majority label, main source of that label): each stratum gets its share of every split, so a
    dataset of a few large groups (Celeb-DF's celebrities) is not all dealt to train before the rest."""
    votes: dict[tuple[str, str], float] = {}
    for row in members:
        vote = (row.label, row.source)
        votes[vote] = votes.get(vote, 0) + 1 / len(keys_of[row.filename])
    fakes = sum(count for (label, _), count in votes.items() if label == "FAKE")
    label = "FAKE" if 2 * fakes >= sum(votes.values()) else "REAL"
    return min(((label, source) for lab, source in votes if lab == label), key=lambda item: (-votes[item], item[1]))


def _reach_every_split(
    dealt: dict[str, list[str]],
    wanted: list[str],
    keys: list[str],
    key_split: dict[str, str],
    weight: dict[str, float],
) -> None:
    """Give each split one group of this label when proportions left it none and another can spare one.

    Train comes first and may take a split's only group; val and test only take from a split
    that keeps one, so a tiny dataset still trains and validates before it tests.
    """
    for split in wanted:
        if any(key_split[key] == split for key in keys):
            continue
        donor = max(wanted, key=lambda s: len(dealt[s]))
        if len(dealt[donor]) < (1 if split == "train" else 2):
            continue
        moved = min(reversed(dealt[donor]), key=lambda key: weight[key])
        dealt[donor].remove(moved)
        dealt[split].append(moved)
        key_split[moved] = split


def _coverage_problems(rows: list[LabelRow], mapping: dict[str, str], wanted: list[str]) -> list[str]:
    present = Counter(row.label for row in rows)
    by_split = {split: Counter() for split in SPLIT_NAMES}
    for row in rows:
        by_split[mapping[row.filename]][row.label] += 1
    problems = []
    for split in wanted:
        if not by_split[split]:
            problems.append(f"{split} is empty")
            continue
        lacking = [label for label in LABEL_NAMES if present[label] and not by_split[split][label]]
        if lacking:
            problems.append(f"{split} has no {' or '.join(lacking)} videos")
    return problems


def save_splits(mapping: dict[str, str], path: str | os.PathLike) -> Path:
    """Write ``filename,split`` atomically, so a resumed run reuses exactly the same split."""
    for filename, split in mapping.items():
        if split not in SPLIT_NAMES:
            raise ValueError(f"{filename}: split must be one of {', '.join(SPLIT_NAMES)}, not {split!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filename", "split"])
    writer.writerows(sorted(mapping.items()))
    return atomic_write_text(path, buffer.getvalue())


def load_splits(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    if not lines or [cell.strip().lower() for cell in lines[0]] != ["filename", "split"]:
        raise LabelError(f"{path}: line 1: expected the header 'filename,split'")
    mapping = {}
    for number, cells in enumerate(lines[1:], 2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != 2 or cells[1].strip() not in SPLIT_NAMES:
            raise LabelError(f"{path}: line {number}: expected 'filename,train|val|test', got {','.join(cells)!r}")
        filename = cells[0].strip()
        if mapping.setdefault(filename, cells[1].strip()) != cells[1].strip():
            raise LabelError(f"{path}: line {number}: {filename} is already in split {mapping[filename]}")
    return mapping


def class_balance(rows: list[LabelRow]) -> dict:
    """Label counts and loss weights that make each class weigh the same in training.

    ``weights`` are inverse class frequencies averaging 1 over the classes present (a class
    with no videos gets 1.0; it never reaches the loss). ``pos_weight`` is REAL/FAKE, the
    form ``torch.nn.BCEWithLogitsLoss`` takes for FAKE=1.
    """
    counts = Counter(row.label for row in rows)
    counts = {label: counts[label] for label in LABEL_NAMES}
    inverse = {label: 1 / count for label, count in counts.items() if count}
    mean_inverse = sum(inverse.values()) / len(inverse) if inverse else 1.0
    weights = {label: inverse[label] / mean_inverse if label in inverse else 1.0 for label in LABEL_NAMES}
    total = sum(counts.values())
    return {
        "counts": counts,
        "fake_fraction": counts["FAKE"] / total if total else 0.0,
        "weights": weights,
        "pos_weight": counts["REAL"] / counts["FAKE"] if counts["REAL"] and counts["FAKE"] else 1.0,
    }
