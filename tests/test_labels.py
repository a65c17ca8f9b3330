import json
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from dflib.cli import main
from dflib.config import PreprocessConfig
from dflib.labels import (
    LabelError,
    LabelRow,
    detect_label_formats,
    find_videos,
    list_label_formats,
    match_videos,
    read_dataset,
    read_labels,
    select_compression,
    write_labels_csv,
)
from dflib.labelreport import summarize, summary_frame
from dflib.preprocess import preprocess
from dflib.synthetic import noise_frames, write_video

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def by_name(rows: list[LabelRow]) -> dict[str, LabelRow]:
    return {row.filename: row for row in rows}


# --- csv -------------------------------------------------------------------------------------


def test_csv_original_format_without_header(tmp_path):
    rows = read_labels(write(tmp_path / "labels.csv", "abc.mp4,FAKE\nsub/def.mp4,REAL\n"))
    assert rows == [LabelRow("abc.mp4", "FAKE"), LabelRow("sub/def.mp4", "REAL")]


def test_csv_header_any_case_bom_blank_lines_numeric_labels_and_extra_columns(tmp_path):
    text = "\ufeffFileName,LABEL,Group,Split,Method,bytes\n\na.mp4,1,p1,TRAIN,faceswap,10\n\nb.mp4,real,p1,,,20\n"
    rows = read_labels(write(tmp_path / "labels.csv", text))
    assert rows == [
        LabelRow("a.mp4", "FAKE", group="p1", source="faceswap", split="train"),
        LabelRow("b.mp4", "REAL", group="p1"),
    ]


def test_csv_semicolons_and_trailing_commas_from_spreadsheets(tmp_path):
    assert read_labels(write(tmp_path / "l.csv", "a.mp4;0\n")) == [LabelRow("a.mp4", "REAL")]
    assert read_labels(write(tmp_path / "m.csv", "a.mp4,fake,,\n")) == [LabelRow("a.mp4", "FAKE")]


def test_csv_unknown_label_names_file_line_and_value(tmp_path):
    path = write(tmp_path / "labels.csv", "a.mp4,FAKE\n\nb.mp4,MAYBE\n")
    with pytest.raises(LabelError) as error:
        read_labels(path)
    message = str(error.value)
    assert str(path) in message and "line 3" in message and "'MAYBE'" in message


@pytest.mark.parametrize("name", ["../x.mp4", "sub/../../x.mp4", "/data/x.mp4", "C:\\videos\\x.mp4", ".."])
def test_csv_refuses_filenames_outside_the_videos_folder(tmp_path, name):
    path = write(tmp_path / "labels.csv", f"ok.mp4,REAL\n{name},FAKE\n")
    with pytest.raises(LabelError, match=r"line 2: .*outside the videos folder"):
        read_labels(path)


def test_csv_normalises_paths_and_accepts_absolute_paths_inside_videos_dir(tmp_path):
    videos = tmp_path / "videos"
    text = f"./a.mp4,REAL\nsub\\b.mp4,FAKE\n{videos / 'c' / 'd.mp4'},FAKE\n"
    rows = read_labels(write(tmp_path / "labels.csv", text), videos_dir=videos)
    assert [row.filename for row in rows] == ["a.mp4", "sub/b.mp4", "c/d.mp4"]
    with pytest.raises(LabelError, match="line 3"):
        read_labels(tmp_path / "labels.csv", videos_dir=tmp_path / "elsewhere")


def test_csv_conflicting_duplicate_names_both_lines(tmp_path):
    path = write(tmp_path / "labels.csv", "a.mp4,FAKE\nb.mp4,REAL\n./a.mp4,REAL\n")
    with pytest.raises(LabelError, match=r"line 3: a\.mp4 has label 'REAL' here but 'FAKE' on line 1"):
        read_labels(path)
    path = write(tmp_path / "split.csv", "filename,label,split\na.mp4,FAKE,train\na.mp4,FAKE,test\n")
    with pytest.raises(LabelError, match=r"line 3: a\.mp4 has split 'test' here but 'train' on line 2"):
        read_labels(path)


