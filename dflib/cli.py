"""``dflib`` / ``python -m dflib``: one subcommand per stage.

Options are generated from the stage's config dataclass, so the CLI, the notebook widgets and
checkpoints share one definition and one set of defaults. Heavy modules are imported only by
the subcommand that needs them, so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from dflib import __version__
from dflib.config import (
    AppConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    PreprocessConfig,
    TrainConfig,
    from_dict,
    to_dict,
)

# Short spellings for options people type often.
ALIASES = {"model.name": ["--model"], "model.pretrained": ["--weights"]}
# What `dflib labels` shares with preprocessing (how labels are read) and training (how videos are split).
LABEL_OPTIONS = ("compression", "label_splits")
SPLIT_OPTIONS = ("seed", "val_fraction", "test_fraction", "test_overlap")


def add_config_arguments(parser: argparse.ArgumentParser, config: Any, skip: tuple[str, ...] = (),
                         prefix: str = "", only: tuple[str, ...] | None = None) -> None:
    """One ``--option`` per config field (nested configs: ``--model-hidden-size``); ``only`` picks some."""
    group = parser.add_argument_group(f"{type(config).__name__} options" if not prefix else f"{prefix} options")
    for item in fields(config):
        name = f"{prefix}.{item.name}" if prefix else item.name
        if name in skip or (only is not None and name not in only):
            continue
        default = getattr(config, item.name)
        if dataclasses.is_dataclass(default):
            add_config_arguments(parser, default, skip, name)
            continue
        flags = ["--" + name.replace(".", "-").replace("_", "-")] + ALIASES.get(name, [])
        dest = name.replace(".", "__")
        text = item.metadata.get("help", "") + (f" (default: {default!r})" if default != "" else "")
        if isinstance(default, bool):
            group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(*flags, dest=dest, type=type(default), default=None, metavar=item.name.upper(),
                               help=text)


def config_from_args(cls, args: argparse.Namespace, base: Any = None):
    """The config with every option the user gave applied over ``base`` (or the defaults)."""
    data = to_dict(base if base is not None else cls())
    for dest, value in vars(args).items():
        if value is None or not isinstance(dest, str):
            continue
        target, *path = dest.split("__")
        holder = data
        for key in [target] + path[:-1]:
            if key not in holder or not isinstance(holder[key], dict):
                holder = None
                break
            holder = holder[key]
        if holder is not None and path and path[-1] in holder:
            holder[path[-1]] = value
        elif not path and target in data:
            data[target] = value
    return from_dict(cls, data)


def _cmd_preprocess(args) -> int:
    from dflib.preprocess import merge_shards, preprocess

    if args.merge:
        summary = merge_shards(args.merge)
    else:
        summary = preprocess(config_from_args(PreprocessConfig, args), progress=not args.quiet)
    print(summary.text())
    return 0


def _cmd_labels(args) -> int:
    from dflib.labelreport import label_report
    from dflib.labels import write_labels_csv

    if args.plain and args.assign_splits:
        raise ValueError("--plain writes only filename,label: it cannot hold the split that --assign-splits makes")
    settings = config_from_args(PreprocessConfig, args)
    report = label_report(args.source, args.videos or None, args.format, settings.compression,
                          settings.label_splits or None, config_from_args(TrainConfig, args) if args.assign_splits else None)
    written = write_labels_csv(report.kept(), args.out, extra_columns=not args.plain) if args.out else None
    print(report.text())
    if written:
        print(f"wrote {written}")
    return 0


def _cmd_train(args) -> int:
    from dflib.train import train

    result = train(config_from_args(TrainConfig, args), resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    print(json.dumps({key: str(value) for key, value in result.items() if key != "history"}, indent=2))
    return 0


def _cmd_evaluate(args) -> int:
    from dflib.evaluate import evaluate

    cfg = config_from_args(EvaluateConfig, args)
    for name in ("data", "out"):
        if not getattr(cfg, name):
            raise ValueError(f"--{name} is required")
    result = evaluate(cfg.checkpoint, cfg.data, split=cfg.split, out=cfg.out, progress=not args.quiet,
                      threshold=cfg.threshold, device=cfg.device, all_tracks=cfg.all_tracks)
    print(result.text())
    return 0


def _cmd_predict(args) -> int:
    return predict_cli(args, config_from_args(PredictConfig, args))


def predict_cli(args, cfg) -> int:
    """``dflib predict``: one block (or JSON object) per video, a CSV with --out, files with --explain."""
    from tqdm.auto import tqdm

    from dflib.explanation import explain
    from dflib.io import printable_path
    from dflib.prediction import (ERROR, FAKE, GRAD_CAM_NEEDS_TORCH, NO_FACE, REAL, Prediction, Predictor,
                                  expand_videos, write_csv)

    videos = expand_videos(args.videos)
    explain_to = Path(cfg.explain).expanduser() if cfg.explain else None
    if explain_to is not None:
        # Earlier explanations (annotated.mp4) in a folder below the videos are outputs, not inputs.
        videos = [(path, name) for path, name in videos if not path.resolve().is_relative_to(explain_to.resolve())]
        if not videos:
            raise FileNotFoundError(f"no video found in: {', '.join(args.videos)} (outside the --explain folder)")
    _check_csv_path(args.out, videos)
    predictor = Predictor(cfg.checkpoint, threshold=cfg.threshold, device=cfg.device, all_tracks=cfg.all_tracks,
                          backend=cfg.backend)
    if explain_to is not None and predictor.model is None:
        print(f"dflib predict: {GRAD_CAM_NEEDS_TORCH}; --explain writes the score timeline and prediction.json",
              file=sys.stderr)
    used: set[str] = set()
    predictions = []
    batch = len(videos) > 1
    bar = tqdm(videos, desc="predict", unit="video", disable=args.quiet or not batch, file=sys.stderr)
    for path, name in bar:
        try:
            if explain_to is not None:
                prediction = explain(path, predictor, out_dir=explain_to / _unique_folder(name, used)).prediction
            else:
                prediction = predictor(path)
        except Exception as error:  # noqa: BLE001 - one broken video must never stop a batch
            prediction = Prediction(video=str(path), label=ERROR, threshold=predictor.threshold,
                                    reason=f"unexpected error: {type(error).__name__}: {error}")
        predictions.append(prediction)
        text = json.dumps(prediction.to_dict()) if args.json else prediction.text() + ("\n" if batch else "")
        tqdm.write(printable_path(text), file=sys.stdout)  # a name in another encoding breaks a UTF-8 terminal
    if args.out:
        write_csv(predictions, args.out)
    if batch:
        counts = {label: sum(p.label == label for p in predictions) for label in (FAKE, REAL, NO_FACE, ERROR)}
        where = f"; results in {args.out}" if args.out else ""
        print(f"{len(predictions)} videos: " + ", ".join(f"{n} {label}" for label, n in counts.items()) + where,
              file=sys.stderr)
    return 0


def _unique_folder(name: str, used: set[str]) -> str:
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}-{number}", number + 1
    used.add(candidate)
    return candidate


def _check_csv_path(out: str, videos: list) -> None:
    """Refuse, before any work, a results path that is a folder or one of the input videos."""
    if not out:
        return
    path = Path(out).expanduser()
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder: give the path of a CSV file to write")
    if path.exists() and any(path.samefile(video) for video, _ in videos if video.exists()):
        raise ValueError(f"--out {path} is one of the input videos: give another path, inputs are never written to")


def _cmd_export(args) -> int:
    from dflib.export import export_cli

    return export_cli(args, config_from_args(ExportConfig, args))


def _cmd_app(args) -> int:
    from dflib.app import app_cli

    return app_cli(args, config_from_args(AppConfig, args))


def _cmd_demo(args) -> int:
    from dflib.demo import demo_cli

    return demo_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dflib", description="Deepfake video detection: preprocess -> train -> predict.")
    parser.add_argument("--version", action="version", version=f"dflib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        return sub

    sub = command("preprocess", _cmd_preprocess, "videos -> tracked face crops, one file per video, and a manifest")
    add_config_arguments(sub, PreprocessConfig())
    sub.add_argument("--merge", metavar="OUT", default="",
                     help="only write the manifest of OUT from the results of its shards (--shard K/N), once all "
                          "are done; shards made with other settings are refused")

    sub = command("labels", _cmd_labels, "read a label file or dataset layout, summarise it, write labels.csv")
    sub.add_argument("source", help="label CSV, metadata.json, or a dataset root folder")
    sub.add_argument("--format", default="", help="csv, dfdc, faceforensics, celebdf, folders (default: detect)")
    sub.add_argument("--videos", default="", help="videos folder the filenames are relative to")
    sub.add_argument("--out", default="", help="write the table of the videos on disk here")
    sub.add_argument("--plain", action="store_true", help="only filename,label (the original format)")
    sub.add_argument("--assign-splits", action="store_true",
                     help="assign train/val/test exactly as `dflib train` would (same function, seed and fractions)")
    add_config_arguments(sub, PreprocessConfig(), only=LABEL_OPTIONS)
    add_config_arguments(sub, TrainConfig(), only=SPLIT_OPTIONS)

    sub = command("train", _cmd_train, "train a detector on preprocessed crops")
    add_config_arguments(sub, TrainConfig())
    sub.add_argument("--resume", default=None, help="run folder (or last.pt) of a run to continue")

    sub = command("evaluate", _cmd_evaluate, "video-level metrics and figures for a checkpoint")
    add_config_arguments(sub, EvaluateConfig())

    sub = command("predict", _cmd_predict, "FAKE or REAL with a confidence for videos")
    sub.add_argument("videos", nargs="+", help="video files or folders")
    add_config_arguments(sub, PredictConfig())
    sub.add_argument("--out", default="", help="CSV of results (many videos)")
    sub.add_argument("--json", action="store_true", help="print one JSON object per video")

    sub = command("export", _cmd_export, "the model as one ONNX or TorchScript file, with the preprocessing it needs")
    sub.add_argument("checkpoint", help="a checkpoint written by `dflib train` (best.pt)")
    add_config_arguments(sub, ExportConfig(), skip=("checkpoint",))

    sub = command("app", _cmd_app, "a web page to check one video at a time (needs dflib[app])")
    add_config_arguments(sub, AppConfig(), skip=("explain",))

    sub = command("demo", _cmd_demo, "offline end-to-end demo on synthetic data (or --videos/--labels)")
    sub.add_argument("--out", default="demo_out")
    sub.add_argument("--videos", default="")
    sub.add_argument("--labels", default="")
    return parser


# Errors caused by what the user gave (paths, files, values): one line, no traceback.
USER_ERRORS = (OSError, ValueError, RuntimeError, ImportError, KeyError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return code
    except KeyboardInterrupt:
        print("dflib: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`dflib labels ... | head`): nothing more to say, and nothing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        option = getattr(error, "option", "")
        if option:
            message += f" (see {option_flag(args.command, option)})"
        print(f"dflib {args.command}: error: {message}", file=sys.stderr)
        return 2


def option_flag(command: str, option: str) -> str:
    """The flag of a config field in a command (``label_format`` is ``--format`` in ``dflib labels``)."""
    if command == "labels" and option == "label_format":
        return "--format"
    return "--" + option.replace("_", "-")


if __name__ == "__main__":
    sys.exit(main())
