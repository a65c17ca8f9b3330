"""Training: crop files in, a run folder of checkpoints, splits and history out.

One function, ``train``, serves the notebook, the CLI and ``torchrun``: with WORLD_SIZE > 1 in the
environment it runs as one DistributedDataParallel process per device. A run killed at any point
resumes from ``last.pt`` onto the same path an uninterrupted run takes: every random choice is
either drawn from (seed, epoch, clip) or from RNG state saved in the checkpoint.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm.auto import tqdm

from dflib.checkpoint import NORMALIZATION, CheckpointError, load_checkpoint, load_model, load_weights, save_checkpoint
from dflib.config import LABELS, ModelConfig, TrainConfig, from_dict, save_json, to_dict
from dflib.data import (
    PREPROCESS_CONFIG,
    SPLITS_FILE,
    ClipRow,
    VideoClipDataset,
    class_weights,
    collate_clips,
    expected_class_counts,
    make_splits,
    read_manifest,
)
from dflib.image import is_image
from dflib.io import atomic_write_text, clean_partial_files
from dflib.models import freeze_batchnorm_statistics, model_from_config, resolve_device
from dflib.precision import NAMES as PRECISION_NAMES
from dflib.precision import autocast_dtype, describe

log = logging.getLogger(__name__)

# Fields a resumed run takes from the caller: where the data is now, and how long to go on.
# Everything else comes from the checkpoint, so the resumed run trains the model it started.
RESUME_OVERRIDES = ("data", "epochs", "patience", "workers", "device")
RUN_FILES = ("last.pt", "best.pt", "config.json", "history.json", "history.csv", SPLITS_FILE)
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "seconds")


@dataclass
class _Process:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def train(
    cfg: TrainConfig | None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Train into ``cfg.out`` (the run folder) or continue the run at ``resume`` (a run folder or last.pt).

    On resume the saved config wins; only RESUME_OVERRIDES are taken from ``cfg``, and only where
    they differ from both the saved value and the default (so flags left at their defaults do not
    undo the run's settings). ``on_epoch_end(history)`` runs after each epoch on the main process.
    Returns {"history", "run_dir", "last", "best", "best_metric", "best_epoch", "monitor", "stopped_early"}.
    """
    proc = _start_process_group(cfg.device if cfg is not None else "auto")
    try:
        return _train(cfg, resume, progress, on_epoch_end, proc)
    finally:
        if proc.started_group:
            dist.destroy_process_group()


