"""A small batched 4x4 transform in pytorch3d's row-vector convention.

``Transform3d(matrix=M)`` maps homogeneous row vectors ``[x, y, z, 1] @ M``; ``a.compose(b)``
applies ``a`` first, then ``b`` (matrix ``M_a @ M_b``), exactly like ``pytorch3d.transforms.Transform3d``.
Only what cameras and the rasterizer need is implemented.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..core.errors import ShapeError

__all__ = ["Transform3d"]


class Transform3d:
    """Batched affine/projective transform ``(N, 4, 4)`` acting on row vectors."""

    def __init__(self, matrix: Optional[torch.Tensor] = None, dtype: torch.dtype = torch.float32,
                 device="cpu"):
        if matrix is None:
            matrix = torch.eye(4, dtype=dtype, device=device)[None]
        if matrix.dim() == 2:
            matrix = matrix[None]
        if matrix.shape[-2:] != (4, 4):
            raise ShapeError(f"Transform3d: matrix must be (N, 4, 4), got {tuple(matrix.shape)}")
        self._matrix = matrix

    @property
    def device(self) -> torch.device:
        return self._matrix.device

    @property
    def dtype(self) -> torch.dtype:
        return self._matrix.dtype

    def __len__(self) -> int:
        return self._matrix.shape[0]

    def get_matrix(self) -> torch.Tensor:
        """``(N, 4, 4)`` matrix (row-vector convention: ``p_out = p_in @ M``)."""
        return self._matrix

    def compose(self, *others: "Transform3d") -> "Transform3d":
        """Apply ``self`` first, then each of ``others`` in order."""
        M = self._matrix
        for o in others:
            M = M @ o.get_matrix().to(M)
        return Transform3d(matrix=M)

    def inverse(self) -> "Transform3d":
        return Transform3d(matrix=torch.linalg.inv(self._matrix))

    def to(self, device) -> "Transform3d":
        return Transform3d(matrix=self._matrix.to(device))

    def transform_points(self, points: torch.Tensor, eps: Optional[float] = None) -> torch.Tensor:
        """Apply to ``(P, 3)`` or ``(N, P, 3)`` points, dividing by the homogeneous coordinate.

        ``eps`` (as in pytorch3d) clamps ``|w|`` from below, keeping its sign (0 counts as +).
        """
        squeeze = points.dim() == 2
        pts = points[None] if squeeze else points
        if pts.shape[-1] != 3:
            raise ShapeError(f"transform_points: expected (..., P, 3) points, got {tuple(points.shape)}")
        M = self._matrix.to(pts.dtype)
        ones = torch.ones_like(pts[..., :1])
        out = torch.cat([pts, ones], dim=-1) @ M
        w = out[..., 3:]
        if eps is not None:
            sign = torch.sign(w) + (w == 0).to(w.dtype)
            w = sign * w.abs().clamp_min(eps)
        out = out[..., :3] / w
        if squeeze and out.shape[0] == 1:
            out = out[0]
        return out

    def transform_normals(self, normals: torch.Tensor) -> torch.Tensor:
        """Transform direction vectors / normals with the inverse-transpose of the 3x3 part."""
        squeeze = normals.dim() == 2
        n = normals[None] if squeeze else normals
        M = torch.linalg.inv(self._matrix[:, :3, :3]).transpose(1, 2).to(n.dtype)
        out = n @ M
        return out[0] if squeeze and out.shape[0] == 1 else out
