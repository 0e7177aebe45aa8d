"""Vectorised pure-torch mesh rasterizer reproducing pytorch3d's ``rasterize_meshes`` semantics.

Algorithm (cost follows the pixels covered by face bounding boxes, not pixels x faces):

1. *Face setup* (no grad): per face, validity (all vertices at ``z >= z_min``, non-degenerate
   screen area, optional back-face culling) and the pixel range of its screen bounding box
   expanded by ``sqrt(blur_radius)``.
2. *Binning*: every face is expanded into the (pixel, face) pairs of its bounding box (one
   ``repeat_interleave``); faces are processed in chunks of at most ``max_pairs`` pairs so memory
   stays bounded whatever the mesh and image size.
3. *Coverage test* per pair, exactly as pytorch3d: 2D barycentrics (edge functions, +1e-8 on the
   area), optional perspective correction, ``inside = all(bary > 0)`` before clipping, optional
   clipping, depth ``pz`` (pairs with ``pz < 0`` are dropped), squared distance to the closest edge,
   kept when inside or ``dist < blur_radius``.
4. *Selection* of the K nearest faces per pixel by ``pz`` (ties by face index): ``scatter_reduce``
   for K = 1, one stable sort on a (pixel, depth) key for K > 1.
5. *Differentiable recomputation* of barycentrics, depth and signed distance for the selected
   (pixel, face) slots only, so gradients reach the vertex positions like pytorch3d's
   backward pass while ``pix_to_face`` stays fixed.

Known difference: faces with a vertex closer than ``z_min`` (1e-8, or ``z_clip_value`` when set)
are culled whole, whereas pytorch3d clips them at ``z_clip_value`` (only matters for geometry
crossing the near plane).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from ..geometry.cameras import pixel_centers_ndc
from .fragments import Fragments

__all__ = ["rasterize_packed", "DEFAULT_MAX_PAIRS"]

K_EPS = 1e-8
DEFAULT_MAX_PAIRS = 1 << 21


def _edge(px, py, ax, ay, bx, by):
    """pytorch3d EdgeFunction: ``(p - a) x (b - a)`` (2D cross product)."""
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _seg_dist2(px, py, ax, ay, bx, by):
    """Squared distance from p to segment [a, b] (degenerate segment: distance to b)."""
    ex, ey = bx - ax, by - ay
    l2 = ex * ex + ey * ey
    t = ((px - ax) * ex + (py - ay) * ey) / torch.where(l2 > K_EPS, l2, torch.ones_like(l2))
    t = t.clamp(0.0, 1.0)
    dx = ax + t * ex - px
    dy = ay + t * ey - py
    d = dx * dx + dy * dy
    deg = (px - bx) ** 2 + (py - by) ** 2
    return torch.where(l2 > K_EPS, d, deg)


def pair_terms(fv: torch.Tensor, px: torch.Tensor, py: torch.Tensor, perspective_correct: bool,
               clip_barycentric_coords: bool):
    """Rasterization quantities of pixel centres ``(px, py)`` (NDC) against faces ``fv (9, M)``.

    ``fv`` rows are ``x0 y0 z0 x1 y1 z1 x2 y2 z2`` (NDC x/y, view z; component-major so that every
    elementwise op runs on contiguous memory). Returns
    ``(bary (M, 3) [clipped if requested], pz (M,), dist (M,) unsigned squared, inside (M,) bool)``.
    Used under ``no_grad`` for the selection and with grad for the selected slots.
    """
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = fv.unbind(0)
    area = _edge(x2, y2, x0, y0, x1, y1) + K_EPS
    w0 = _edge(px, py, x1, y1, x2, y2) / area
    w1 = _edge(px, py, x2, y2, x0, y0) / area
    w2 = _edge(px, py, x0, y0, x1, y1) / area
    if perspective_correct:
        t0 = w0 * z1 * z2
        t1 = z0 * w1 * z2
        t2 = z0 * z1 * w2
        denom = (t0 + t1 + t2).clamp_min(K_EPS)
        w0, w1, w2 = t0 / denom, t1 / denom, t2 / denom
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
    if clip_barycentric_coords:
        w0, w1, w2 = w0.clamp_min(0.0), w1.clamp_min(0.0), w2.clamp_min(0.0)
        s = (w0 + w1 + w2).clamp_min(1e-5)
        w0, w1, w2 = w0 / s, w1 / s, w2 / s
    pz = w0 * z0 + w1 * z1 + w2 * z2
    dist = torch.minimum(torch.minimum(_seg_dist2(px, py, x0, y0, x1, y1), _seg_dist2(px, py, x1, y1, x2, y2)),
                         _seg_dist2(px, py, x2, y2, x0, y0))
    return torch.stack([w0, w1, w2], -1), pz, dist, inside


def _coverage(fv: torch.Tensor, px: torch.Tensor, py: torch.Tensor, blur_radius: float,
              perspective_correct: bool, clip_barycentric_coords: bool):
    """Selection pass (no grad): which pairs pytorch3d keeps, and their depth ``pz``.

    Evaluates the cheap 2D edge functions for all pairs, drops pairs that are outside and farther
    than ``sqrt(blur_radius)`` from some edge line (their distance to the triangle is at least that),
    and runs the full :func:`pair_terms` on the survivors only. Returns ``(kept pair indices (K,), pz (K,))``.
    """
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = fv.unbind(0)
    e0 = _edge(px, py, x1, y1, x2, y2)
    e1 = _edge(px, py, x2, y2, x0, y0)
    e2 = _edge(px, py, x0, y0, x1, y1)
    area = _edge(x2, y2, x0, y0, x1, y1) + K_EPS
    if blur_radius <= 0:
        # inside <=> all 2D barycentrics > 0 (perspective correction keeps signs since z > 0)
        cand = (e0 / area > 0) & (e1 / area > 0) & (e2 / area > 0)
    else:
        r = math.sqrt(blur_radius)
        sgn = torch.sign(area)
        l0 = torch.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
        l1 = torch.sqrt((x0 - x2) ** 2 + (y0 - y2) ** 2)
        l2 = torch.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2)
        cand = (e0 * sgn > -r * l0 - 1e-6) & (e1 * sgn > -r * l1 - 1e-6) & (e2 * sgn > -r * l2 - 1e-6)
    idx = torch.nonzero(cand).flatten()
    _, pz, dist, inside = pair_terms(fv.index_select(1, idx), px.index_select(0, idx), py.index_select(0, idx),
                                     perspective_correct, clip_barycentric_coords)
    ok = torch.nonzero((inside | (dist < blur_radius)) & (pz >= 0)).flatten()
    return idx.index_select(0, ok), pz.index_select(0, ok)


def _face_setup(fv: torch.Tensor, H: int, W: int, blur_radius: float, cull_backfaces: bool, z_min: float):
    """Per-face validity and inclusive pixel ranges ``(x_lo, x_hi, y_lo, y_hi)`` of the expanded bbox."""
    x = fv[:, 0::3]
    y = fv[:, 1::3]
    z = fv[:, 2::3]
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    valid = (z.min(dim=1).values >= z_min) & (area.abs() > K_EPS) & torch.isfinite(fv).all(dim=1)
    if cull_backfaces:
        valid &= area >= 0
    s = min(H, W) / 2.0
    margin = math.sqrt(max(blur_radius, 0.0)) * s + 1e-3
    u_lo = W / 2.0 - s * x.max(dim=1).values
    u_hi = W / 2.0 - s * x.min(dim=1).values
    v_lo = H / 2.0 - s * y.max(dim=1).values
    v_hi = H / 2.0 - s * y.min(dim=1).values
    big = float(4 * max(H, W) + 8)
    xlo = torch.ceil((u_lo - margin - 0.5).clamp(-big, big)).clamp_min(0).long()
    xhi = torch.floor((u_hi + margin - 0.5).clamp(-big, big)).clamp_max(W - 1).long()
    ylo = torch.ceil((v_lo - margin - 0.5).clamp(-big, big)).clamp_min(0).long()
    yhi = torch.floor((v_hi + margin - 0.5).clamp(-big, big)).clamp_max(H - 1).long()
    w = (xhi - xlo + 1).clamp_min(0)
    h = (yhi - ylo + 1).clamp_min(0)
    counts = torch.where(valid, w * h, torch.zeros_like(w))
    return counts, xlo, ylo, w


def _select_topk(pix: torch.Tensor, z: torch.Tensor, face: torch.Tensor, K: int):
    """Keep, per pixel, the K pairs with smallest z (ties: smaller face index = earlier pair)."""
    if pix.numel() == 0:
        return pix, z, face, torch.zeros_like(pix)
    if K == 1:
        n_pix = int(pix.max()) + 1
        zmin = torch.full((n_pix,), math.inf, dtype=z.dtype, device=z.device)
        zmin.scatter_reduce_(0, pix, z, reduce="amin")
        cand = torch.nonzero(z <= zmin.index_select(0, pix)).flatten()
        pix_c, face_c, z_c = pix.index_select(0, cand), face.index_select(0, cand), z.index_select(0, cand)
        big = torch.iinfo(torch.int64).max
        fmin = torch.full((n_pix,), big, dtype=torch.int64, device=z.device)
        fmin.scatter_reduce_(0, pix_c, face_c, reduce="amin")
        keep = torch.nonzero(face_c == fmin.index_select(0, pix_c)).flatten()
        pix_k = pix_c.index_select(0, keep)
        return pix_k, z_c.index_select(0, keep), face_c.index_select(0, keep), torch.zeros_like(pix_k)
    zd = z.double()
    lo, hi = zd.min(), zd.max()
    key = pix.double() + 0.5 * (zd - lo) / (hi - lo + 1e-30)
    order = torch.sort(key, stable=True).indices
    pix_s = pix.index_select(0, order)
    idx = torch.arange(pix_s.numel(), device=pix.device)
    start = torch.ones_like(pix_s, dtype=torch.bool)
    start[1:] = pix_s[1:] != pix_s[:-1]
    first = torch.cummax(torch.where(start, idx, torch.zeros_like(idx)), 0).values
    rank = idx - first
    keep = torch.nonzero(rank < K).flatten()
    order = order.index_select(0, keep)
    return pix_s.index_select(0, keep), z.index_select(0, order), face.index_select(0, order), rank.index_select(0, keep)


def rasterize_packed(verts_ndc: torch.Tensor, faces: torch.Tensor, face_to_mesh: torch.Tensor, N: int,
                     image_size: Tuple[int, int], blur_radius: float = 0.0, faces_per_pixel: int = 1,
                     perspective_correct: bool = False, clip_barycentric_coords: bool = False,
                     cull_backfaces: bool = False, z_clip_value: Optional[float] = None,
                     max_pairs: int = DEFAULT_MAX_PAIRS) -> Fragments:
    """Rasterize packed meshes whose vertices are already in NDC (x, y) with view-space z.

    Args:
        verts_ndc: ``(V, 3)`` packed vertices (differentiable).
        faces: ``(F, 3)`` packed int64 faces; ``face_to_mesh (F,)`` the mesh of each face; N meshes.
        image_size: ``(H, W)``; remaining arguments as in ``RasterizationSettings``.
    Returns:
        :class:`Fragments` with ``(N, H, W, K)`` fields, ``pix_to_face`` indexing the packed faces.
    """
    H, W = int(image_size[0]), int(image_size[1])
    K = int(faces_per_pixel)
    dev, dt = verts_ndc.device, verts_ndc.dtype
    z_min = K_EPS if z_clip_value is None else max(float(z_clip_value), K_EPS)
    xs, ys = pixel_centers_ndc((H, W), device=dev, dtype=dt)
    F = faces.shape[0]
    HW = H * W
    kept_pix: List[torch.Tensor] = []
    kept_z: List[torch.Tensor] = []
    kept_face: List[torch.Tensor] = []
    with torch.no_grad():
        fv_all = verts_ndc.detach()[faces].reshape(F, 9) if F else verts_ndc.new_zeros(0, 9)
        counts, xlo, ylo, wid = _face_setup(fv_all, H, W, blur_radius, cull_backfaces, z_min)
        fv_t = fv_all.t().contiguous()  # (9, F)
        face_ids = torch.nonzero(counts > 0).flatten()
        n_kept = 0
        if face_ids.numel():
            c = counts.index_select(0, face_ids)
            csum = torch.cumsum(c, 0)
            # chunk boundaries so that each chunk holds at most max_pairs pairs (>= one face)
            bounds = [0]
            total = int(csum[-1])
            if total <= max_pairs:
                bounds.append(face_ids.numel())
            else:
                marks = torch.searchsorted(csum, torch.arange(max_pairs, total + max_pairs, max_pairs,
                                                              device=dev), right=True)
                for m in marks.tolist():
                    m = max(m, bounds[-1] + 1)
                    if m >= face_ids.numel():
                        break
                    bounds.append(m)
                if bounds[-1] != face_ids.numel():
                    bounds.append(face_ids.numel())
            cstart = torch.cumsum(c, 0) - c
            info_all = torch.stack([face_ids, xlo.index_select(0, face_ids), ylo.index_select(0, face_ids),
                                    wid.index_select(0, face_ids), cstart,
                                    face_to_mesh.index_select(0, face_ids) * HW])  # (6, F_valid)
            for a, b in zip(bounds[:-1], bounds[1:]):
                cc = c[a:b]
                P = int(cc.sum())
                info = info_all[:, a:b]
                pf = torch.repeat_interleave(torch.arange(b - a, device=dev), cc, output_size=P)
                f, x0, y0, w, st, moff = info.index_select(1, pf).unbind(0)
                local = torch.arange(P, device=dev) - (st - info[4, 0])
                q = torch.div(local, w, rounding_mode="floor")
                xi = x0 + (local - q * w)
                yi = y0 + q
                sel, pz = _coverage(fv_t.index_select(1, f), xs.index_select(0, xi), ys.index_select(0, yi),
                                    blur_radius, perspective_correct, clip_barycentric_coords)
                f = f.index_select(0, sel)
                pix = (moff + yi * W + xi).index_select(0, sel)
                kept_pix.append(pix)
                kept_z.append(pz)
                kept_face.append(f)
                n_kept += pix.numel()
                if n_kept > max_pairs and len(kept_pix) > 1:  # bound memory: reduce to top-K so far
                    p_, z_, f_, _ = _select_topk(torch.cat(kept_pix), torch.cat(kept_z), torch.cat(kept_face), K)
                    kept_pix, kept_z, kept_face = [p_], [z_], [f_]
                    n_kept = p_.numel()
        if kept_pix:
            pix, zsel, fsel, rank = _select_topk(torch.cat(kept_pix), torch.cat(kept_z), torch.cat(kept_face), K)
        else:
            pix = torch.zeros(0, dtype=torch.int64, device=dev)
            fsel, rank = pix, pix
        slot = pix * K + rank
        pix_to_face = torch.full((N * HW * K,), -1, dtype=torch.int64, device=dev).index_copy_(0, slot, fsel)
    # differentiable recomputation for the selected slots
    within = pix % HW
    yi = torch.div(within, W, rounding_mode="floor")
    xi = within % W
    fv = verts_ndc.index_select(0, faces.index_select(0, fsel).reshape(-1)).reshape(-1, 9).t().contiguous()
    bary, pz, dist, inside = pair_terms(fv, xs.index_select(0, xi), ys.index_select(0, yi), perspective_correct,
                                        clip_barycentric_coords)
    sdist = torch.where(inside, -dist, dist)
    neg = verts_ndc.new_full((N * HW * K,), -1.0)
    zbuf = neg.index_copy(0, slot, pz)
    dists = neg.index_copy(0, slot, sdist)
    bary_out = verts_ndc.new_full((N * HW * K, 3), -1.0).index_copy(0, slot, bary)
    return Fragments(pix_to_face.view(N, H, W, K), zbuf.view(N, H, W, K), bary_out.view(N, H, W, K, 3),
                     dists.view(N, H, W, K))