def _start_process_group(device: str) -> _Process:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Process()
    proc = _Process(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(proc.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
        proc.started_group = True
    return proc


def _device(name: str, proc: _Process) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", proc.local_rank)
    return device


def _train(cfg, resume, progress, on_epoch_end, proc: _Process) -> dict:
    cfg, run_dir, ckpt = _open_run(cfg, resume)
    initial = load_model(cfg.init) if cfg.init and ckpt is None else None
    if initial is not None:
        # The run trains the model it starts from: its config is the one recorded.
        cfg = dataclasses.replace(cfg, model=from_dict(ModelConfig, initial[1]["model_config"]))
    if proc.main:
        clean_partial_files(run_dir, RUN_FILES)  # half-written temporaries of a run killed while saving
    data_dir = Path(cfg.data)
    show = progress and proc.main
    # Each process its own stream (dropout masks, init before DDP copies rank 0's weights); data
    # randomness is keyed on (seed, epoch, clip, draw) and does not depend on it.
    _seed_everything(cfg.seed + proc.rank)
    device = _device(cfg.device, proc)
    rows = _tracks_trained_on(read_manifest(data_dir), cfg)
    splits = _splits(rows, cfg, run_dir, ckpt, proc)
    train_set, val_set, sampler, loss_weights = _datasets(rows, splits, cfg, device, proc, show)
    loader_options = dict(
        batch_size=cfg.batch_size, num_workers=cfg.workers, pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init, collate_fn=collate_clips,
    )
    train_loader = DataLoader(train_set, sampler=sampler, **loader_options)
    # Each process validates its own share, without the padding DistributedSampler would add.
    val_loader = DataLoader(Subset(val_set, range(proc.rank, len(val_set), proc.world)), **loader_options)

    if initial is not None:
        model = initial[0].train()
    elif ckpt is None:
        model = model_from_config(cfg.model)
    else:
        model = model_from_config(dataclasses.replace(cfg.model, pretrained="none"))
        load_weights(model, ckpt["model_state"], str(resume))
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net = model
    if proc.world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if cfg.freeze_trunk:
        model.trunk.requires_grad_(False)
    optimizer = _optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg, steps_per_epoch))
    amp_dtype = autocast_dtype(device) if cfg.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if proc.main:
        log.info(describe(device, amp_dtype))
        if show:
            tqdm.write(describe(device, amp_dtype))

    history: list[dict] = []
    monitor = "val_auc" if len(set(val_set.labels)) == 2 else "val_loss"
    if monitor == "val_loss":
        warnings.warn("validation holds one class only: AUC is undefined, best.pt is chosen on validation loss")
    best_metric, best_loss, best_epoch, start_epoch = None, None, 0, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        if ckpt["scaler_state"] is not None and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler_state"])
        history = list(ckpt["history"])
        start_epoch, best_metric, best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
        best_loss = ckpt.get("best_val_loss")
        _restore_rng(ckpt["rng_state"], proc)
    # A resumed run keeps describing the crops it was trained on, even if DATA changed since.
    preprocess = ckpt["preprocess"] if ckpt is not None else _preprocess_config(data_dir)
    if proc.main:
        save_json(cfg, run_dir / "config.json")

    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.patience and best_epoch and epoch - best_epoch >= cfg.patience:
            stopped_early = True
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # at the epoch's first step; the schedule moves per step
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        train_stats = _train_epoch(
            net, train_loader, optimizer, scheduler, scaler, loss_weights, cfg, device, amp_dtype, proc,
            desc=f"epoch {epoch + 1}/{cfg.epochs}", show=show,
        )
        _sync_buffers(model, proc)
        val_stats = _validate(model, val_loader, loss_weights, device, amp_dtype, proc, show)
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            **train_stats,
            **val_stats,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        improved = _improved(record, monitor, best_metric, best_loss)
        if improved:
            best_metric, best_loss, best_epoch = record[monitor], record["val_loss"], epoch + 1
        rng_states = _gather_rng_states(proc)
        if proc.main:
            state = {
                "model_state": model.state_dict(),
                "model_config": to_dict(model.config),
                "train_config": to_dict(cfg),
                "label_map": dict(LABELS),
                "frames": cfg.frames,
                "size": cfg.size,
                "normalization": NORMALIZATION,
                "preprocess": preprocess,
                "epoch": epoch + 1,
                "history": history,
                "best_metric": best_metric,
                "best_val_loss": best_loss,
                "best_epoch": best_epoch,
                "monitor": monitor,
                "splits": dict(splits),
                "precision": PRECISION_NAMES[amp_dtype],
            }
            if improved:
                # Weights for prediction: the optimizer state would double the file for no use.
                save_checkpoint({**state, "optimizer_state": None, "scheduler_state": None,
                                 "scaler_state": None, "rng_state": None}, run_dir / "best.pt")
            save_checkpoint({
                **state,
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(),
                "scaler_state": scaler.state_dict() if scaler.is_enabled() else None,
                "rng_state": rng_states,
            }, run_dir / "last.pt")
            _write_history(history, run_dir)
            if show:
                tqdm.write(_epoch_line(record, improved))
            if on_epoch_end is not None:
                on_epoch_end(history)
    _barrier(proc)
    return {
        "history": history,
        "run_dir": str(run_dir),
        "last": str(run_dir / "last.pt"),
        "best": str(run_dir / "best.pt"),
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "monitor": monitor,
        "stopped_early": stopped_early,
    }


