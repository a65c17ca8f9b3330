import json
import random
import re
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from dflib.labels import LabelError, LabelRow, read_labels
from dflib.splits import assign_splits, class_balance, load_splits, overlap_with_test, plan_splits, save_splits


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def random_rows(seed: int, groups: int = 60) -> list[LabelRow]:
    rng = random.Random(seed)
    rows = []
    for group in range(groups):
        for member in range(rng.randint(1, 4)):
            label = rng.choice(["REAL", "FAKE"])
            rows.append(LabelRow(f"g{group}/v{member}.mp4", label, group=f"g{group}"))
    return rows


def splits_per_group(rows: list[LabelRow], mapping: dict[str, str]) -> dict[str, set[str]]:
    result = defaultdict(set)
    for row in rows:
        result[row.group_key()].add(mapping[row.filename])
    return result


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_groups_never_cross_splits_and_fractions_hold(seed):
    rows = random_rows(seed)
    mapping = assign_splits(rows, val_fraction=0.2, test_fraction=0.1, seed=seed)
    assert set(mapping) == {row.filename for row in rows}
    assert all(len(splits) == 1 for splits in splits_per_group(rows, mapping).values())
    share = Counter(mapping.values())
    assert abs(share["val"] / len(rows) - 0.2) < 0.06
    assert abs(share["test"] / len(rows) - 0.1) < 0.06
    for split in ("train", "val", "test"):
        assert {row.label for row in rows if mapping[row.filename] == split} == {"REAL", "FAKE"}


def test_same_seed_same_split_other_seed_other_split():
    rows = random_rows(7)
    assert assign_splits(rows, seed=5) == assign_splits(list(reversed(rows)), seed=5)
    assert assign_splits(rows, seed=5) != assign_splits(rows, seed=6)


def test_empty_group_falls_back_to_the_file_stem():
    rows = [LabelRow(f"real/{i}.mp4", "REAL") for i in range(10)] + [LabelRow(f"fake/{i}.mp4", "FAKE") for i in range(10)]
    mapping = assign_splits(rows, val_fraction=0.3, test_fraction=0.3, seed=0)
    for i in range(10):
        assert mapping[f"real/{i}.mp4"] == mapping[f"fake/{i}.mp4"]


def test_predefined_splits_are_kept_exactly_and_never_extended():
    rows = [LabelRow(f"v{i}.mp4", "FAKE" if i % 2 else "REAL", group=f"g{i}") for i in range(40)]
    rows[0] = LabelRow("v0.mp4", "REAL", group="g0", split="test")
    rows.append(LabelRow("v0_fake.mp4", "FAKE", group="g0"))
    rows[1] = LabelRow("v1.mp4", "FAKE", group="g1", split="val")
    rows[2] = LabelRow("v2.mp4", "REAL", group="g1", split="train")  # one group on both sides, as given
    with pytest.warns(UserWarning, match="test has no FAKE videos"):
        mapping = assign_splits(rows, val_fraction=0.0, test_fraction=0.1, seed=0)
    assert [name for name, split in mapping.items() if split == "test"] == ["v0.mp4"]  # a published test set is closed
    assert mapping["v0_fake.mp4"] == "train" and mapping["v1.mp4"] == "val" and mapping["v2.mp4"] == "train"
    overlap = overlap_with_test(rows)
    assert (overlap.people, overlap.videos_sharing_person) == (1, 1)


def test_without_a_predefined_test_split_every_split_is_dealt():
    rows = [LabelRow(f"v{i}.mp4", "FAKE" if i % 2 else "REAL", group=f"g{i}") for i in range(40)]
    rows[0] = LabelRow("v0.mp4", "REAL", group="g0", split="val")
    mapping = assign_splits(rows, seed=0)
    assert mapping["v0.mp4"] == "val" and set(mapping.values()) == {"train", "val", "test"}


def test_a_video_showing_two_people_is_kept_only_where_both_are():
    rows = [LabelRow(f"p{i}/real{j}.mp4", "REAL", group=f"p{i}") for i in range(12) for j in range(2)]
    rows += [LabelRow(f"p{i}/fake_with_{k}.mp4", "FAKE", group=f"p{i}+p{k}") for i in range(12) for k in range(12) if k != i]
    plan = plan_splits(rows, seed=1)
    split_of = {row.group: plan.splits[row.filename] for row in rows if row.label == "REAL"}
    for row in rows[24:]:
        first, second = row.group_keys()
        if split_of[first] == split_of[second]:
            assert plan.splits[row.filename] == split_of[first]
        else:
            assert row.filename not in plan.splits and "different splits" in plan.left_out[row.filename]
    assert set(plan.splits.values()) == {"train", "val", "test"} and plan.left_out
    with pytest.warns(UserWarning, match=rf"{len(plan.left_out)} video\(s\) are in no split"):
        assert assign_splits(rows, seed=1) == plan.splits


