"""Shape metrics of the UNICORN evaluation: surface sampling, Chamfer-L1 (x10) and rigid ICP.

(Kept here because ``workbench.geometry`` does not provide ``sample_points_from_meshes``,
``chamfer_l1_x10`` and ``icp`` yet; the functions follow the documented contracts so that they
can move there unchanged.)

* :func:`sample_surface` -- area-weighted uniform points on a triangle mesh.
* :func:`chamfer_l1_x10` -- the OccNet/DVR convention: ``10 x (mean_a min_b |a - b| + mean_b min_a
  |a - b|) / 2`` with Euclidean (square-rooted) nearest-neighbour distances.
* :func:`rigid_icp` -- Besl-McKay point-to-point ICP (nearest neighbours, then Kabsch), the paper's
  ICP; returns the aligned source and the transform ``x -> x R + t``.
* :func:`normalize_unit_cube` -- centre the bounding box at the origin and scale its largest side
  to 1 (the world's canonical normalisation, and the official code's ICP pre-normalisation).
"""
from __future__ import annotations

import torch

from ...core.errors import ShapeError

__all__ = ["sample_surface", "nn_distances", "chamfer_l1_x10", "rigid_icp", "normalize_unit_cube", "kabsch"]


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, n: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points ``(n, 3)`` drawn uniformly (by area) on the mesh ``verts (V, 3)``, ``faces (F, 3)``."""
    if verts.dim() != 2 or verts.shape[-1] != 3 or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ShapeError(f"sample_surface: expected (V, 3) and (F, 3), got {tuple(verts.shape)}, {tuple(faces.shape)}")
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    area = torch.cross(v1 - v0, v2 - v0, dim=-1).norm(dim=-1)
    if not bool(area.sum() > 0):
        raise ShapeError("sample_surface: the mesh has zero area")
    fid = torch.multinomial(area.cpu().double(), n, replacement=True, generator=generator).to(verts.device)
    u = torch.rand(n, 1, generator=generator).to(verts)
    w = torch.rand(n, 1, generator=generator).to(verts)
    flip = (u + w) > 1
    u, w = torch.where(flip, 1 - u, u), torch.where(flip, 1 - w, w)
    return v0[fid] + u * (v1[fid] - v0[fid]) + w * (v2[fid] - v0[fid])


def nn_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """For every point of ``a (N, 3)``: Euclidean distance to and index of its nearest point in ``b (M, 3)``."""
    ds, ids = [], []
    for s in range(0, a.shape[0], chunk):
        d = torch.cdist(a[s:s + chunk].double(), b.double())
        m = d.min(1)
        ds.append(m.values)
        ids.append(m.indices)
    return torch.cat(ds).to(a.dtype), torch.cat(ids)


def chamfer_l1_x10(a: torch.Tensor, b: torch.Tensor) -> float:
    """``10 x (accuracy + completeness) / 2`` with Euclidean nearest-neighbour distances."""
    da, _ = nn_distances(a, b)
    db, _ = nn_distances(b, a)
    return float(10.0 * 0.5 * (da.mean() + db.mean()))


def kabsch(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rotation/translation (row vectors) with ``src @ R + t ~ dst`` for paired ``(N, 3)`` points."""
    cs, cd = src.mean(0), dst.mean(0)
    H = (src - cs).T.double() @ (dst - cd).double()
    U, _, Vt = torch.linalg.svd(H)
    d = torch.sign(torch.det(U @ Vt))
    D = torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64))
    R = (U @ D @ Vt).to(src.dtype)
    return R, cd - cs @ R


def rigid_icp(src: torch.Tensor, dst: torch.Tensor, iters: int = 30, tol: float = 1e-6
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Point-to-point ICP of ``src (N, 3)`` onto ``dst (M, 3)`` -> ``(aligned src, R (3, 3), t (3,))``.

    ``aligned = src @ R + t``; stops when the mean residual changes by less than ``tol``.
    """
    R = torch.eye(3, dtype=src.dtype, device=src.device)
    t = torch.zeros(3, dtype=src.dtype, device=src.device)
    cur = src
    prev = float("inf")
    for _ in range(iters):
        d, idx = nn_distances(cur, dst)
        err = float(d.mean())
        if abs(prev - err) < tol:
            break
        prev = err
        R, t = kabsch(src, dst[idx])
        cur = src @ R + t
    return cur, R, t


def normalize_unit_cube(points: torch.Tensor) -> torch.Tensor:
    """Centre the bounding box of ``(N, 3)`` points at the origin and scale its largest side to 1."""
    lo, hi = points.min(0).values, points.max(0).values
    return (points - (lo + hi) / 2) / (hi - lo).max().clamp_min(1e-8)
