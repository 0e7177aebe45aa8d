"""TTP's shape priors on the deformed mesh and on the deformation basis.

* ``laplacian``: cotangent-Laplacian smoothing of the deformed mesh V (pytorch3d
  ``mesh_laplacian_smoothing(method="cot")`` semantics: mean over vertices of
  ``|sum_j w_ij v_j / sum_j w_ij - v_i|``, weights from the current V);
* ``laplacian_basis``: uniform-Laplacian smoothing of every basis mesh ``T + B_k``;
* ``arap``: as-rigid-as-possible energy of V against the template T with cotangent weights of T,
  ``sum_i sum_j w_ij |(v_i - v_j) - R_i (t_i - t_j)|^2`` with the optimal local rotations R_i
  (batched SVD, no CUDA extension; the rotations are held fixed in the gradient, which is exact
  at the optimum by the envelope theorem); normalised by the sum of weights;
* ``arap_basis``: the same for every ``T + B_k`` against T.

Topology quantities (edges, cotangent weights of the template) are cached per faces tensor.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cot_weights", "uniform_laplacian_loss", "cot_laplacian_loss", "arap_energy",
           "shape_priors"]


def _edges(faces: Tensor) -> Tensor:
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(torch.sort(e, dim=1).values, dim=0)


def cot_weights(verts: Tensor, faces: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Cotangent weights ``0.5 (cot a + cot b)`` of every undirected edge.

    Args: verts (B, N, 3) or (N, 3); faces (F, 3).
    Returns: edges (E, 2) and weights (B, E) (or (E,)), clamped at 0 (obtuse pairs).
    """
    squeeze = verts.dim() == 2
    v = verts[None] if squeeze else verts
    B, N, _ = v.shape
    edges = _edges(faces)
    key = edges[:, 0] * N + edges[:, 1]
    w = v.new_zeros(B, edges.shape[0])
    for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):       # angle at c, opposite edge (a, b)
        ia, ib, ic = faces[:, a], faces[:, b], faces[:, c]
        e1 = v[:, ia] - v[:, ic]
        e2 = v[:, ib] - v[:, ic]
        cos = (e1 * e2).sum(-1)
        sin = torch.linalg.cross(e1, e2, dim=-1).norm(dim=-1).clamp_min(eps)
        cot = cos / sin
        k = torch.minimum(ia, ib) * N + torch.maximum(ia, ib)
        pos = torch.searchsorted(key, k)
        w = w.index_add(1, pos, 0.5 * cot)
    w = w.clamp_min(0.0)
    return edges, (w[0] if squeeze else w)


def _neighbour_average(v: Tensor, edges: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """sum_j w_ij v_j and sum_j w_ij for every vertex (both directions of every edge)."""
    B, N, _ = v.shape
    i, j = edges[:, 0], edges[:, 1]
    acc = v.new_zeros(B, N, 3)
    acc = acc.index_add(1, i, w[..., None] * v[:, j]).index_add(1, j, w[..., None] * v[:, i])
    tot = v.new_zeros(B, N).index_add(1, i, w).index_add(1, j, w)
    return acc, tot


def uniform_laplacian_loss(verts: Tensor, faces: Tensor) -> Tensor:
    """Mean over meshes and vertices of ``|mean_j v_j - v_i|`` (verts (B, N, 3))."""
    edges = _edges(faces)
    w = verts.new_ones(verts.shape[0], edges.shape[0])
    acc, tot = _neighbour_average(verts, edges, w)
    return (acc / tot.clamp_min(1e-12)[..., None] - verts).norm(dim=-1).mean()


def cot_laplacian_loss(verts: Tensor, faces: Tensor) -> Tensor:
    """Mean over meshes and vertices of ``|sum_j w_ij v_j / sum_j w_ij - v_i|`` (cot weights of V)."""
    edges, w = cot_weights(verts, faces)
    acc, tot = _neighbour_average(verts, edges, w)
    lap = acc / tot.clamp_min(1e-12)[..., None] - verts
    return torch.where(tot[..., None] > 0, lap, torch.zeros_like(lap)).norm(dim=-1).mean()


def arap_energy(verts: Tensor, rest: Tensor, faces: Tensor, weights: tuple[Tensor, Tensor] | None = None
                ) -> Tensor:
    """Mean ARAP energy of deformed meshes (B, N, 3) against one rest mesh (N, 3).

    ``weights``: precomputed ``cot_weights(rest, faces)``. Returns a scalar (per-mesh energy
    divided by the weight sum, averaged over the batch).
    """
    edges, w = weights if weights is not None else cot_weights(rest, faces)
    B, N, _ = verts.shape
    i, j = edges[:, 0], edges[:, 1]
    e_rest = (rest[i] - rest[j])[None].expand(B, -1, -1)                    # (B, E, 3)
    e_def = verts[:, i] - verts[:, j]
    with torch.no_grad():
        outer = (w[None, :, None, None] * e_rest[..., :, None] * e_def[..., None, :])   # (B, E, 3, 3)
        S = verts.new_zeros(B, N, 3, 3).index_add(1, i, outer).index_add(1, j, outer)
        U, _, Vh = torch.linalg.svd(S)
        Rm = Vh.transpose(-1, -2) @ U.transpose(-1, -2)
        det = torch.det(Rm)
        fix = torch.ones_like(U[..., 0, :])
        fix[..., 2] = torch.where(det < 0, -1.0, 1.0)
        Rm = Vh.transpose(-1, -2) @ (fix[..., None] * U.transpose(-1, -2))
    # each directed half-edge uses its own vertex's rotation: i with R_i, j with R_j
    ri = (Rm[:, i] @ e_rest[..., None])[..., 0]
    rj = (Rm[:, j] @ e_rest[..., None])[..., 0]
    energy = (w[None] * ((e_def - ri).pow(2).sum(-1) + (e_def - rj).pow(2).sum(-1))).sum(-1)
    return (energy / (2 * w.sum()).clamp_min(1e-12)).mean()


def shape_priors(shape, verts: Tensor, loss_cfg) -> dict[str, Tensor]:
    """The shape-prior terms (unweighted) for deformed vertices (B, N, 3) of a
    :class:`~.model.DeformableShape`; only the terms with a positive weight are computed.

    Evaluated in the official template units (``shape.unit`` x template units), see
    :class:`~.model.DeformableShape`.
    """
    unit = getattr(shape, "unit", 1.0)
    T, faces = shape.template * unit, shape.faces
    verts = verts * unit
    out: dict[str, Tensor] = {}
    if loss_cfg.laplacian > 0:
        out["laplacian"] = cot_laplacian_loss(verts, faces)
    need_w = loss_cfg.arap > 0 or (loss_cfg.arap_basis > 0 and shape.num_basis > 0)
    w = None
    if need_w:
        key = (shape.template.data_ptr(), faces.data_ptr(), str(T.device), unit)
        cache = getattr(shape, "_ttp_cot_cache", None)
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, cot_weights(T, faces))
            shape._ttp_cot_cache = cache
        w = cache[1]
    if loss_cfg.arap > 0:
        out["arap"] = arap_energy(verts, T, faces, w)
    if shape.num_basis > 0:
        basis_meshes = T[None] + shape.effective_basis * unit
        if loss_cfg.laplacian_basis > 0:
            out["laplacian_basis"] = uniform_laplacian_loss(basis_meshes, faces)
        if loss_cfg.arap_basis > 0:
            out["arap_basis"] = arap_energy(basis_meshes, T, faces, w)
    return out