def _open_run(cfg: TrainConfig | None, resume) -> tuple[TrainConfig, Path, dict | None]:
    """The config to train with, the run folder, and the checkpoint to continue from (or None)."""
    if resume is not None:
        path = Path(resume) / "last.pt" if Path(resume).is_dir() else Path(resume)
        ckpt = load_checkpoint(path)
        if ckpt.get("optimizer_state") is None or "train_config" not in ckpt:
            raise CheckpointError(f"{path}: holds weights only; resume from the run's last.pt")
        run_dir = path.parent
        cfg = _resumed_config(from_dict(TrainConfig, ckpt["train_config"]), cfg)
        cfg = dataclasses.replace(cfg, out=str(run_dir))
    else:
        if cfg is None or not cfg.data or not cfg.out:
            raise ValueError("training needs cfg.data (a preprocessed data folder) and cfg.out (the run folder)")
        ckpt, run_dir = None, Path(cfg.out)
        if (run_dir / "last.pt").exists():
            raise FileExistsError(
                f"{run_dir} already holds a training run (last.pt); resume it, or choose another output folder"
            )
    if run_dir.resolve() == Path(cfg.data).resolve():
        raise ValueError(f"{run_dir}: the run folder must not be the data folder; choose another output folder")
    return cfg, run_dir, ckpt


def _splits(rows: list[ClipRow], cfg: TrainConfig, run_dir: Path, ckpt: dict | None, proc: _Process) -> dict:
    if ckpt is not None:
        if proc.main and not (run_dir / SPLITS_FILE).exists():
            from dflib.splits import save_splits

            save_splits(ckpt["splits"], run_dir / SPLITS_FILE)
        return ckpt["splits"]
    # The main process decides and saves the splits; the others then read that file.
    if proc.main:
        splits = make_splits(rows, cfg, run_dir)
    _barrier(proc)
    return splits if proc.main else make_splits(rows, cfg, run_dir)


def _datasets(rows, splits, cfg: TrainConfig, device, proc: _Process, show: bool):
    """Training and validation sets, the training sampler, and the loss's class weights (or None)."""
    if not (cfg.photo_share == -1 or 0 <= cfg.photo_share <= 1):
        raise ValueError(f"--photo-share must be -1 or a share in [0, 1], got {cfg.photo_share}")
    if cfg.photo_share in (0, 1):  # videos only, or photos only: in validation too
        rows = [row for row in rows if is_image(row.filename) == (cfg.photo_share == 1)]
    train_rows = [row for row in rows if splits.get(row.filename) == "train"]
    val_rows = [row for row in rows if splits.get(row.filename) == "val"]
    if not train_rows or not val_rows:
        raise ValueError(
            f"{cfg.data}: {len(train_rows)} training and {len(val_rows)} validation clips; both are needed "
            f"(val_fraction={cfg.val_fraction}, {len(rows)} usable clips)"
        )
    weights = _report_balance(train_rows, val_rows, rows, splits, cfg, show)
    if not 0 <= cfg.pseudo_fakes <= 1:
        raise ValueError(f"--pseudo-fakes must be a probability in [0, 1], got {cfg.pseudo_fakes}")
    train_set = VideoClipDataset(
        cfg.data, train_rows, cfg.frames, cfg.size, train=True, augment=cfg.augment,
        pseudo_fakes=cfg.pseudo_fakes, seed=cfg.seed, sampling=cfg.clip_sampling,
        pseudo_fake_landmarks=cfg.pseudo_fake_landmarks,
    )
    # Real videos only: validate on fixed pseudo-fakes of the validation clips, so AUC still selects best.pt.
    only_real = cfg.pseudo_fakes > 0 and all(row.label == "REAL" for row in val_rows)
    val_set = VideoClipDataset(cfg.data, val_rows, cfg.frames, cfg.size, train=False, seed=cfg.seed,
                               fake_copies=only_real, pseudo_fake_landmarks=cfg.pseudo_fake_landmarks)
    if cfg.balance == "sampler":
        if 0 < cfg.photo_share < 1:
            raise ValueError("--photo-share between 0 and 1 draws photos and videos by weight: use it with "
                             "--balance loss_weights or none, not sampler")
        sample_weights = balanced_sampling_weights(train_set.labels, cfg.pseudo_fakes)
        sampler = WeightedDistributedSampler(train_set, sample_weights, proc.world, proc.rank, seed=cfg.seed)
        return train_set, val_set, sampler, None
    if 0 < cfg.photo_share < 1:
        sampler = WeightedDistributedSampler(train_set, photo_share_weights(train_rows, cfg.photo_share),
                                             proc.world, proc.rank, seed=cfg.seed)
    else:
        sampler = DistributedSampler(train_set, proc.world, proc.rank, shuffle=True, seed=cfg.seed)
    return train_set, val_set, sampler, weights.to(device) if cfg.balance == "loss_weights" else None