def test_csv_exact_duplicates_are_kept_once_with_a_warning(tmp_path):
    path = write(tmp_path / "labels.csv", "a.mp4,FAKE\nb.mp4,REAL\na.mp4,fake\n")
    with pytest.warns(UserWarning, match=r"1 exact duplicate row.*line 3 repeats line 1"):
        rows = read_labels(path)
    assert rows == [LabelRow("a.mp4", "FAKE"), LabelRow("b.mp4", "REAL")]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff", ",,\n"])
def test_csv_empty_file_is_an_error(tmp_path, text):
    path = write(tmp_path / "labels.csv", text)
    with pytest.raises(LabelError, match=rf"{path.name}: label file is empty"):
        read_labels(path)


def test_csv_extra_columns_need_a_header(tmp_path):
    with pytest.raises(LabelError, match=r"line 1: expected 'filename,label', got 3 column"):
        read_labels(write(tmp_path / "labels.csv", "a.mp4,FAKE,p1\n"))


def test_csv_header_without_rows_reports_no_videos(tmp_path):
    with pytest.raises(LabelError, match="no labelled videos"):
        read_labels(write(tmp_path / "labels.csv", "filename,label\n"))


@pytest.mark.parametrize("extra_columns", [True, False])
def test_write_then_read_round_trip(tmp_path, extra_columns):
    rows = [
        LabelRow("sub/a, b.mp4", "FAKE", group="p,1", source="Deepfakes", split="test"),
        LabelRow("c.mp4", "REAL", group="", source="", split=""),
    ]
    if not extra_columns:
        rows = [LabelRow(row.filename, row.label) for row in rows]
    path = write_labels_csv(rows, tmp_path / "out" / "labels.csv", extra_columns=extra_columns)
    first_line = path.read_text().splitlines()[0]
    assert (first_line == "filename,label,group,source,split") is extra_columns
    assert read_labels(path) == rows
    assert list(path.parent.iterdir()) == [path]  # no temporary left behind


# --- DFDC ------------------------------------------------------------------------------------


def test_dfdc_parts_group_each_fake_with_its_original(tmp_path):
    write(tmp_path / "part_0" / "metadata.json", json.dumps({
        "orig.mp4": {"label": "REAL", "split": "train", "original": None},
        "fake1.mp4": {"label": "FAKE", "split": "train", "original": "orig.mp4"},
    }))
    write(tmp_path / "part_1" / "metadata.json", json.dumps({
        "fake2.mp4": {"label": "FAKE", "split": "train", "original": "orig.mp4"},
        "other.mp4": {"label": "REAL", "split": "train"},
    }))
    rows = by_name(read_labels(tmp_path))
    assert set(rows) == {"part_0/orig.mp4", "part_0/fake1.mp4", "part_1/fake2.mp4", "part_1/other.mp4"}
    assert rows["part_0/fake1.mp4"].group == rows["part_1/fake2.mp4"].group == rows["part_0/orig.mp4"].group
    assert rows["part_1/other.mp4"].group != rows["part_0/orig.mp4"].group
    assert rows["part_0/fake1.mp4"].label == "FAKE" and rows["part_0/orig.mp4"].label == "REAL"
    # Every video marked "train" (a DFDC training part) says nothing about our split.
    assert {row.split for row in rows.values()} == {""}


def test_dfdc_summary_says_a_person_can_sit_in_train_and_test(tmp_path, capsys):
    write(tmp_path / "part_0" / "metadata.json", json.dumps({
        "orig.mp4": {"label": "REAL", "split": "train", "original": None},
        "fake1.mp4": {"label": "FAKE", "split": "train", "original": "orig.mp4"},
    }))
    assert main(["labels", str(tmp_path), "--format", "dfdc"]) == 0
    assert ("warning: DFDC splits follow the original video, but one actor appears in many originals and "
            "metadata.json does not say who: the same person can sit in train and test") in capsys.readouterr().out


def test_dfdc_single_metadata_file_keeps_a_real_mix_of_splits(tmp_path):
    meta = write(tmp_path / "metadata.json", json.dumps({
        "a.mp4": {"label": "real", "split": "train"},
        "b.mp4": {"label": "FAKE", "split": "test", "original": "c.mp4"},
    }))
    assert read_labels(meta) == [
        LabelRow("a.mp4", "REAL", group="a.mp4", source="DFDC", split="train"),
        LabelRow("b.mp4", "FAKE", group="c.mp4", source="DFDC", split="test"),
    ]


