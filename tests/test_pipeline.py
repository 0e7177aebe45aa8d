"""The main job: runs are created per variant, completed runs are reused, failures are reported."""
from dataclasses import dataclass, field

import pytest

import workbench.pipeline as pipeline
from workbench.core.config import Config
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.io import write_json
from workbench.methods import MethodSpec, Variant


@dataclass
class ToyOptim(Config):
    lr: float = 0.1
    steps: int = 100


@dataclass
class ToyConfig(Config):
    seed: int = 0
    target: float = 3.0
    optim: ToyOptim = field(default_factory=ToyOptim)
    PROFILES = {"smoke": {"optim": {"steps": 60}}, "quick": {"optim": {"steps": 80}}}


def toy_train(cfg, run_dir):
    """Gradient descent on (x - target)^2; top level (picklable) for the parallel job, and records
    the process id that trained."""
    import os

    x = 0.0
    for _ in range(cfg.optim.steps):
        x -= cfg.optim.lr * 2 * (x - cfg.target)
    write_json(run_dir / "train.json", {"x": x, "pid": os.getpid()})
    return {"x": x}


def toy_evaluate(cfg, run_dir):
    import json

    x = json.loads((run_dir / "train.json").read_text())["x"]
    metrics = {"error": abs(x - cfg.target)}
    write_json(run_dir / "eval.json", metrics)
    return metrics


def _make_spec(calls, name="toy", fail=False):
    def train(cfg, run_dir):
        calls.append(("train", run_dir.name))
        if fail:
            raise RuntimeError("boom")
        return toy_train(cfg, run_dir)

    return MethodSpec(name=name, config_cls=ToyConfig, train=train, evaluate=toy_evaluate,
                      variants=(Variant("full"), Variant("slow", {"optim": {"lr": 0.001}})), presets=())


@pytest.fixture
def toy(monkeypatch, tmp_path):
    calls = []
    specs = {"toy": _make_spec(calls), "bad": _make_spec(calls, name="bad", fail=True)}
    monkeypatch.setattr(pipeline, "get_method", lambda name: specs[name])
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "runs"))
    return calls, tmp_path / "runs"


def test_variants_get_their_overrides_and_profile(toy):
    spec = pipeline.get_method("toy")
    cfg = pipeline.make_config(spec, "smoke", spec.variants[1], seed=4, overrides=["target=2"])
    assert (cfg.optim.steps, cfg.optim.lr, cfg.seed, cfg.target) == (60, 0.001, 4, 2.0)
    # per-profile variant overrides apply at their profile only, over the variant's own, under the user's
    v = Variant("fine", {"optim": {"lr": 0.01}}, profile_overrides={"quick": {"optim": {"steps": 7}, "target": 5.0}})
    q = pipeline.make_config(spec, "quick", v)
    assert (q.optim.steps, q.optim.lr, q.target) == (7, 0.01, 5.0)
    s = pipeline.make_config(spec, "smoke", v, overrides=["target=1"])
    assert (s.optim.steps, s.optim.lr, s.target) == (60, 0.01, 1.0)
    assert pipeline.make_config(spec, "quick", v, overrides=["optim.steps=9"]).optim.steps == 9


def test_train_then_reuse(toy):
    calls, runs = toy
    out = pipeline.train_method("toy", profile="smoke", variant="full")
    assert out["run_dir"] == runs / "toy" / "smoke-full-s0"
    assert out["metrics"]["error"] < 1e-3  # 60 steps of lr 0.1 converge to the target
    assert ToyConfig.load(out["run_dir"] / "config.yaml") == ToyConfig.for_profile("smoke")
    summary = pipeline.run_job(profile="smoke", methods=["toy"], report=False)
    assert "1 runs trained, 1 reused, 0 failed" in summary
    assert [c for c in calls if c[0] == "train"] == [("train", "smoke-full-s0"), ("train", "smoke-slow-s0")]
    summary = pipeline.run_job(profile="smoke", methods=["toy"], report=False)
    assert "0 runs trained, 2 reused" in summary and len(calls) == 2


