"""Exact resume: a run SIGKILLed mid-way and resumed equals an uninterrupted run, bit for bit on CPU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _wb_tiny_run as tiny
from _wb_tiny_run import assert_same_run
from workbench.train import LambdaCallback, load_checkpoint, read_rows

SCRIPT = Path(__file__).with_name("_wb_tiny_run.py")


def _run_script(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *args], capture_output=True, text=True,
                          timeout=180, env=env)


@pytest.mark.parametrize("mode, ckpt_step, rows_up_to", [
    ("kill-at", 20, 20),          # SIGKILL inside iteration 23 (after the step-20 checkpoint)
    ("kill-in-save", 30, 40),     # SIGKILL half-way through writing the step-40 checkpoint
])
def test_sigkill_then_resume_equals_uninterrupted(tiny_reference, tmp_path, mode, ckpt_step, rows_up_to):
    run_dir = tmp_path / "run"
    arg = ["--kill-at", "23"] if mode == "kill-at" else ["--kill-in-save", "40"]
    proc = _run_script(run_dir, *arg)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "RESULT" not in proc.stdout
    # the last good checkpoint survived the kill; metrics.csv went further than it
    assert load_checkpoint(run_dir)["step"] == ckpt_step
    rows = read_rows(run_dir / "metrics.csv")[1]
    assert max(int(r["step"]) for r in rows) == rows_up_to
    if mode == "kill-in-save":
        assert list(run_dir.glob(".checkpoint.pt.*.tmp")), "the kill should leave the half-written temp file"

    trainer, result = tiny.run(run_dir)  # resume in this process, as a user re-running the cell would
    assert result.status == "completed" and result.step == 50 and result.resumed_from == ckpt_step
    assert not list(run_dir.glob(".*.tmp")), "stale temp files are cleaned on resume"
    assert_same_run(run_dir, tiny_reference)


def test_comparison_detects_a_different_run(tiny_reference, tmp_path):
    """The equality check above is not vacuous: another seed gives other weights and metrics."""
    tiny.run(tmp_path / "run", seed=4)
    with pytest.raises(AssertionError):
        assert_same_run(tmp_path / "run", tiny_reference)


def test_ctrl_c_saves_returns_and_resumes_exactly(tiny_reference, tmp_path):
    run_dir = tmp_path / "run"

    def interrupt(trainer, step, logs):
        if step == 15:
            os.kill(os.getpid(), signal.SIGINT)

    trainer, result = tiny.run(run_dir, callbacks=[LambdaCallback(on_step_end=interrupt)])
    assert result.status == "interrupted" and result.step == 15
    assert load_checkpoint(run_dir)["step"] == 15  # mid logging window (log_every=4)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    trainer, result = tiny.run(run_dir)
    assert result.status == "completed" and result.resumed_from == 15
    assert_same_run(run_dir, tiny_reference)


def test_rerun_after_completion_is_a_no_op(tiny_reference, tmp_path):
    run_dir = tmp_path / "run"
    tiny.run(run_dir)
    before = (run_dir / "metrics.csv").read_text()
    calls = []
    trainer, result = tiny.run(run_dir, step_hook=lambda s, loss: calls.append(s) or loss)
    assert result.status == "completed" and result.step == 50 and result.resumed_from == 50
    assert calls == [] and (run_dir / "metrics.csv").read_text() == before


def test_resume_false_starts_over(tiny_reference, tmp_path):
    run_dir = tmp_path / "run"
    tiny.run(run_dir, seed=4, iterations=20)
    (run_dir / "eval.json").write_text("{}")
    trainer, result = tiny.run(run_dir, resume=False)
    assert result.resumed_from is None and not (run_dir / "eval.json").exists()
    assert_same_run(run_dir, tiny_reference)


def test_extra_state_is_checkpointed(tmp_path):
    """Objects given as ``state=`` (memory banks...) are saved and restored with the run."""
    from workbench.core import seed_everything
    from workbench.train import ResumableLoader, TrainConfig, Trainer, build_optimizer

    class Bank(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mem", torch.zeros(3, 16))

    def go(run_dir, stop_at=None):
        cfg = TrainConfig(iterations=12, batch_size=8, checkpoint_every=0, log_every=3, seed=1, device="cpu",
                          progress=False)
        seed_everything(0)
        data, _ = tiny.make_data()
        model, bank = tiny.make_model(), Bank()

        def step_fn(model, batch, step):
            x, y = batch
            h = model[0](x)
            with torch.no_grad():  # a momentum memory bank with a random refresh, as in contrastive methods
                bank.mem.mul_(0.9).index_add_(0, y, 0.1 * h + 0.01 * torch.randn_like(h))
            return torch.nn.functional.cross_entropy(model[3](model[2](model[1](h))), y)

        cb = [LambdaCallback(on_step_end=lambda t, s, l: os.kill(os.getpid(), signal.SIGINT) if s == stop_at
                             else None)]
        t = Trainer(model, build_optimizer(model, cfg), run_dir, cfg, callbacks=cb, state={"bank": bank})
        return t.fit(step_fn, ResumableLoader(data, 8, seed=1)), bank

    _, ref_bank = go(tmp_path / "a")
    r, _ = go(tmp_path / "b", stop_at=5)
    assert r.status == "interrupted" and r.step == 5
    r, bank = go(tmp_path / "b")
    assert r.resumed_from == 5 and r.step == 12
    assert torch.equal(bank.mem, ref_bank.mem) and bank.mem.abs().sum() > 0
