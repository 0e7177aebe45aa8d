"""Trainer callbacks: hooks for live curves in notebooks, custom logging, early actions.

Implement any subset of the hooks of :class:`Callback` (subclass it or write a class with the
same method names). Callbacks run on the main process (rank 0) only. ``step`` is always the
number of completed iterations.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .engine import FitResult, Trainer


class Callback:
    """Base class with no-op hooks."""

    def on_fit_start(self, trainer: "Trainer", step: int) -> None:
        """Called once before the first iteration (``step`` > 0 when resuming)."""

    def on_step_end(self, trainer: "Trainer", step: int, logs: Mapping[str, float]) -> None:
        """After every iteration: ``logs`` holds this iteration's scalars (mean over processes),
        plus ``lr`` and ``grad_norm``."""

    def on_log(self, trainer: "Trainer", step: int, row: Mapping[str, Any]) -> None:
        """After a ``train`` row (window means) was appended to ``metrics.csv``."""

    def on_eval(self, trainer: "Trainer", step: int, metrics: Mapping[str, float]) -> None:
        """After ``eval_fn`` ran and its metrics were appended to ``metrics.csv``."""

    def on_checkpoint(self, trainer: "Trainer", step: int, path: "Path") -> None:
        """After ``checkpoint.pt`` was written."""

    def on_fit_end(self, trainer: "Trainer", result: "FitResult") -> None:
        """After the loop ended normally or by interruption (not after an exception)."""


class History(Callback):
    """Keeps every step's logs, the logged rows and the eval metrics in memory (for notebooks).

    ``history.steps`` / ``history.train`` / ``history.evals`` are lists of dicts with a ``step``
    key; ``history.frame()`` returns the per-step logs as a pandas DataFrame.
    """

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.steps: list[dict[str, float]] = []
        self.train: list[dict[str, Any]] = []
        self.evals: list[dict[str, float]] = []

    def on_step_end(self, trainer, step, logs):
        if step % self.every == 0:
            self.steps.append({"step": step, **logs})

    def on_log(self, trainer, step, row):
        self.train.append(dict(row))

    def on_eval(self, trainer, step, metrics):
        self.evals.append({"step": step, **metrics})

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.steps)


class LambdaCallback(Callback):
    """Callback from plain functions, e.g. ``LambdaCallback(on_eval=lambda t, s, m: plot(m))``."""

    def __init__(self, **hooks: Callable):
        valid = {n for n in dir(Callback) if n.startswith("on_")}
        for name, fn in hooks.items():
            if name not in valid:
                import difflib

                close = difflib.get_close_matches(name, sorted(valid), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise TypeError(f"LambdaCallback: unknown hook '{name}'{hint} (valid: {', '.join(sorted(valid))})")
            setattr(self, name, fn)
