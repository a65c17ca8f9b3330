import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from dflib.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from dflib.config import AugmentConfig, ModelConfig, TrainConfig, to_dict
from dflib.train import train
from synthetic_clips import make_data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"), n_real=16, n_fake=16, frames=6, size=32)


def tiny_config(data_dir, out, **changes) -> TrainConfig:
    cfg = TrainConfig(
        data=str(data_dir),
        out=str(out),
        model=ModelConfig(name="resnet18_lstm", hidden_size=32, dropout=0.2, pretrained="none"),
        augment=AugmentConfig(hflip=0.5, color_jitter=0.1, jpeg_prob=0.2, blur_prob=0.1, scale_shift=0.05),
        frames=4,
        size=32,
        batch_size=4,
        epochs=3,
        lr=1e-3,
        warmup_epochs=1,
        workers=0,
        val_fraction=0.5,
        test_fraction=0.0,
        patience=0,
        seed=7,
    )
    return dataclasses.replace(cfg, **changes)


class Killed(Exception):
    pass


def kill_after(epochs):
    def callback(history):
        if len(history) == epochs:
            raise Killed

    return callback


def without_time(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(tiny_config(data_dir, out), progress=False), out


def test_learns_an_easy_task_and_writes_the_run_folder(finished_run):
    result, out = finished_run
    history = result["history"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert max(record["val_auc"] for record in history) >= 0.95
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for name in ("config.json", "splits.csv", "last.pt", "best.pt", "history.json", "history.csv"):
        assert (out / name).is_file(), name
    assert len(json.loads((out / "history.json").read_text())) == 3
    assert result["monitor"] == "val_auc" and result["best_epoch"] >= 1


def test_checkpoint_is_plain_data_and_complete(finished_run, data_dir):
    _, out = finished_run
    raw = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert raw["format"] == "dflib-checkpoint" and raw["format_version"] == 1
    assert raw["label_map"] == {"REAL": 0, "FAKE": 1}
    assert raw["normalization"]["color"] == "RGB" and raw["frames"] == 4 and raw["size"] == 32
    assert raw["preprocess"]["size"] == 32 and raw["epoch"] == 3 and len(raw["history"]) == 3
    assert raw["optimizer_state"] and raw["scheduler_state"] and raw["rng_state"][0]["torch"].dtype == torch.uint8
    assert set(raw["splits"].values()) == {"train", "val"}


def test_loaded_model_reproduces_the_checkpoint(finished_run):
    _, out = finished_run
    model, ckpt = load_model(out / "best.pt")
    assert not model.training and model.config.name == "resnet18_lstm"
    for key, value in ckpt["model_state"].items():
        assert torch.equal(model.state_dict()[key], value)


def test_resume_after_a_kill_matches_an_uninterrupted_run(finished_run, data_dir, tmp_path):
    result, out = finished_run
    cfg = tiny_config(data_dir, tmp_path / "run")
    with pytest.raises(Killed):
        train(cfg, progress=False, on_epoch_end=kill_after(2))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    resumed = train(None, resume=tmp_path / "run", progress=False)
    assert [record["epoch"] for record in resumed["history"]] == [1, 2, 3]
    assert without_time(resumed["history"]) == without_time(result["history"])
    assert (tmp_path / "run" / "splits.csv").read_text() == (out / "splits.csv").read_text()
    uninterrupted = load_checkpoint(out / "last.pt")["model_state"]
    continued = load_checkpoint(tmp_path / "run" / "last.pt")["model_state"]
    assert all(torch.equal(uninterrupted[key], continued[key]) for key in uninterrupted)


def test_resume_keeps_the_saved_config_and_can_extend(finished_run, data_dir, tmp_path):
    _, out = finished_run
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "splits.csv"):
        (run / name).write_bytes((out / name).read_bytes())
    changed = tiny_config(data_dir, run, epochs=4, lr=0.5)
    with pytest.warns(UserWarning, match="lr=0.5"):
        result = train(changed, resume=run / "last.pt", progress=False)
    assert [record["epoch"] for record in result["history"]] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3


def test_refuses_to_overwrite_a_run(finished_run, data_dir):
    _, out = finished_run
    with pytest.raises(FileExistsError, match="resume"):
        train(tiny_config(data_dir, out), progress=False)


def test_sampler_balance_and_early_stopping(tmp_path):
    data = make_data_dir(tmp_path / "data", n_real=3, n_fake=9, extra_rows=False)
    cfg = tiny_config(data, tmp_path / "run", balance="sampler", epochs=4, lr=0.0, patience=1, val_fraction=0.34)
    result = train(cfg, progress=False)
    # A zero learning rate never improves on epoch 1, so patience 1 stops after epoch 2.
    assert result["stopped_early"] and len(result["history"]) == 2 and result["best_epoch"] == 1


def test_malicious_pickle_is_refused_without_side_effect(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "dflib-checkpoint", "model_state": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused for safety") as error:
        load_checkpoint(tmp_path / "evil.pt")
    assert "evil.pt" in str(error.value)
    assert not marker.exists()


def test_unusable_checkpoints_name_the_file(finished_run, tmp_path):
    _, out = finished_run
    data = (out / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt.*corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="missing.pt.*no such"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt.*not a dflib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    ckpt = load_checkpoint(out / "best.pt")
    save_checkpoint({**ckpt, "format_version": 2}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="future.pt.*newer dflib"):
        load_checkpoint(tmp_path / "future.pt")


def test_architecture_mismatch_is_explained(finished_run):
    _, out = finished_run
    ckpt = load_checkpoint(out / "best.pt")
    ckpt["model_config"] = {**ckpt["model_config"], "hidden_size": 16}
    with pytest.raises(CheckpointError, match=r"shape mismatch.*lstm\.weight") as error:
        load_model(ckpt)
    assert "resnet18_lstm" in str(error.value)
    ckpt["model_config"] = {**ckpt["model_config"], "name": "mobilenet_v3_small_lstm", "hidden_size": 32}
    with pytest.raises(CheckpointError, match="missing .*unexpected"):
        load_model(ckpt)


def test_two_processes_with_torchrun_agree(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path / "run", epochs=1, batch_size=2)
    script = tmp_path / "entry.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys
        from dflib.config import TrainConfig, from_dict
        from dflib.train import train
        result = train(from_dict(TrainConfig, json.loads(sys.argv[1])), progress=False)
        with open(os.path.join(sys.argv[2], "rank%s.json" % os.environ["RANK"]), "w") as handle:
            json.dump({"history": result["history"], "world": os.environ["WORLD_SIZE"]}, handle)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), json.dumps(to_dict(cfg)), str(tmp_path)],
        check=True, env=env, timeout=300, capture_output=True,
    )
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["world"] == "2"
    assert without_time(ranks[0]["history"]) == without_time(ranks[1]["history"])
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and without_time(ckpt["history"]) == without_time(ranks[0]["history"])
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        "best.pt", "config.json", "history.csv", "history.json", "last.pt", "splits.csv",
    ]


