"""The Colab notebooks: stored clean, and run headless top to bottom on tiny data, as "Run all" would.

Each notebook runs with papermill on the default values its parameters cell gives the forms (widget
callbacks never fire headless), in order: 01 writes the crops 02 trains on, 02 the checkpoint 03 uses.
Real sample clips from ../shared/data are used when present, generated face clips otherwise.
"""
from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["01_preprocess", "02_train", "03_predict"]
BADGE = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/([\w.-]+)\.ipynb")
# Small, frontal sample clips: three groups per class give every split one of each.
SAMPLE_REAL = ["vexpress_vasa1_emo__RD_Radio10_0_clip_0.mp4", "liveportrait_driving_real__d18.mp4",
               "pypi_pyfeat_real__single_face.mp4"]
SAMPLE_FAKE = ["vexpress_vasa1_emo__emo_talk_emotion.mp4", "sadtalker_video_lipsync_pairs__retalking.mp4",
               "vexpress_vasa1_emo__short_case_tys.mp4"]
SAMPLE_NEW = "sadtalker_hdtf_and_generated__art_2__RD_Radio31_000.mp4"  # never preprocessed nor trained on
NO_FACE = "no_face.mp4"  # unlabeled and faceless: skipped by 01, NO_FACE in 03
FRAMES, SIZE = 8, 64


def stored(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def parameters_cell(nb):
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def python_source(cell) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell.source)  # %pip lines become plain calls


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_is_clean_and_opens_in_colab(name):
    nb = stored(name)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs stored in:\n{cell.source}"
    parameters_cell(nb)

    intro = nb.cells[0]
    assert intro.cell_type == "markdown" and "colab-badge.svg" in intro.source
    badge = BADGE.search(intro.source)
    assert badge and badge.group(2) == name, f"{name}: the Colab badge must open this notebook"
    setup = code_cells(nb)[0]
    assert f'REPO = "{badge.group(1)}"' in setup.source, "badge and install must name the same repository"
    assert "git+https://github.com/{REPO}" in setup.source and '"/content/drive"' in setup.source


def test_badges_and_setup_cells_are_written_from_the_one_repository_address():
    """pyproject.toml's Repository is the one address: README, badges and setup cells match it."""
    import subprocess
    import sys

    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "colab_links.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    repo = re.search(r'Repository = "https://github\.com/([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    readme_badges = set(BADGE.findall((ROOT / "README.md").read_text()))
    assert readme_badges == {(repo, name) for name in NAMES}
    assert "github.com/dflib/dflib" not in (ROOT / "README.md").read_text()  # a Java project, not ours


def test_colab_links_rewrites_every_address_for_a_new_repository(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_links", ROOT / "scripts" / "colab_links.py")
    colab_links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(colab_links)
    files = colab_links.rendered("someone/deepfakes")
    assert 'Repository = "https://github.com/someone/deepfakes"' in files[colab_links.PYPROJECT]
    for name in NAMES:
        nb = nbformat.reads(files[ROOT / "notebooks" / f"{name}.ipynb"], as_version=4)
        assert BADGE.search(nb.cells[0].source).groups() == ("someone/deepfakes", name)
        assert 'REPO = "someone/deepfakes"' in code_cells(nb)[0].source
        assert ("dflib[app] @ " in code_cells(nb)[0].source) == (name == "03_predict")
        unchanged = stored(name)
        assert [c.source for c in nb.cells[1:] if c is not code_cells(nb)[0]] == \
               [c.source for c in unchanged.cells[1:] if c is not code_cells(unchanged)[0]]


@pytest.fixture
def standin_colab(monkeypatch):
    """``google.colab`` importable from tests/colab_standin for one test, and gone afterwards: dflib
    treats a process that has imported it as Colab (and would, e.g., download ImageNet weights)."""
    import sys

    before = {name for name in sys.modules if name.split(".")[0] == "google"}
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "colab_standin"))
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "google" and name not in before]:
        del sys.modules[name]
    if "google" in sys.modules and "google.colab" not in before:
        vars(sys.modules["google"]).pop("colab", None)


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_stops_with_a_plain_message_when_the_install_fails(name, tmp_path, monkeypatch, capsys,
                                                                      standin_colab):
    """On Colab without dflib, a failed pip install ends the cell with SystemExit naming the repository
    (Colab's "Run all" stops there) instead of the next cell dying on ``import dflib``."""
    import subprocess
    import sys

    monkeypatch.setenv("DFLIB_DRIVE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "dflib", None)  # not installed: `import dflib` raises ImportError
    calls = []

    def failing_pip(command, **options):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: git clone failed: repository not found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(SystemExit) as stopped:
        exec(python_source(code_cells(stored(name))[0]), {})
    repo = re.search(r'REPO = "([^"]+)"', code_cells(stored(name))[0].source).group(1)
    assert f"could not be installed from https://github.com/{repo}" in str(stopped.value)
    assert "repository not found" in capsys.readouterr().out  # pip's own words are shown too
    assert calls and calls[0][-1].endswith(f"git+https://github.com/{repo}") and (tmp_path / "MyDrive").is_dir()


def test_the_colab_standin_leaves_no_trace(standin_colab):
    from google.colab import drive  # noqa: F401


def test_after_the_standin_dflib_does_not_think_it_runs_on_colab():
    from dflib.models import _in_colab

    assert not _in_colab()


@pytest.mark.parametrize("name", NAMES)
def test_only_the_setup_cell_knows_about_colab(name):
    cells = code_cells(stored(name))
    tree = ast.parse(python_source(cells[0]))
    guarded = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
               and any("ImportError" in ast.unparse(h.type) for h in t.handlers if h.type is not None)
               for stmt in t.body for node in ast.walk(stmt)}
    colab_imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                     and "google.colab" in ast.unparse(node)]
    assert colab_imports and all(id(node) in guarded for node in colab_imports), \
        "google.colab is not on PyPI: import it only inside try/except ImportError"
    for cell in cells[1:]:
        assert not re.search(r"google\.colab|IN_COLAB|/content", cell.source), cell.source