def _resumed_config(saved: TrainConfig, passed: TrainConfig | None) -> TrainConfig:
    if passed is None:
        return saved
    default, saved_dict, passed_dict = to_dict(TrainConfig()), to_dict(saved), to_dict(passed)
    overrides, ignored = {}, []
    for name, value in passed_dict.items():
        if value == saved_dict[name] or value == default[name] or name == "out":
            continue
        if name in RESUME_OVERRIDES:
            overrides[name] = value
        else:
            ignored.append(f"{name}={value!r} (run uses {saved_dict[name]!r})")
    if ignored:
        warnings.warn("resuming with the run's saved config; ignored: " + ", ".join(ignored))
    if overrides:
        log.info("resuming with changed %s", overrides)
    return dataclasses.replace(saved, **overrides)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    import cv2

    # Workers already split the cores between them; OpenCV's own threads would oversubscribe.
    cv2.setNumThreads(1)


def _barrier(proc: _Process) -> None:
    if proc.world > 1:
        dist.barrier()


def _tracks_trained_on(rows: list[ClipRow], cfg: TrainConfig) -> list[ClipRow]:
    if cfg.tracks not in ("main", "all"):
        raise ValueError(f"tracks must be main or all, not {cfg.tracks!r}")
    return rows if cfg.tracks == "all" else [row for row in rows if row.track in ("", "0")]


def photo_share_weights(rows: list[ClipRow], share: float) -> torch.Tensor:
    """Per-clip draw weights under which photographs make up ``share`` of the draws: thousands of
    photos would otherwise drown a hundred videos (or the reverse, counted in frames)."""
    photos = torch.tensor([is_image(row.filename) for row in rows])
    n_photos = int(photos.sum())
    if not n_photos or n_photos == len(rows):
        raise ValueError(f"--photo-share {share:g} needs photographs and videos among the training clips; "
                         f"there are {n_photos} photos of {len(rows)} clips")
    return torch.where(photos, share / n_photos, (1 - share) / (len(rows) - n_photos)).double()


def balanced_sampling_weights(labels: list[int], pseudo_fakes: float) -> torch.Tensor:
    """Per-clip draw weights that make REAL and FAKE equally likely once REAL clips turn into
    pseudo-fakes with probability p: n_fake * w_fake = (1 - 2p) * n_real * w_real. Where no
    weights can (p >= 0.5 with FAKE clips, or one class only), an error says what to use instead."""
    labels_t = torch.tensor(labels)
    n_fake = int((labels_t == LABELS["FAKE"]).sum())
    n_real = len(labels) - n_fake
    p = pseudo_fakes
    if n_real and not n_fake and p == 0.5:
        return torch.ones(len(labels), dtype=torch.float64)
    if not n_real or not n_fake or p >= 0.5:
        raise ValueError(
            f"--balance sampler cannot make REAL and FAKE equally likely with {n_real} REAL and {n_fake} FAKE "
            f"training clips and --pseudo-fakes {p:g} (a drawn REAL clip becomes FAKE with that probability); "
            "use --balance loss_weights, or a --pseudo-fakes below 0.5")
    per_class = {LABELS["REAL"]: 1 / n_real, LABELS["FAKE"]: (1 - 2 * p) / n_fake}
    return torch.tensor([per_class[label] for label in labels], dtype=torch.float64)


