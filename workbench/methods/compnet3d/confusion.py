"""Dynamic confusion weights of the cross-class contrast (paper eqs 4-5).

Every ``every`` iterations (2 epochs in the paper) the model classifies a held-out calibration
split with eq 7; the confusion matrix, normalised over the ground-truth class (rows), becomes the
weight ``w_{y,y'}`` of the pair, with entries below ``threshold`` (0.05) set to 0 so that the pair
drops out of the loss. Before the first calibration all pairs weigh 1. The diagonal is never used
(the loss only contrasts against other classes) and is stored as 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...core.errors import ConfigError, check_shape


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(Y, Y)`` float counts, rows = ground truth, columns = prediction."""
    check_shape("pred", pred, (None,))
    check_shape("target", target, (pred.shape[0],))
    idx = target.long() * n_classes + pred.long()
    return torch.bincount(idx.cpu(), minlength=n_classes * n_classes).view(n_classes, n_classes).float()


def confusion_weights(counts: torch.Tensor, threshold: float = 0.05,
                      previous: torch.Tensor | None = None) -> torch.Tensor:
    """Row-normalise ``counts (Y, Y)``, zero entries ``< threshold`` and the diagonal.

    Rows without any calibration sample keep ``previous`` (or 1 when none is given).
    """
    check_shape("counts", counts, (None, counts.shape[0]))
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"loss.weight_threshold must be in [0, 1), got {threshold}")
    Y = counts.shape[0]
    rows = counts.sum(1, keepdim=True)
    w = counts / rows.clamp_min(1e-12)
    w = torch.where(w < threshold, torch.zeros_like(w), w)
    fallback = torch.ones(Y, Y) if previous is None else previous.to(w)
    w = torch.where(rows > 0, w, fallback)
    w.fill_diagonal_(0.0)
    return w


@dataclass
class ConfusionSchedule:
    """Holds the current weights and when to recompute them.

    Attributes:
        n_classes: ``Y``.
        every: recompute interval in iterations (``<= 0``: never, weights stay 1).
        threshold: entries below it are zeroed.
        omega: current ``(Y, Y)`` weights.
        history: ``[(step, omega)]`` of every recomputation (for the sparsification plot).
    """

    n_classes: int
    every: int
    threshold: float = 0.05
    omega: torch.Tensor = field(default=None)  # type: ignore[assignment]
    history: list = field(default_factory=list)

    def __post_init__(self):
        if self.omega is None:
            self.omega = torch.ones(self.n_classes, self.n_classes)
            self.omega.fill_diagonal_(0.0)

    def due(self, step: int) -> bool:
        """True after iteration ``step`` (1-based count of finished iterations) ends an interval."""
        return self.every > 0 and step > 0 and step % self.every == 0

    def update(self, step: int, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        counts = confusion_matrix(pred, target, self.n_classes)
        self.omega = confusion_weights(counts, self.threshold, previous=self.omega)
        self.history.append((int(step), self.omega.clone()))
        return self.omega

    def sparsity(self) -> float:
        """Fraction of off-diagonal pairs with weight 0."""
        Y = self.n_classes
        off = ~torch.eye(Y, dtype=torch.bool)
        return float((self.omega[off] == 0).float().mean()) if Y > 1 else 0.0

    def state_dict(self) -> dict:
        return {"omega": self.omega.clone(), "history": [(s, w.clone()) for s, w in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.omega = state["omega"].clone()
        self.history = [(int(s), w.clone()) for s, w in state["history"]]
