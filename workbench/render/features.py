"""Feature rendering for render-and-compare and per-vertex visibility from the z-buffer.

* :func:`render_features` rasterizes meshes (hard, 1 face per pixel) and interpolates C-channel
  vertex features at feature-map resolution -> ``(N, C, H, W)`` with 0 on the background
  (NeMo / NOVUM / 3D-CompNets). Differentiable w.r.t. features, vertices and cameras.
* :func:`vertex_visibility` marks a vertex visible when one of its faces is the nearest surface at
  some pixel and, given the cameras, from a depth test against the z-buffer at its own pixel.
* :func:`render_mask_depth` returns hard masks and view-depth maps.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ..core.errors import ShapeError
from ..geometry.cameras import CamerasBase
from ..geometry.mesh import Meshes
from .fragments import Fragments
from .interp import interpolate_vertex_attributes
from .rasterizer import MeshRasterizer, RasterizationSettings

__all__ = ["render_features", "vertex_visibility", "render_mask_depth"]


def _prepare(meshes: Meshes, cameras: CamerasBase) -> Meshes:
    if len(cameras) > 1 and len(meshes) == 1:
        meshes = meshes.extend(len(cameras))
    return meshes


def render_features(meshes: Meshes, vert_features: torch.Tensor, cameras: CamerasBase,
                    image_size: Union[int, Tuple[int, int]], cull_backfaces: bool = False, backend: str = "auto",
                    return_fragments: bool = False):
    """Render per-vertex features into ``(N, C, H, W)`` maps (0 where no face is hit).

    Args:
        meshes: one mesh (shared by all cameras) or one mesh per camera.
        vert_features: ``(V, C)`` shared by every mesh of a homogeneous batch, ``(sum V, C)`` packed,
            or ``(N, V, C)`` padded.
        cameras: N cameras (e.g. ``pinhole_cameras`` at feature-map resolution).
        image_size: ``(H, W)`` of the feature map.
    Returns:
        ``features (N, C, H, W)`` or ``(features, fragments)`` when ``return_fragments``.
    """
    meshes = _prepare(meshes, cameras)
    rast = MeshRasterizer(cameras, RasterizationSettings(image_size=image_size, faces_per_pixel=1,
                                                         cull_backfaces=cull_backfaces), backend=backend)
    fragments = rast(meshes)
    faces = meshes.faces_packed()
    nv = meshes.num_verts_per_mesh()
    V_total = int(nv.sum())
    if vert_features.dim() == 3:
        if vert_features.shape[0] != len(meshes):
            raise ShapeError(f"vert_features: padded features for {vert_features.shape[0]} meshes, "
                             f"but rendering {len(meshes)}")
        if meshes._homogeneous_padded is not None and vert_features.shape[1] == nv[0]:
            feats = vert_features.reshape(-1, vert_features.shape[-1])
        else:
            feats = torch.cat([vert_features[i, :n] for i, n in enumerate(nv.tolist())], 0)
    elif vert_features.dim() == 2 and vert_features.shape[0] == V_total:
        feats = vert_features
    elif vert_features.dim() == 2 and bool((nv == vert_features.shape[0]).all()):
        feats = vert_features
        faces = faces - meshes.mesh_to_verts_packed_first_idx()[meshes.faces_packed_to_mesh_idx()][:, None]
    else:
        raise ShapeError(f"vert_features: expected (V, C), (sum V, C) or (N, V, C) for meshes with "
                         f"{nv.tolist()} vertices, got {tuple(vert_features.shape)}")
    out = interpolate_vertex_attributes(fragments.pix_to_face, fragments.bary_coords, faces, feats)
    out = out[..., 0, :].permute(0, 3, 1, 2)
    return (out, fragments) if return_fragments else out


def vertex_visibility(fragments: Fragments, meshes: Meshes, cameras: Optional[CamerasBase] = None,
                      depth_tol: float = 0.02) -> torch.Tensor:
    """Per-vertex visibility ``(N, max V)`` bool (False on padding) from hard fragments.

    Without cameras a vertex is visible when at least one face containing it is the nearest face
    (slot 0) at some pixel; faces smaller than a pixel may be missed, so this under-reports at low
    resolution. With ``cameras`` the z-buffer is also read around each vertex's own pixel (3x3): the
    vertex is visible when some covered neighbour's surface is not closer than
    ``z_vertex * (1 - depth_tol)``, and hidden (even if one of its faces is visible) when the whole
    neighbourhood is covered by closer surfaces.
    """
    N, H, W, _ = fragments.pix_to_face.shape
    if len(meshes) != N:
        raise ShapeError(f"vertex_visibility: fragments for {N} images but {len(meshes)} meshes")
    faces = meshes.faces_packed()
    V = meshes.verts_packed().shape[0]
    p2f = fragments.pix_to_face[..., 0].reshape(-1)
    face_vis = torch.zeros(faces.shape[0] + 1, dtype=torch.bool, device=faces.device)
    face_vis[p2f.clamp_min(-1) + 1] = True
    face_vis = face_vis[1:]
    vis = torch.zeros(V, dtype=torch.bool, device=faces.device)
    vis[faces[face_vis].reshape(-1)] = True
    if cameras is not None:
        with torch.no_grad():
            vp = meshes.verts_padded()
            scr = cameras.transform_points_screen(vp, image_size=((H, W),))
            zv = cameras.get_world_to_view_transform().transform_points(vp)[..., 2]
            col = torch.floor(scr[..., 0]).long()
            row = torch.floor(scr[..., 1]).long()
            inb = (col >= 0) & (col < W) & (row >= 0) & (row < H)
            z0 = fragments.zbuf[..., 0]
            cov = (fragments.pix_to_face[..., 0] >= 0)
            # 3x3 neighbourhood: deepest covered surface, and whether background is adjacent
            zmax = F.max_pool2d(torch.where(cov, z0, torch.full_like(z0, -math.inf))[:, None], 3, 1, 1)[:, 0]
            near_bg = F.max_pool2d((~cov).to(z0.dtype)[:, None], 3, 1, 1)[:, 0] > 0
            n_idx = torch.arange(N, device=vp.device)[:, None].expand_as(col)
            r, c = row.clamp(0, H - 1), col.clamp(0, W - 1)
            zn, bg = zmax[n_idx, r, c], near_bg[n_idx, r, c]
            thr = zv * (1.0 - depth_tol)
            depth_ok = inb & (zn >= thr)
            hidden = inb & ~bg & (zn < thr)
        vis = (vis & ~_padded_to_packed(hidden, meshes)) | _padded_to_packed(depth_ok, meshes)
    return _packed_to_padded_bool(vis, meshes)


def _padded_to_packed(x: torch.Tensor, meshes: Meshes) -> torch.Tensor:
    nv = meshes.num_verts_per_mesh().tolist()
    return torch.cat([x[i, :n] for i, n in enumerate(nv)], 0)


def _packed_to_padded_bool(x: torch.Tensor, meshes: Meshes) -> torch.Tensor:
    nv = meshes.num_verts_per_mesh().tolist()
    out = torch.zeros(len(nv), max(nv), dtype=torch.bool, device=x.device)
    for i, part in enumerate(x.split(nv)):
        out[i, :part.shape[0]] = part
    return out


def render_mask_depth(meshes: Meshes, cameras: CamerasBase, image_size: Union[int, Tuple[int, int]],
                      backend: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """Hard mask ``(N, 1, H, W)`` float and view depth ``(N, 1, H, W)`` (0 on the background)."""
    meshes = _prepare(meshes, cameras)
    fr = MeshRasterizer(cameras, RasterizationSettings(image_size=image_size), backend=backend)(meshes)
    mask = (fr.pix_to_face[..., 0] >= 0)
    depth = torch.where(mask, fr.zbuf[..., 0], torch.zeros_like(fr.zbuf[..., 0]))
    return mask[:, None].to(depth.dtype), depth[:, None]
