"""Vertex-to-pixel correspondences of the training images (from the ground-truth pose).

For image ``b`` of class ``y`` every vertex ``k`` of the class cuboid is projected with the
ground-truth camera (``X_view = X @ R + T``; ``u = cx - f X/Z``, ``v = cy - f Y/Z`` in pixels).
Its feature is the feature-map cell the projection falls in (``stride`` input pixels per cell).
It is visible (``o_k = 1``) when it lies in front of the camera, inside the image, and is not
hidden by the mesh itself: the cuboid is rasterized (workbench renderer) and the vertex's depth is
compared with the z-buffer at its pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.errors import ShapeError
from ...geometry.cameras import pinhole_cameras, project_points_pinhole


@dataclass
class Correspondence:
    """Per-image vertex correspondences (padded to ``K`` slots).

    Attributes:
        uv: ``(B, K, 2)`` image coordinates in pixels (x right, y down).
        depth: ``(B, K)`` view-space depth.
        cell: ``(B, K)`` long flat feature-map index ``row * w + col`` (0 where out of bounds).
        visible: ``(B, K)`` bool ``o_k``.
        inside: ``(B, K)`` bool projection in front of the camera and inside the image (visible or not).
        fg_cells: ``(B, h * w)`` bool feature cells covered by the rendered cuboid.
    """

    uv: torch.Tensor
    depth: torch.Tensor
    cell: torch.Tensor
    visible: torch.Tensor
    inside: torch.Tensor
    fg_cells: torch.Tensor

    def exclusion(self, radius_px: float) -> torch.Tensor:
        """``(B, K, K)`` bool, True where two vertices project closer than ``radius_px``."""
        if radius_px <= 0:
            return torch.zeros(*self.visible.shape, self.visible.shape[1], dtype=torch.bool,
                               device=self.uv.device)
        d2 = torch.cdist(self.uv, self.uv).square()
        return d2 < radius_px * radius_px

    def index(self, i) -> "Correspondence":
        return Correspondence(self.uv[i], self.depth[i], self.cell[i], self.visible[i], self.inside[i],
                              self.fg_cells[i])


def rasterize(verts_list, faces_list, R, T, focal, principal, image_size, cull_backfaces: bool = False):
    """Rasterize one mesh per camera (``faces_per_pixel=1``, no blur) -> ``Fragments``.

    ``focal (N,)`` and ``principal (N, 2)`` in pixels of the ``image_size (H, W)`` grid.
    ``cull_backfaces`` skips faces turned away from the camera: the same nearest face at every
    pixel for closed convex meshes with outward faces (the category cuboids), at about half the cost.
    """
    from ...geometry.mesh import Meshes
    from ...render import MeshRasterizer, RasterizationSettings

    cams = pinhole_cameras(R, T, focal, principal, image_size)
    settings = RasterizationSettings(image_size=tuple(int(s) for s in image_size), blur_radius=0.0,
                                     faces_per_pixel=1, bin_size=0, cull_backfaces=cull_backfaces)
    return MeshRasterizer(cameras=cams, raster_settings=settings)(Meshes(verts=list(verts_list),
                                                                        faces=list(faces_list)))


def _sample_depth(zbuf: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear z-buffer value at sub-pixel points ``xy (B, K, 2)`` (raster pixels, x right),
    using only covered pixels (``zbuf >= 0``) among the 4 neighbouring pixel centres; -1 where
    none of them is covered."""
    B, h, w = zbuf.shape
    x = xy[..., 0] - 0.5
    y = xy[..., 1] - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    num = torch.zeros_like(x)
    den = torch.zeros_like(x)
    bi = torch.arange(B, device=zbuf.device)[:, None].expand_as(x)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            z = zbuf[bi, yi.clamp(0, h - 1).long(), xi.clamp(0, w - 1).long()]
            ok = ok & (z >= 0)
            num = num + torch.where(ok, wgt * z, torch.zeros_like(z))
            den = den + torch.where(ok, wgt, torch.zeros_like(z))
    return torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.full_like(num, -1.0))


@torch.no_grad()
def compute_correspondences(verts: torch.Tensor, n_verts: torch.Tensor, faces_list: list[torch.Tensor],
                            labels: torch.Tensor, R: torch.Tensor, T: torch.Tensor, focal: torch.Tensor,
                            principal: torch.Tensor, image_size: tuple[int, int], feat_size: tuple[int, int],
                            depth_tol: float = 0.05, raster_size: tuple[int, int] | None = None) -> Correspondence:
    """Project each image's class cuboid with its ground-truth camera.

    Args:
        verts: ``(Y, K, 3)`` padded class vertices; ``n_verts (Y,)`` real counts.
        faces_list: the ``Y`` face tensors ``(F_y, 3)``.
        labels: ``(B,)`` classes; ``R (B, 3, 3)``, ``T (B, 3)`` ground-truth extrinsics.
        focal: ``(B,)`` px; ``principal (B, 2)`` px; ``image_size (H, W)`` input pixels.
        feat_size: ``(h, w)`` of the feature map (stride ``H / h``).
        depth_tol: a vertex is hidden when it lies more than ``depth_tol`` x (the class cuboid's
            largest side) behind the z-buffer at its pixel.
        raster_size: resolution of the depth test (default: the input image size).
    """
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ShapeError(f"verts: expected (Y, K, 3), got {tuple(verts.shape)}")
    B = labels.shape[0]
    K = verts.shape[1]
    H, W = int(image_size[0]), int(image_size[1])
    h, w = int(feat_size[0]), int(feat_size[1])
    sy, sx = H / h, W / w
    V = verts[labels]                                                   # (B, K, 3)
    valid = torch.arange(K, device=verts.device)[None] < n_verts[labels][:, None]
    Xv = V @ R + T[:, None, :]                                          # (B, K, 3)
    z = Xv[..., 2]
    uv = project_points_pinhole(Xv, focal, principal)
    col = torch.floor(uv[..., 0] / sx).long()
    row = torch.floor(uv[..., 1] / sy).long()
    inside = (z > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h) & valid
    cell = torch.where(inside, row * w + col, torch.zeros_like(row))
    # self-occlusion: z-buffer at raster resolution
    rh, rw = raster_size or (H, W)
    verts_list = [verts[int(y), : int(n_verts[int(y)])] for y in labels.tolist()]
    frags = rasterize(verts_list, [faces_list[int(y)] for y in labels.tolist()], R, T,
                      focal * (rw / W), principal * torch.tensor([rw / W, rh / H], device=principal.device),
                      (rh, rw), cull_backfaces=True)   # cuboids are closed and convex
    zbuf = frags.zbuf[..., 0]                                           # (B, rh, rw), -1 empty
    zb = _sample_depth(zbuf, uv * torch.tensor([rw / W, rh / H], device=uv.device))   # (B, K)
    real = (torch.arange(K, device=verts.device)[None] < n_verts[:, None])[..., None]        # (Y, K, 1)
    ext = (verts.masked_fill(~real, float("-inf")).amax(1)
           - verts.masked_fill(~real, float("inf")).amin(1)).amax(1)    # (Y,) largest cuboid side
    unoccluded = (zb < 0) | (z <= zb + depth_tol * ext[labels][:, None])
    visible = inside & unoccluded
    cover = (frags.pix_to_face[..., 0] >= 0).float()[:, None]           # (B, 1, rh, rw)
    cover = torch.nn.functional.adaptive_max_pool2d(cover, (h, w))[:, 0] > 0
    return Correspondence(uv, z, cell, visible, inside, cover.reshape(B, h * w))
