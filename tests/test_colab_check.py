"""The notebooks' Colab branch, run by `make colab-check` in a Python 3.12 venv with Colab's versions.

Off Colab that branch never runs: the setup cell finds no ``google.colab``. Here a stand-in
(tests/colab_standin, put on PYTHONPATH by the check only) mounts "Drive" in the temporary folder
DFLIB_DRIVE names, and the three notebooks run top to bottom with their default paths, all under
Drive, as a Colab user's would: crops and runs are written there, 02_train trains from a local copy
of the crops. Skipped anywhere else.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from test_notebooks import FRAMES, SIZE, execute, outputs_with, work  # noqa: F401 (work: a fixture)

DRIVE = os.environ.get("DFLIB_DRIVE")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DRIVE or importlib.util.find_spec("google.colab") is None,
                       reason="only in make colab-check (stand-in google.colab on PYTHONPATH, DFLIB_DRIVE set)"),
]


@pytest.fixture(scope="module")
def drive_work(work) -> Path:
    """MyDrive/dflib as the notebooks expect it: videos, labels.csv and to_check/video.mp4."""
    root = Path(DRIVE) / "MyDrive" / "dflib"
    assert not root.exists(), f"{root}: the stand-in Drive must start empty"
    (root / "to_check").mkdir(parents=True)
    shutil.copytree(work["videos"], root / "videos", symlinks=True)
    shutil.copy(work["labels"], root / "labels.csv")
    shutil.copy(work["new"], root / "to_check" / "video.mp4")
    return root


def printed(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)


def test_the_three_notebooks_run_on_colab_with_everything_on_drive(drive_work, tmp_path):
    preprocessed = execute("01_preprocess", tmp_path, FRAMES=FRAMES, SIZE=SIZE, MIN_FRAMES=4, PREVIEWS=False)
    assert f"Mounted at {DRIVE}" in printed(preprocessed)
    crops = drive_work / "preprocessed"
    assert len(list((crops / "crops").glob("*.npz"))) == len(drive_work.joinpath("labels.csv").read_text().split())

    trained = execute("02_train", tmp_path, BACKBONE="mobilenet_v3_small_lstm", PRETRAINED="none", HIDDEN_SIZE=32,
                      FRAMES=FRAMES, SIZE=SIZE, EPOCHS=2, BATCH_SIZE=2, WORKERS=0)
    run = drive_work / "runs" / "run1"
    assert (run / "best.pt").is_file() and (run / "eval_test" / "metrics.json").is_file()  # the run stays on Drive
    config = json.loads((run / "config.json").read_text())
    local = Path(config["data"])
    assert not local.resolve().is_relative_to(Path(DRIVE).resolve()), "training read the crops from Drive"
    assert f"training reads the local copy {local}" in printed(trained)
    assert sorted(p.name for p in (local / "crops").iterdir()) == sorted(p.name for p in (crops / "crops").iterdir())
    shutil.rmtree(local)  # in the machine's temporary folder: not left behind by the check

    predicted = execute("03_predict", tmp_path, LAUNCH_APP=False)
    prediction = json.loads((drive_work / "predictions" / "video" / "prediction.json").read_text())
    assert prediction["label"] in ("FAKE", "REAL")
    assert any(f">{prediction['label']}</div>" in t for t in outputs_with(predicted, "text/html"))