def test_dfdc_errors_name_file_and_entry(tmp_path):
    meta = write(tmp_path / "metadata.json", json.dumps({"a.mp4": {"label": "NOPE"}}))
    with pytest.raises(LabelError, match=r"metadata\.json: entry 'a\.mp4': unknown label 'NOPE'"):
        read_labels(meta)
    write(meta, '{"a.mp4": {"label": "FAKE"},\n oops}')
    with pytest.raises(LabelError, match=r"metadata\.json: line 2: not valid JSON"):
        read_labels(meta)


# --- FaceForensics++ -------------------------------------------------------------------------

FF_FILES = [
    "original_sequences/youtube/c23/videos/000.mp4",
    "original_sequences/youtube/c23/videos/003.mp4",
    "original_sequences/youtube/c23/videos/001.mp4",
    "original_sequences/youtube/c40/videos/000.mp4",
    "original_sequences/actors/c23/videos/01__walk.mp4",
    "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
    "manipulated_sequences/Face2Face/c23/videos/003_000.mp4",
    "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
    "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__ABCD1234.mp4",
]


def test_faceforensics_labels_sources_and_pair_groups(tmp_path):
    touch(tmp_path, *FF_FILES)
    with pytest.warns(UserWarning, match="no split files"):
        rows = by_name(read_labels(tmp_path))
    assert not any("/masks/" in name for name in rows)  # masks are videos but not samples
    assert len(rows) == len(FF_FILES) - 1
    real = rows["original_sequences/youtube/c23/videos/000.mp4"]
    fake = rows["manipulated_sequences/Deepfakes/c23/videos/000_003.mp4"]
    assert (real.label, real.source) == ("REAL", "original/youtube")
    assert (fake.label, fake.source) == ("FAKE", "Deepfakes")
    pair = {
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/youtube/c40/videos/000.mp4",
        "original_sequences/youtube/c23/videos/003.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/Face2Face/c23/videos/003_000.mp4",
    }
    assert len({rows[name].group for name in pair}) == 1
    assert rows["original_sequences/youtube/c23/videos/001.mp4"].group != real.group
    assert {rows[name].compression for name in pair} == {"c23", "c40"}
    actor = rows["original_sequences/actors/c23/videos/01__walk.mp4"]
    actor_fake = rows["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__ABCD1234.mp4"]
    assert (actor.group, actor_fake.group_keys()) == ("actor01", ("actor01", "actor02"))  # the people it shows
    assert actor.group != real.group
    assert {row.split for row in rows.values()} == {""}


def test_faceforensics_official_splits_cover_pairs_and_their_originals(tmp_path):
    touch(tmp_path, *FF_FILES)
    write(tmp_path / "splits" / "train.json", json.dumps([["000", "003"]]))
    write(tmp_path / "splits" / "test.json", json.dumps([["001", "002"]]))
    with pytest.warns(UserWarning, match=r"ids listed in the official split have no video here \(test 1\)"):
        rows = by_name(read_labels(tmp_path, fmt="faceforensics"))
    assert {name: row.split for name, row in rows.items()} == {
        "original_sequences/youtube/c23/videos/000.mp4": "train",
        "original_sequences/youtube/c23/videos/003.mp4": "train",
        "original_sequences/youtube/c40/videos/000.mp4": "train",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4": "train",
        "manipulated_sequences/Face2Face/c23/videos/003_000.mp4": "train",
        "original_sequences/youtube/c23/videos/001.mp4": "test",
        "original_sequences/actors/c23/videos/01__walk.mp4": "",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__ABCD1234.mp4": "",
    }
    write(tmp_path / "splits" / "val.json", json.dumps([["003", "004"]]))
    with pytest.raises(LabelError, match=r"val\.json: id 003 is also in .*train\.json"):
        read_labels(tmp_path, fmt="faceforensics")


# --- Celeb-DF --------------------------------------------------------------------------------


