"""Small shared heads: :class:`MLP`, :class:`L2Norm`, :class:`ProjectionHead`."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError

_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "silu": nn.SiLU,
         "tanh": nn.Tanh}


def _act(name: str) -> nn.Module:
    if name not in _ACTS:
        raise ConfigError(f"unknown activation '{name}' (expected {', '.join(_ACTS)})")
    return _ACTS[name]()


def _norm1d(kind: str | None, dim: int) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "bn":
        return nn.BatchNorm1d(dim)
    if kind == "ln":
        return nn.LayerNorm(dim)
    raise ConfigError(f"unknown norm '{kind}' (expected none, bn or ln)")


class MLP(nn.Sequential):
    """``(..., in_dim) -> (..., out_dim)``: [Linear -> norm -> act -> dropout] per hidden layer, then Linear.

    Args:
        in_dim, out_dim: input / output features.
        hidden_dims: widths of the hidden layers (``()`` gives a single Linear).
        act: ``relu`` | ``gelu`` | ``leaky_relu`` | ``silu`` | ``tanh``.
        norm: ``None`` | ``"bn"`` (BatchNorm1d, needs 2-D input) | ``"ln"``.
        dropout: dropout probability after each hidden activation.
        last_act: also apply the activation after the output layer.
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, act: str = "relu",
                 norm: str | None = None, dropout: float = 0.0, last_act: bool = False):
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_dims:
            layers += [nn.Linear(d, h), _norm1d(norm, h), _act(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        layers.append(nn.Linear(d, out_dim))
        if last_act:
            layers.append(_act(act))
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.in_dim, self.out_dim = in_dim, out_dim


class L2Norm(nn.Module):
    """Normalise to unit L2 norm along ``dim`` (``F.normalize``; zero vectors stay zero)."""

    def __init__(self, dim: int = 1, eps: float = 1e-12):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=self.dim, eps=self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ProjectionHead(nn.Module):
    """Embedding head ``(B, in_dim) -> (B, out_dim)`` for metric / contrastive learning.

    ``[BatchNorm1d(in_dim)] -> [Linear -> BN -> ReLU] (if hidden_dim) -> Linear -> [L2 normalise]``.
    ``ProjectionHead(2048, 128, input_norm=True)`` is the CMIC encoder head (BN1d + Linear + L2);
    ``ProjectionHead(512, 128, hidden_dim=512)`` the usual two-layer contrastive projector.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, input_norm: bool = False,
                 normalize: bool = True):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(in_dim) if input_norm else nn.Identity()
        self.mlp = MLP(in_dim, [hidden_dim] if hidden_dim else [], out_dim, norm="bn" if hidden_dim else None)
        self.l2 = L2Norm(1) if normalize else nn.Identity()
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.mlp(self.input_norm(x)))
