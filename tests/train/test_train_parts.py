"""Building blocks of the engine: resumable batches, schedules, metrics.csv writer, distributed helpers."""
from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from workbench.core import DataError
from workbench.train import (DistInfo, IterationSchedule, MetricsLog, ResumableLoader, TrainConfig,
                             build_scheduler, dist_info, linear_ramp, lr_factor, move_to_device, read_rows,
                             stage_at, step_batches, unwrap_model)


def _ds(n=20):
    return TensorDataset(torch.arange(n))


# ---------------------------------------------------------------------------------------------- data
def test_batch_k_is_the_same_with_or_without_resume():
    loader = ResumableLoader(_ds(20), batch_size=3, seed=5)
    it = loader(0)
    from_zero = [next(it)[0].tolist() for _ in range(15)]
    for k in (0, 4, 6, 13):
        assert next(loader(k))[0].tolist() == from_zero[k]


def test_each_epoch_is_a_fresh_permutation_without_repeats():
    loader = ResumableLoader(_ds(20), batch_size=3, seed=5)
    assert loader.steps_per_epoch() == 6  # 18 of 20 per epoch, the tail dropped
    it = loader(0)
    epochs = [[i for _ in range(6) for i in next(it)[0].tolist()] for _ in range(3)]
    for e in epochs:
        assert len(e) == len(set(e)) == 18 and set(e) <= set(range(20))
    assert epochs[0] != epochs[1] != epochs[2]
    assert [loader.permutation(e)[:18].tolist() for e in range(3)] == epochs
    other = ResumableLoader(_ds(20), batch_size=3, seed=6)
    assert other.permutation(0).tolist() != loader.permutation(0).tolist()


def test_ranks_split_every_global_batch():
    single = ResumableLoader(_ds(23), batch_size=4, seed=1, rank=0, world_size=1)
    r0 = ResumableLoader(_ds(23), batch_size=2, seed=1, rank=0, world_size=2)
    r1 = ResumableLoader(_ds(23), batch_size=2, seed=1, rank=1, world_size=2)
    assert single.steps_per_epoch() == r0.steps_per_epoch() == 5
    for k in range(12):
        a, b = r0.indices(k), r1.indices(k)
        assert not set(a) & set(b) and a + b == single.indices(k)


def test_no_shuffle_and_too_small_dataset():
    loader = ResumableLoader(_ds(7), batch_size=3, shuffle=False)
    assert [next(loader(k))[0].tolist() for k in range(3)] == [[0, 1, 2], [3, 4, 5], [0, 1, 2]]
    with pytest.raises(DataError, match="fewer than one global batch"):
        ResumableLoader(_ds(3), batch_size=4)(0)


def test_loader_leaves_the_global_rng_alone_and_workers_give_the_same_batches():
    loader = ResumableLoader(_ds(20), batch_size=4, seed=2)
    state = torch.get_rng_state()
    it = loader(3)
    first = [next(it)[0].tolist() for _ in range(4)]
    assert torch.equal(torch.get_rng_state(), state)  # DataLoader would otherwise draw its base seed
    workers = ResumableLoader(_ds(20), batch_size=4, seed=2, num_workers=1)
    itw = workers(3)
    assert [next(itw)[0].tolist() for _ in range(4)] == first
    del itw


def test_step_batches_and_move_to_device():
    it = step_batches(lambda k: {"k": torch.tensor(k), "nested": [torch.zeros(1), "tag"]})(7)
    b = next(it)
    assert b["k"].item() == 7 and next(it)["k"].item() == 8
    Pair = collections.namedtuple("Pair", "a b")
    moved = move_to_device({"x": Pair(torch.ones(2), [torch.zeros(1)]), "s": "keep"}, "cpu")
    assert isinstance(moved["x"], Pair) and moved["s"] == "keep" and moved["x"].a.device.type == "cpu"