def test_celebdf_labels_identity_groups_and_test_list(tmp_path):
    touch(
        tmp_path,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id0_0001.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
        "Celeb-synthesis/id1_id0_0001.mp4",
        "YouTube-real/00000.mp4",
    )
    write(
        tmp_path / "List_of_testing_videos.txt",
        "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n\n1 YouTube-real/00170.mp4\n",
    )
    rows = by_name(read_labels(tmp_path))
    assert {name: (row.label, row.split) for name, row in rows.items()} == {
        "Celeb-real/id0_0000.mp4": ("REAL", "test"),
        "Celeb-real/id0_0001.mp4": ("REAL", ""),
        "Celeb-synthesis/id0_id1_0000.mp4": ("FAKE", "test"),
        "Celeb-synthesis/id1_id0_0001.mp4": ("FAKE", ""),
        "YouTube-real/00000.mp4": ("REAL", ""),
        "YouTube-real/00170.mp4": ("REAL", "test"),
    }
    assert rows["Celeb-real/id0_0000.mp4"].group == rows["Celeb-real/id0_0001.mp4"].group == "id0"
    assert rows["Celeb-synthesis/id0_id1_0000.mp4"].group_keys() == ("id0", "id1")  # id0's video, id1's face
    assert rows["Celeb-synthesis/id1_id0_0001.mp4"].group_keys() == ("id1", "id0")
    # A listed video absent from disk is kept so that matching reports it, not dropped.
    matched, missing, unlabeled = match_videos(list(rows.values()), tmp_path)
    assert missing == ["YouTube-real/00170.mp4"] and unlabeled == [] and len(matched) == 5


def test_celebdf_test_list_label_must_agree_with_folder(tmp_path):
    touch(tmp_path, "Celeb-real/id0_0000.mp4")
    write(tmp_path / "List_of_testing_videos.txt", "1 Celeb-real/id0_0000.mp4\n0 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(LabelError, match=r"List_of_testing_videos\.txt: line 2: .*listed as FAKE"):
        read_labels(tmp_path)


# --- one folder per label --------------------------------------------------------------------


def test_folders_in_any_case_with_videos_anywhere_below(tmp_path):
    touch(tmp_path, "REAL/a.mp4", "Fake/faceswap/deep/b.MOV", "Fake/c.webm", "Fake/._c.mp4", "Fake/notes.txt", "other/d.mp4")
    assert read_labels(tmp_path) == [
        LabelRow("Fake/c.webm", "FAKE"),
        LabelRow("Fake/faceswap/deep/b.MOV", "FAKE", source="faceswap"),
        LabelRow("REAL/a.mp4", "REAL"),
    ]


def test_videos_dir_reroots_dataset_filenames(tmp_path):
    touch(tmp_path, "data/real/a.mp4")
    rows = read_labels(tmp_path / "data", videos_dir=tmp_path)
    assert [row.filename for row in rows] == ["data/real/a.mp4"]
    with pytest.raises(LabelError, match="not inside the videos folder"):
        read_labels(tmp_path / "data", videos_dir=tmp_path / "data" / "real")


# --- format detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["labels.csv"], "csv"),
        (["part_0/metadata.json"], "dfdc"),
        (["DFDC/train/dfdc_train_part_7/metadata.json"], "dfdc"),
        (["train_sample_videos/metadata.json"], "dfdc"),
        (["original_sequences/youtube/c23/videos/000.mp4"], "faceforensics"),
        (["Celeb-real/id0_0000.mp4"], "celebdf"),
        (["fake/a.mp4"], "folders"),
    ],
)
def test_format_detection(tmp_path, files, expected):
    touch(tmp_path, *files)
    for name in files:
        if name.endswith("metadata.json"):
            write(tmp_path / name, json.dumps({"abc.mp4": {"label": "REAL"}}))
    assert detect_label_formats(tmp_path) == [expected]
    assert expected in list_label_formats()


def test_ambiguous_layout_lists_the_candidates(tmp_path):
    touch(tmp_path, "real/a.mp4", "fake/b.mp4", "Celeb-real/id0_0000.mp4")
    with pytest.raises(LabelError, match=r"matches several: celebdf, folders\); choose one of") as error:
        read_labels(tmp_path)
    assert error.value.option == "label_format"
    assert [row.filename for row in read_labels(tmp_path, fmt="folders")] == ["fake/b.mp4", "real/a.mp4"]


