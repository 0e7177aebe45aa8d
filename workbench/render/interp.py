"""Barycentric interpolation of per-face / per-vertex attributes over rasterized fragments.

Only occupied slots (``pix_to_face >= 0``) are evaluated, so the cost follows the covered pixels;
empty slots get 0 (pytorch3d semantics). Gradients flow to the barycentrics (hence the vertex
positions) and to the attributes.
"""
from __future__ import annotations

import torch

from ..core.errors import ShapeError
from . import cpu_kernels as _cpu

__all__ = ["interpolate_face_attributes", "interpolate_vertex_attributes", "interpolate_vertex_attributes_packed"]


def interpolate_face_attributes(pix_to_face: torch.Tensor, barycentric_coords: torch.Tensor,
                                face_attributes: torch.Tensor) -> torch.Tensor:
    """``sum_i bary_i * face_attributes[face, i]`` -> ``(N, H, W, K, D)``; 0 where ``pix_to_face < 0``.

    Args:
        pix_to_face: ``(N, H, W, K)`` packed face indices (-1 = empty).
        barycentric_coords: ``(N, H, W, K, 3)``.
        face_attributes: ``(F, 3, D)`` attributes at the three corners of every packed face.
    """
    if face_attributes.dim() != 3 or face_attributes.shape[1] != 3:
        raise ShapeError(f"face_attributes: expected (F, 3, D), got {tuple(face_attributes.shape)}")
    if barycentric_coords.shape != pix_to_face.shape + (3,):
        raise ShapeError(f"barycentric_coords: expected {tuple(pix_to_face.shape) + (3,)}, "
                         f"got {tuple(barycentric_coords.shape)}")
    D = face_attributes.shape[-1]
    p2f = pix_to_face.reshape(-1)
    idx = torch.nonzero(p2f >= 0).flatten()
    faces = p2f.index_select(0, idx)
    bary = barycentric_coords.reshape(-1, 3).index_select(0, idx).to(face_attributes.dtype)
    vals = (bary[:, :, None] * face_attributes.index_select(0, faces)).sum(1)
    out = face_attributes.new_zeros(p2f.numel(), D).index_copy(0, idx, vals)
    return out.view(*pix_to_face.shape, D)


def interpolate_vertex_attributes(pix_to_face: torch.Tensor, barycentric_coords: torch.Tensor,
                                  faces_packed: torch.Tensor, verts_attributes: torch.Tensor) -> torch.Tensor:
    """Like :func:`interpolate_face_attributes` from per-vertex attributes ``(V, D)`` (packed), without
    materialising the ``(F, 3, D)`` face attribute tensor (memory-friendly for D = 128 features)."""
    if verts_attributes.dim() != 2:
        raise ShapeError(f"verts_attributes: expected (V, D), got {tuple(verts_attributes.shape)}")
    D = verts_attributes.shape[-1]
    p2f = pix_to_face.reshape(-1)
    idx = torch.nonzero(p2f >= 0).flatten()
    bary = barycentric_coords.reshape(-1, 3).index_select(0, idx).to(verts_attributes.dtype)
    vals = interpolate_vertex_attributes_packed(faces_packed, p2f.index_select(0, idx), bary, verts_attributes)
    out = verts_attributes.new_zeros(p2f.numel(), D).index_copy(0, idx, vals)
    return out.view(*pix_to_face.shape, D)


def interpolate_vertex_attributes_packed(faces_packed: torch.Tensor, face: torch.Tensor, bary: torch.Tensor,
                                         verts_attributes: torch.Tensor) -> torch.Tensor:
    """``sum_k bary[:, k] * verts_attributes[faces_packed[face, k]]`` -> ``(M, D)`` for M occupied slots
    (``face (M,)`` packed face ids, ``bary (M, 3)``); a compiled kernel on CPU (same values)."""
    if _cpu.use_cpu_kernels(verts_attributes):
        return _cpu.InterpolateCPUFn.apply(faces_packed, face, bary, verts_attributes)
    corner = faces_packed.index_select(0, face)  # (M, 3)
    vals = bary[:, 0:1] * verts_attributes.index_select(0, corner[:, 0])
    vals = vals + bary[:, 1:2] * verts_attributes.index_select(0, corner[:, 1])
    return vals + bary[:, 2:3] * verts_attributes.index_select(0, corner[:, 2])
