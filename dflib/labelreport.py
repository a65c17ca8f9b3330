"""What a label source holds, checked against the disk: counts, and what was inferred or left out.

``label_report`` is what ``dflib labels`` prints and writes: only videos that are on disk are
counted, other compressions are counted apart, and with a ``TrainConfig`` it shows the exact
train/val/test split that ``dflib train`` would make, per split, label and source.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dflib.labels import csvfile
from dflib.labels.common import SPLIT_NAMES, LabelRow, match_videos
from dflib.labels.registry import read_dataset, select_compression

if TYPE_CHECKING:
    from dflib.splits import Overlap

_EXAMPLES = 3


@dataclass
class LabelReport:
    source: Path
    format: str
    rows: list[LabelRow]  # labelled videos used: on disk (when checked), of the compression used
    missing: list[str] = field(default_factory=list)  # listed but not on disk
    unlabeled: list[str] = field(default_factory=list)  # on disk without a label
    other_compressions: list[LabelRow] = field(default_factory=list)
    compression: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # filename -> why the split leaves it out
    overlap: Overlap | None = None  # what the rows outside a predefined test split share with it

    def kept(self) -> list[LabelRow]:
        """The rows a split holds (all of them when no split was assigned): what ``--out`` writes."""
        return [row for row in self.rows if row.filename not in self.left_out]

    def text(self) -> str:
        assigned = any(row.split for row in self.rows) and (self.left_out or all(row.split for row in self.rows))
        by = ("source", "compression") if assigned else ("source", "compression", "split")
        lines = [f"{self.source} (read as {self.format})", summarize(self.rows, by)]
        if self.other_compressions or self.compression:
            lines += ["", _compression_table(self)]
        if assigned:
            lines += ["", "by split, label and source", split_table(self.rows, self.left_out)]
        remarks = self.remarks()
        return "\n".join(lines + ([""] + remarks if remarks else []))

    def remarks(self) -> list[str]:
        """Warnings (what makes results incomparable with published ones), then notes (what was inferred)."""
        remarks = [f"warning: {text}" for text in self.warnings]
        if self.missing:
            remarks.append(f"warning: {len(self.missing)} listed video(s) are not on disk and are left out of every"
                           f" count and split: {_examples(self.missing)}")
        remarks += [f"note: {text}" for text in self.notes]
        if self.unlabeled:
            remarks.append(f"note: {len(self.unlabeled)} video(s) on disk have no label: {_examples(self.unlabeled)}")
        if self.overlap is not None and self.overlap.videos_sharing_person:
            remarks.append(f"note: {self.overlap.text()}; test overlap 'source' or 'person' leaves them out of training")
        for reason, count in Counter(self.left_out.values()).most_common():
            remarks.append(f"note: {count} video(s) are in no split: they {reason}")
        return remarks


def label_report(
    source: str | os.PathLike, videos_dir: str | os.PathLike | None = None, fmt: str = "", compression: str = "auto",
    splits_dir: str | os.PathLike | None = None, split_config=None,
) -> LabelReport:
    """Read ``source``, keep the videos on disk and of one compression, and split them like training would.

    A CSV is checked against the disk only when ``videos_dir`` is given; a dataset layout always is.
    ``split_config`` (a ``TrainConfig``) assigns train/val/test as ``dflib train`` does.
    """
    fmt, reading = read_dataset(source, videos_dir, fmt, splits_dir)
    rows, others, used = select_compression(reading.rows, compression)
    report = LabelReport(Path(source), fmt, rows, other_compressions=others, compression=used,
                         notes=reading.notes, warnings=reading.warnings)
    root = Path(source) if Path(source).is_dir() else Path(source).parent
    check = Path(videos_dir) if videos_dir else (root if fmt != csvfile.NAME else None)
    if check is None:
        report.notes.append("the files were not checked against the disk: give the videos folder to check them")
    else:
        report.rows, report.missing, unlabeled = match_videos(rows, check)
        other_names = {row.filename for row in others}
        report.unlabeled = [name for name in unlabeled if name not in other_names]
    from dflib.splits import overlap_with_test, plan_splits, split_options

    report.overlap = overlap_with_test(report.rows)
    if split_config is not None:
        plan = plan_splits(report.rows, **split_options(split_config))
        for row in report.rows:  # rows this call made: set in place, 120,000 copies cost seconds
            row.split = plan.splits.get(row.filename, "")
        report.left_out = plan.left_out
    return report


def summary_frame(rows: list[LabelRow]):
    """Counts of REAL/FAKE overall, per source, compression and split, as a pandas DataFrame for notebooks."""
    import pandas as pd

    records = [(by, value, real, fake, real + fake, round(100 * fake / (real + fake), 1))
               for by in ("all", "source", "compression", "split") for value, real, fake in _label_counts(rows, by)]
    frame = pd.DataFrame.from_records(records, columns=["by", "value", "REAL", "FAKE", "total", "% FAKE"])
    return frame.set_index(["by", "value"])


def split_table(rows: list[LabelRow], left_out: dict[str, str] | None = None) -> str:
    """Videos per source (lines) and split x label (columns), with the videos no split holds."""
    left_out = left_out or {}
    counts: dict[str, Counter] = {}
    for row in rows:
        column = ("in no split", "") if row.filename in left_out else (row.split or "(unassigned)", row.label)
        counts.setdefault(row.source or "(none)", Counter())[column] += 1
    present = {column for counter in counts.values() for column in counter}
    splits = [split for split in (*SPLIT_NAMES, "(unassigned)") if any(column[0] == split for column in present)]
    columns = [(split, label) for split in splits for label in ("REAL", "FAKE")] + (
        [("in no split", "")] if left_out else [])
    counts["all"] = sum(counts.values(), Counter())
    width = max(len(source) for source in counts)
    widths = [6 if label else len("in no split") for _, label in columns]
    header = "".join(f"  {split:<13}" for split in splits) + ("  in no split" if left_out else "")
    labels = "".join(f" {label:>6}" for _, label in columns if label)
    lines = [(" " * width + header).rstrip(), " " * width + labels]
    for source, counter in counts.items():
        lines.append(f"{source:<{width}}" + "".join(f" {counter[c]:>{w}}" for c, w in zip(columns, widths)))
    return "\n".join(lines)


def summarize(rows: list[LabelRow], by: tuple[str, ...] = ("source", "compression", "split")) -> str:
    """A plain-text table of the label counts (``by`` these columns), for the CLI and for logs."""
    if not rows:
        return "0 videos"
    fakes = sum(row.label == "FAKE" for row in rows)
    groups = len({row.group_key() for row in rows})
    lines = [f"{len(rows)} videos in {groups} groups: {len(rows) - fakes} REAL, {fakes} FAKE "
             f"({100 * fakes / len(rows):.1f}% FAKE)"]
    for column in by:
        counts = _label_counts(rows, column)
        if not counts or (column == "compression" and len(counts) < 2):
            continue
        width = max(len(f"by {column}"), *(len(value) for value, _, _ in counts))
        lines += ["", f"{'by ' + column:<{width}}  {'REAL':>6}  {'FAKE':>6}  {'total':>6}  {'% FAKE':>6}"]
        lines += [f"{value:<{width}}  {real:>6}  {fake:>6}  {real + fake:>6}  {100 * fake / (real + fake):>6.1f}"
                  for value, real, fake in counts]
    return "\n".join(lines)


def _label_counts(rows: list[LabelRow], by: str) -> list[tuple[str, int, int]]:
    """(value, REAL, FAKE) for each value of a column; none for ``compression`` when no row has one."""
    if by == "compression" and not any(row.compression for row in rows):
        return []
    empty = {"source": "(none)", "split": "(unassigned)", "compression": "(none)"}
    counts: dict[str, list[int]] = {}
    for row in rows:
        value = "all videos" if by == "all" else getattr(row, by) or empty[by]
        counts.setdefault(value, [0, 0])[row.label == "FAKE"] += 1
    order = [s for s in (*SPLIT_NAMES, "(unassigned)") if s in counts] if by == "split" else sorted(counts)
    return [(value, *counts[value]) for value in order]


def _compression_table(report: LabelReport) -> str:
    counts: dict[str, int] = {}
    for row in report.rows + report.other_compressions:
        counts[row.compression or "(none)"] = counts.get(row.compression or "(none)", 0) + 1
    lines = ["videos per compression (found; only the one used is counted above)"]
    for name, count in sorted(counts.items()):
        used = "used" if name in (report.compression, "(none)") or report.compression == "all" else "not used"
        lines.append(f"  {name:<8} {count:>7}  {used}")
    return "\n".join(lines)


def _examples(names: list[str]) -> str:
    return ", ".join(names[:_EXAMPLES]) + (", ..." if len(names) > _EXAMPLES else "")
