import dataclasses
import subprocess
import sys

import pytest

from dflib.cli import build_parser, config_from_args, main
from dflib.config import AugmentConfig, ModelConfig, PredictConfig, PreprocessConfig, TrainConfig


def test_help_lists_every_stage():
    out = subprocess.run([sys.executable, "-m", "dflib", "--help"], capture_output=True, text=True, check=True).stdout
    for stage in ("preprocess", "labels", "train", "evaluate", "predict", "demo"):
        assert stage in out


def test_options_map_onto_the_config_and_the_rest_keep_defaults():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "r", "--model", "resnet18_lstm",
                                      "--model-hidden-size", "64", "--no-augment-enabled", "--lr", "0.001",
                                      "--weights", "w.pth"])
    cfg = config_from_args(TrainConfig, args)
    assert (cfg.data, cfg.out, cfg.lr) == ("d", "r", 0.001)
    assert cfg.model == ModelConfig(name="resnet18_lstm", hidden_size=64, pretrained="w.pth")
    assert cfg.augment == AugmentConfig(enabled=False)
    assert dataclasses.replace(cfg, data="", out="", lr=TrainConfig().lr, model=ModelConfig(),
                               augment=AugmentConfig()) == TrainConfig()
    pre = config_from_args(PreprocessConfig, build_parser().parse_args(["preprocess", "--frames", "8", "--previews"]))
    assert pre == PreprocessConfig(frames=8, previews=True)


@pytest.mark.parametrize("config", [PreprocessConfig, ModelConfig, AugmentConfig, TrainConfig, PredictConfig])
def test_every_option_explains_itself(config):
    for item in dataclasses.fields(config):
        if not dataclasses.is_dataclass(item.default_factory):
            assert item.metadata.get("help"), f"{config.__name__}.{item.name} has no help text"


def test_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["preprocess", "--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dflib preprocess: error: videos folder not found") and err.count("\n") == 1