def _report_balance(train_rows, val_rows, rows, splits, cfg: TrainConfig, show: bool) -> torch.Tensor:
    """Tell the user how skewed the classes are, and return REAL/FAKE loss weights: inverse
    frequencies of the labels training will see, pseudo-fakes included."""
    weights = class_weights(train_rows, cfg.pseudo_fakes)
    if cfg.balance not in ("loss_weights", "sampler", "none"):
        raise ValueError(f"balance must be loss_weights, sampler or none, not {cfg.balance!r}")

    def counts(part: list[ClipRow]) -> str:
        fake = sum(row.label == "FAKE" for row in part)
        return f"{len(part)} clips ({len(part) - fake} REAL, {fake} FAKE, {100 * fake / len(part):.0f}% FAKE)"

    test = sum(splits.get(row.filename) == "test" for row in rows)
    expected = ""
    if cfg.pseudo_fakes:
        real, fake = expected_class_counts(train_rows, cfg.pseudo_fakes)
        expected = f" (with pseudo-fakes about {real:.0f} REAL, {fake:.0f} FAKE per epoch)"
    message = (
        f"train: {counts(train_rows)}{expected}; val: {counts(val_rows)}; test: {test} clips kept out of training; "
        f"balance={cfg.balance}"
        + (f" (REAL weight {weights[0]:.2f}, FAKE weight {weights[1]:.2f})" if cfg.balance != "none" else "")
    )
    log.info(message)
    if show:
        tqdm.write(message)
    return weights


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adamw or adam, not {cfg.optimizer!r}")


def _lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Per optimizer step: linear warmup, then cosine to zero, or x0.1 at 50% and 75% ("step"), or flat."""
    if cfg.scheduler not in ("cosine", "step", "none"):
        raise ValueError(f"scheduler must be cosine, step or none, not {cfg.scheduler!r}")
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, total - warmup))
        if cfg.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * done))
        if cfg.scheduler == "step":
            return 0.1 ** ((done >= 0.5) + (done >= 0.75))
        return 1.0

    return factor


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _train_epoch(net, loader, optimizer, scheduler, scaler, loss_weights, cfg, device, amp_dtype, proc, desc, show):
    net.train()
    if cfg.freeze_batchnorm:
        freeze_batchnorm_statistics(net)
    if cfg.freeze_trunk:
        (net.module if proc.world > 1 else net).trunk.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # weighted loss, weight, correct, count
    batches = len(loader)
    bar = tqdm(loader, desc=desc, disable=not show, leave=False, dynamic_ncols=True)
    for i, (frames, labels, _, lengths) in enumerate(bar):
        frames = frames.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        group_start = i - i % cfg.accumulate
        group_size = min(cfg.accumulate, batches - group_start)
        stepping = i - group_start == group_size - 1
        sync = contextlib.nullcontext() if stepping or proc.world == 1 else net.no_sync()
        with sync:
            with _autocast(device, amp_dtype):
                logits = net(frames, lengths)
            loss_sum, weight_sum = _weighted_loss(logits.float(), labels, loss_weights)
            scaler.scale(loss_sum / weight_sum / group_size).backward()
        if stepping:
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        with torch.no_grad():
            correct = (logits.argmax(1) == labels).sum()
            totals += torch.stack([loss_sum.detach(), weight_sum, correct, weight_sum.new_tensor(len(labels))]).double()
        if show:
            bar.set_postfix(loss=f"{totals[0] / totals[1]:.4f}", acc=f"{totals[2] / totals[3]:.3f}")
    if proc.world > 1:
        dist.all_reduce(totals)
    return {"train_loss": float(totals[0] / totals[1]), "train_acc": float(totals[2] / totals[3])}


def _weighted_loss(logits, labels, weights):
    """Summed cross-entropy and summed sample weight, so batches and processes add up exactly."""
    loss_sum = F.cross_entropy(logits, labels, weight=weights, reduction="sum")
    weight_sum = weights[labels].sum() if weights is not None else torch.tensor(float(len(labels)), device=labels.device)
    return loss_sum, weight_sum.to(loss_sum.dtype)


@torch.no_grad()
def _validate(model, loader, loss_weights, device, amp_dtype, proc, show) -> dict:
    """Loss, accuracy and AUC over the whole validation set, identical on every process."""
    model.eval()
    outputs = []
    for frames, labels, indices, lengths in tqdm(loader, desc="validation", disable=not show, leave=False):
        with _autocast(device, amp_dtype):
            logits = model(frames.to(device, non_blocking=True), lengths)
        outputs += zip(indices.tolist(), logits.float().cpu().tolist(), labels.tolist())
    if proc.world > 1:
        gathered = [None] * proc.world
        dist.all_gather_object(gathered, outputs)
        outputs = [item for part in gathered for item in part]
    outputs.sort()
    logits = torch.tensor([item[1] for item in outputs])
    labels = torch.tensor([item[2] for item in outputs])
    weights = loss_weights.cpu() if loss_weights is not None else None
    loss_sum, weight_sum = _weighted_loss(logits, labels, weights)
    p_fake = torch.softmax(logits, 1)[:, LABELS["FAKE"]].numpy()
    auc = float(roc_auc_score(labels.numpy(), p_fake)) if len(set(labels.tolist())) == 2 else float("nan")
    return {
        "val_loss": float(loss_sum / weight_sum),
        "val_acc": float((logits.argmax(1) == labels).double().mean()),
        "val_auc": auc,
    }


def _sync_buffers(model: torch.nn.Module, proc: _Process) -> None:
    """BatchNorm statistics drift apart per process; validate and save rank 0's everywhere."""
    if proc.world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def _improved(record: dict, monitor: str, best: float | None, best_loss: float | None) -> bool:
    """A higher validation AUC (or lower loss), or the same AUC at a lower validation loss: on
    pseudo-fake validation AUC easily reaches 1.0 early, and the first epoch to get there is
    rarely the best model."""
    value = record[monitor]
    if math.isnan(value):
        return False
    if best is None:
        return True
    if monitor == "val_loss":
        return value < best
    return value > best or (value == best and best_loss is not None and record["val_loss"] < best_loss)