def test_manifest_table_puts_problems_first_and_verdict_explains_no_face():
    from dflib.explanation import Explanation
    from dflib.notebook import Verdict, annotated_clip, manifest_table
    from dflib.prediction import Prediction
    from dflib.preprocess import ManifestRow, Summary

    rows = [ManifestRow("a.mp4", "REAL"), ManifestRow("b.mp4", status="skipped", reason="no face found"),
            ManifestRow("c.mp4", "FAKE"), ManifestRow("d.mp4", "FAKE", status="failed", reason="not a video")]
    table = manifest_table(Summary(Path("out"), rows))
    assert list(table["filename"]) == ["d.mp4", "b.mp4", "a.mp4", "c.mp4"]

    no_face = Prediction(video="/videos/<x>.mp4", label="NO_FACE", reason="no face found in 20 sampled frames")
    shown = Verdict(no_face)._repr_html_()
    assert ">NO_FACE</div>" in shown and "no face found in 20 sampled frames" in shown and "&lt;x&gt;.mp4" in shown
    assert "no face found" in annotated_clip(Explanation(no_face)).data


# --- executed on tiny data -------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory, sample_data_or_none) -> dict[str, Path]:
    """Videos, a label CSV and one new video, from the sample clips or generated."""
    root = tmp_path_factory.mktemp("notebooks")
    videos = root / "videos"
    videos.mkdir()
    shared = sample_data_or_none
    if shared is not None:
        labels = [(name, "REAL") for name in SAMPLE_REAL] + [(name, "FAKE") for name in SAMPLE_FAKE]
        for name, _ in labels:
            (videos / name).symlink_to(shared / "videos" / name)
        (videos / NO_FACE).symlink_to(shared / "edge" / "no_face.mp4")
        new_video = root / SAMPLE_NEW
        new_video.symlink_to(shared / "videos" / SAMPLE_NEW)
    else:
        from dflib.synthetic import moving_face_frames, noise_frames, write_video

        labels = [(f"{label.lower()}_{i}.mp4", label) for i, label in enumerate(["REAL"] * 3 + ["FAKE"] * 3)]
        for seed, (name, _) in enumerate(labels):
            write_video(videos / name, moving_face_frames(16, seed=seed))
        write_video(videos / NO_FACE, noise_frames(8))
        new_video = write_video(root / "new.mp4", moving_face_frames(16, seed=99))
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(labels)  # the original headerless filename,label format
    return {"root": root, "videos": videos, "labels": root / "labels.csv", "new": new_video,
            "crops": root / "crops", "run": root / "run", "explained": root / "explained"}