def test_real_videos_only_with_pseudo_fakes_validates_on_fixed_pseudo_fakes(tmp_path):
    from dflib.data import VideoClipDataset, read_manifest

    data = make_data_dir(tmp_path / "data", n_real=10, n_fake=0, extra_rows=False)
    rows = read_manifest(data)
    val = VideoClipDataset(data, rows[:3], frames=4, size=32, train=False, fake_copies=True)
    assert len(val) == 6 and val.labels == [0, 0, 0, 1, 1, 1]
    first, again = val[4], val[4]
    assert first[1] == 1 and torch.equal(first[0], again[0])  # the same fake every epoch
    assert not torch.equal(first[0], val[1][0])  # and not the real clip it came from

    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), frames=4, size=32, epochs=1, batch_size=4,
                      workers=0, pseudo_fakes=0.5,
                      model=ModelConfig(name="mobilenet_v3_small_lstm", hidden_size=16, pretrained="none"))
    history = train(cfg, progress=False)["history"]
    assert history[0]["val_auc"] == history[0]["val_auc"]  # not NaN: two classes to rank


def test_best_checkpoint_breaks_auc_ties_on_validation_loss(data_dir, tmp_path):
    result = train(tiny_config(data_dir, tmp_path / "run", epochs=5), progress=False)
    history = result["history"]
    top_auc = max(record["val_auc"] for record in history)
    tied = [record for record in history if record["val_auc"] == top_auc]
    assert len({record["val_loss"] for record in tied}) > 1, "this run must contain an AUC tie to test"
    expected = min(tied, key=lambda record: record["val_loss"])["epoch"]
    assert expected != tied[0]["epoch"]  # the first epoch at the top AUC is not the best one
    assert result["best_epoch"] == expected
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == expected and best["best_val_loss"] == pytest.approx(history[expected - 1]["val_loss"])


