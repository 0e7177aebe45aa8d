"""Rendering of TTP's reconstructions: meshes already projected to the image by the solved camera.

TTP's camera is weak perspective, so a reconstructed mesh is rendered orthographically from its
*screen-space* vertices ``(x, y, z) = (s (R V + t)_xy + c, s (R V)_z)`` where ``(x, y)`` are the
normalised image coordinates of the regressed points (``[-1, 1]``, x right, y down, the
``grid_sample(align_corners=False)`` convention: the centre of pixel column ``j`` is
``(2 j + 1) / W - 1``) and ``z`` grows away from the camera (x right, y down, z forward is right
handed). pytorch3d's NDC has +X left, +Y up, so the rasterizer receives ``(-x, -y, z + z_offset)``
-- a rotation by pi about the viewing axis, no mirror.

Functions (all batched, differentiable where it makes sense):

* :func:`rasterize_screen` -> :class:`~workbench.render.Fragments`;
* :func:`render_silhouette` -> soft silhouettes ``(B, 1, H, W)`` (SoftRas sigmoid blending, sharpness
  given in pixels so that it does not depend on the image size);
* :func:`render_texture` -> the image re-synthesised through the mesh: the regressed point ``u_i`` of
  every vertex is interpolated over the faces (a UV map whose texture is the input image itself,
  TTP's texture flow) and the input image is sampled there;
* :func:`zbuffer_visibility` -> per-vertex visibility ``(B, N)`` from the hard z-buffer (the target
  of TTP's visibility loss);
* :func:`render_all` -> all three from **one** rasterization (soft fragments with ``K`` faces per
  pixel: the front-most face that really covers a pixel gives the texture and the z-buffer), which
  is what training uses (rasterization dominates a CPU training step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...geometry.mesh import Meshes
from ...render import interpolate_vertex_attributes, rasterize_meshes

__all__ = ["screen_to_ndc", "rasterize_screen", "render_silhouette", "render_texture",
           "zbuffer_visibility", "render_all", "ScreenRender", "Z_OFFSET"]

Z_OFFSET = 10.0   # keeps every depth positive (the rasterizer ignores faces behind the camera)


def screen_to_ndc(xy: Tensor, z: Tensor) -> Tensor:
    """(B, N, 2) normalised image coordinates + (B, N) depth -> (B, N, 3) rasterizer NDC."""
    return torch.cat([-xy, (z + Z_OFFSET)[..., None]], -1)


def _meshes(xy: Tensor, z: Tensor, faces: Tensor) -> Meshes:
    B = xy.shape[0]
    return Meshes(screen_to_ndc(xy, z), faces[None].expand(B, -1, -1))


def rasterize_screen(xy: Tensor, z: Tensor, faces: Tensor, image_size: int, faces_per_pixel: int = 1,
                     blur_radius: float = 0.0):
    """Rasterize screen-space meshes (one per sample, shared faces (F, 3)) -> (Fragments, Meshes)."""
    meshes = _meshes(xy, z, faces)
    fr = rasterize_meshes(meshes, image_size=image_size, blur_radius=blur_radius,
                          faces_per_pixel=faces_per_pixel)
    return fr, meshes


def sigma_ndc(sigma_px: float, image_size: int) -> float:
    """Silhouette sharpness in squared NDC units for a blur of ``sigma_px`` pixels."""
    return float((sigma_px * 2.0 / image_size) ** 2)


def _soft_pass(xy: Tensor, z: Tensor, faces: Tensor, image_size: int, sigma_px: float,
               faces_per_pixel: int):
    sig = sigma_ndc(sigma_px, image_size)
    blur = math.log(1.0 / 1e-4 - 1.0) * sig
    fr, _ = rasterize_screen(xy, z, faces, image_size, faces_per_pixel, blur)
    return fr, sig


def _silhouette(fr_soft, fr_hard, sig: float) -> Tensor:
    """Soft silhouette with an opaque interior: 1 where a face covers the pixel centre (hard pass),
    SoftRas' ``1 - prod_k (1 - sigmoid(-d_k / sigma))`` over the soft pass's K faces elsewhere.

    Plain SoftRas alpha dips to ~0.75 along every *internal* edge (each of the two faces sharing it
    contributes ~0.5 near the edge), and on dense meshes the face that covers a pixel can fall out
    of the K slots of a blurred pass (holes). Both are artefacts, not silhouette: the interior is
    set to 1 and the gradient comes from the soft fringe outside the covered pixels, which moves
    the silhouette boundary outwards (pixels that should be on) or inwards (pixels that should be
    off) as SoftRas does.
    """
    p = torch.sigmoid(-fr_soft.dists / sig) * (fr_soft.pix_to_face >= 0)
    soft = 1.0 - torch.prod(1.0 - p, dim=-1)
    covered = fr_hard.pix_to_face[..., 0] >= 0
    alpha = torch.where(covered, torch.ones_like(soft), soft)
    return alpha[:, None]


def render_silhouette(xy: Tensor, z: Tensor, faces: Tensor, image_size: int, sigma_px: float = 1.0,
                      faces_per_pixel: int = 8) -> Tensor:
    """Soft silhouettes (B, 1, H, W) in [0, 1].

    ``sigma_px`` is the width of the sigmoid edge in pixels (TTP's sigma 1e-4 at 256 px ~ 1.3 px);
    the blur radius covers the distance where the sigmoid drops to 1e-4, as pytorch3d recommends.
    """
    fr_soft, sig = _soft_pass(xy, z, faces, image_size, sigma_px, faces_per_pixel)
    fr_hard, _ = rasterize_screen(xy, z, faces, image_size, 1, 0.0)
    return _silhouette(fr_soft, fr_hard, sig)


def render_texture(xy: Tensor, z: Tensor, faces: Tensor, uv: Tensor, image: Tensor,
                   image_size: int | None = None, background: float = 0.0
                   ) -> tuple[Tensor, Tensor]:
    """Re-render the input image through the mesh (TTP's texture from regressed points).

    Args:
        xy, z: (B, N, 2), (B, N) screen-space vertices (where the mesh is drawn).
        faces: (F, 3).
        uv: (B, N, 2) where each vertex takes its colour from (the regressed points ``u``).
        image: (B, C, H, W) the texture source (the input image).
        image_size: output size (default: the image's).
    Returns:
        rgb (B, C, S, S) (``background`` outside the mesh) and the hard coverage mask (B, 1, S, S).
    """
    S = image_size or image.shape[-1]
    fr, meshes = rasterize_screen(xy, z, faces, S, 1, 0.0)
    faces_p = meshes.faces_packed()
    uv_p = uv.reshape(-1, 2)
    pix_uv = interpolate_vertex_attributes(fr.pix_to_face, fr.bary_coords, faces_p, uv_p)[..., 0, :]
    covered = (fr.pix_to_face[..., 0] >= 0)[:, None].to(image.dtype)            # (B, 1, S, S)
    rgb = F.grid_sample(image, pix_uv, mode="bilinear", padding_mode="border", align_corners=False)
    rgb = rgb * covered + background * (1 - covered)
    return rgb, covered


def zbuffer_visibility(xy: Tensor, z: Tensor, faces: Tensor, image_size: int,
                       depth_tol: float = 0.02) -> Tensor:
    """(B, N) float {0, 1}: a vertex is visible unless the z-buffer at its pixel is nearer.

    ``depth_tol`` is in screen depth units (the normalised image half-width is 1). Vertices
    projecting outside the image count as visible when nothing occludes them (no information).
    """
    with torch.no_grad():
        fr, _ = rasterize_screen(xy, z, faces, image_size, 1, 0.0)
    return _visibility_from_fragments(fr, xy, z, image_size, depth_tol)


@dataclass
class ScreenRender:
    """Output of :func:`render_all` (B samples, S x S pixels).

    silhouette: (B, 1, S, S) soft.  rgb: (B, C, S, S) or None.  covered: (B, 1, S, S) hard {0, 1}.
    visibility: (B, N) z-buffer visibility {0, 1} (no gradient).
    """

    silhouette: Tensor
    rgb: Tensor | None
    covered: Tensor
    visibility: Tensor


def render_all(xy: Tensor, z: Tensor, faces: Tensor, image_size: int, uv: Tensor | None = None,
               image: Tensor | None = None, sigma_px: float = 1.0, faces_per_pixel: int = 8,
               depth_tol: float = 0.02, background: float = 0.0) -> ScreenRender:
    """Soft silhouette (one soft pass) plus texture and z-buffer visibility (one shared hard pass).

    (The hard quantities are not taken from the soft pass: with a blur radius its ``K`` slots hold
    the nearest faces *around* a pixel, and the face covering it can fall out of the top ``K``;
    the hard pass also completes the silhouette, see :func:`_silhouette`.)
    """
    S = image_size
    fr_soft, sig = _soft_pass(xy, z, faces, S, sigma_px, faces_per_pixel)
    fr, meshes = rasterize_screen(xy, z, faces, S, 1, 0.0)
    sil = _silhouette(fr_soft, fr, sig)
    covered = (fr.pix_to_face[..., 0] >= 0)[:, None].to(xy.dtype)
    rgb = None
    if uv is not None and image is not None:
        pix_uv = interpolate_vertex_attributes(fr.pix_to_face, fr.bary_coords, meshes.faces_packed(),
                                               uv.reshape(-1, 2))[..., 0, :]
        rgb = F.grid_sample(image, pix_uv, mode="bilinear", padding_mode="border", align_corners=False)
        cov = covered.to(image.dtype)
        rgb = rgb * cov + background * (1 - cov)
    vis = _visibility_from_fragments(fr, xy, z, S, depth_tol)
    return ScreenRender(silhouette=sil, rgb=rgb, covered=covered, visibility=vis)


@torch.no_grad()
def _visibility_from_fragments(fr, xy: Tensor, z: Tensor, S: int, depth_tol: float) -> Tensor:
    B, N, _ = xy.shape
    col = torch.floor((xy[..., 0] + 1) * 0.5 * S).long()
    row = torch.floor((xy[..., 1] + 1) * 0.5 * S).long()
    inb = (col >= 0) & (col < S) & (row >= 0) & (row < S)
    b = torch.arange(B, device=xy.device)[:, None].expand(B, N)
    rr, cc = row.clamp(0, S - 1), col.clamp(0, S - 1)
    zb = fr.zbuf[..., 0][b, rr, cc]
    hit = fr.pix_to_face[..., 0][b, rr, cc] >= 0
    hidden = inb & hit & (zb < z + Z_OFFSET - depth_tol)
    return (~hidden).to(xy.dtype)