# ----------------------------------------------------------------------------------------- schedules
def test_warmup_multistep_factors():
    f = IterationSchedule(100, "multistep", warmup_iters=4, milestones=[10, 50], gamma=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == 1.0 and f(10) == pytest.approx(0.1) and f(49) == pytest.approx(0.1)
    assert f(50) == pytest.approx(0.01) and f(99) == pytest.approx(0.01)


def test_cosine_factors():
    f = IterationSchedule(110, "cosine", warmup_iters=10, min_lr_ratio=0.1)
    assert f(9) == 1.0 and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    vals = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_scheduler_drives_every_param_group_per_iteration():
    cfg = TrainConfig(iterations=30, lr=0.1, schedule="multistep", milestones=[3], gamma=0.5, warmup_iters=2)
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 1.0}], lr=cfg.lr)
    sched = build_scheduler(opt, cfg)
    seen = []
    for step in range(5):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    expected = [[0.1 * lr_factor(s, cfg), 1.0 * lr_factor(s, cfg)] for s in range(5)]
    assert seen == [pytest.approx(e) for e in expected]
    assert seen[0] == pytest.approx([0.05, 0.5]) and seen[4] == pytest.approx([0.05, 0.5])
    # resumable: a fresh scheduler loaded from the state continues identically
    opt2 = torch.optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 1.0}], lr=cfg.lr)
    opt2.load_state_dict(opt.state_dict())
    sched2 = build_scheduler(opt2, cfg)
    sched2.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_stage_and_ramp_helpers():
    assert [stage_at(s, [100, 300]) for s in (0, 99, 100, 299, 300, 10**6)] == [0, 0, 1, 1, 2, 2]
    assert linear_ramp(0, 10, 20, 0.0, 1.0) == 0.0 and linear_ramp(15, 10, 20, 0.0, 1.0) == 0.5
    assert linear_ramp(25, 10, 20, 0.0, 1.0) == 1.0


def test_train_config_validation():
    from workbench.core import ConfigError

    with pytest.raises(ConfigError, match="only used by schedule=multistep"):
        TrainConfig(milestones=[10])
    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        TrainConfig.from_dict({"iterations": 0})
    with pytest.raises(ConfigError, match="did you mean 'warmup_iters'"):
        TrainConfig.from_dict({"warmup_iter": 5})
    with pytest.raises(ConfigError, match="increasing"):
        TrainConfig.from_dict({"schedule": "multistep", "milestones": [50, 10]})
    cfg = TrainConfig.for_profile("smoke", ["lr=3e-4", "amp=bf16"])
    assert cfg.iterations == 20 and cfg.lr == 3e-4 and cfg.amp == "bf16"


# ------------------------------------------------------------------------------------- metrics.csv
def test_metrics_log_grows_header_and_round_trips_floats(tmp_path):
    p = tmp_path / "metrics.csv"
    log = MetricsLog(p)
    x = 0.1 + 0.2
    log.append({"step": 1, "phase": "train", "time": 0.5, "loss": x})
    log.append({"step": 2, "phase": "eval", "time": 0.7, "acc": 1 / 3})
    header, rows = read_rows(p)
    assert header == ["step", "phase", "time", "loss", "acc"]
    assert float(rows[0]["loss"]) == x and rows[0]["acc"] == "" and float(rows[1]["acc"]) == 1 / 3
    assert MetricsLog(p).columns == header  # a new writer continues the same file


def test_metrics_log_skips_partial_line_and_truncates(tmp_path):
    p = tmp_path / "metrics.csv"
    log = MetricsLog(p)
    for s in range(1, 6):
        log.append({"step": s, "phase": "train", "time": 0.0, "loss": float(s)})
    with open(p, "a") as f:
        f.write("6,train,0.0,6.")  # an append cut by a kill
    assert [r["step"] for r in read_rows(p)[1]] == ["1", "2", "3", "4", "5"]
    log2 = MetricsLog(p)  # opening repairs the file
    assert p.read_text().endswith("5.0\n")
    assert log2.truncate(3) == 3
    assert [r["step"] for r in read_rows(p)[1]] == ["1", "2", "3"]
    log2.append({"step": 4, "phase": "train", "time": 0.0, "loss": math.inf})
    assert read_rows(p)[1][-1]["loss"] == "inf"


# ------------------------------------------------------------------------------------- distributed
def test_single_process_dist_info(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist_info() == DistInfo(0, 1, 0) and dist_info().is_main and not dist_info().enabled
    m = torch.nn.Linear(2, 2)
    assert unwrap_model(m) is m and unwrap_model(torch.nn.DataParallel(m)) is m


def test_init_distributed_without_rendezvous_env_is_an_error(monkeypatch):
    from workbench.core import TrainingError
    from workbench.train import init_distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(TrainingError, match="torchrun --nproc_per_node=2"):
        init_distributed()
    np.testing.assert_equal(dist_info().world_size, 2)