def test_weighted_sampler_draws_are_distinct_keys_shared_out_between_processes():
    from dflib.train import WeightedDistributedSampler

    dataset = list(range(5))
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 20.0])
    per_rank = []
    for rank in (0, 1):
        sampler = WeightedDistributedSampler(dataset, weights, num_replicas=2, rank=rank, seed=1)
        sampler.set_epoch(3)
        per_rank.append(list(sampler))
        assert len(per_rank[-1]) == len(sampler)
    keys = per_rank[0] + per_rank[1]
    draws = sorted(draw for _, draw in keys)
    assert draws == list(range(len(keys)))  # every draw once, so a clip drawn twice differs
    assert sum(index == 4 for index, _ in keys) > 1


def test_sampler_weights_balance_the_labels_after_pseudo_fakes():
    from dflib.train import balanced_sampling_weights

    labels = [0] * 8 + [1] * 2
    weights = balanced_sampling_weights(labels, pseudo_fakes=0.25)
    share = weights / weights.sum()
    p_real = float(share[:8].sum()) * 0.75
    assert p_real == pytest.approx(0.5)
    assert balanced_sampling_weights([0] * 4, 0.5).tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="--balance sampler cannot.*--balance loss_weights"):
        balanced_sampling_weights(labels, pseudo_fakes=0.5)


DDP_ENTRY = """
import json, os, sys
import torch
import dflib.train as training
from dflib.config import TrainConfig, from_dict
cfg, out, mode = from_dict(TrainConfig, json.loads(sys.argv[1])), sys.argv[2], sys.argv[3]
if mode == "kill":  # every process dies as epoch 2 starts, after epoch 1 was saved
    epoch_calls = []
    run_epoch = training._train_epoch
    def dying(*args, **kwargs):
        epoch_calls.append(1)
        if len(epoch_calls) == 2:
            raise SystemExit(3)
        return run_epoch(*args, **kwargs)
    training._train_epoch = dying
result = training.train(None if mode == "resume" else cfg, resume=cfg.out if mode == "resume" else None,
                        progress=False)
with open(os.path.join(out, "%s-rank%s.json" % (mode, os.environ["RANK"])), "w") as handle:
    json.dump({"seed": torch.initial_seed(), "history": result["history"]}, handle)
"""


def _torchrun(script, cfg, out, mode, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), json.dumps(to_dict(cfg)), str(out), mode],
        check=check, env=env, timeout=300, capture_output=True)


def test_distributed_ranks_have_their_own_seeds_and_resume_exactly(data_dir, tmp_path):
    script = tmp_path / "entry.py"
    script.write_text(DDP_ENTRY)
    whole = tiny_config(data_dir, tmp_path / "whole", epochs=2, batch_size=2)
    _torchrun(script, whole, tmp_path, "whole")
    seeds = [json.loads((tmp_path / f"whole-rank{rank}.json").read_text())["seed"] for rank in (0, 1)]
    assert seeds == [whole.seed, whole.seed + 1]  # no two processes share dropout masks

    cut = dataclasses.replace(whole, out=str(tmp_path / "cut"))
    assert _torchrun(script, cut, tmp_path, "kill", check=False).returncode != 0
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    _torchrun(script, cut, tmp_path, "resume")
    expected = load_checkpoint(tmp_path / "whole" / "last.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert resumed["epoch"] == 2 and len(resumed["rng_state"]) == 2
    assert without_time(resumed["history"]) == without_time(expected["history"])
    for key, value in expected["model_state"].items():
        assert torch.equal(value, resumed["model_state"][key]), key
