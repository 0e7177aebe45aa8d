"""The runs/<method>/<run>/ store and its pandas tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.core import ConfigError, DataError
from workbench.eval.results import RunDir, collect_runs, flatten, list_runs, load_metrics, runs_table


def _make_run(root, method, name, lr, seed, acc=None, profile="smoke"):
    run = RunDir(method, name, root=root).create()
    (run.config_path).write_text(f"profile: {profile}\ntrain:\n  lr: {lr}\n  seed: {seed}\nmodel:\n  width: 8\n")
    run.metrics_path.write_text("step,phase,time,loss,acc\n5,train,0.1,1.0,\n10,train,0.2,0.5,\n10,eval,0.3,,0.7\n")
    if acc is not None:
        run.write_eval({"sv": {"acc": np.float32(acc), "mAP": torch.tensor(acc / 2)}, "n": np.int64(10)})
    return run


def test_run_dir_paths_and_state(tmp_path, monkeypatch):
    run = RunDir("piro", "smoke-s0", root=tmp_path)
    assert run.path == tmp_path / "piro" / "smoke-s0"
    assert (run.config_path.name, run.metrics_path.name, run.eval_path.name, run.checkpoint_path.name,
            run.figures_dir.name) == ("config.yaml", "metrics.csv", "eval.json", "checkpoint.pt", "figures")
    assert not run.exists() and not run.is_complete()
    run.create()
    assert run.exists() and run.figures_dir.is_dir() and not run.is_complete()
    run.write_eval({"acc": 1.0})
    assert run.is_complete() and run.read_eval() == {"acc": 1.0}
    assert run.figure_path("a.png") == run.figures_dir / "a.png"
    assert RunDir.from_path(run.path) == run
    import os

    assert os.fspath(run) == str(run.path)
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert RunDir("m", "r").path == tmp_path / "elsewhere" / "m" / "r"
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(ConfigError, match="invalid run name"):
            RunDir("m", bad)


def test_collect_runs_flattens_config_and_eval(tmp_path):
    _make_run(tmp_path, "piro", "b", lr=0.1, seed=1, acc=0.8)
    _make_run(tmp_path, "piro", "a", lr=0.2, seed=0, acc=0.6, profile="quick")
    _make_run(tmp_path, "cmic", "x", lr=0.3, seed=0)  # not evaluated
    (tmp_path / "cmic" / ".tmp-partial").mkdir()        # hidden dirs are not runs
    (tmp_path / "cmic" / "empty").mkdir()               # neither are dirs without run files
    df = collect_runs(tmp_path)
    assert list(df[["method", "run"]].itertuples(index=False, name=None)) == [("cmic", "x"), ("piro", "a"),
                                                                              ("piro", "b")]
    assert list(df.columns[:6]) == ["method", "run", "path", "profile", "seed", "complete"]
    assert df["complete"].tolist() == [False, True, True]
    assert df["profile"].tolist() == ["smoke", "quick", "smoke"] and df["seed"].tolist() == [0, 0, 1]
    assert df["config.train.lr"].tolist() == [0.3, 0.2, 0.1] and "config.model.width" in df
    assert df.loc[df.run == "b", "sv.acc"].item() == pytest.approx(0.8)
    assert df.loc[df.run == "b", "sv.mAP"].item() == pytest.approx(0.4)
    assert np.isnan(df.loc[df.run == "x", "sv.acc"].item())
    assert len(collect_runs(tmp_path, method="piro")) == 2
    assert collect_runs(tmp_path, complete_only=True)["run"].tolist() == ["a", "b"]
    table = runs_table(collect_runs(tmp_path, complete_only=True), ["sv.acc"], by=["method"])
    assert table.loc["piro", ("sv.acc", "mean")] == pytest.approx(0.7)
    assert table.loc["piro", ("sv.acc", "count")] == 2
    with pytest.raises(DataError, match="not in the runs table"):
        runs_table(df, ["nope"])


def test_collect_runs_empty_and_bad_files(tmp_path):
    empty = collect_runs(tmp_path / "nothing")
    assert empty.empty and list(empty.columns) == ["method", "run", "path", "profile", "seed", "complete"]
    run = _make_run(tmp_path, "ttp", "r", lr=0.1, seed=0, acc=0.5)
    run.eval_path.write_text("{broken")
    with pytest.raises(DataError, match="eval.json: invalid JSON"):
        collect_runs(tmp_path)
    assert collect_runs(tmp_path, errors="skip").empty
    assert [r.name for r in list_runs(tmp_path)] == ["r"]


def test_eval_metric_names_colliding_with_run_columns_are_prefixed(tmp_path):
    run = RunDir("m", "r", root=tmp_path).create()
    run.write_eval({"method": "knn", "profile": "smoke", "seed": 3, "acc": 0.5})
    df = collect_runs(tmp_path)
    assert df.loc[0, "method"] == "m" and df.loc[0, "eval.method"] == "knn"
    assert df.loc[0, "profile"] == "smoke" and df.loc[0, "seed"] == 3 and "eval.profile" not in df


def test_load_metrics_phases_and_partial_line(tmp_path):
    run = _make_run(tmp_path, "piro", "a", lr=0.1, seed=0)
    with open(run.metrics_path, "a") as f:
        f.write("15,train,0.4,0.2")  # cut by a kill: no newline
    df = load_metrics(run)
    assert df["step"].tolist() == [5, 10, 10] and df["phase"].tolist() == ["train", "train", "eval"]
    train = run.load_metrics(phase="train")
    assert list(train.columns) == ["step", "phase", "time", "loss"] and train["loss"].tolist() == [1.0, 0.5]
    ev = load_metrics(run.path, phase="eval")
    assert ev["acc"].tolist() == [0.7] and "loss" not in ev
    with pytest.raises(DataError, match="metrics file not found"):
        load_metrics(tmp_path / "nope")


def test_trainer_output_is_readable_by_the_results_store(tmp_path):
    """End to end: a Trainer run in a RunDir shows up in collect_runs and load_metrics."""
    from workbench.train import ResumableLoader, TrainConfig, Trainer, build_optimizer

    cfg = TrainConfig(iterations=6, batch_size=4, log_every=2, eval_every=3, device="cpu", progress=False)
    model = torch.nn.Linear(3, 2)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,)))
    run = RunDir("demo", "linear", root=tmp_path)
    Trainer(model, build_optimizer(model, cfg), run, cfg).fit(
        lambda m, b, s: torch.nn.functional.cross_entropy(m(b[0]), b[1]), ResumableLoader(data, 4),
        lambda m, s: {"w_norm": m.weight.norm().item()})
    run.write_eval({"acc": 0.5})
    df = collect_runs(tmp_path)
    assert df.loc[0, "config.iterations"] == 6 and df.loc[0, "seed"] == 0 and df.loc[0, "acc"] == 0.5
    curves = load_metrics(run, phase="train")
    assert curves["step"].tolist() == [2, 4, 6] and {"loss", "lr", "grad_norm"} <= set(curves.columns)
    assert load_metrics(run, phase="eval")["step"].tolist() == [3, 6]


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": {}}) == {"a.b": 1, "a.c.d": 2, "e": [1, 2],
                                                                             "f": {}}
    assert isinstance(pd.DataFrame([flatten({"a": {"b": 1}})]), pd.DataFrame)
