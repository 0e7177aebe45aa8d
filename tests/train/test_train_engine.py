"""Trainer behaviour: NaN guard, logging, callbacks, schedules in use, accumulation, bf16, errors."""
from __future__ import annotations

import hashlib
import logging

import pytest
import torch

import _wb_tiny_run as tiny
from _wb_tiny_run import assert_same_run
from workbench.core import CheckpointError, NonFiniteLossError, TrainingError, WorkbenchError
from workbench.train import (CHECKPOINT_NAME, History, LambdaCallback, NonFiniteGradientError, ResumableLoader,
                             TrainConfig, Trainer, build_optimizer, load_checkpoint, load_model_weights,
                             lr_factor, read_rows, step_batches)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, bad):
    run_dir = tmp_path / "run"
    saved = {}
    cb = LambdaCallback(on_checkpoint=lambda t, s, p: saved.update({s: _sha(p)}))
    with pytest.raises(NonFiniteLossError) as ei:
        tiny.run(run_dir, callbacks=[cb], step_hook=lambda s, loss: loss * bad if s == 23 else loss)
    err = ei.value
    assert isinstance(err, WorkbenchError)
    assert err.step == 23 and (err.value != err.value if bad != bad else err.value == bad)
    assert err.last_checkpoint == str(run_dir / CHECKPOINT_NAME)
    assert "step 23" in str(err) and str(run_dir / CHECKPOINT_NAME) in str(err)
    ckpt = load_checkpoint(run_dir)
    assert ckpt["step"] == 20 and sorted(saved) == [10, 20]
    assert _sha(run_dir / CHECKPOINT_NAME) == saved[20]  # not overwritten by the failing run
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert max(int(r["step"]) for r in read_rows(run_dir / "metrics.csv")[1]) == 20


def test_nan_before_first_checkpoint_reports_none(tmp_path):
    with pytest.raises(NonFiniteLossError) as ei:
        tiny.run(tmp_path / "run", step_hook=lambda s, loss: loss * float("nan") if s == 3 else loss)
    assert ei.value.step == 3 and ei.value.last_checkpoint is None
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_nonfinite_gradient_with_finite_loss_is_caught(tmp_path):
    def hook(step, loss):
        if step == 12:  # sqrt at 0: finite value, NaN gradient
            w = next(hook.model.parameters())
            return loss + torch.sqrt((w * 0).sum())
        return loss

    class Grab(LambdaCallback):
        def on_fit_start(self, trainer, step):
            hook.model = trainer.model

    with pytest.raises(NonFiniteGradientError) as ei:
        tiny.run(tmp_path / "run", callbacks=[Grab()], step_hook=hook)
    assert ei.value.step == 12 and "gradient norm is nan at step 12" in str(ei.value)
    assert load_checkpoint(tmp_path / "run")["step"] == 10


def test_metrics_csv_rows_callbacks_and_logged_lr(tmp_path):
    run_dir = tmp_path / "run"
    hist = History()
    events = []
    cb = LambdaCallback(on_fit_start=lambda t, s: events.append(("start", s)),
                        on_checkpoint=lambda t, s, p: events.append(("ckpt", s)),
                        on_fit_end=lambda t, r: events.append(("end", r.step)))
    trainer, result = tiny.run(run_dir, callbacks=[hist, cb])
    header, rows = read_rows(run_dir / "metrics.csv")
    assert header[:3] == ["step", "phase", "time"]
    assert {"loss", "noise", "grad_norm", "lr", "acc", "val_loss"} <= set(header)
    train = [r for r in rows if r["phase"] == "train"]
    evals = [r for r in rows if r["phase"] == "eval"]
    assert [int(r["step"]) for r in train] == list(range(4, 50, 4)) + [50]
    assert [int(r["step"]) for r in evals] == [10, 20, 30, 40, 50]
    assert events == [("start", 0)] + [("ckpt", s) for s in (10, 20, 30, 40, 50)] + [("end", 50)]
    assert len(hist.steps) == 50 and len(hist.evals) == 5 and len(hist.train) == 13
    cfg = tiny.make_config()
    per_step = {h["step"]: h for h in hist.steps}
    for r in train:
        s = int(r["step"])
        # lr of the row = lr used by its last iteration (0-based s - 1): warm-up 5, x0.5 at 20 and 35
        assert float(r["lr"]) == pytest.approx(cfg.lr * lr_factor(s - 1, cfg), rel=1e-12)
        window = [per_step[k]["loss"] for k in range(s - (s - 1) % 4, s + 1)] if s != 50 else \
            [per_step[k]["loss"] for k in (49, 50)]
        assert float(r["loss"]) == pytest.approx(sum(window) / len(window), rel=1e-12)
    assert float(train[0]["lr"]) == pytest.approx(0.02 * 4 / 5)
    assert float(train[-1]["lr"]) == pytest.approx(0.02 * 0.25)
    # eval rows carry only eval metrics
    assert evals[0]["loss"] == "" and evals[0]["acc"] != ""
    assert result.last_eval["acc"] == pytest.approx(float(evals[-1]["acc"]))
    cfg_saved = TrainConfig.load(run_dir / "config.yaml")
    assert cfg_saved == cfg


