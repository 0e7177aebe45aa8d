"""Shape metrics of the UNICORN evaluation, batched over meshes, on top of :mod:`workbench.geometry`.

The sampling, Chamfer-L1 and ICP are :mod:`workbench.geometry`'s (``sample_points_from_meshes``,
``chamfer_l1_x10``, ``icp``: pytorch3d's contracts); this module only adds the evaluation protocol:

* :func:`normalize_unit_cube` -- centre each cloud's bounding box at the origin and scale its
  largest side to 1 (the world's canonical normalisation, and the official code's ICP
  pre-normalisation).
* :func:`surface_points` -- ``n`` area-uniform samples on each of B meshes sharing one topology.
* :func:`chamfer_scores` -- Chamfer-L1 x10 (OccNet/DVR convention: Euclidean nearest-neighbour
  distances) before and after rigid point-to-point ICP (Besl-McKay, the paper's variant).
"""
from __future__ import annotations

import torch

from ...core.errors import ShapeError
from ...geometry import Meshes, chamfer_l1_x10, icp, sample_points_from_meshes

__all__ = ["normalize_unit_cube", "surface_points", "chamfer_scores"]


def normalize_unit_cube(points: torch.Tensor) -> torch.Tensor:
    """Centre the bounding box of each ``(..., P, 3)`` cloud at the origin and scale its largest side to 1."""
    if points.shape[-1] != 3 or points.dim() < 2:
        raise ShapeError(f"normalize_unit_cube: expected (..., P, 3) points, got {tuple(points.shape)}")
    lo, hi = points.min(-2, keepdim=True).values, points.max(-2, keepdim=True).values
    side = (hi - lo).amax(-1, keepdim=True).clamp_min(1e-8)
    return (points - (lo + hi) / 2) / side


def surface_points(verts: torch.Tensor, faces: torch.Tensor, n: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``verts (B, V, 3)`` + shared ``faces (F, 3)`` -> ``(B, n, 3)`` area-uniform surface samples."""
    if verts.dim() != 3 or verts.shape[-1] != 3 or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ShapeError(f"surface_points: expected verts (B, V, 3) and faces (F, 3), got {tuple(verts.shape)} "
                         f"and {tuple(faces.shape)}")
    meshes = Meshes(verts, faces[None].expand(verts.shape[0], -1, -1))
    return sample_points_from_meshes(meshes, n, generator=generator)


def chamfer_scores(pred: torch.Tensor, gt: torch.Tensor, icp_iters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chamfer_l1 (B,), chamfer_l1_icp (B,))`` of ``pred (B, P, 3)`` against ``gt (B, Q, 3)``.

    Both are x10 Chamfer-L1 with Euclidean distances; the second after rigid ICP of ``pred`` onto
    ``gt`` (``icp_iters`` iterations at most, no scale).
    """
    cd = chamfer_l1_x10(pred, gt)
    if icp_iters <= 0:
        return cd, cd.clone()
    aligned = icp(pred, gt, max_iterations=icp_iters).Xt
    return cd, chamfer_l1_x10(aligned, gt)
