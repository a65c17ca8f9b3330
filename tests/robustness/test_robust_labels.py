"""Label files as people make them: through ``dflib labels`` and ``dflib preprocess --labels``.

A file that cannot be trusted stops the command with one line naming the file, the line and the
cause; what spreadsheets do to a good file (BOM, header or not, blank lines, CRLF, repeated rows)
is read as meant.
"""
from __future__ import annotations

import pytest

from dflib.cli import main
from dflib.preprocess import MANIFEST, read_manifest_rows
from dflib.synthetic import noise_frames, write_video
from hostile import PREPROCESS_FLAGS, assert_one_line_error, run_dflib, tree_state


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """videos/a.mp4, videos/b.mp4 and a video outside the videos folder that a label may point at."""
    root = tmp_path_factory.mktemp("labels")
    videos = root / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        write_video(videos / name, noise_frames(3, 64, 48))
    write_video(root / "outside.mp4", noise_frames(3, 64, 48))
    return root


def write_labels(dataset, name: str, content: str | bytes):
    path = dataset / "label_files" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


FATAL = {
    "unknown_label.csv": ("a.mp4,REAL\nb.mp4,MAYBE\n", ["line 2", "unknown label 'MAYBE'"]),
    "escaping_path.csv": ("a.mp4,REAL\n../outside.mp4,FAKE\n", ["line 2", "outside the videos folder"]),
    "escaping_subfolder.csv": ("sub/../../outside.mp4,FAKE\n", ["line 1", "outside the videos folder"]),
    "absolute_outside.csv": ("{root}/outside.mp4,FAKE\n", ["line 1", "absolute path outside the videos folder"]),
    "empty.csv": ("", ["label file is empty"]),
    "only_blank_lines.csv": ("\n\n \n", ["label file is empty"]),
    "header_only.csv": ("filename,label\n", ["no labelled videos found"]),
    "conflicting_duplicate.csv": ("a.mp4,REAL\nb.mp4,FAKE\na.mp4,FAKE\n",
                                  ["line 3", "'FAKE' here but 'REAL' on line 1"]),
    "three_columns_no_header.csv": ("a.mp4,REAL,extra\n", ["line 1", "expected 'filename,label'"]),
    "latin1.csv": (b"caf\xe9.mp4,REAL\n", ["not UTF-8 text"]),
    "missing.csv": (None, ["no such file or folder"]),
}

GOOD = {
    "header.csv": "filename,label\na.mp4,REAL\nb.mp4,FAKE\n",
    "no_header.csv": "a.mp4,REAL\nb.mp4,FAKE\n",
    "bom_header.csv": "\ufefffilename,label\na.mp4,REAL\nb.mp4,FAKE\n",
    "bom_no_header.csv": "\ufeffa.mp4,REAL\nb.mp4,FAKE\n",
    "blank_lines.csv": "\n\na.mp4,REAL\n\n\nb.mp4,FAKE\n\n",
    "crlf_numeric.csv": "filename,label\r\na.mp4,0\r\nb.mp4,1\r\n",
    "semicolons.csv": "a.mp4;REAL\nb.mp4;FAKE\n",
    "exact_duplicates.csv": "a.mp4,REAL\nb.mp4,FAKE\na.mp4,REAL\n",
}


def fatal_file(dataset, name):
    content, _ = FATAL[name]
    if content is None:
        return dataset / "label_files" / name
    if isinstance(content, str):
        content = content.replace("{root}", str(dataset))
    return write_labels(dataset, name, content)


@pytest.mark.parametrize("name", sorted(FATAL))
def test_bad_label_file_stops_labels_with_one_line(dataset, name, capsys):
    path = fatal_file(dataset, name)
    assert main(["labels", str(path), "--videos", str(dataset / "videos")]) == 2
    assert_one_line_error(capsys.readouterr().err, "dflib labels: error:", str(path), *FATAL[name][1])


@pytest.mark.parametrize("name", sorted(FATAL))
def test_bad_label_file_stops_preprocess_before_any_work(dataset, name, tmp_path, capsys):
    path = fatal_file(dataset, name)
    before = tree_state(dataset)
    code = main(["preprocess", "--videos", str(dataset / "videos"), "--labels", str(path), "--out",
                 str(tmp_path / "out"), *PREPROCESS_FLAGS, "--quiet"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "dflib preprocess: error:", *FATAL[name][1])
    assert not (tmp_path / "out" / MANIFEST).exists() and not list(tmp_path.rglob("*.npz"))
    assert tree_state(dataset) == before


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_label_file_is_read_as_meant(dataset, name, tmp_path, capsys):
    path = write_labels(dataset, name, GOOD[name])
    before = tree_state(dataset / "videos")
    args = ["preprocess", "--videos", str(dataset / "videos"), "--labels", str(path), "--out", str(tmp_path / "out"),
            *PREPROCESS_FLAGS, "--quiet"]
    if name == "exact_duplicates.csv":
        with pytest.warns(UserWarning, match="1 exact duplicate row"):
            assert main(args) == 0
    else:
        assert main(args) == 0
    rows = read_manifest_rows(tmp_path / "out")
    assert sorted((row.filename, row.label) for row in rows) == [("a.mp4", "REAL"), ("b.mp4", "FAKE")]
    assert tree_state(dataset / "videos") == before
    capsys.readouterr()


def test_a_listed_video_that_is_missing_gets_a_row(dataset, tmp_path, capsys):
    path = write_labels(dataset, "with_missing.csv", "a.mp4,REAL\nb.mp4,FAKE\ngone.mp4,FAKE\n")
    assert main(["preprocess", "--videos", str(dataset / "videos"), "--labels", str(path), "--out",
                 str(tmp_path / "out"), *PREPROCESS_FLAGS, "--quiet"]) == 0
    rows = {row.filename: row for row in read_manifest_rows(tmp_path / "out")}
    assert rows["gone.mp4"].status == "failed" and "not found in the videos folder" in rows["gone.mp4"].reason
    assert rows["gone.mp4"].label == "FAKE" and len(rows) == 3
    capsys.readouterr()


def test_escaping_label_fails_in_a_fresh_process_without_traceback(dataset):
    path = fatal_file(dataset, "escaping_path.csv")
    done = run_dflib("preprocess", "--videos", dataset / "videos", "--labels", path, "--out", dataset / "out_cli",
                     *PREPROCESS_FLAGS, "--quiet", timeout=120)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "line 2", "outside the videos folder")
