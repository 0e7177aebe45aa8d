"""Rigid / similarity alignment of point clouds: Procrustes (via ``roma``) and ICP.

Transforms use the project's row-vector convention: ``X_aligned = s * X @ R + T`` with
``R (N, 3, 3)``, ``T (N, 3)``, ``s (N,)`` (pytorch3d's ``SimilarityTransform``).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch

from ..core.errors import ShapeError
from .points import nearest_neighbour_index

__all__ = ["SimilarityTransform", "ICPSolution", "corresponding_points_alignment", "icp", "apply_similarity"]


class SimilarityTransform(NamedTuple):
    R: torch.Tensor
    T: torch.Tensor
    s: torch.Tensor


class ICPSolution(NamedTuple):
    converged: bool
    rmse: torch.Tensor
    Xt: torch.Tensor
    RTs: SimilarityTransform
    t_history: List[SimilarityTransform]



def _roma():
    """``roma``, imported on first use (it imports ``torch._dynamo``: ~2 s at start-up)."""
    import roma

    return roma

def apply_similarity(X: torch.Tensor, t: SimilarityTransform) -> torch.Tensor:
    """``s * X @ R + T`` for ``X (N, P, 3)``."""
    return t.s[:, None, None] * (X @ t.R) + t.T[:, None, :]


def corresponding_points_alignment(X: torch.Tensor, Y: torch.Tensor, weights: Optional[torch.Tensor] = None,
                                   estimate_scale: bool = False) -> SimilarityTransform:
    """Least-squares ``(R, T, s)`` with ``s X @ R + T ~ Y`` for corresponding points (Umeyama, via roma)."""
    if X.shape != Y.shape or X.dim() != 3:
        raise ShapeError(f"alignment: X and Y must both be (N, P, D), got {tuple(X.shape)} and {tuple(Y.shape)}")
    if estimate_scale:
        Rc, t, s = _roma().rigid_points_registration(X, Y, weights=weights, compute_scaling=True)
    else:
        Rc, t = _roma().rigid_points_registration(X, Y, weights=weights)
        s = torch.ones(X.shape[0], dtype=X.dtype, device=X.device)
    return SimilarityTransform(Rc.transpose(-1, -2), t, s)


def icp(X: torch.Tensor, Y: torch.Tensor, init: Optional[SimilarityTransform] = None, max_iterations: int = 100,
        relative_rmse_thr: float = 1e-6, estimate_scale: bool = False, allow_reflection: bool = False
        ) -> ICPSolution:
    """Iterative closest point aligning ``X (N, P, 3)`` onto ``Y (N, Q, 3)`` (pytorch3d's contract).

    Each iteration matches every transformed X point to its nearest Y point and solves the
    Procrustes problem; stops when the RMSE improves by less than ``relative_rmse_thr`` (relative).
    ``estimate_scale`` fits a similarity (used before shape metrics of scale-ambiguous methods).
    Returns the solution with ``Xt = s X @ R + T``.
    """
    if allow_reflection:
        raise ShapeError("icp: reflections are not supported")
    if X.dim() != 3 or Y.dim() != 3 or X.shape[-1] != 3 or Y.shape[-1] != 3 or X.shape[0] != Y.shape[0]:
        raise ShapeError(f"icp: X (N, P, 3) and Y (N, Q, 3) expected, got {tuple(X.shape)} and {tuple(Y.shape)}")
    N = X.shape[0]
    if init is None:
        init = SimilarityTransform(torch.eye(3, dtype=X.dtype, device=X.device).expand(N, 3, 3).clone(),
                                   torch.zeros(N, 3, dtype=X.dtype, device=X.device),
                                   torch.ones(N, dtype=X.dtype, device=X.device))
    t = init
    history = [t]
    Xt = apply_similarity(X, t)
    prev = None
    converged = False
    rmse = torch.zeros(N, dtype=X.dtype, device=X.device)
    nearest = nearest_neighbour_index(Y)  # Y is fixed: index it once (matching has no gradient)
    for _ in range(max_iterations):
        idx = nearest(Xt)
        Yn = Y.gather(1, idx[..., None].expand(-1, -1, 3))
        t = corresponding_points_alignment(X, Yn, estimate_scale=estimate_scale)
        history.append(t)
        Xt = apply_similarity(X, t)
        rmse = ((Xt - Yn) ** 2).sum(-1).mean(-1).sqrt()
        if prev is not None:
            rel = ((prev - rmse) / prev.clamp_min(1e-12)).abs().max()
            if float(rel) < relative_rmse_thr:
                converged = True
                break
        prev = rmse
    return ICPSolution(converged, rmse, Xt, t, history)
