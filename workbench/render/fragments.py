"""``Fragments``: the rasterizer output, with pytorch3d's fields, shapes, sentinels and signs.

The torch backend additionally attaches a :class:`PackedFragments` (``fragments.packed``): the same
data for the occupied slots only. The built-in blending functions and shaders use it when present
(cost follows covered slots instead of ``N * H * W * K``); anything that rebuilds a ``Fragments``
from its four fields simply falls back to the dense path.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import torch

__all__ = ["Fragments", "PackedFragments"]


class PackedFragments:
    """Occupied rasterization slots, sorted by (pixel, rank) for K > 1.

    Attributes:
        pix: ``(M,)`` int64 flat pixel index ``n * H * W + row * W + col``.
        rank: ``(M,)`` int64 slot k (0 = nearest).
        face: ``(M,)`` int64 packed face index.
        inside: ``(M,)`` bool, pixel centre strictly inside the face.
        N, H, W, K: dense shape.

    The differentiable values are computed on demand: :meth:`terms` for a subset of slots, or the
    (cached) properties ``bary (M, 3)``, ``zbuf (M,)``, ``dists (M,)`` (signed squared NDC distance).
    """

    def __init__(self, pix, rank, face, inside, N: int, H: int, W: int, K: int, terms_fn: Callable):
        self.pix, self.rank, self.face, self.inside = pix, rank, face, inside
        self.N, self.H, self.W, self.K = N, H, W, K
        self._terms_fn = terms_fn
        self._all: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
        self._last: Optional[Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = None

    def __len__(self) -> int:
        return self.pix.numel()

    @property
    def slot(self) -> torch.Tensor:
        """Flat index into ``(N * H * W * K)``."""
        return self.pix * self.K + self.rank

    def terms(self, idx: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Differentiable ``(bary (m, 3), zbuf (m,), dists (m,))`` for the slots ``idx`` (all if None)."""
        if idx is None:
            if self._all is None:
                self._all = self._terms_fn(self.pix, self.face, self.inside)
            return self._all
        if self._all is not None:
            return tuple(t.index_select(0, idx) for t in self._all)  # type: ignore[return-value]
        if self._last is not None and self._last[0] is idx:  # same subset again (texturing, then blending)
            return self._last[1]
        out = self._terms_fn(self.pix.index_select(0, idx), self.face.index_select(0, idx),
                             self.inside.index_select(0, idx))
        self._last = (idx, out)
        return out

    @property
    def bary(self) -> torch.Tensor:
        return self.terms()[0]

    @property
    def zbuf(self) -> torch.Tensor:
        return self.terms()[1]

    @property
    def dists(self) -> torch.Tensor:
        return self.terms()[2]

    def detach(self) -> "PackedFragments":
        fn = self._terms_fn.detach() if hasattr(self._terms_fn, "detach") else self._terms_fn
        out = PackedFragments(self.pix, self.rank, self.face, self.inside, self.N, self.H, self.W, self.K, fn)
        if self._all is not None:
            out._all = tuple(t.detach() for t in self._all)  # type: ignore[assignment]
        return out

    def to_dense(self) -> "Fragments":
        """Scatter into pytorch3d-shaped :class:`Fragments` (-1 in empty slots), keeping gradients."""
        N, H, W, K = self.N, self.H, self.W, self.K
        n = N * H * W * K
        slot = self.slot
        dev = self.face.device
        bary_p, z_p, d_p = self.terms()
        p2f = torch.full((n,), -1, dtype=torch.int64, device=dev).index_copy_(0, slot, self.face)
        zbuf = torch.full((n,), -1.0, dtype=z_p.dtype, device=dev).index_copy_(0, slot, z_p)
        dists = torch.full((n,), -1.0, dtype=d_p.dtype, device=dev).index_copy_(0, slot, d_p)
        bary = torch.full((n, 3), -1.0, dtype=bary_p.dtype, device=dev).index_copy_(0, slot, bary_p)
        fr = Fragments(p2f.view(N, H, W, K), zbuf.view(N, H, W, K), bary.view(N, H, W, K, 3), dists.view(N, H, W, K))
        fr.packed = self
        return fr


class _FragmentsTuple(NamedTuple):
    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor
    dists: torch.Tensor


class Fragments(_FragmentsTuple):
    """Per-pixel list of the K nearest faces (sorted by increasing view depth).

    Attributes:
        pix_to_face: ``(N, H, W, K)`` int64 index into the **packed** faces of the batch, -1 if empty.
        zbuf: ``(N, H, W, K)`` view-space depth Z of the face at the pixel, -1 if empty.
        bary_coords: ``(N, H, W, K, 3)`` barycentrics of the pixel w.r.t. (v0, v1, v2), -1 if empty.
        dists: ``(N, H, W, K)`` signed **squared** NDC distance from the pixel centre to the face's
            closest edge, negative inside the face, -1 if empty.
        packed: optional :class:`PackedFragments` with the same data (torch backend).

    Row 0 is the top of the image, column 0 the left (the pixel at row i, column j is centred at
    image coordinates ``(j + 0.5, i + 0.5)``). ``zbuf``, ``bary_coords`` and ``dists`` are
    differentiable w.r.t. the vertex positions; ``pix_to_face`` is not.
    """

    packed: Optional[PackedFragments] = None

    def detach(self) -> "Fragments":
        fr = Fragments(self.pix_to_face, self.zbuf.detach(), self.bary_coords.detach(), self.dists.detach())
        if self.packed is not None:
            fr.packed = self.packed.detach()
        return fr


def packed_of(fragments) -> Optional[PackedFragments]:
    """The packed view of ``fragments`` if it is present and consistent with the dense fields."""
    p = getattr(fragments, "packed", None)
    if p is None:
        return None
    if tuple(fragments.pix_to_face.shape) != (p.N, p.H, p.W, p.K):
        return None
    return p
