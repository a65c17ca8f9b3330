"""Reading a full-size DFDC layout: 120,000 entries in 50 part folders of empty placeholder videos.

Times ``read_labels`` (detection and the metadata.json files), then what ``dflib labels`` does on
top: matching every entry with a file on disk, the summary, and assigning train/val/test; last,
the whole command in a new process (imports and writing the CSV included).

    python benchmarks/labels.py                 # 120,000 entries (DFDC's training set has 119,154)
    python benchmarks/labels.py --entries 20000 --keep /tmp/dfdc_tree
"""
from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dflib.config import TrainConfig
from dflib.labelreport import label_report
from dflib.labels import read_labels

PARTS = 50
FAKES_PER_REAL = 5  # DFDC: about 100,000 fakes of 19,154 real videos


def build_tree(root: Path, entries: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    per_part = entries // PARTS
    for part in range(PARTS):
        folder = root / "train" / f"dfdc_train_part_{part}"
        folder.mkdir(parents=True)
        names = [f"{''.join(rng.choices(string.ascii_lowercase, k=10))}.mp4" for _ in range(per_part)]
        reals = names[: per_part // (FAKES_PER_REAL + 1)]
        metadata = {name: {"label": "REAL", "split": "train", "original": None} for name in reals}
        metadata.update({name: {"label": "FAKE", "split": "train", "original": rng.choice(reals)}
                         for name in names[len(reals):]})
        (folder / "metadata.json").write_text(json.dumps(metadata))
        for name in names:
            (folder / name).touch()


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=120_000)
    parser.add_argument("--keep", default="", help="build the tree here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch) / "DFDC"
        if not root.exists():
            _, seconds = timed(lambda: build_tree(root, args.entries))
            print(f"built {args.entries} placeholder videos in {seconds:.1f} s")
        rows, read_s = timed(lambda: read_labels(root))
        report, report_s = timed(lambda: label_report(root))
        text, text_s = timed(report.text)
        split, split_s = timed(lambda: label_report(root, split_config=TrainConfig()))
        print(f"{len(rows)} DFDC entries, {len({row.group for row in rows})} groups")
        print(f"read_labels (detect + read metadata.json):        {read_s:.2f} s")
        print(f"label_report (+ match to disk, one compression):  {report_s:.2f} s")
        print(f"summary text:                                     {text_s:.2f} s")
        print(f"dflib labels --assign-splits (report + split):    {split_s:.2f} s")
        print(f"dflib labels end to end (report + summary):       {report_s + text_s:.2f} s")
        command = [sys.executable, "-m", "dflib", "labels", str(root), "--assign-splits", "--out", str(root / "labels.csv")]
        _, cli_s = timed(lambda: subprocess.run(command, check=True, capture_output=True))
        print(f"a new process: {' '.join(command[1:4])} DFDC --assign-splits --out labels.csv: {cli_s:.2f} s")


if __name__ == "__main__":
    main()