def test_a_dataset_layout_wins_over_a_labels_csv_beside_it(tmp_path):
    """A labels.csv that `dflib labels --out` wrote into the dataset folder must not break the next run."""
    touch(tmp_path, "real/a.mp4", "fake/b.mp4")
    assert main(["labels", str(tmp_path), "--out", str(tmp_path / "labels.csv")]) == 0
    fmt, reading = read_dataset(tmp_path)
    assert fmt == "folders" and "labels.csv is not used" in reading.notes[0]
    assert [row.filename for row in reading.rows] == ["fake/b.mp4", "real/a.mp4"]
    assert read_labels(tmp_path, fmt="csv") == [LabelRow("fake/b.mp4", "FAKE"), LabelRow("real/a.mp4", "REAL")]


def test_unknown_layout_format_and_path_are_errors(tmp_path):
    touch(tmp_path, "videos/a.mp4")
    with pytest.raises(LabelError, match="no known layout matches"):
        read_labels(tmp_path)
    with pytest.raises(LabelError, match="unknown label format 'kaggle'"):
        read_labels(tmp_path, fmt="kaggle")
    with pytest.raises(LabelError, match="no such file or folder"):
        read_labels(tmp_path / "absent.csv")


# --- videos on disk --------------------------------------------------------------------------


def test_find_videos_any_extension_case_sorted_and_hidden_skipped(tmp_path):
    # Photos are one-frame clips; other files are not media.
    touch(tmp_path, "b/x.MKV", "a.mp4", "c.AVI", ".hidden/d.mp4", "._e.mp4", "f.jpg", "g.txt", "h.PNG")
    assert find_videos(tmp_path) == ["a.mp4", "b/x.MKV", "c.AVI", "f.jpg", "h.PNG"]
    with pytest.raises(NotADirectoryError, match="absent"):
        find_videos(tmp_path / "absent")


def test_match_videos_reports_missing_unlabeled_and_matches_bare_names(tmp_path):
    touch(tmp_path, "sub/a.mp4", "b.mp4", "x/dup.mp4", "y/dup.mp4", "extra.mp4")
    rows = [LabelRow("a.mp4", "FAKE"), LabelRow("b.mp4", "REAL"), LabelRow("dup.mp4", "REAL"), LabelRow("gone.mp4", "FAKE")]
    with pytest.warns(UserWarning, match=r"dup\.mp4 \(x/dup\.mp4, y/dup\.mp4\)"):
        matched, missing, unlabeled = match_videos(rows, tmp_path)
    assert matched == [LabelRow("sub/a.mp4", "FAKE"), LabelRow("b.mp4", "REAL")]
    assert missing == ["dup.mp4", "gone.mp4"]
    assert unlabeled == ["extra.mp4", "x/dup.mp4", "y/dup.mp4"]


def test_match_videos_refuses_two_labels_for_one_file(tmp_path):
    touch(tmp_path, "sub/a.mp4")
    with pytest.raises(LabelError, match="labelled REAL .* but FAKE"):
        match_videos([LabelRow("sub/a.mp4", "REAL"), LabelRow("a.mp4", "FAKE")], tmp_path)


# --- rows and summaries ----------------------------------------------------------------------


def test_label_row_rejects_unknown_values():
    with pytest.raises(ValueError, match="label must be REAL or FAKE"):
        LabelRow("a.mp4", "fake")
    with pytest.raises(ValueError, match="split must be"):
        LabelRow("a.mp4", "FAKE", split="validation")


def test_summary_counts_per_label_source_and_split():
    rows = [
        LabelRow("a.mp4", "FAKE", group="g", source="Deepfakes", split="train"),
        LabelRow("b.mp4", "FAKE", group="g", source="Deepfakes"),
        LabelRow("c.mp4", "REAL", source="original", split="val"),
        LabelRow("d.mp4", "FAKE", source="FaceSwap", split="train"),
    ]
    frame = summary_frame(rows)
    assert frame.loc[("all", "all videos")].tolist() == [1, 3, 4, 75.0]
    assert frame.loc[("source", "Deepfakes")].tolist() == [0, 2, 2, 100.0]
    assert frame.loc["split"].index.tolist() == ["train", "val", "(unassigned)"]
    assert frame.loc[("split", "train"), "total"] == 2
    text = summarize(rows)
    assert text.splitlines()[0] == "4 videos in 3 groups: 1 REAL, 3 FAKE (75.0% FAKE)"
    assert any(line.split() == ["Deepfakes", "0", "2", "2", "100.0"] for line in text.splitlines())
    assert any(line.split() == ["(unassigned)", "0", "1", "1", "100.0"] for line in text.splitlines())
    assert summarize([]) == "0 videos" and summary_frame([]).empty