def test_every_source_gets_its_share_of_every_split():
    """A dataset of a few large groups must not be dealt to train whole before the rest (largest first)."""
    rows = [LabelRow(f"big/{g}_{i}.mp4", "FAKE", group=f"b{g}", source="big") for g in range(10) for i in range(50)]
    rows += [LabelRow(f"small/{i}.mp4", "FAKE", source="small") for i in range(600)]
    rows += [LabelRow(f"real/{source}{i}.mp4", "REAL", source=source) for i in range(100) for source in ("big", "small")]
    mapping = assign_splits(rows, seed=0)
    for source in ("big", "small"):
        assert {mapping[row.filename] for row in rows if row.source == source and row.label == "FAKE"} == {
            "train", "val", "test"}, source


@pytest.mark.parametrize(("strict", "left_out"), [("keep", set()), ("source", {"id0_id1_0000.mp4"}),
                                                  ("person", {"id0_id1_0000.mp4", "id0_0001.mp4"})])
def test_strict_test_overlap_leaves_out_what_shares_a_test_video(strict, left_out):
    rows = [LabelRow("id0_0000.mp4", "REAL", group="id0", split="test"),
            LabelRow("id0_id1_0000.mp4", "FAKE", group="id0+id1"),  # made from the test video
            LabelRow("id0_0001.mp4", "REAL", group="id0"),  # the same person, another video
            LabelRow("id1_0000.mp4", "REAL", group="id1"), LabelRow("id2_0000.mp4", "REAL", group="id2"),
            LabelRow("id3_id2_0000.mp4", "FAKE", group="id3+id2"), LabelRow("id3_0000.mp4", "REAL", group="id3")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_splits(rows, val_fraction=0.3, test_fraction=0.3, test_overlap=strict)
    assert {name for name, reason in plan.left_out.items() if "test video" in reason} == left_out
    assert plan.splits["id0_0000.mp4"] == "test"
    with pytest.raises(LabelError, match="test overlap must be one of keep, source, person"):
        plan_splits(rows, test_overlap="strict")


@pytest.mark.parametrize(
    ("groups", "expected", "warning"),
    [
        (1, {"train"}, r"val is empty; test is empty"),
        (2, {"train", "val"}, r"test is empty"),
        (3, {"train", "val", "test"}, None),
    ],
)
def test_few_groups_still_train_then_validate_then_test(groups, expected, warning):
    labels = ("REAL", "FAKE", "FAKE")
    rows = [LabelRow(f"g{i}/{j}.mp4", label, group=f"g{i}") for i in range(groups) for j, label in enumerate(labels)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapping = assign_splits(rows)
    assert set(mapping.values()) == expected
    assert all(len(splits) == 1 for splits in splits_per_group(rows, mapping).values())
    if warning is None:
        assert not caught
    else:
        assert re.search(warning, " ".join(str(w.message) for w in caught))


def test_train_gets_a_group_even_when_val_fraction_dominates():
    rows = [LabelRow("a.mp4", "REAL"), LabelRow("b.mp4", "FAKE")]
    with pytest.warns(UserWarning, match="too few groups"):
        mapping = assign_splits(rows, val_fraction=0.6, test_fraction=0.2)
    assert mapping == {"a.mp4": "train", "b.mp4": "train"}


def test_bad_fractions_and_duplicate_rows_are_refused():
    rows = [LabelRow("a.mp4", "REAL")]
    with pytest.raises(ValueError, match="sum below 1"):
        assign_splits(rows, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="must be >= 0"):
        assign_splits(rows, val_fraction=-0.1)
    with pytest.raises(ValueError, match=r"a\.mp4 appears in more than one row"):
        assign_splits(rows + [LabelRow("a.mp4", "FAKE")])


# --- splits of real layouts ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*no split files")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faceforensics_pairs_and_their_originals_share_a_split(tmp_path, seed):
    rng = random.Random(seed)
    ids = [f"{i:03d}" for i in range(24)]
    rng.shuffle(ids)
    pairs = [ids[i:i + 2] for i in range(0, len(ids), 2)]
    for a, b in pairs:
        touch(tmp_path, f"original_sequences/youtube/c23/videos/{a}.mp4", f"original_sequences/youtube/c23/videos/{b}.mp4")
        for method in rng.sample(["Deepfakes", "FaceSwap", "NeuralTextures"], 2):
            touch(tmp_path, f"manipulated_sequences/{method}/c23/videos/{a}_{b}.mp4", f"manipulated_sequences/{method}/c40/videos/{b}_{a}.mp4")
    rows = read_labels(tmp_path)
    mapping = assign_splits(rows, seed=seed)
    split_of_id = {Path(name).stem: split for name, split in mapping.items() if name.startswith("original_")}
    for name, split in mapping.items():
        for video_id in Path(name).stem.split("_"):
            assert split_of_id[video_id] == split, name
    assert set(mapping.values()) == {"train", "val", "test"}


def test_faceforensics_official_splits_survive_assignment(tmp_path):
    touch(tmp_path, *(f"original_sequences/youtube/c23/videos/{i:03d}.mp4" for i in range(6)))
    touch(tmp_path, "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4", "manipulated_sequences/Deepfakes/c23/videos/002_003.mp4")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.json").write_text(json.dumps([["000", "001"]]))
    (tmp_path / "splits" / "val.json").write_text(json.dumps([["002", "003"]]))
    with pytest.warns(UserWarning, match="train has no FAKE videos"):  # every fake is in an official pair
        mapping = assign_splits(read_labels(tmp_path), seed=1)
    assert mapping["original_sequences/youtube/c23/videos/001.mp4"] == "test"
    assert mapping["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"] == "test"
    assert mapping["manipulated_sequences/Deepfakes/c23/videos/002_003.mp4"] == "val"
    assert mapping["original_sequences/youtube/c23/videos/003.mp4"] == "val"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dfdc_fakes_share_a_split_with_their_original(tmp_path, seed):
    rng = random.Random(seed)
    for part in range(3):
        entries = {}
        for original in range(8):
            name = f"p{part}o{original}.mp4"
            entries[name] = {"label": "REAL", "split": "train", "original": None}
            for fake in range(rng.randint(1, 3)):
                entries[f"p{part}o{original}f{fake}.mp4"] = {"label": "FAKE", "split": "train", "original": name}
        (tmp_path / f"part_{part}").mkdir()
        (tmp_path / f"part_{part}" / "metadata.json").write_text(json.dumps(entries))
    mapping = assign_splits(read_labels(tmp_path), seed=seed)
    for name, split in mapping.items():
        stem = Path(name).stem
        if "f" in stem:
            original = f"{Path(name).parent.as_posix()}/{stem.split('f')[0]}.mp4"
            assert mapping[original] == split, name
    assert set(mapping.values()) == {"train", "val", "test"}


def test_celebdf_test_list_is_exactly_the_test_split(tmp_path):
    names = [f"Celeb-real/id{i}_000{v}.mp4" for i in range(6) for v in range(2)]
    names += [f"Celeb-synthesis/id{i}_id{(i + 1) % 6}_000{v}.mp4" for i in range(6) for v in range(2)]
    touch(tmp_path, *names)
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id3_id4_0001.mp4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # so few people cannot fill every split
        mapping = assign_splits(read_labels(tmp_path), val_fraction=0.2, test_fraction=0.0)
    assert {name for name, split in mapping.items() if split == "test"} == {
        "Celeb-real/id0_0000.mp4", "Celeb-synthesis/id3_id4_0001.mp4"}
    assert "val" in mapping.values()


# --- saving and balance ----------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    mapping = {"b/x, y.mp4": "val", "a.mp4": "train", "c.mp4": "test"}
    path = save_splits(mapping, tmp_path / "run" / "splits.csv")
    assert path.read_text().splitlines()[:2] == ["filename,split", "a.mp4,train"]
    assert load_splits(path) == mapping
    with pytest.raises(ValueError, match="split must be one of"):
        save_splits({"a.mp4": "holdout"}, path)
    assert load_splits(path) == mapping  # a refused save leaves the old file


def test_load_splits_errors_name_file_and_line(tmp_path):
    path = tmp_path / "splits.csv"
    path.write_text("filename,split\na.mp4,train\n\nb.mp4,holdout\n")
    with pytest.raises(LabelError, match=r"splits\.csv: line 4: expected 'filename,train\|val\|test'"):
        load_splits(path)
    path.write_text("a.mp4,train\n")
    with pytest.raises(LabelError, match="line 1: expected the header"):
        load_splits(path)


def test_class_balance_weights_are_inverse_frequencies_averaging_one():
    rows = [LabelRow(f"r{i}.mp4", "REAL") for i in range(30)] + [LabelRow(f"f{i}.mp4", "FAKE") for i in range(10)]
    balance = class_balance(rows)
    assert balance["counts"] == {"REAL": 30, "FAKE": 10}
    assert balance["weights"]["FAKE"] == pytest.approx(3 * balance["weights"]["REAL"])
    assert sum(balance["weights"].values()) / 2 == pytest.approx(1.0)
    assert balance["pos_weight"] == pytest.approx(3.0)
    assert balance["fake_fraction"] == pytest.approx(0.25)
    only_fake = class_balance([LabelRow("f.mp4", "FAKE")])
    assert only_fake["weights"] == {"REAL": 1.0, "FAKE": 1.0} and only_fake["counts"]["REAL"] == 0
