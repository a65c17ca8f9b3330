"""Train/val/test splits that never put one group (person, source video) on both sides.

A random split per video lets the same face, or a fake and its original, leak from training
into validation and inflate every metric; here whole groups are assigned, stratified by label.
"""
from __future__ import annotations

import csv
import io
import os
import random
import warnings
from collections import Counter
from pathlib import Path

from dflib.io import atomic_write_text
from dflib.labels import SPLIT_NAMES, LabelError, LabelRow

LABEL_NAMES = ("REAL", "FAKE")


def assign_splits(
    rows: list[LabelRow], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 42
) -> dict[str, str]:
    """Map each filename to train/val/test, keeping groups whole and predefined splits as given.

    A group with a predefined split on any member goes there entirely. The other groups are
    dealt out per majority label, largest first, each to the split furthest below its share of
    that label's videos (fractions of all videos, predefined ones included), so each split gets
    about its fraction and both labels. When a label has too few groups to reach every split,
    train, then val, then test get one group each where another split can spare it; what
    stays empty is reported in a warning.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 and sum below 1"
        )
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    wanted = [split for split in SPLIT_NAMES if fractions[split] > 0]
    groups: dict[str, list[LabelRow]] = {}
    seen = set()
    for row in rows:
        if row.filename in seen:
            raise ValueError(f"{row.filename} appears in more than one row; each video needs one label row")
        seen.add(row.filename)
        groups.setdefault(row.group_key(), []).append(row)

    group_split, inherited = _predefined(groups)
    if inherited:
        counts = ", ".join(f"{split} {count}" for split, count in sorted(inherited.items()))
        warnings.warn(
            f"videos without a split joined the predefined split of their group ({counts})", stacklevel=2
        )

    rng = random.Random(seed)
    for label in LABEL_NAMES:
        keys = sorted(key for key, members in groups.items() if _majority(members) == label)
        total = sum(len(groups[key]) for key in keys)
        filled = Counter({split: 0 for split in SPLIT_NAMES})
        for key in keys:
            if key in group_split:
                filled[group_split[key]] += len(groups[key])
        free = [key for key in keys if key not in group_split]
        rng.shuffle(free)
        free.sort(key=lambda key: -len(groups[key]))  # stable: random order among equal sizes
        dealt: dict[str, list[str]] = {split: [] for split in SPLIT_NAMES}
        for key in free:
            split = max(wanted, key=lambda s: fractions[s] * total - filled[s])
            group_split[key] = split
            filled[split] += len(groups[key])
            dealt[split].append(key)
        _reach_every_split(dealt, wanted, keys, group_split, groups)

    mapping = {row.filename: group_split[row.group_key()] for row in rows}
    problems = _coverage_problems(rows, mapping, wanted)
    if problems:
        warnings.warn(f"too few groups ({len(groups)}) for a full split: {'; '.join(problems)}", stacklevel=2)
    return mapping


def _predefined(groups: dict[str, list[LabelRow]]) -> tuple[dict[str, str], Counter]:
    """Splits fixed by the rows themselves, and how many unsplit videos follow their group there."""
    group_split: dict[str, str] = {}
    inherited: Counter = Counter()
    for key, members in groups.items():
        given = sorted({row.split for row in members if row.split})
        if len(given) > 1:
            raise ValueError(
                f"group {key!r} has videos predefined in {' and '.join(given)}; a group must stay in one split"
            )
        if given:
            group_split[key] = given[0]
            inherited[given[0]] += sum(1 for row in members if not row.split)
    return group_split, +inherited


def _majority(members: list[LabelRow]) -> str:
    fakes = sum(row.label == "FAKE" for row in members)
    return "FAKE" if 2 * fakes >= len(members) else "REAL"


def _reach_every_split(
    dealt: dict[str, list[str]],
    wanted: list[str],
    keys: list[str],
    group_split: dict[str, str],
    groups: dict[str, list[LabelRow]],
) -> None:
    """Give each split one group of this label when proportions left it none and another can spare one.

    Train comes first and may take a split's only group; val and test only take from a split
    that keeps one, so a tiny dataset still trains and validates before it tests.
    """
    for split in wanted:
        if any(group_split[key] == split for key in keys):
            continue
        donor = max(SPLIT_NAMES, key=lambda s: len(dealt[s]))
        if len(dealt[donor]) < (1 if split == "train" else 2):
            continue
        moved = min(reversed(dealt[donor]), key=lambda key: len(groups[key]))
        dealt[donor].remove(moved)
        dealt[split].append(moved)
        group_split[moved] = split


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