def test_training_learns_the_tiny_problem(tiny_reference):
    _, ckpt, rows = tiny_reference
    evals = [r for r in rows if r["phase"] == "eval"]
    _, (xv, yv) = tiny.make_data()
    majority = torch.bincount(yv).max().item() / len(yv)
    assert float(evals[-1]["acc"]) >= majority + 0.15
    train = [float(r["loss"]) for r in rows if r["phase"] == "train"]
    assert train[-1] < 0.75 * train[0]


def test_eval_frequency_does_not_change_training(tiny_reference, tmp_path):
    """Eval is RNG-isolated: evaluating every 5 instead of 10 iterations gives the same weights."""
    tiny.run(tmp_path / "run", eval_every=5)
    ref = tiny_reference[1]["model"]
    got = load_checkpoint(tmp_path / "run")["model"]
    assert all(torch.equal(got[k], v) for k, v in ref.items())


def test_bf16_on_cpu_runs_in_float32(tiny_reference, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.train.engine"):
        tiny.run(tmp_path / "run", amp="bf16")
    assert "bf16" in caplog.text
    assert_same_run(tmp_path / "run", tiny_reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda(tmp_path):
    seen = []
    cfg = TrainConfig(iterations=30, batch_size=16, lr=0.02, amp="bf16", device="cuda", progress=False,
                      checkpoint_every=0, log_every=10)
    model = tiny.make_model(0.0)
    data, _ = tiny.make_data()

    def step_fn(model, batch, step):
        x, y = batch
        out = model(x)
        seen.append((torch.is_autocast_enabled("cuda"), out.dtype, x.device.type))
        return torch.nn.functional.cross_entropy(out.float(), y)

    t = Trainer(model, build_optimizer(model, cfg), tmp_path / "run", cfg)
    r = t.fit(step_fn, ResumableLoader(data, 16, seed=0))
    assert seen[0] == (True, torch.bfloat16, "cuda")
    rows = [x for x in read_rows(tmp_path / "run" / "metrics.csv")[1] if x["phase"] == "train"]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert next(iter(load_checkpoint(tmp_path / "run")["model"].values())).dtype == torch.float32


def _accum_run(run_dir, accumulate, batch_size):
    return tiny.run(run_dir, randomness=False, accumulate=accumulate, batch_size=batch_size, grad_clip=0.0)


def test_gradient_accumulation_equals_larger_batch(tmp_path):
    _accum_run(tmp_path / "a", 1, 8)
    _accum_run(tmp_path / "b", 2, 4)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], atol=2e-5, rtol=0)
    la = [float(r["loss"]) for r in read_rows(tmp_path / "a" / "metrics.csv")[1] if r["phase"] == "train"]
    lb = [float(r["loss"]) for r in read_rows(tmp_path / "b" / "metrics.csv")[1] if r["phase"] == "train"]
    assert la == pytest.approx(lb, abs=1e-5)


def test_grad_clip_bounds_the_update(tmp_path):
    """With SGD (no momentum) and clip c, every parameter update has L2 norm <= lr * c."""
    cfg = TrainConfig(iterations=5, batch_size=8, optimizer="sgd", momentum=0.0, lr=0.1, grad_clip=0.01,
                      device="cpu", progress=False, checkpoint_every=0, log_every=1)
    model = tiny.make_model(0.0)
    data, _ = tiny.make_data()
    norms = []

    def step_fn(model, batch, step):
        x, y = batch
        return 100.0 * torch.nn.functional.cross_entropy(model(x), y)  # large gradients

    before = [p.detach().clone() for p in model.parameters()]

    def measure(t, s, logs):
        nonlocal before
        delta = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(t.model.parameters(), before)))
        norms.append((delta.item(), logs["grad_norm"]))
        before = [p.detach().clone() for p in t.model.parameters()]

    Trainer(model, build_optimizer(model, cfg), tmp_path / "run", cfg,
            callbacks=[LambdaCallback(on_step_end=measure)]).fit(step_fn, ResumableLoader(data, 8))
    for delta, gnorm in norms:
        assert gnorm > 0.5  # the raw (pre-clip) norm is logged
        assert delta == pytest.approx(0.1 * 0.01, rel=1e-4)


def _mini_trainer(tmp_path, **kw):
    cfg = TrainConfig(iterations=3, batch_size=4, device="cpu", progress=False, checkpoint_every=0)
    model = tiny.make_model(0.0)
    return Trainer(model, build_optimizer(model, cfg), tmp_path / "run", cfg, **kw), model


