"""Schedules written in iterations: learning-rate factors and small helpers for method milestones.

The learning rate used during iteration ``step`` (0-based) is ``lr * lr_factor(step)`` where

* warm-up (``step < warmup_iters``): ``(step + 1) / warmup_iters``;
* ``constant``: 1;
* ``multistep``: ``gamma ** (number of milestones <= step)``;
* ``cosine``: ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * t)) / 2`` with
  ``t = (step - warmup_iters) / (iterations - warmup_iters)`` clamped to [0, 1].

:func:`build_scheduler` wraps it in a ``torch.optim.lr_scheduler.LambdaLR`` stepped once per
iteration by the :class:`~workbench.train.Trainer`; the factor object is picklable and its
state is part of the checkpoint.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import torch

from .config import TrainConfig


class IterationSchedule:
    """Callable ``step -> lr factor`` (see the module docstring). Picklable; no hidden state."""

    def __init__(self, iterations: int, schedule: str = "constant", warmup_iters: int = 0,
                 milestones: Sequence[int] = (), gamma: float = 0.1, min_lr_ratio: float = 0.0):
        if schedule not in ("constant", "multistep", "cosine"):
            raise ValueError(f"unknown schedule '{schedule}' (expected constant, multistep or cosine)")
        self.iterations = int(iterations)
        self.schedule = schedule
        self.warmup_iters = int(warmup_iters)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.min_lr_ratio = float(min_lr_ratio)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "IterationSchedule":
        return cls(cfg.iterations, cfg.schedule, cfg.warmup_iters, cfg.milestones, cfg.gamma, cfg.min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_iters:
            return (step + 1) / self.warmup_iters
        if self.schedule == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        if self.schedule == "cosine":
            span = max(1, self.iterations - self.warmup_iters)
            t = min(1.0, max(0.0, (step - self.warmup_iters) / span))
            return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    def __repr__(self) -> str:
        return (f"IterationSchedule({self.schedule}, iterations={self.iterations}, warmup={self.warmup_iters}, "
                f"milestones={self.milestones}, gamma={self.gamma}, min_lr_ratio={self.min_lr_ratio})")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The learning-rate multiplier used during iteration ``step`` (0-based) under ``cfg``."""
    return IterationSchedule.from_config(cfg)(step)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` implementing ``cfg``'s warm-up and schedule for every param group.

    Param groups keep their own base learning rates (e.g. a group with ``lr=1e-2`` next to the
    default group); all are multiplied by the same factor.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, IterationSchedule.from_config(cfg))


def stage_at(step: int, milestones: Sequence[int]) -> int:
    """Index of the training stage that iteration ``step`` belongs to: the number of milestones <= step.

    ``stage_at(s, [100, 300])`` is 0 for s < 100, 1 for 100 <= s < 300 and 2 afterwards; use it for
    progressive training (e.g. rigid-then-deformable, or unfreezing heads at given iterations).
    """
    return bisect.bisect_right(list(milestones), step)


def linear_ramp(step: int, start: int, end: int, v0: float, v1: float) -> float:
    """``v0`` before ``start``, ``v1`` from ``end`` on, linear in between (e.g. a loss-weight warm-up)."""
    if step <= start:
        return float(v0)
    if step >= end:
        return float(v1)
    return float(v0 + (v1 - v0) * (step - start) / (end - start))
