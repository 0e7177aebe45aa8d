"""``Fragments``: the rasterizer output, with pytorch3d's fields, shapes, sentinels and signs."""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Fragments"]


class Fragments(NamedTuple):
    """Per-pixel list of the K nearest faces (sorted by increasing view depth).

    Attributes:
        pix_to_face: ``(N, H, W, K)`` int64 index into the **packed** faces of the batch, -1 if empty.
        zbuf: ``(N, H, W, K)`` view-space depth Z of the face at the pixel, -1 if empty.
        bary_coords: ``(N, H, W, K, 3)`` barycentrics of the pixel w.r.t. (v0, v1, v2), -1 if empty.
        dists: ``(N, H, W, K)`` signed **squared** NDC distance from the pixel centre to the face's
            closest edge, negative inside the face, -1 if empty.

    Row 0 is the top of the image, column 0 the left (the pixel at row i, column j is centred at
    image coordinates ``(j + 0.5, i + 0.5)``). ``zbuf``, ``bary_coords`` and ``dists`` are
    differentiable w.r.t. the vertex positions; ``pix_to_face`` is not.
    """

    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor
    dists: torch.Tensor

    def detach(self) -> "Fragments":
        return Fragments(self.pix_to_face, self.zbuf.detach(), self.bary_coords.detach(), self.dists.detach())
