"""Ray casting with ``open3d.t.geometry.RaycastingScene`` for data generation (not differentiable).

One ray per pixel centre ``(j + 0.5, i + 0.5)``; ray directions are scaled to unit view-space z,
so ``t_hit`` is the **z-depth** (view-space Z), the same quantity as the rasterizer's ``zbuf``.

* :func:`raycast_mesh` takes a pinhole in pixels (``u = cx - f X/Z``, ``v = cy - f Y/Z``) and the
  pose ``(R, T)`` of ``X_view = X_world @ R + T``;
* :func:`raycast_cameras` takes any camera object of :mod:`workbench.geometry.cameras`
  (perspective or orthographic, NDC or screen space) and samples the same pixel centres as the
  rasterizer does.

Outputs (N views, image ``(H, W)``): ``depth (N, H, W)`` float32 z-depth with ``inf`` on misses,
``face_ids (N, H, W)`` int64 with -1 on misses, ``normals (N, H, W, 3)`` world-space unit geometric
normals of the hit faces (``(v1 - v0) x (v2 - v0)`` direction, 0 on misses), ``bary (N, H, W, 3)``
barycentrics w.r.t. the face's ``(v0, v1, v2)`` (0 on misses), ``mask (N, H, W)`` bool.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch

from ..core.errors import RenderError, ShapeError
from ..geometry.cameras import CamerasBase, pixel_centers_ndc

__all__ = ["raycast_mesh", "raycast_cameras", "raycast_rays"]


def _o3d():
    try:
        import open3d as o3d  # noqa: F401
        import open3d.core  # noqa: F401
    except ImportError as e:  # pragma: no cover - open3d is a declared dependency
        raise RenderError("ray casting needs open3d (pip install open3d-cpu)") from e
    return o3d


def _mesh_arrays(verts, faces) -> Tuple[np.ndarray, np.ndarray]:
    v = verts.detach().cpu().numpy() if isinstance(verts, torch.Tensor) else np.asarray(verts)
    f = faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ShapeError(f"raycast: verts must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ShapeError(f"raycast: faces must be (F, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ShapeError(f"raycast: faces index vertices outside [0, {v.shape[0]})")
    return np.ascontiguousarray(v, dtype=np.float32), np.ascontiguousarray(f, dtype=np.uint32)


def raycast_rays(verts, faces, origins: torch.Tensor, directions: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Cast world-space rays ``origins/directions (..., 3)`` against one mesh.

    Returns ``t (...)`` (ray parameter, inf on miss), ``face_ids`` (-1 on miss), ``normals (..., 3)``,
    ``bary (..., 3)``, ``mask``.
    """
    o3d = _o3d()
    v, f = _mesh_arrays(verts, faces)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))
    shape = origins.shape[:-1]
    rays = torch.cat([origins, directions], -1).reshape(-1, 6).detach().to("cpu", torch.float32).numpy()
    ans = scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)))
    t = torch.from_numpy(ans["t_hit"].numpy().copy())
    prim = ans["primitive_ids"].numpy().astype(np.int64)
    mask = torch.isfinite(t)
    face_ids = torch.from_numpy(prim)
    face_ids[~mask] = -1
    uv = torch.from_numpy(ans["primitive_uvs"].numpy().copy())
    bary = torch.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1)
    normals = torch.from_numpy(ans["primitive_normals"].numpy().copy())
    bary[~mask] = 0.0
    normals[~mask] = 0.0
    return {"t": t.reshape(shape), "face_ids": face_ids.reshape(shape), "normals": normals.reshape(*shape, 3),
            "bary": bary.reshape(*shape, 3), "mask": mask.reshape(shape)}


def _view_rays_to_world(o_view: torch.Tensor, d_view: torch.Tensor, R: torch.Tensor, T: torch.Tensor):
    """``(N, H, W, 3)`` view-space rays -> world (``X_world = (X_view - T) @ R^T``)."""
    Rt = R.transpose(1, 2)[:, None]  # (N, 1, 3, 3)
    N, H, W, _ = d_view.shape
    o = ((o_view - T[:, None, None, :]).reshape(N, -1, 3) @ Rt[:, 0]).reshape(N, H, W, 3)
    d = (d_view.reshape(N, -1, 3) @ Rt[:, 0]).reshape(N, H, W, 3)
    return o, d


def _finish(out: Dict[str, torch.Tensor], depth_offset=None) -> Dict[str, torch.Tensor]:
    depth = out["t"] if depth_offset is None else out["t"] + depth_offset
    return {"depth": depth.to(torch.float32), "face_ids": out["face_ids"], "normals": out["normals"],
            "bary": out["bary"], "mask": out["mask"]}


