"""Brute-force reference rasterizer (every pixel x every face, float32 pytorch3d formulas).

Slow and memory hungry; only for small test scenes. Used to check the binned torch backend.
"""
from __future__ import annotations

import torch

from workbench.geometry.cameras import pixel_centers_ndc
from workbench.render.rasterize_torch import K_EPS, pair_terms


def reference_rasterize(verts_ndc, faces, face_to_mesh, N, image_size, blur_radius=0.0, K=1,
                        perspective_correct=False, clip=False, cull_backfaces=False, z_min=K_EPS):
    H, W = image_size
    xs, ys = pixel_centers_ndc((H, W), dtype=verts_ndc.dtype)
    F = faces.shape[0]
    fv = verts_ndc[faces]  # (F, 3, 3)
    x, y, z = fv[..., 0], fv[..., 1], fv[..., 2]
    area = (x[:, 0] - x[:, 1]) * (y[:, 2] - y[:, 1]) - (y[:, 0] - y[:, 1]) * (x[:, 2] - x[:, 1])
    valid = (z.min(1).values >= z_min) & (area.abs() > K_EPS)
    if cull_backfaces:
        valid &= area >= 0
    p2f = torch.full((N, H, W, K), -1, dtype=torch.int64)
    zbuf = torch.full((N, H, W, K), -1.0)
    bary = torch.full((N, H, W, K, 3), -1.0)
    dists = torch.full((N, H, W, K), -1.0)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    px, py = xx.reshape(-1), yy.reshape(-1)
    for n in range(N):
        fids = torch.nonzero((face_to_mesh == n) & valid).flatten()
        if fids.numel() == 0:
            continue
        P, M = px.numel(), fids.numel()
        cols = [fv[fids, c // 3, c % 3][None].expand(P, M).reshape(-1) for c in range(9)]
        b, pz, d, inside = pair_terms(cols, px[:, None].expand(P, M).reshape(-1),
                                      py[:, None].expand(P, M).reshape(-1), perspective_correct, clip)
        keep = (inside | (d < blur_radius)) & (pz >= 0)
        pz = torch.where(keep, pz, torch.full_like(pz, float("inf"))).view(P, M)
        # stable sort by depth: ties keep ascending face order
        order = torch.sort(pz, dim=1, stable=True).indices[:, :K]
        for k in range(min(K, M)):
            j = order[:, k]
            sel = torch.arange(P) * M + j
            ok = keep.view(-1)[sel]
            pix = torch.nonzero(ok).flatten()
            r, c = pix // W, pix % W
            p2f[n, r, c, k] = fids[j[pix]]
            zbuf[n, r, c, k] = pz.view(-1)[sel][pix]
            bary[n, r, c, k] = b[sel][pix]
            dists[n, r, c, k] = torch.where(inside, -d, d)[sel][pix]
    return p2f, zbuf, bary, dists