def test_a_failing_method_does_not_stop_the_others(toy):
    calls, runs = toy
    with pytest.raises(WorkbenchError, match=r"(?s)2 runs trained.*2 failed.*failed runs:\n  bad/smoke-full-s0: RuntimeError: boom"):
        pipeline.run_job(profile="smoke", methods=["bad", "toy"], report=False)
    assert (runs / "toy" / "smoke-full-s0" / "eval.json").exists()


def test_changed_config_under_same_run_name_is_refused(toy):
    pipeline.train_method("toy", profile="smoke", run="r1")
    with pytest.raises(ConfigError, match="different config"):
        pipeline.train_method("toy", profile="smoke", run="r1", overrides=["target=5"])


def test_unknown_variant(toy):
    with pytest.raises(ConfigError, match="unknown variant 'fast' of toy"):
        pipeline.train_method("toy", profile="smoke", variant="fast")


TOY4 = MethodSpec(name="toy4", config_cls=ToyConfig, train=toy_train, evaluate=toy_evaluate,
                  variants=tuple(Variant(f"v{i}", {"target": float(i)}) for i in range(4)),
                  main_variants=("v0", "v2"))


def test_main_variants_selection():
    assert [v.name for v in TOY4.selected_variants("main")] == ["v0", "v2"]
    assert [v.name for v in TOY4.selected_variants("all")] == ["v0", "v1", "v2", "v3"]
    assert [v.name for v in TOY4.selected_variants("v3,v1")] == ["v3", "v1"]
    with pytest.raises(ConfigError, match=r"unknown variant\(s\) \['v9'\] of toy4"):
        TOY4.selected_variants("v9")
    with pytest.raises(ConfigError, match="main_variants"):
        MethodSpec(name="x", config_cls=ToyConfig, train=toy_train, evaluate=toy_evaluate, main_variants=("nope",))


def test_parallel_job_trains_in_two_workers_and_records_timing(monkeypatch, tmp_path):
    import json
    import os

    monkeypatch.setattr(pipeline, "get_method", lambda name: TOY4)
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "runs"))
    # quick profile -> main variants only; "all" -> the four
    summary = pipeline.run_job(profile="quick", methods=["toy4"], report=False, jobs=2)
    assert "2 runs trained, 0 reused, 0 failed" in summary
    assert sorted(p.name for p in (tmp_path / "runs" / "toy4").iterdir()) == ["quick-v0-s0", "quick-v2-s0"]
    summary = pipeline.run_job(profile="quick", methods=["toy4"], report=False, jobs=2, variants="all")
    assert "2 runs trained, 2 reused, 0 failed" in summary
    pids = set()
    for i in range(4):
        run = tmp_path / "runs" / "toy4" / f"quick-v{i}-s0"
        assert json.loads((run / "eval.json").read_text())["error"] < 1e-3  # each run its own target
        info = json.loads((run / "run.json").read_text())
        assert info["variant"] == f"v{i}" and info["timing"]["threads"] >= 1
        assert info["timing"]["train_wall_s"] >= 0 and "eval_cpu_s" in info["timing"]
        pids.add(json.loads((run / "train.json").read_text())["pid"])
    assert os.getpid() not in pids  # trained in worker processes, not here


@pytest.mark.parametrize("method", ["compnet3d", "piro", "unicorn", "cmic", "ttp"])
def test_every_variant_of_every_method_has_a_valid_config_at_every_profile(method):
    """`workbench run --profile full` trains every variant: each must build (strict keys, validate())."""
    from workbench.methods import get_method as real_get_method

    spec = real_get_method(method)
    assert spec.main_variants and spec.headline
    for profile in ("smoke", "quick", "full"):
        for var in spec.variants:
            cfg = pipeline.make_config(spec, profile, var, seed=3)
            assert isinstance(cfg, spec.config_cls)
            assert cfg.to_dict() == spec.config_cls.from_dict(cfg.to_dict()).to_dict()  # round trip
