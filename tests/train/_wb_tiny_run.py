"""A tiny, fully specified training run used by the train tests (in-process, subprocess, torchrun).

The model has 131 parameters; one run of 50 iterations takes well under a second on CPU.
Every source of randomness the engine must restore is exercised: dropout (torch RNG), input
noise (torch), random sign flips (python ``random``), a logged numpy draw, a shuffled data order
and a randomised eval (which must not disturb training).

Command line::

    python _wb_tiny_run.py RUN_DIR [--kill-at STEP] [--kill-in-save STEP] [--batch-size B] [--no-randomness]
                           [--interrupt-at STEP --interrupt-rank R]
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys

import numpy as np
import torch
from torch.utils.data import TensorDataset

from workbench.core import seed_everything
from workbench.train import ResumableLoader, TrainConfig, Trainer, build_optimizer, build_scheduler

N_TRAIN = 96


def make_config(**kw) -> TrainConfig:
    base = dict(iterations=50, batch_size=8, optimizer="adam", lr=0.02, schedule="multistep",
                milestones=[20, 35], gamma=0.5, warmup_iters=5, grad_clip=1.0, eval_every=10,
                checkpoint_every=10, log_every=4, seed=3, device="cpu", progress=False)
    base.update(kw)
    return TrainConfig(**base)


def make_data():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N_TRAIN + 48, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1.0).long()
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def make_model(dropout: float = 0.1) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(16, 3))


def run(run_dir, kill_at: int | None = None, randomness: bool = True, callbacks=(), step_hook=None,
        resume: bool = True, **cfg_kw):
    """Build everything from scratch (as a user script would) and call ``fit``."""
    cfg = make_config(**cfg_kw)
    seed_everything(cfg.seed)
    train_set, (xv, yv) = make_data()
    model = make_model(0.1 if randomness else 0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)

    def step_fn(model, batch, step):
        if kill_at is not None and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        xb, yb = batch
        logs = {}
        if randomness:
            xb = xb + 0.05 * torch.randn_like(xb)
            if random.random() < 0.5:
                xb = xb * torch.tensor([1.0, 1.0, 1.0, -1.0])
            logs["noise"] = float(np.random.rand())
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        if step_hook is not None:
            loss = step_hook(step, loss)
        return {"loss": loss, **logs}

    def eval_fn(model, step):
        # A randomised eval: must not change the training trajectory.
        _ = torch.rand(5), random.random(), np.random.rand()
        logits = model(xv)
        return {"acc": (logits.argmax(1) == yv).float().mean(),
                "val_loss": torch.nn.functional.cross_entropy(logits, yv).item()}

    loader = ResumableLoader(train_set, cfg.batch_size, seed=cfg.seed)
    trainer = Trainer(model, opt, run_dir, cfg, scheduler=sched, callbacks=callbacks, resume=resume)
    result = trainer.fit(step_fn, loader, eval_fn)
    return trainer, result


def assert_same_run(run_dir, reference, exact: bool = True, atol: float = 0.0):
    """Final weights, optimizer state and metrics.csv (time column aside) equal the reference."""
    from workbench.train import load_checkpoint, read_rows

    _, ref_ckpt, ref_rows = reference
    ckpt = load_checkpoint(run_dir)
    assert ckpt["step"] == ref_ckpt["step"]
    for k, v in ref_ckpt["model"].items():
        if exact:
            assert torch.equal(ckpt["model"][k], v), f"weights differ at {k}"
        else:
            torch.testing.assert_close(ckpt["model"][k], v, atol=atol, rtol=0)
    for pid, st in ref_ckpt["optimizer"]["state"].items():
        for name, t in st.items():
            if exact:
                assert torch.equal(torch.as_tensor(ckpt["optimizer"]["state"][pid][name]), torch.as_tensor(t)), \
                    f"optimizer state {pid}.{name} differs"
    rows = read_rows(run_dir / "metrics.csv")[1]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    if exact:
        assert strip(rows) == strip(ref_rows)
    else:
        assert [(r["step"], r["phase"]) for r in rows] == [(r["step"], r["phase"]) for r in ref_rows]


def _kill_inside_save(step: int) -> None:
    """Make the checkpoint write of ``step`` die half-way (after part of the temp file is written)."""
    real_save = torch.save

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("step") == step:
            with open(f, "wb") as fh:
                fh.write(b"PK\x03\x04 half a checkpoint")
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)

    torch.save = save


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--kill-in-save", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-randomness", action="store_true")
    p.add_argument("--interrupt-at", type=int, default=None, help="send SIGINT to this process at this step")
    p.add_argument("--interrupt-rank", type=int, default=0, help="... only on this rank")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.kill_in_save is not None:
        _kill_inside_save(args.kill_in_save)

    def hook(step, loss):
        if step == args.interrupt_at and int(os.environ.get("RANK", "0")) == args.interrupt_rank:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    trainer, result = run(args.run_dir, kill_at=args.kill_at, randomness=not args.no_randomness,
                          batch_size=args.batch_size, step_hook=hook)
    if trainer.is_main:
        print(f"RESULT {result.status} {result.step} world={trainer.dist.world_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