@pytest.mark.sample_data
def test_sample_data_labels_match_every_video():
    if not (SHARED_DATA / "labels.csv").is_file():
        pytest.skip("../shared/data is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = read_labels(SHARED_DATA / "labels.csv")
        matched, missing, unlabeled = match_videos(rows, SHARED_DATA / "videos")
    assert missing == [] and unlabeled == [] and len(matched) == len(rows)
    assert {row.label for row in rows} == {"REAL", "FAKE"}


# --- compressions ----------------------------------------------------------------------------


def test_one_compression_is_used_c23_when_present(tmp_path):
    touch(tmp_path, *(f"original_sequences/youtube/{c}/videos/00{i}.mp4" for c in ("raw", "c23", "c40") for i in range(3)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no split files
        rows = read_labels(tmp_path)
    used, others, compression = select_compression(rows)
    assert compression == "c23" and {row.compression for row in used} == {"c23"} and len(others) == 6
    assert select_compression(rows, "all")[0] == rows
    assert {row.compression for row in select_compression(rows, "raw")[0]} == {"raw"}
    with pytest.raises(LabelError, match=r"no c99 videos here: the compressions present are c23, c40, raw") as error:
        select_compression(rows, "c99")
    assert error.value.option == "compression"
    without_c23 = [row for row in rows if row.compression != "c23"]
    assert select_compression(without_c23)[2] == "c40"


def test_compression_column_round_trips_through_csv(tmp_path):
    rows = [LabelRow("a.mp4", "FAKE", group="g", source="Deepfakes", compression="c40"), LabelRow("b.mp4", "REAL")]
    path = write_labels_csv(rows, tmp_path / "labels.csv")
    assert path.read_text().splitlines()[0] == "filename,label,group,source,split,compression"
    assert read_labels(path) == rows


@pytest.mark.filterwarnings("ignore:FaceForensics")
def test_one_compression_of_a_faceforensics_tree_is_preprocessed(tmp_path):
    """c23 by default: the c40 copies of the same videos get a skipped row with the reason, and no work."""
    for compression in ("c23", "c40"):
        folder = tmp_path / "ff" / "original_sequences" / "youtube" / compression / "videos"
        folder.mkdir(parents=True)
        write_video(folder / "000.mp4", noise_frames(4))
    (tmp_path / "ff" / "splits").mkdir()
    (tmp_path / "ff" / "splits" / "train.json").write_text('[["000", "001"]]')
    cfg = PreprocessConfig(videos=str(tmp_path / "ff"), out=str(tmp_path / "out"), labels=str(tmp_path / "ff"),
                           frames=4, size=32, min_frames=2)
    rows = {row.filename: row for row in preprocess(cfg, progress=False).rows}
    c23, c40 = (f"original_sequences/youtube/{c}/videos/000.mp4" for c in ("c23", "c40"))
    assert rows[c23].label == "REAL" and rows[c23].split == "train" and "no face" in rows[c23].reason
    assert rows[c40].status == "skipped" and rows[c40].reason == "c40 copy: --compression uses c23"
    every = {row.filename: row for row in preprocess(replace(cfg, out=str(tmp_path / "all"), compression="all"),
                                                     progress=False).rows}
    assert "no face" in every[c40].reason and every[c40].label == "REAL"


# --- DFDC layouts ----------------------------------------------------------------------------


def test_dfdc_format_that_finds_nothing_says_where_it_looked(tmp_path, capsys):
    touch(tmp_path, "videos/a.mp4")
    write(tmp_path / "videos" / "metadata.json", json.dumps({"not": "dfdc"}))
    assert main(["labels", str(tmp_path), "--format", "dfdc"]) == 2
    err = capsys.readouterr().err
    assert "no DFDC labels found: looked in this folder and every folder below it for a metadata.json" in err
    assert "(see --format)" in err


def test_dfdc_test_labels_name_file_and_line(tmp_path):
    write(tmp_path / "train" / "part" / "metadata.json", json.dumps({"a.mp4": {"label": "REAL"}}))
    path = write(tmp_path / "test" / "labels.csv", "filename,label\nb.mp4,1\nc.mp4,maybe\n")
    with pytest.raises(LabelError, match=r"test/labels\.csv: line 3: expected 'filename,0 or 1'"):
        read_labels(tmp_path)
    write(path, "filename,label\nb.mp4,1\n")
    assert {row.filename: row.split for row in read_labels(tmp_path)} == {"train/part/a.mp4": "", "test/b.mp4": "test"}


# --- the command line ------------------------------------------------------------------------


def small_celebdf(root: Path) -> Path:
    touch(root, *(f"Celeb-real/id{i}_000{v}.mp4" for i in range(8) for v in range(3)))
    touch(root, *(f"Celeb-synthesis/id{i}_id{(i + 1) % 8}_000{v}.mp4" for i in range(8) for v in range(3)))
    touch(root, *(f"YouTube-real/{i:05d}.mp4" for i in range(12)))
    write(root / "List_of_testing_videos.txt", "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id3_id4_0001.mp4\n"
                                               "1 YouTube-real/00003.mp4\n1 YouTube-real/00099.mp4\n")
    return root


@pytest.mark.parametrize("seed", [42, 7])
def test_labels_assign_splits_writes_the_split_that_training_makes(tmp_path, seed, capsys):
    from dflib.config import TrainConfig
    from dflib.data import ClipRow, make_splits

    root = small_celebdf(tmp_path / "celeb")
    out = tmp_path / "labels.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["labels", str(root), "--assign-splits", "--seed", str(seed), "--out", str(out)]) == 0
        written = read_labels(out)
        listed = read_labels(root)
    text = capsys.readouterr().out
    assert "by split, label and source" in text and "in no split" in text
    assert "1 listed video(s) are not on disk" in text and "YouTube-real/00099.mp4" in text
    on_disk = [row for row in listed if row.filename != "YouTube-real/00099.mp4"]
    clips = [ClipRow(row.filename, row.label, output="x.npz", group=row.group, source=row.source, split=row.split)
             for row in on_disk]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = make_splits(clips, TrainConfig(seed=seed), tmp_path / f"run{seed}")
    assert {row.filename: row.split for row in written} == trained
    table = text.split("by split, label and source")[1].split("\n\n")[0].splitlines()
    counts = Counter((row.split, row.label, row.source) for row in written)
    for source in ("Celeb-real", "Celeb-synthesis", "YouTube-real"):
        line = next(line for line in table if line.startswith(source))
        assert [int(cell) for cell in line.split()[1:-1]] == [
            counts[(split, label, source)] for split in ("train", "val", "test") for label in ("REAL", "FAKE")]
    assert int(next(line for line in table if line.startswith("all")).split()[-1]) == len(on_disk) - len(written) > 0


def test_labels_cli_errors_name_cli_options(tmp_path, capsys):
    touch(tmp_path, "real/a.mp4", "Celeb-real/id0_0000.mp4")
    assert main(["labels", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "(see --format)" in err and "fmt=" not in err
    assert main(["preprocess", "--videos", str(tmp_path), "--labels", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "(see --label-format)" in capsys.readouterr().err
    assert main(["labels", str(tmp_path), "--format", "folders", "--assign-splits", "--test-overlap", "x"]) == 2
    assert "(see --test-overlap)" in capsys.readouterr().err


def test_labels_piped_into_head_exits_quietly(tmp_path):
    import subprocess
    import sys

    root = small_celebdf(tmp_path / "celeb")
    process = subprocess.Popen([sys.executable, "-m", "dflib", "labels", str(root)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written, as `| head -0` would be
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"Broken pipe" not in err and b"BrokenPipe" not in err, err.decode()
    assert process.returncode in (0, 1)
