"""The public datasets' official protocols, on trees of empty files with the real names and split files.

Skipped when ../shared/datasets (the real label and split files) is absent.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import PurePosixPath

import pytest

from dflib.cli import main
from dflib.labelreport import label_report
from dflib.labels import read_labels
from dflib.splits import plan_splits
from public_datasets import (
    FF_METHODS,
    actor_originals,
    celebdf_tree,
    dfdc_metadata,
    dfdc_sample_tree,
    faceforensics_tree,
    ff_pairs,
    shared,
)


def per_split_and_source(rows, splits) -> dict[tuple[str, str], int]:
    return Counter((splits[row.filename], row.source) for row in rows if row.filename in splits)


def assert_no_key_across_splits(rows, splits) -> None:
    where = defaultdict(set)
    for row in rows:
        if row.filename in splits:
            for key in row.group_keys():
                where[key].add(splits[row.filename])
    assert {key: found for key, found in where.items() if len(found) > 1} == {}


# --- FaceForensics++ -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faceforensics(tmp_path_factory):
    """c23 and c40 copies of every video, the DeepFakeDetection actors, split files at the root."""
    return faceforensics_tree(tmp_path_factory.mktemp("ff") / "FaceForensics++", compressions=("c23", "c40"))


def test_faceforensics_official_split_720_140_140_per_method_in_c23(faceforensics):
    report = label_report(faceforensics, split_config=_train_config())
    assert {row.compression for row in report.rows} == {"c23"}
    counts = per_split_and_source(report.rows, {row.filename: row.split for row in report.kept()})
    for source in (*FF_METHODS, "original/youtube"):
        assert [counts[(split, source)] for split in ("train", "val", "test")] == [720, 140, 140], source
    official = {video_id: split for split, pairs in ff_pairs().items() for pair in pairs for video_id in pair}
    for row in report.rows:
        if row.source == "original/youtube":
            assert row.split == official[PurePosixPath(row.filename).stem]
    # Nothing but the official test videos is in test: the actors go to train and val only.
    assert {row.source for row in report.rows if row.split == "test"} == {*FF_METHODS, "original/youtube"}


def test_faceforensics_counts_each_compression_and_uses_c23(faceforensics):
    report = label_report(faceforensics)
    found = Counter(row.compression for row in report.rows + report.other_compressions)
    assert found["c23"] == found["c40"] == len(report.rows)
    text = report.text()
    assert "c23" in text and "c40" in text and "not used" in text
    every = label_report(faceforensics, compression="all")
    assert len(every.rows) == 2 * len(report.rows)
    assert {row.compression for row in label_report(faceforensics, compression="c40").rows} == {"c40"}


def test_deepfakedetection_actors_never_cross_splits(faceforensics):
    rows = label_report(faceforensics).rows
    plan = plan_splits(rows, seed=3)
    actors = [row for row in rows if "actors" in row.filename or "DeepFakeDetection" in row.filename]
    used = [row for row in actors if row.filename in plan.splits]
    assert used and {plan.splits[row.filename] for row in used} == {"train", "val"}
    split_of_actor = defaultdict(set)
    for row in used:
        for actor in PurePosixPath(row.filename).stem.split("__")[0].split("_"):
            split_of_actor[actor].add(plan.splits[row.filename])
    assert len(split_of_actor) == len({name.split("__")[0] for name in actor_originals()})
    assert all(len(splits) == 1 for splits in split_of_actor.values()), split_of_actor
    assert_no_key_across_splits(rows, plan.splits)
    # A fake whose two actors were dealt apart is reported, not silently kept or dropped.
    assert set(plan.left_out) == {row.filename for row in actors} - set(plan.splits)


@pytest.mark.parametrize("layout", ["splits", "option"])
def test_faceforensics_split_files_where_people_keep_them(tmp_path, layout):
    root = faceforensics_tree(tmp_path / "ff", split_files="splits" if layout == "splits" else "none", actors=False)
    elsewhere = None
    if layout == "option":
        elsewhere = tmp_path / "official"
        elsewhere.mkdir()
        for split in ("train", "val", "test"):
            (elsewhere / f"{split}.json").write_text(shared(f"faceforensics/{split}.json").read_text())
    rows = read_labels(root, splits_dir=elsewhere)
    assert Counter(row.split for row in rows if row.source == "Deepfakes") == {"train": 720, "val": 140, "test": 140}


def test_faceforensics_without_split_files_says_so_loudly(tmp_path, capsys):
    root = faceforensics_tree(tmp_path / "ff", split_files="none", actors=False)
    with pytest.warns(UserWarning, match="no split files.*NOT the official 720/140/140"):
        rows = read_labels(root)
    assert {row.split for row in rows} == {""}
    assert main(["labels", str(root)]) == 0
    assert "warning: " in capsys.readouterr().out


# --- Celeb-DF --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celebdf(tmp_path_factory):
    return celebdf_tree(tmp_path_factory.mktemp("celebdf") / "Celeb-DF-v2")


def official_celebdf_test() -> dict[str, str]:
    lines = shared("celebdf/List_of_testing_videos.txt").read_text().split("\n")
    return {line.split()[1]: "REAL" if line.split()[0] == "1" else "FAKE" for line in lines if line.strip()}


def test_celebdf_test_split_is_exactly_the_official_list(celebdf):
    report = label_report(celebdf, split_config=_train_config())
    test = {row.filename: row.label for row in report.rows if row.split == "test"}
    assert test == official_celebdf_test()
    assert Counter(test.values()) == {"REAL": 178, "FAKE": 340}
    val = Counter(row.label for row in report.rows if row.split == "val")
    assert val["REAL"] > 0 and val["FAKE"] > 0
    assert Counter(row.split for row in report.kept()).keys() == {"train", "val", "test"}
    assert_no_key_across_splits([row for row in report.kept() if row.split != "test"],
                                {row.filename: row.split for row in report.kept() if row.split != "test"})


def test_celebdf_summary_counts_what_the_official_split_shares_and_strict_leaves_it_out(celebdf):
    report = label_report(celebdf)
    test = [row for row in report.rows if row.split == "test"]
    test_sources = {_celebdf_source(row.filename) for row in test}
    sharing = [row for row in report.rows if row.split != "test" and _celebdf_source(row.filename) in test_sources]
    assert report.overlap.videos_sharing_source == len(sharing) > 0
    assert f"{len(sharing)} of the videos share a source video" in report.text()
    strict = label_report(celebdf, split_config=_train_config(test_overlap="source"))
    trained = {row.filename for row in strict.kept() if row.split in ("train", "val")}
    assert trained and not trained & {row.filename for row in sharing}
    assert {row.filename for row in strict.kept() if row.split == "test"} == set(official_celebdf_test())


@pytest.mark.parametrize(("subfolder", "youtube"), [("videos", "YouTube-real"), ("", "Youtube-real")])
def test_celebdf_layouts_and_spellings_count_each_video_once(tmp_path, subfolder, youtube):
    report = label_report(celebdf_tree(tmp_path / "celeb", subfolder=subfolder, youtube=youtube))
    assert len(report.rows) == 590 + 300 + 5639 and report.missing == []
    assert Counter(row.source for row in report.rows) == {"Celeb-real": 590, "YouTube-real": 300, "Celeb-synthesis": 5639}
    assert Counter(row.label for row in report.rows if row.split == "test") == {"REAL": 178, "FAKE": 340}


def test_celebdf_listed_videos_not_on_disk_are_reported_not_counted(tmp_path):
    report = label_report(celebdf_tree(tmp_path / "celeb", youtube=None))
    assert len(report.missing) == 70 and all(name.startswith("YouTube-real/") for name in report.missing)
    assert Counter(row.label for row in report.rows if row.split == "test") == {"REAL": 108, "FAKE": 340}
    assert "70 listed video(s) are not on disk" in report.text()


def _celebdf_source(filename: str) -> str:
    parts = PurePosixPath(filename).stem.split("_")
    return f"{parts[0]}_{parts[-1]}"


# --- DFDC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["train_sample_videos", "DFDC/train/dfdc_train_part_0"])
def test_dfdc_sample_400_videos_each_fake_with_its_original(tmp_path, folder):
    root = dfdc_sample_tree(tmp_path, folder)
    report = label_report(root, split_config=_train_config())
    assert report.format == "dfdc"
    assert Counter(row.label for row in report.rows) == {"REAL": 77, "FAKE": 323}
    metadata = dfdc_metadata()
    for row in report.rows:
        name = PurePosixPath(row.filename).name
        assert row.group == (metadata[name]["original"] or name)
    assert_no_key_across_splits(report.rows, {row.filename: row.split for row in report.rows})


def test_dfdc_public_test_labels_are_the_test_split(tmp_path):
    root = dfdc_sample_tree(tmp_path / "DFDC", "train/dfdc_train_part_0").parent
    test = tmp_path / "DFDC" / "test"
    (test / "videos").mkdir(parents=True)
    for name in ("aaaaaaaaaa.mp4", "bbbbbbbbbb.mp4"):
        (test / "videos" / name).touch()
    (test / "labels.csv").write_text("filename,label\naaaaaaaaaa.mp4,0\nbbbbbbbbbb.mp4,1\n")
    report = label_report(root, split_config=_train_config())
    assert {row.filename: (row.label, row.split) for row in report.rows if row.split == "test"} == {
        "DFDC/test/videos/aaaaaaaaaa.mp4": ("REAL", "test"), "DFDC/test/videos/bbbbbbbbbb.mp4": ("FAKE", "test")}


# --- the original design's label file -------------------------------------------------------


def test_original_design_csv_groups_each_fake_with_its_sources():
    path = shared("original_design/Gobal_metadata.csv")
    report = label_report(path)
    rows = {row.filename: row for row in report.rows}
    assert len(rows) == 23186
    assert rows["000.mp4"].group == rows["000_003.mp4"].group == rows["003.mp4"].group
    assert rows["id0_id1_0000.mp4"].group_keys() == ("id0", "id1")
    assert rows["id0_0000.mp4"].group_keys() == ("id0",)
    assert Counter(row.source for row in rows.values()) == {"FaceForensics++": 2000, "Celeb-DF": 6229, "DFDC": 14957}
    notes = " ".join(report.notes)
    assert "FaceForensics++: 2000 videos" in notes and "Celeb-DF: 6229 videos" in notes and "DFDC: 14957" in notes
    plan = plan_splits(report.rows)
    assert_no_key_across_splits(report.rows, plan.splits)
    for source in ("FaceForensics++", "Celeb-DF", "DFDC"):
        assert {plan.splits[name] for name, row in rows.items() if row.source == source and name in plan.splits} == {
            "train", "val", "test"}, source


def test_original_design_csv_takes_dfdc_originals_from_metadata(tmp_path):
    videos = dfdc_sample_tree(tmp_path, "part")
    fake = next(name for name, info in dfdc_metadata().items() if info["label"] == "FAKE")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"{fake},FAKE\n")
    (row,) = read_labels(labels, videos_dir=videos)
    assert row.group == dfdc_metadata()[fake]["original"]


def _train_config(**changes):
    from dflib.config import TrainConfig

    return TrainConfig(**changes)
