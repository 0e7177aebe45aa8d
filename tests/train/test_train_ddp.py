"""The training entry point under ``torchrun --nproc_per_node=2`` (gloo on CPU).

Two processes with 4 samples each must follow the single-process run with 8 samples per batch:
the ResumableLoader gives rank r the r-th half of every global batch and DDP averages the
gradients, so the gradient of each iteration is the same (up to float summation order).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _wb_tiny_run as tiny
from workbench.train import load_checkpoint, read_rows

SCRIPT = Path(__file__).with_name("_wb_tiny_run.py")


def _torchrun(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", WB_DEVICE="cpu")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           str(SCRIPT), str(run_dir), "--no-randomness", "--batch-size", "4", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_two_cpu_processes_match_single_process(tmp_path):
    """Ctrl-C reaching only rank 1 stops both ranks at the same iteration; a second torchrun resumes;
    the result equals the single-process run with the same global batch."""
    run_dir = tmp_path / "ddp"
    first = _torchrun(run_dir, "--interrupt-at", "15", "--interrupt-rank", "1")
    # the signal arrives during iteration 15 of rank 1; the stop flag travels with that iteration's
    # all-reduce, so both ranks stop after 16 completed iterations and rank 0 writes the checkpoint
    assert first.stdout.count("RESULT interrupted 16 world=2") == 1
    assert load_checkpoint(run_dir)["step"] == 16
    second = _torchrun(run_dir)
    assert second.stdout.count("RESULT completed 50 world=2") == 1  # only rank 0 reports

    ddp = load_checkpoint(run_dir)
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2 and ddp["step"] == 50
    assert not list(run_dir.glob(".*.tmp"))

    tiny.run(tmp_path / "single", randomness=False, batch_size=8)
    single = load_checkpoint(tmp_path / "single")
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, atol=1e-5, rtol=0)

    rows_d = read_rows(run_dir / "metrics.csv")[1]
    rows_s = read_rows(tmp_path / "single" / "metrics.csv")[1]
    assert [(r["step"], r["phase"]) for r in rows_d] == [(r["step"], r["phase"]) for r in rows_s]  # no duplicates
    for rd, rs in zip(rows_d, rows_s):
        for key in ("loss", "grad_norm", "acc", "val_loss"):
            if rs[key]:
                assert float(rd[key]) == pytest.approx(float(rs[key]), abs=1e-5), (rd, rs)
