"""Compiled CPU kernels (numba) for the torch backend: the same rasterization, faster on CPU.

The vectorised torch code of :mod:`~workbench.render.rasterize_torch` is the reference and the
CUDA path. On CPU its cost is dominated by memory traffic: every elementwise step over the
(pixel, face) candidate pairs reads and writes whole arrays. These kernels do the same work one
pair at a time in registers:

* :func:`rasterize_packed_cpu` replaces the no-grad selection (face boxes -> exact test -> K nearest
  per pixel -> packed slots) and returns bit-identical ``pix, rank, face, inside``: the exact test
  uses the same float32 formulas in the same order (:func:`_bary_inside_tab`, :func:`_tri_dist2`) and
  the K nearest are kept by the same ``(depth field, face)`` order as the torch path's keys.
* :class:`PairTermsCPUFn` replaces :class:`~workbench.render.rasterize_torch._PairTermsFn`: the
  differentiable barycentrics, depth and signed distance of selected slots and their analytic
  backward (the torch function's formulas, so equal up to rounding).

They are used for float32 tensors on CPU when numba is importable, unless ``WB_RENDER_KERNELS=torch``
(or :func:`set_cpu_kernels("torch")`) selects the pure torch path. Kernels compile on first use and
are cached on disk by numba (``cache=True``). They are serial: one thread, no threading layer (so
they are safe in forked workers); torch's threads still run the shading around them.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch

__all__ = ["available", "use_cpu_kernels", "set_cpu_kernels", "rasterize_packed_cpu", "PairTermsCPUFn"]

try:  # numba is a dependency, but keep the renderer importable without it
    import numba
    from numba import njit
except Exception:  # pragma: no cover - exercised only where numba is missing
    numba = None

_MODE = {"kernels": os.environ.get("WB_RENDER_KERNELS", "auto").lower()}


def available() -> bool:
    """Whether numba is importable (the compiled CPU kernels can run)."""
    return numba is not None


def set_cpu_kernels(mode: str) -> None:
    """``"auto"`` (compiled kernels for float32 CPU tensors when numba is importable) or ``"torch"``."""
    if mode not in ("auto", "torch"):
        raise ValueError(f"set_cpu_kernels: mode must be 'auto' or 'torch', got {mode!r}")
    _MODE["kernels"] = mode


def use_cpu_kernels(t: torch.Tensor) -> bool:
    """Whether tensors like ``t`` go through the compiled kernels."""
    if _MODE["kernels"] not in ("auto", "torch"):
        raise ValueError(f"WB_RENDER_KERNELS must be 'auto' or 'torch', got {_MODE['kernels']!r}")
    return numba is not None and _MODE["kernels"] == "auto" and t.device.type == "cpu" and t.dtype == torch.float32


if numba is not None:
    _F0 = np.float32(0.0)
    _F1 = np.float32(1.0)
    _EPS = np.float32(1e-8)
    _CLIP_EPS = np.float32(1e-5)

    @njit(cache=True, error_model="numpy", nogil=True, inline="always")
    def _seg_grad(px, py, ax, ay, bx, by):
        """``(d, t, qx - px, qy - py)`` of rasterize_torch._seg_terms for one pair."""
        ex = bx - ax
        ey = by - ay
        l2 = ex * ex + ey * ey
        if not (l2 > _EPS):
            return (px - bx) * (px - bx) + (py - by) * (py - by), _F1, bx - px, by - py
        t = ((px - ax) * ex + (py - ay) * ey) / l2
        t = min(max(t, _F0), _F1)
        dx = ax + t * ex - px
        dy = ay + t * ey - py
        return dx * dx + dy * dy, t, dx, dy

    @njit(cache=True, error_model="numpy", nogil=True, inline="always")
    def _seg_d2(px, py, ax, ay, bx, by):
        """rasterize_torch._seg_dist2 for one pair, same float32 operations."""
        return _seg_grad(px, py, ax, ay, bx, by)[0]

    @njit(cache=True, error_model="numpy", nogil=True)
    def _raster_kernel(tab, fv, lines, thr, valid, box, face_start, b0, m0, m1, xs, ys, K, blur, use_blur, persp,
                       clip, shift, until_opaque, keys, ins, cnt, lim):
        """Per-pixel K nearest slots of meshes ``m0 .. m1 - 1`` (pixel rows counted from mesh ``b0``).

        ``tab (16, F)`` edge table, ``fv (F, 9)`` face vertices, ``box (4, F)`` pixel boxes, ``lines (9, F)``
        float32 edge lines in pixels (a conservative pre-test: pixels more than ``-thr`` pixels outside an
        edge line cannot be within the blur radius). Writes ``keys (P, K)`` int64
        ``(depth field << 31) | face`` sorted ascending, ``ins (P, K)`` and ``cnt (P,)`` for the chunk's
        ``P = (m1 - b0) H W`` pixels; ``lim (P,)`` is the depth field of the nearest slot inside its face
        (with ``until_opaque``, candidates behind it are never inserted).
        """
        zbuf = np.zeros(1, np.float32)
        H = ys.shape[0]
        W = xs.shape[0]
        HW = H * W
        zi = zbuf.view(np.int32)
        for n in range(m0, m1):
            base = (n - b0) * HW
            for f in range(face_start[n], face_start[n + 1]):
                if not valid[f]:
                    continue
                a0x, a0y, d0y, d0x = tab[0, f], tab[1, f], tab[2, f], tab[3, f]
                a1x, a1y, d1y, d1x = tab[4, f], tab[5, f], tab[6, f], tab[7, f]
                a2x, a2y, d2y, d2x = tab[8, f], tab[9, f], tab[10, f], tab[11, f]
                area, z0, z1, z2 = tab[12, f], tab[13, f], tab[14, f], tab[15, f]
                sgn = _F1 if area > 0 else (-_F1 if area < 0 else _F0)
                x0, y0, x1, y1, x2, y2 = fv[f, 0], fv[f, 1], fv[f, 3], fv[f, 4], fv[f, 6], fv[f, 7]
                la0, lb0, lc0 = lines[0, f], lines[1, f], lines[2, f]
                la1, lb1, lc1 = lines[3, f], lines[4, f], lines[5, f]
                la2, lb2, lc2 = lines[6, f], lines[7, f], lines[8, f]
                for yi in range(box[1, f], box[1, f] + box[3, f]):
                    py = ys[yi]
                    v = np.float32(yi) + np.float32(0.5)
                    for xi in range(box[0, f], box[0, f] + box[2, f]):
                        u = np.float32(xi) + np.float32(0.5)
                        if (la0 * u + lb0 * v + lc0 <= thr or la1 * u + lb1 * v + lc1 <= thr
                                or la2 * u + lb2 * v + lc2 <= thr):
                            continue
                        px = xs[xi]
                        w0 = ((px - a0x) * d0y - (py - a0y) * d0x) / area
                        w1 = ((px - a1x) * d1y - (py - a1y) * d1x) / area
                        w2 = ((px - a2x) * d2y - (py - a2y) * d2x) / area
                        if persp:
                            t0 = w0 * z1 * z2
                            t1 = z0 * w1 * z2
                            t2 = z0 * z1 * w2
                            den = max(t0 + t1 + t2, _EPS)
                            w0, w1, w2 = t0 / den, t1 / den, t2 / den
                        wmin = min(min(w0, w1), w2)
                        inside = wmin > 0
                        if wmin == 0:  # top-left rule on the owning edge
                            ok = True
                            for k in range(3):
                                wk = w0 if k == 0 else (w1 if k == 1 else w2)
                                nx = sgn * tab[4 * k + 2, f]
                                ny = -sgn * tab[4 * k + 3, f]
                                ok = ok and ((wk > 0) or ((wk == 0) and ((nx < 0) or ((nx == 0) and (ny < 0)))))
                            inside = ok
                        if clip:
                            c0, c1, c2 = max(w0, _F0), max(w1, _F0), max(w2, _F0)
                            s = max(c0 + c1 + c2, _CLIP_EPS)
                            w0, w1, w2 = c0 / s, c1 / s, c2 / s
                        pz = w0 * z0 + w1 * z1 + w2 * z2
                        if not (pz >= 0) or not (inside or use_blur):
                            continue
                        zbuf[0] = max(pz, _F0) + _F0
                        field = np.int64(zi[0]) >> shift
                        p = base + yi * W + xi
                        if until_opaque and field > lim[p]:
                            continue  # behind a face covering the pixel centre: never visible
                        if not inside:
                            d = min(min(_seg_d2(px, py, x0, y0, x1, y1), _seg_d2(px, py, x1, y1, x2, y2)),
                                    _seg_d2(px, py, x2, y2, x0, y0))
                            if not (d < blur):
                                continue
                        elif until_opaque and field < lim[p]:
                            lim[p] = field
                        key = (field << 31) | np.int64(f)
                        c = cnt[p]
                        if c == K:
                            if key >= keys[p, K - 1]:
                                continue
                            j = K - 1
                        else:
                            j = c
                            cnt[p] = c + 1
                        while j > 0 and keys[p, j - 1] > key:  # insertion into the sorted slots
                            keys[p, j] = keys[p, j - 1]
                            ins[p, j] = ins[p, j - 1]
                            j -= 1
                        keys[p, j] = key
                        ins[p, j] = inside

    @njit(cache=True, error_model="numpy", nogil=True)
    def _n_visible(keys, ins, cnt, until_opaque, p0, p1, out):
        """Slots kept per pixel: all, or (until_opaque) those whose depth field is <= that of the nearest
        slot inside its face (the torch path's ``_prune_behind_opaque`` then top K)."""
        for p in range(p0, p1):
            c = cnt[p]
            if until_opaque:
                for j in range(c):
                    if ins[p, j]:
                        lim = keys[p, j] >> 31
                        m = j + 1
                        while m < c and (keys[p, m] >> 31) == lim:
                            m += 1
                        c = m
                        break
            out[p] = c

    @njit(cache=True, error_model="numpy", nogil=True)
    def _compact(keys, ins, nvis, offs, pix0, p0, p1, pix, rank, face, inside):
        mask = (np.int64(1) << 31) - 1
        for p in range(p0, p1):
            o = offs[p]
            for j in range(nvis[p]):
                pix[o + j] = pix0 + p
                rank[o + j] = j
                face[o + j] = keys[p, j] & mask
                inside[o + j] = ins[p, j]

    @njit(cache=True, error_model="numpy", nogil=True, inline="always")
    def _pair_bary(x0, y0, z0, x1, y1, z1, x2, y2, z2, p, q, persp, clip):
        """Barycentrics of pixel centre ``(p, q)`` in a face, as rasterize_torch._PairTermsFn.forward:
        ``(area, raw w (3), perspective-corrected w (3), their raw sum, clipped sum, final w (3))``."""
        area = (x2 - x0) * (y1 - y0) - (y2 - y0) * (x1 - x0) + _EPS
        wr0 = ((p - x1) * (y2 - y1) - (q - y1) * (x2 - x1)) / area
        wr1 = ((p - x2) * (y0 - y2) - (q - y2) * (x0 - x2)) / area
        wr2 = ((p - x0) * (y1 - y0) - (q - y0) * (x1 - x0)) / area
        wp0, wp1, wp2 = wr0, wr1, wr2
        d_raw = area
        if persp:
            t0 = wr0 * z1 * z2
            t1 = z0 * wr1 * z2
            t2 = z0 * z1 * wr2
            d_raw = t0 + t1 + t2
            den = max(d_raw, _EPS)
            wp0, wp1, wp2 = t0 / den, t1 / den, t2 / den
        b0, b1, b2 = wp0, wp1, wp2
        s_raw = area
        if clip:
            c0, c1, c2 = max(wp0, _F0), max(wp1, _F0), max(wp2, _F0)
            s_raw = c0 + c1 + c2
            s_ = max(s_raw, _CLIP_EPS)
            b0, b1, b2 = c0 / s_, c1 / s_, c2 / s_
        return area, wr0, wr1, wr2, wp0, wp1, wp2, d_raw, s_raw, b0, b1, b2

    @njit(cache=True, error_model="numpy", nogil=True, inline="always")
    def _face_verts(verts, ia, ib, ic):
        """``x0, y0, z0, x1, y1, z1, x2, y2, z2`` of the face with vertex ids ``ia, ib, ic``."""
        return (verts[ia, 0], verts[ia, 1], verts[ia, 2], verts[ib, 0], verts[ib, 1], verts[ib, 2],
                verts[ic, 0], verts[ic, 1], verts[ic, 2])

    @njit(cache=True, error_model="numpy", nogil=True)
    def _terms_fwd(verts, corners, px, py, inside, persp, clip, i0, i1, bary, pz, sd):
        """PairTermsCPUFn forward, pair by pair (rasterize_torch._PairTermsFn.forward's formulas)."""
        for i in range(i0, i1):
            x0, y0, z0, x1, y1, z1, x2, y2, z2 = _face_verts(verts, corners[i, 0], corners[i, 1], corners[i, 2])
            p, q = px[i], py[i]
            w0, w1, w2 = _pair_bary(x0, y0, z0, x1, y1, z1, x2, y2, z2, p, q, persp, clip)[9:]
            bary[i, 0], bary[i, 1], bary[i, 2] = w0, w1, w2
            pz[i] = w0 * z0 + w1 * z1 + w2 * z2
            d = _seg_d2(p, q, x0, y0, x1, y1)
            d = min(_seg_d2(p, q, x1, y1, x2, y2), d)
            d = min(_seg_d2(p, q, x2, y2, x0, y0), d)
            sd[i] = -d if inside[i] else d

    @njit(cache=True, error_model="numpy", nogil=True)
    def _terms_bwd(verts, corners, px, py, inside, persp, clip, g_bary, g_pz, g_sd, has_b, has_z, has_d, i0, i1,
                   g_verts):
        """Analytic backward of PairTermsCPUFn for pairs ``i0 .. i1 - 1``, accumulated into ``g_verts (V, 3)``
        (float64); the formulas of rasterize_torch._PairTermsFn.backward, unrolled per vertex."""
        for i in range(i0, i1):
            ia, ib, ic = corners[i, 0], corners[i, 1], corners[i, 2]
            x0, y0, z0, x1, y1, z1, x2, y2, z2 = _face_verts(verts, ia, ib, ic)
            p, q = px[i], py[i]
            (area, wr0, wr1, wr2, wp0, wp1, wp2, d_raw, s_raw, b0, b1, b2) = _pair_bary(
                x0, y0, z0, x1, y1, z1, x2, y2, z2, p, q, persp, clip)
            gw0, gw1, gw2 = _F0, _F0, _F0
            if has_b:
                gw0, gw1, gw2 = g_bary[i, 0], g_bary[i, 1], g_bary[i, 2]
            gz0, gz1, gz2 = _F0, _F0, _F0
            if has_z:
                gp = g_pz[i]
                gw0, gw1, gw2 = gw0 + gp * z0, gw1 + gp * z1, gw2 + gp * z2
                gz0, gz1, gz2 = gp * b0, gp * b1, gp * b2
            if clip:
                s_ = max(s_raw, _CLIP_EPS)
                dot = (gw0 * b0 + gw1 * b1 + gw2 * b2) if s_raw >= _CLIP_EPS else _F0
                gw0 = (gw0 - dot) / s_ if wp0 >= 0 else _F0
                gw1 = (gw1 - dot) / s_ if wp1 >= 0 else _F0
                gw2 = (gw2 - dot) / s_ if wp2 >= 0 else _F0
            if persp:
                D = max(d_raw, _EPS)
                dot = (gw0 * wp0 + gw1 * wp1 + gw2 * wp2) if d_raw >= _EPS else _F0
                gt0, gt1, gt2 = (gw0 - dot) / D, (gw1 - dot) / D, (gw2 - dot) / D
                gw0, gw1, gw2 = gt0 * z1 * z2, gt1 * z0 * z2, gt2 * z0 * z1
                gz0 += gt1 * wr1 * z2 + gt2 * z1 * wr2
                gz1 += gt0 * wr0 * z2 + gt2 * z0 * wr2
                gz2 += gt0 * wr0 * z1 + gt1 * z0 * wr1
            gE0, gE1, gE2 = gw0 / area, gw1 / area, gw2 / area
            gA = -(gw0 * wr0 + gw1 * wr1 + gw2 * wr2) / area
            # area = edge(v2; v0, v1); E_0 = edge(p; v1, v2), E_1 = edge(p; v2, v0), E_2 = edge(p; v0, v1)
            gx0 = gA * (y2 - y1) - gE1 * (q - y2) + gE2 * (q - y1)
            gy0 = gA * (x1 - x2) + gE1 * (p - x2) + gE2 * (x1 - p)
            gx1 = -gA * (y2 - y0) + gE0 * (q - y2) - gE2 * (q - y0)
            gy1 = gA * (x2 - x0) + gE0 * (x2 - p) + gE2 * (p - x0)
            gx2 = gA * (y1 - y0) - gE0 * (q - y1) + gE1 * (q - y0)
            gy2 = -gA * (x1 - x0) + gE0 * (p - x1) + gE1 * (x0 - p)
            if has_d:
                d0, t0_, dx0, dy0 = _seg_grad(p, q, x0, y0, x1, y1)
                d1, t1_, dx1, dy1 = _seg_grad(p, q, x1, y1, x2, y2)
                d2, t2_, dx2, dy2 = _seg_grad(p, q, x2, y2, x0, y0)
                gd = np.float32(2.0) * (-g_sd[i] if inside[i] else g_sd[i])
                # the closest segment s joins v_s (weight 1 - t) and v_{s+1} (weight t)
                d01 = d1 if d1 < d0 else d0
                if d2 < d01:
                    sel, t, dx, dy = 2, t2_, dx2, dy2
                elif d1 < d0:
                    sel, t, dx, dy = 1, t1_, dx1, dy1
                else:
                    sel, t, dx, dy = 0, t0_, dx0, dy0
                gqx, gqy = gd * dx, gd * dy
                c0 = (_F1 - t) if sel == 0 else (t if sel == 2 else _F0)
                c1 = (_F1 - t) if sel == 1 else (t if sel == 0 else _F0)
                c2 = (_F1 - t) if sel == 2 else (t if sel == 1 else _F0)
                gx0 += c0 * gqx
                gy0 += c0 * gqy
                gx1 += c1 * gqx
                gy1 += c1 * gqy
                gx2 += c2 * gqx
                gy2 += c2 * gqy
            g_verts[ia, 0] += gx0
            g_verts[ia, 1] += gy0
            g_verts[ia, 2] += gz0
            g_verts[ib, 0] += gx1
            g_verts[ib, 1] += gy1
            g_verts[ib, 2] += gz1
            g_verts[ic, 0] += gx2
            g_verts[ic, 1] += gy2
            g_verts[ic, 2] += gz2


if numba is not None:
    @njit(cache=True, error_model="numpy", nogil=True)
    def _layered_fwd(pix, d, colors, inv_sigma, hard, s0, s1, rgb, tfin, trans, occ, one_minus):
        """Front-to-back compositing of slots ``s0 .. s1 - 1`` (sorted by pixel, then rank; a range never
        splits a pixel's run). Writes ``rgb (P, C)`` (foreground sum), ``tfin (P,)`` (transmittance
        left for the background) of those pixels, and per slot ``trans (M,)`` (transmittance in front of
        it), ``occ (M,)`` and ``one_minus = 1 - occ`` (one exponential per slot: ``expm1`` near 1)."""
        C = colors.shape[1]
        i = s0
        while i < s1:
            p = pix[i]
            T = 1.0
            for c in range(C):
                rgb[p, c] = 0.0
            while i < s1 and pix[i] == p:
                if hard:
                    o, om = (1.0, 0.0) if d[i] <= 0 else (0.0, 1.0)
                else:
                    x = max(np.float64(d[i]), 0.0) * inv_sigma
                    if x < 0.5:
                        e = math.expm1(-x)
                        o, om = 1.0 + e, -e
                    else:
                        o = math.exp(-x)
                        om = 1.0 - o
                trans[i] = T
                occ[i] = o
                one_minus[i] = om
                w = o * T
                for c in range(C):
                    rgb[p, c] += w * colors[i, c]
                T = T * om
                i += 1
            tfin[p] = T

    @njit(cache=True, error_model="numpy", nogil=True)
    def _layered_bwd(pix, d, colors, inv_sigma, hard, trans, occ, one_minus, g_rgb, g_t, s0, s1, g_d, g_colors):
        """Reverse scan of :func:`_layered_fwd`: ``g_d (M,)`` and ``g_colors (M, C)`` for slots ``s0 .. s1 - 1``.

        With ``S`` the gradient of everything behind slot k (later slots and the background) per unit
        transmittance behind it: ``dL/do_k = T_k (<c_k, g> - S)``, then ``S <- o_k <c_k, g> + (1 - o_k) S``."""
        C = colors.shape[1]
        i = s1 - 1
        while i >= s0:
            p = pix[i]
            S = np.float64(g_t[p])
            while i >= s0 and pix[i] == p:
                cg = 0.0
                for c in range(C):
                    cg += np.float64(colors[i, c]) * g_rgb[p, c]
                T = trans[i]
                o, om = occ[i], one_minus[i]
                g_d[i] = T * (cg - S) * (-o * inv_sigma) if (not hard and d[i] >= 0) else 0.0
                w = o * T
                for c in range(C):
                    g_colors[i, c] = w * g_rgb[p, c]
                S = o * cg + om * S
                i -= 1

    @njit(cache=True, error_model="numpy", nogil=True)
    def _interp_fwd(faces, face, bary, feats, i0, i1, out):
        """``out[i] = sum_k bary[i, k] feats[faces[face[i], k]]`` for slots ``i0 .. i1 - 1``."""
        C = feats.shape[1]
        for i in range(i0, i1):
            a, b, c_ = faces[face[i], 0], faces[face[i], 1], faces[face[i], 2]
            w0, w1, w2 = bary[i, 0], bary[i, 1], bary[i, 2]
            for c in range(C):
                out[i, c] = w0 * feats[a, c] + w1 * feats[b, c] + w2 * feats[c_, c]

    @njit(cache=True, error_model="numpy", nogil=True)
    def _interp_bwd(faces, face, bary, feats, g_out, i0, i1, g_bary, g_feats):
        C = feats.shape[1]
        for i in range(i0, i1):
            for k in range(3):
                v = faces[face[i], k]
                w = bary[i, k]
                acc = np.float32(0.0)
                for c in range(C):
                    acc += g_out[i, c] * feats[v, c]
                    g_feats[v, c] += w * g_out[i, c]
                g_bary[i, k] = acc


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


_POOL: dict = {"ex": None, "n": 0}


def _reset_pool() -> None:  # a forked child inherits the executor object but not its threads
    _POOL["ex"], _POOL["n"] = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def _threads() -> int:
    """Threads for the kernels: torch's intra-op thread count (1 in data-loader workers)."""
    return max(1, torch.get_num_threads())


def _split(lo: int, hi: int, n: int):
    """``n`` contiguous ranges covering ``[lo, hi)`` (fewer when there are fewer items)."""
    n = max(1, min(n, hi - lo))
    cuts = [lo + (hi - lo) * k // n for k in range(n + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(n)]


def _parallel(fn, jobs) -> None:
    """Run ``fn(*args)`` for each args tuple in ``jobs``: the first on this thread, the rest on a pool.

    The kernels release the GIL (``nogil=True``) and write disjoint outputs, so the jobs run in parallel."""
    if len(jobs) == 1:
        fn(*jobs[0])
        return
    if _POOL["ex"] is None or _POOL["n"] < len(jobs) - 1:
        if _POOL["ex"] is not None:
            _POOL["ex"].shutdown(wait=False)
        _POOL["ex"], _POOL["n"] = ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="wb-render"), len(jobs) - 1
    futures = [_POOL["ex"].submit(fn, *args) for args in jobs[1:]]
    fn(*jobs[0])
    for fut in futures:
        fut.result()


def rasterize_packed_cpu(tab: torch.Tensor, fv: torch.Tensor, lines: torch.Tensor, r_px: float, valid: torch.Tensor,
                         box: torch.Tensor, face_to_mesh: torch.Tensor, N: int, xs: torch.Tensor, ys: torch.Tensor,
                         K: int, blur_radius: float, perspective_correct: bool, clip_barycentric_coords: bool,
                         z_shift: int, until_opaque: bool, max_slots: int = 1 << 24):
    """No-grad selection of :func:`~workbench.render.rasterize_torch.rasterize_packed` on CPU.

    ``tab (16, F)`` from ``_edge_table``, ``fv (F, 9)`` face vertices (NDC x, y, view z); ``lines (9, F)``,
    ``valid (F,)`` and ``box (4, F)`` from ``_face_setup``; ``r_px`` the blur radius in pixels;
    ``face_to_mesh (F,)`` sorted (packed meshes); ``xs (W,)``, ``ys (H,)`` pixel centres. Slots are
    ordered by the float32 bits of ``max(pz, 0)`` shifted right by ``z_shift``, then face index. Meshes
    are processed in chunks of at most ``max_slots`` dense ``(pixel, K)`` slots, each chunk split over
    :func:`_threads` threads by mesh. Returns ``(pix, rank, face, inside)`` sorted by (pixel, rank),
    as the torch path.
    """
    H, W = ys.numel(), xs.numel()
    HW = H * W
    F = tab.shape[1]
    counts = torch.bincount(face_to_mesh, minlength=N) if F else torch.zeros(N, dtype=torch.int64)
    face_start = np.zeros(N + 1, np.int64)
    face_start[1:] = np.cumsum(counts.numpy())
    tab_n, fv_n, valid_n, box_n = _np(tab), _np(fv), _np(valid), _np(box.to(torch.int64))
    lines_n = _np(lines.to(torch.float32))
    thr = np.float32(-(r_px + 2e-3))  # the torch path's candidate test uses 1e-3: a wider margin, same result
    xs_n, ys_n = _np(xs), _np(ys)
    blur = np.float32(blur_radius)
    chunk = max(1, max_slots // max(1, HW * K))
    T = _threads()
    outs = []
    for b0 in range(0, N, chunk):
        b1 = min(N, b0 + chunk)
        P = (b1 - b0) * HW
        keys = np.empty((P, K), np.int64)
        ins = np.empty((P, K), np.bool_)
        cnt = np.zeros(P, np.int64)
        lim = np.full(P, np.iinfo(np.int64).max, np.int64)
        _parallel(_raster_kernel, [(tab_n, fv_n, lines_n, thr, valid_n, box_n, face_start, b0, m0, m1, xs_n, ys_n, K,
                                    blur, blur_radius > 0, perspective_correct, clip_barycentric_coords, z_shift,
                                    until_opaque, keys, ins, cnt, lim) for m0, m1 in _split(b0, b1, T)])
        nvis = np.empty(P, np.int64)
        ranges = _split(0, P, T)
        _parallel(_n_visible, [(keys, ins, cnt, until_opaque, p0, p1, nvis) for p0, p1 in ranges])
        offs = np.zeros(P, np.int64)
        np.cumsum(nvis[:-1], out=offs[1:])
        M = int(offs[-1] + nvis[-1]) if P else 0
        pix, rank, face = np.empty(M, np.int64), np.empty(M, np.int64), np.empty(M, np.int64)
        inside = np.empty(M, np.bool_)
        _parallel(_compact, [(keys, ins, nvis, offs, b0 * HW, p0, p1, pix, rank, face, inside) for p0, p1 in ranges])
        outs.append((pix, rank, face, inside))
    if len(outs) == 1:
        return tuple(torch.from_numpy(a) for a in outs[0])
    return tuple(torch.from_numpy(np.concatenate(parts)) for parts in zip(*outs))


class PairTermsCPUFn(torch.autograd.Function):
    """:class:`~workbench.render.rasterize_torch._PairTermsFn` with compiled CPU kernels (float32).

    Forward: ``verts (V, 3)``, ``corners (M, 3)`` int64, ``px, py (M,)``, ``inside (M,)`` ->
    ``bary (M, 3)``, ``pz (M,)``, signed squared distance ``(M,)``. Backward: gradient w.r.t. ``verts``
    only, accumulated in float64 (one buffer per thread, summed) and returned as float32; nothing but
    the inputs is saved.
    """

    @staticmethod
    def forward(ctx, verts, corners, px, py, inside, perspective_correct: bool, clip: bool):
        M = corners.shape[0]
        bary = torch.empty(M, 3, dtype=verts.dtype)
        pz = torch.empty(M, dtype=verts.dtype)
        sd = torch.empty(M, dtype=verts.dtype)
        if M:
            args = (_np(verts), _np(corners), _np(px), _np(py), _np(inside), perspective_correct, clip)
            outs = (bary.numpy(), pz.numpy(), sd.numpy())
            _parallel(_terms_fwd, [args + (i0, i1) + outs for i0, i1 in _split(0, M, _threads())])
        ctx.flags = (perspective_correct, clip)
        ctx.save_for_backward(verts, corners, px, py, inside)
        return bary, pz, sd

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_bary, g_pz, g_sd):
        verts, corners, px, py, inside = ctx.saved_tensors
        M = corners.shape[0]
        ranges = _split(0, M, _threads()) if M else []
        bufs = [np.zeros((verts.shape[0], 3), np.float64) for _ in ranges]
        if M:
            args = (_np(verts), _np(corners), _np(px), _np(py), _np(inside), ctx.flags[0], ctx.flags[1],
                    _np(g_bary.float()) if g_bary is not None else np.zeros((1, 3), np.float32),
                    _np(g_pz.float()) if g_pz is not None else np.zeros(1, np.float32),
                    _np(g_sd.float()) if g_sd is not None else np.zeros(1, np.float32),
                    g_bary is not None, g_pz is not None, g_sd is not None)
            _parallel(_terms_bwd, [args + (i0, i1, buf) for (i0, i1), buf in zip(ranges, bufs)])
        g = sum(bufs[1:], bufs[0]) if bufs else np.zeros((verts.shape[0], 3), np.float64)
        return torch.from_numpy(g).to(verts.dtype), None, None, None, None, None, None


def _run_splits(pix: np.ndarray, n: int):
    """Up to ``n`` slot ranges of the pixel-sorted ``pix`` that never split a pixel's run."""
    M = pix.shape[0]
    cuts = [0]
    for k in range(1, n):
        c = max(cuts[-1], M * k // n)
        while 0 < c < M and pix[c] == pix[c - 1]:
            c += 1
        cuts.append(c)
    cuts.append(M)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class LayeredBlendCPUFn(torch.autograd.Function):
    """UNICORN's layered compositing of packed slots (float32 in, float64 inside), with its backward.

    Forward: ``pix (M,)`` sorted by pixel then rank, signed distances ``d (M,)``, ``colors (M, C)``,
    ``sigma`` and the number of pixels ``P`` -> ``rgb (P, C)`` (the composited foreground, without the
    background) and ``tfin (P,)``, the transmittance left for the background: ``occ = exp(-max(d, 0) / sigma)``
    (``d <= 0`` for ``sigma <= 0``), ``rgb = sum_k occ_k T_k c_k``, ``T_k = prod_{j<k} (1 - occ_j)``.
    Gradients reach ``d`` and ``colors``.
    """

    @staticmethod
    def forward(ctx, pix, d, colors, sigma: float, P: int):
        C = colors.shape[1]
        rgb = np.zeros((P, C), np.float64)
        tfin = np.ones(P, np.float64)
        M = pix.shape[0]
        trans, occ, one_minus = np.empty(M, np.float64), np.empty(M, np.float64), np.empty(M, np.float64)
        hard = sigma <= 0
        inv = 1.0 / sigma if not hard else 0.0
        pix_n, d_n, c_n = _np(pix), _np(d), _np(colors)
        if M:
            _parallel(_layered_fwd, [(pix_n, d_n, c_n, inv, hard, a, b, rgb, tfin, trans, occ, one_minus)
                                     for a, b in _run_splits(pix_n, _threads())])
        ctx.save_for_backward(pix, d, colors)
        ctx.scan, ctx.inv, ctx.hard = (trans, occ, one_minus), inv, hard
        return torch.from_numpy(rgb).to(colors.dtype), torch.from_numpy(tfin).to(colors.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_rgb, g_t):
        pix, d, colors = ctx.saved_tensors
        M, C = colors.shape
        P = g_rgb.shape[0] if g_rgb is not None else g_t.shape[0]
        g_rgb_n = _np(g_rgb.double()) if g_rgb is not None else np.zeros((P, C), np.float64)
        g_t_n = _np(g_t.double()) if g_t is not None else np.zeros(P, np.float64)
        g_d = np.zeros(M, np.float64)
        g_c = np.zeros((M, C), np.float64)
        pix_n = _np(pix)
        if M:
            _parallel(_layered_bwd, [(pix_n, _np(d), _np(colors), ctx.inv, ctx.hard) + ctx.scan + (g_rgb_n, g_t_n, a, b,
                                      g_d, g_c) for a, b in _run_splits(pix_n, _threads())])
        return None, torch.from_numpy(g_d).to(d.dtype), torch.from_numpy(g_c).to(colors.dtype), None, None


class InterpolateCPUFn(torch.autograd.Function):
    """``out[i] = sum_k bary[i, k] feats[faces[face[i], k]]`` for packed slots (float32), with its backward
    (gradients reach ``bary (M, 3)`` and ``feats (V, C)``; one ``feats`` gradient buffer per thread)."""

    @staticmethod
    def forward(ctx, faces, face, bary, feats):
        M, C = face.shape[0], feats.shape[1]
        out = torch.empty(M, C, dtype=feats.dtype)
        args = (_np(faces), _np(face), _np(bary), _np(feats))
        if M:
            _parallel(_interp_fwd, [args + (a, b, out.numpy()) for a, b in _split(0, M, _threads())])
        ctx.save_for_backward(faces, face, bary, feats)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        faces, face, bary, feats = ctx.saved_tensors
        M = face.shape[0]
        ranges = _split(0, M, _threads()) if M else []
        g_bary = np.zeros((M, 3), np.float32)
        bufs = [np.zeros(tuple(feats.shape), np.float32) for _ in ranges] or [np.zeros(tuple(feats.shape), np.float32)]
        args = (_np(faces), _np(face), _np(bary), _np(feats), _np(g_out.float()))
        if M:
            _parallel(_interp_bwd, [args + (a, b, g_bary, buf) for (a, b), buf in zip(ranges, bufs)])
        g_feats = sum(bufs[1:], bufs[0])
        return None, None, torch.from_numpy(g_bary), torch.from_numpy(g_feats)