def _batches():
    data, _ = tiny.make_data()
    return ResumableLoader(data, 4)


@pytest.mark.parametrize("out, msg", [
    (lambda m, x, y: {"los": torch.nn.functional.cross_entropy(m(x), y)}, "'loss' key"),
    (lambda m, x, y: torch.nn.functional.cross_entropy(m(x), y).detach(), "does not require grad"),
    (lambda m, x, y: {"loss": torch.nn.functional.cross_entropy(m(x), y), "lr": 1.0}, "reserved"),
    (lambda m, x, y: {"loss": torch.nn.functional.cross_entropy(m(x), y), "v": m(x)}, "must be a scalar"),
])
def test_bad_step_fn_outputs_raise_training_error(tmp_path, out, msg):
    t, _ = _mini_trainer(tmp_path)
    with pytest.raises(TrainingError, match=msg):
        t.fit(lambda m, b, s: out(m, *b), _batches())


def test_finite_batch_stream_is_an_error(tmp_path):
    t, _ = _mini_trainer(tmp_path)
    data, _ = tiny.make_data()
    with pytest.raises(TrainingError, match="infinite"):
        t.fit(lambda m, b, s: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
              lambda start: iter([data[:4]]))


def test_step_batches_and_tensor_loss(tmp_path):
    t, model = _mini_trainer(tmp_path)
    seen = []

    def make(k):
        seen.append(k)
        g = torch.Generator().manual_seed(k)
        return torch.randn(4, 4, generator=g), torch.randint(0, 3, (4,), generator=g)

    r = t.fit(lambda m, b, s: torch.nn.functional.cross_entropy(m(b[0]), b[1]), step_batches(make))
    assert r.completed and seen[:3] == [0, 1, 2]


def test_corrupt_and_mismatched_checkpoints_raise_checkpoint_error(tiny_reference, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    run_dir = tiny_reference[0]
    model = tiny.make_model()
    ckpt = load_model_weights(model, run_dir)
    assert ckpt["step"] == 50 and torch.equal(model[0].weight, ckpt["model"]["0.weight"])
    assert set(ckpt) >= {"version", "step", "model", "optimizer", "scheduler", "rng", "meter", "config",
                         "train_config", "extra", "world_size"}
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(8, 3))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_model_weights(wrong, run_dir)


def test_resume_with_changed_config_warns(tmp_path, caplog):
    tiny.run(tmp_path / "run", iterations=10)
    with caplog.at_level(logging.WARNING, logger="workbench.train.engine"):
        _, r = tiny.run(tmp_path / "run", iterations=20, lr=0.01)
    assert r.resumed_from == 10 and r.step == 20
    assert "lr: 0.02 -> 0.01" in caplog.text and "iterations: 10 -> 20" in caplog.text


def test_keys_logged_on_some_steps_are_averaged_over_those_steps(tmp_path):
    """Alternating objectives (e.g. a shape step then a pose step) log their own losses."""
    t, model = _mini_trainer(tmp_path)
    t.cfg = TrainConfig(iterations=8, batch_size=4, device="cpu", progress=False, checkpoint_every=0, log_every=4)
    hist = History()
    t.callbacks = [hist]

    def step_fn(m, b, s):
        loss = torch.nn.functional.cross_entropy(m(b[0]), b[1])
        return {"loss": loss, ("even" if s % 2 == 0 else "odd"): float(s)}

    t.fit(step_fn, _batches())
    rows = [r for r in read_rows(tmp_path / "run" / "metrics.csv")[1] if r["phase"] == "train"]
    assert [(float(r["even"]), float(r["odd"])) for r in rows] == [(1.0, 2.0), (5.0, 6.0)]
    assert "odd" not in hist.steps[0] and hist.steps[1]["odd"] == 1.0


def test_submodule_modes_survive_training_and_eval(tmp_path):
    """A model that keeps a submodule frozen via its train() override stays so across evals."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen_bn = torch.nn.BatchNorm1d(4)
            self.fc = torch.nn.Linear(4, 3)

        def train(self, mode: bool = True):
            super().train(mode)
            self.frozen_bn.eval()
            return self

        def forward(self, x):
            return self.fc(self.frozen_bn(x))

    cfg = TrainConfig(iterations=6, batch_size=4, eval_every=2, device="cpu", progress=False, checkpoint_every=0)
    model = Net()
    modes, eval_modes = [], []

    def step_fn(m, b, s):
        modes.append((m.training, m.fc.training, m.frozen_bn.training))
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    def eval_fn(m, s):
        eval_modes.append((m.training, m.fc.training))
        return {}

    Trainer(model, build_optimizer(model, cfg), tmp_path / "run", cfg).fit(step_fn, _batches(), eval_fn)
    assert modes == [(True, True, False)] * 6 and eval_modes == [(False, False)] * 3
    assert torch.equal(model.frozen_bn.running_mean, torch.zeros(4))  # never updated
