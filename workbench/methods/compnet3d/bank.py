"""Feature banks: per-class vertex features (momentum-updated) and the shared background FIFO.

The vertex bank holds ``C (Y, K, D)`` unit features for ``Y`` classes padded to ``K`` slots
(``valid (Y, K)`` marks real vertices, as NOVUM's ``class * max_n + v`` layout). It is not a
parameter: after every optimisation step each observed vertex moves towards the batch mean of its
features (paper eq 6)::

    C_k <- normalize(sigma * C_k + (1 - sigma) * fbar_k)

``fbar_k`` is the mean over the batch's *visible* observations of vertex ``k`` (``average="visible"``,
the paper's per-vertex reading) or, as the NOVUM code does, the sum of visible features divided by
the number of images of that class in the batch (``average="images"``). Vertices of classes absent
from the batch, and (``visible``) unobserved vertices, are left unchanged.

The background bank ``(N_b, D)`` is a ring buffer: each step overwrites the oldest entries with the
new background features (``T`` per image).

Under ``torch.distributed`` both updates use the global batch (sums all-reduced, background
features all-gathered), so the banks stay identical on every process.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError, ShapeError, check_shape


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class FeatureBank(nn.Module):
    """Vertex bank ``(Y, K, D)`` + validity mask + background ring buffer ``(N_b, D)`` (buffers).

    Args:
        n_vertices: number of real vertices of each class (length ``Y``); ``K = max``.
        dim: feature dimension ``D``.
        n_background: ``N_b`` background slots.
        generator: optional generator for the random unit initialisation.
    """

    def __init__(self, n_vertices: Sequence[int], dim: int, n_background: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        n_vertices = [int(v) for v in n_vertices]
        if not n_vertices or min(n_vertices) < 1:
            raise ConfigError(f"FeatureBank: every class needs >= 1 vertex, got {n_vertices}")
        if n_background < 1:
            raise ConfigError(f"FeatureBank: n_background must be >= 1, got {n_background}")
        Y, K = len(n_vertices), max(n_vertices)
        valid = torch.arange(K)[None, :] < torch.tensor(n_vertices)[:, None]
        # NOVUM initialises U(-1/sqrt(D/3), 1/sqrt(D/3)); the paper's features are unit vectors.
        a = 1.0 / math.sqrt(dim / 3.0)
        vert = (torch.rand(Y, K, dim, generator=generator) * 2 - 1) * a
        bg = (torch.rand(n_background, dim, generator=generator) * 2 - 1) * a
        self.register_buffer("vertex", F.normalize(vert, dim=-1) * valid[..., None])
        self.register_buffer("valid", valid)
        self.register_buffer("background", F.normalize(bg, dim=-1))
        self.register_buffer("bg_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("bg_seen", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ shapes
    @property
    def n_classes(self) -> int:
        return self.vertex.shape[0]

    @property
    def max_vertices(self) -> int:
        return self.vertex.shape[1]

    @property
    def dim(self) -> int:
        return self.vertex.shape[2]

    @property
    def n_background(self) -> int:
        return self.background.shape[0]

    def n_vertices(self) -> list[int]:
        return self.valid.sum(1).tolist()

    # ------------------------------------------------------------------ updates
    @torch.no_grad()
    def update_vertices(self, feats: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor,
                        momentum: float = 0.9,
                        average: Literal["visible", "images"] = "visible") -> torch.Tensor:
        """Momentum update (eq 6) from one batch.

        Args:
            feats: ``(B, K, D)`` features at each image's own-class vertex projections.
            visible: ``(B, K)`` bool visibility ``o_k``.
            labels: ``(B,)`` long classes.
            momentum: ``sigma`` in [0, 1).
            average: ``"visible"`` (divide by the number of visible observations, eq 6) or
                ``"images"`` (divide by the class's images in the batch, NOVUM code).

        Returns:
            ``(Y, K)`` bool mask of the slots that changed.
        """
        Bsz, K, D = feats.shape if feats.ndim == 3 else (None, None, None)
        if feats.ndim != 3 or K != self.max_vertices or D != self.dim:
            raise ShapeError(f"feats: expected shape (B, {self.max_vertices}, {self.dim}), "
                             f"got {tuple(feats.shape)}")
        check_shape("visible", visible, (Bsz, K))
        check_shape("labels", labels, (Bsz,))
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"bank momentum must be in [0, 1), got {momentum}")
        vis = (visible & self.valid[labels]).to(feats.dtype)
        Y = self.n_classes
        sums = torch.zeros(Y, K, D, dtype=feats.dtype, device=feats.device)
        sums.index_add_(0, labels, feats.detach() * vis[..., None])
        counts = torch.zeros(Y, K, dtype=feats.dtype, device=feats.device)
        counts.index_add_(0, labels, vis)
        n_img = torch.bincount(labels, minlength=Y).to(feats.dtype)
        if _distributed():  # every process applies the update of the global batch: banks stay equal
            for t in (sums, counts, n_img):
                torch.distributed.all_reduce(t)
        if average == "visible":
            changed = counts > 0
            mean = sums / counts.clamp_min(1)[..., None]
        elif average == "images":
            changed = (n_img[:, None] > 0) & self.valid
            mean = sums / n_img.clamp_min(1)[:, None, None]
        else:
            raise ConfigError(f"bank average must be 'visible' or 'images', got {average!r}")
        new = F.normalize(momentum * self.vertex + (1.0 - momentum) * mean, dim=-1)
        self.vertex.copy_(torch.where(changed[..., None], new, self.vertex))
        return changed

    @torch.no_grad()
    def push_background(self, feats: torch.Tensor) -> None:
        """Write ``(M, D)`` features into the FIFO, replacing the oldest ``M`` entries."""
        check_shape("background feats", feats, (None, self.dim))
        if _distributed():  # same FIFO on every process: push the features of the global batch
            parts = [torch.empty_like(feats) for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather(parts, feats.contiguous())
            feats = torch.cat(parts, 0)
        M, Nb = feats.shape[0], self.n_background
        if M == 0:
            return
        if M > Nb:
            feats = feats[-Nb:]
            M = Nb
        ptr = int(self.bg_ptr)
        idx = (torch.arange(M, device=feats.device) + ptr) % Nb
        self.background[idx] = F.normalize(feats.detach().to(self.background), dim=-1)
        self.bg_ptr.fill_((ptr + M) % Nb)
        self.bg_seen.add_(M)

    def collapsed_background(self) -> torch.Tensor:
        """``(1, D)`` normalised mean of the background bank (NOVUM's inference shortcut)."""
        return F.normalize(self.background.mean(0, keepdim=True), dim=-1)