def raycast_mesh(verts, faces, R: torch.Tensor, T: torch.Tensor, focal_px, principal_px,
                 image_size: Tuple[int, int]) -> Dict[str, torch.Tensor]:
    """Ray cast one mesh from N pinhole views (see module docs for the outputs).

    Args:
        verts (V, 3), faces (F, 3): the mesh in world coordinates.
        R (N, 3, 3), T (N, 3): world -> view, ``X_view = X_world @ R + T``.
        focal_px (N,) or scalar, principal_px (N, 2) or (2,): pinhole in pixels.
        image_size: (H, W).
    """
    R = torch.as_tensor(R, dtype=torch.float64)
    T = torch.as_tensor(T, dtype=torch.float64)
    if R.dim() == 2:
        R, T = R[None], T.reshape(1, 3)
    if R.shape[-2:] != (3, 3) or T.shape != (R.shape[0], 3):
        raise ShapeError(f"raycast_mesh: R (N, 3, 3) and T (N, 3) expected, got {tuple(R.shape)}, {tuple(T.shape)}")
    N = R.shape[0]
    H, W = int(image_size[0]), int(image_size[1])
    f = torch.as_tensor(focal_px, dtype=torch.float64).reshape(-1).expand(N).reshape(N, 1, 1)
    c = torch.as_tensor(principal_px, dtype=torch.float64).reshape(-1, 2).expand(N, 2)
    u = torch.arange(W, dtype=torch.float64) + 0.5
    v = torch.arange(H, dtype=torch.float64) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    dx = (c[:, 0].view(N, 1, 1) - uu[None]) / f
    dy = (c[:, 1].view(N, 1, 1) - vv[None]) / f
    d_view = torch.stack([dx, dy, torch.ones_like(dx)], -1)
    o_view = torch.zeros_like(d_view)
    o, d = _view_rays_to_world(o_view, d_view, R, T)
    return _finish(raycast_rays(verts, faces, o, d))


def raycast_cameras(verts, faces, cameras: CamerasBase, image_size: Tuple[int, int]) -> Dict[str, torch.Tensor]:
    """Ray cast one mesh from every camera of ``cameras`` at the rasterizer's pixel centres."""
    H, W = int(image_size[0]), int(image_size[1])
    N = len(cameras)
    kwargs = {} if cameras.in_ndc() else {"image_size": cameras.get_image_size()}
    proj = cameras.get_projection_transform().compose(cameras.get_ndc_camera_transform(**kwargs))
    # affine model of the projection: x_ndc = a_x * q_x + b_x with q = X/Z (perspective) or X (ortho)
    probe = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=cameras.dtype,
                         device=cameras.device)[None].expand(N, 3, 3)
    p = proj.transform_points(probe).to(torch.float64).cpu()
    b = p[:, 0, :2]
    a = torch.stack([p[:, 1, 0] - b[:, 0], p[:, 2, 1] - b[:, 1]], -1)
    xs, ys = pixel_centers_ndc((H, W), dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    qx = (xx[None] - b[:, 0].view(N, 1, 1)) / a[:, 0].view(N, 1, 1)
    qy = (yy[None] - b[:, 1].view(N, 1, 1)) / a[:, 1].view(N, 1, 1)
    R = cameras.R.detach().to("cpu", torch.float64)
    T = cameras.T.detach().to("cpu", torch.float64)
    if cameras.is_perspective():
        d_view = torch.stack([qx, qy, torch.ones_like(qx)], -1)
        o_view = torch.zeros_like(d_view)
        o, d = _view_rays_to_world(o_view, d_view, R, T)
        return _finish(raycast_rays(verts, faces, o, d))
    # orthographic: parallel rays starting on the view plane Z = z0 behind every vertex
    v = torch.as_tensor(verts, dtype=torch.float64).reshape(-1, 3)
    zmin = ((v[None] @ R) + T[:, None]).select(-1, 2).min(dim=1).values  # (N,)
    z0 = (zmin - 1.0).view(N, 1, 1)
    o_view = torch.stack([qx, qy, z0.expand_as(qx)], -1)
    d_view = torch.zeros_like(o_view)
    d_view[..., 2] = 1.0
    o, d = _view_rays_to_world(o_view, d_view, R, T)
    return _finish(raycast_rays(verts, faces, o, d), depth_offset=z0.to(torch.float32))