def _preprocess_config(data_dir: Path) -> dict:
    """How the crops were made, so prediction can make new ones the same way."""
    path = data_dir / PREPROCESS_CONFIG
    if not path.is_file():
        warnings.warn(f"{path} not found: the checkpoint will not record how faces were cropped")
        return {}
    return json.loads(path.read_text())


class WeightedDistributedSampler(DistributedSampler):
    """Class-balanced draws with replacement, shared out between processes like DistributedSampler.

    Torch's WeightedRandomSampler cannot be split across processes; drawing from a generator seeded
    with (seed, epoch) also makes a resumed run draw the same clips.
    """

    def __init__(self, dataset, weights: torch.Tensor, num_replicas: int, rank: int, seed: int = 0):
        super().__init__(dataset, num_replicas, rank, shuffle=True, seed=seed)
        self.weights = weights.double()

    def __iter__(self):
        """(clip index, draw number) pairs: a clip drawn twice in an epoch gets two different draws."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator).tolist()
        return iter((index, draw) for draw, index in enumerate(drawn) if draw % self.num_replicas == self.rank)


def _rng_state() -> dict:
    """Global RNG states as tensors, so the checkpoint still loads with weights_only=True."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_rest": torch.tensor([position, has_gauss, gauss], dtype=torch.float64),
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
    }


def _gather_rng_states(proc: _Process) -> list[dict]:
    """Every process's RNG state, in rank order, so a resumed DDP run continues each stream exactly."""
    state = _rng_state()
    if proc.world == 1:
        return [state]
    gathered = [None] * proc.world
    dist.all_gather_object(gathered, state)
    return gathered


def _restore_rng(states: list[dict] | dict, proc: _Process) -> None:
    states = [states] if isinstance(states, dict) else states  # one state: a checkpoint from before DDP states
    if len(states) != proc.world:
        warnings.warn(f"the run was saved by {len(states)} process(es) and resumes with {proc.world}: "
                      "random streams go on from the seed, so the rest of the run is not bit-identical")
        return
    state = states[proc.rank]
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    position, has_gauss, gauss = state["numpy_rest"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(position), int(has_gauss), gauss))
    random.setstate((3, tuple(state["python"].tolist()), None))


def _write_history(history: list[dict], run_dir: Path) -> None:
    # JSON has no NaN: an undefined AUC is written as null.
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in history]
    atomic_write_text(run_dir / "history.json", json.dumps(clean, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())


def _epoch_line(record: dict, improved: bool) -> str:
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.3f} | "
        f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.3f} auc {record['val_auc']:.3f} | "
        f"lr {record['lr']:.2e} | {record['seconds']:.0f}s" + (" | best" if improved else "")
    )