def execute(name: str, root: Path, **parameters) -> nbformat.NotebookNode:
    """Run a stored notebook as a user's "Run all" would, with the parameters cell overridden."""
    import papermill

    missing = set(parameters) - assigned_names(parameters_cell(stored(name)))
    assert not missing, f"{name}: no parameter {missing} to override"
    out = root / f"{name}.ipynb"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend, as in Jupyter and Colab
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), kernel_name="python3",
                                   parameters={k: str(v) if isinstance(v, Path) else v for k, v in parameters.items()},
                                   cwd=str(root), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    errors = [o for cell in code_cells(executed) for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    return executed


def assigned_names(cell) -> set[str]:
    return {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def outputs_with(nb, mime: str) -> list[str]:
    return [str(o.data[mime]) for cell in code_cells(nb) for o in cell.outputs
            if o.output_type in ("display_data", "execute_result") and mime in o.data]


@pytest.fixture(scope="module")
def preprocessed(work):
    return execute("01_preprocess", work["root"], VIDEOS_DIR=work["videos"], LABELS=work["labels"],
                   OUT_DIR=work["crops"], FRAMES=FRAMES, SIZE=SIZE, MIN_FRAMES=4, PREVIEWS=True)


@pytest.fixture(scope="module")
def trained(work, preprocessed):
    return execute("02_train", work["root"], DATA_DIR=work["crops"], RUN_DIR=work["run"],
                   BACKBONE="mobilenet_v3_small_lstm", PRETRAINED="none", HIDDEN_SIZE=32, FRAMES=FRAMES, SIZE=SIZE,
                   EPOCHS=2, BATCH_SIZE=2, WORKERS=0)


@pytest.fixture(scope="module")
def predicted(work, trained):
    return execute("03_predict", work["root"], CHECKPOINT=work["run"] / "best.pt", VIDEO=work["new"],
                   FOLDER=work["videos"], EXPLAIN_DIR=work["explained"])


@pytest.mark.slow
def test_preprocess_notebook_writes_crops_and_shows_labels_manifest_and_sheets(work, preprocessed):
    with open(work["crops"] / "manifest.csv", newline="") as handle:
        rows = {row["filename"]: row for row in csv.DictReader(handle)}
    labelled = [line.split(",")[0] for line in work["labels"].read_text().split()]
    assert {name: rows[name]["status"] for name in labelled} == {name: "ok" for name in labelled}
    assert rows[NO_FACE]["status"] == "skipped" and "no face" in rows[NO_FACE]["reason"]
    assert all((work["crops"] / rows[name]["output"]).is_file() for name in labelled)
    assert len(list((work["crops"] / "previews").glob("*.png"))) == len(labelled)

    tables = outputs_with(preprocessed, "text/html")
    assert any("% FAKE" in t for t in tables), "label summary table missing"
    assert any("skipped" in t and "no face" in t for t in tables), "manifest table with reasons missing"
    assert outputs_with(preprocessed, "image/png"), "no contact sheet shown"
    assert outputs_with(preprocessed, "application/vnd.jupyter.widget-view+json"), "no settings form shown"


@pytest.mark.slow
def test_train_notebook_trains_evaluates_and_plots(work, trained):
    run = work["run"]
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    history = json.loads((run / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["name"], config["frames"], config["size"]) == ("mobilenet_v3_small_lstm", FRAMES, SIZE)
    metrics = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n_real"] >= 1 and metrics["n_fake"] >= 1
    assert all((run / "eval_test" / name).is_file() for name in ("confusion.png", "roc.png", "scores.csv"))

    html = outputs_with(trained, "text/html")
    training = next(cell for cell in code_cells(trained) if "train(cfg" in cell.source)
    curves = [o for o in training.outputs if "image/png" in o.get("data", {})]
    assert len(curves) == 1 and training.outputs[0] is curves[0], "curves must be one figure, above the log"
    assert any(t.count("data:image/png;base64,") == 3 for t in html), "confusion, ROC and histogram not shown"
    assert any("balanced_accuracy" in t and "all videos" in t for t in html), "metrics table missing"


@pytest.mark.slow
def test_predict_notebook_shows_verdict_heatmaps_timeline_and_clip(work, predicted):
    stem = Path(work["new"]).stem
    prediction = json.loads((work["explained"] / stem / "prediction.json").read_text())
    assert prediction["label"] in ("FAKE", "REAL") and 0.5 <= prediction["confidence"] <= 1
    assert all((work["explained"] / stem / name).is_file()
               for name in ("cam_grid.png", "cam_full_frame.png", "scores_timeline.png", "annotated.mp4"))

    html = outputs_with(predicted, "text/html")
    assert any(f">{prediction['label']}</div>" in t and f"{100 * prediction['confidence']:.1f}%" in t for t in html)
    assert any("<video" in t and "data:video/mp4;base64," in t for t in html), "annotated clip not embedded"
    assert len(outputs_with(predicted, "image/png")) >= 3  # timeline, full frame, grid

    with open(work["explained"] / "predictions.csv", newline="") as handle:
        batch = {Path(row["filename"]).name: row for row in csv.DictReader(handle)}
    assert set(batch) == {path.name for path in work["videos"].iterdir()}
    assert batch[NO_FACE]["label"] == "NO_FACE" and batch[NO_FACE]["reason"]
    printed = "".join(o.get("text", "") for cell in code_cells(predicted) for o in cell.outputs)
    assert "The web app is not started" in printed  # headless: the page's cell must not start a server


def test_colab_check_installs_what_the_setup_cells_install():
    """make colab-check reads the pip requirement from the setup cells: it must find each one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_check", ROOT / "scripts" / "colab_check.py")
    colab_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(colab_check)
    assert colab_check.setup_cell_requirements() == [f"dflib @ {ROOT.as_uri()}", f"dflib[app] @ {ROOT.as_uri()}"]
    assert {"numpy", "protobuf", "torch", "opencv-python"} <= colab_check.pinned_names()
