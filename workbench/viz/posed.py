"""Render a mesh at a pose annotation for display (used by the pose explorer).

The pose goes through the project's one chain (``workbench.geometry.cameras.cameras_from_pose``:
azimuth, elevation, in-plane theta in radians, distance, pinhole intrinsics in pixels) and the
workbench rasterizer (``workbench.render.MeshRasterizer``, backend chosen by
``WORKBENCH_RENDER_BACKEND``). Shading is for looking at, not for learning: per-pixel vertex
colours (interpolated with the barycentric coordinates) times a two-sided Lambert term with a
head light, over a plain background.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ._util import hex_to_rgb
from .mesh import DEFAULT_MESH_COLOR, as_mesh_list


def _raster_api():
    try:
        from ..render import MeshRasterizer, RasterizationSettings
    except ImportError:
        from ..render.rasterizer import MeshRasterizer, RasterizationSettings
    return MeshRasterizer, RasterizationSettings


def mesh_pose_renderer(mesh: Any, *, image_size: tuple[int, int] = (128, 128), focal_px: float | None = None,
                       principal_px: Sequence[float] | None = None, vertex_colors: Any = None,
                       background: Sequence[float] = (1.0, 1.0, 1.0), ambient: float = 0.35,
                       device: str | None = None) -> Callable[[float, float, float, float], np.ndarray]:
    """A function ``render(azimuth, elevation, theta, distance) -> (H, W, 3)`` float image in [0, 1].

    Args:
        mesh: a ``Meshes`` (first mesh) or ``(verts (V,3), faces (F,3))`` or a mesh dict.
        image_size: ``(H, W)``; ``focal_px`` default: 30 degree field of view; ``principal_px``
            default: the image centre.
        vertex_colors: ``(V, 3)`` in [0, 1] (default: the mesh's own colours/texture, else grey-blue).
        background: RGB in [0, 1].
    """
    import torch

    from ..core.device import get_device
    from ..geometry.cameras import cameras_from_pose
    from ..geometry.mesh import Meshes

    MeshRasterizer, RasterizationSettings = _raster_api()
    dev = get_device(device or "cpu")
    md = as_mesh_list(mesh)[0]
    h, w = image_size
    f = float(focal_px) if focal_px is not None else 0.5 * min(h, w) / math.tan(math.radians(15.0))
    pp = tuple(principal_px) if principal_px is not None else (w / 2.0, h / 2.0)
    verts = torch.as_tensor(md.verts, dtype=torch.float32, device=dev)
    faces = torch.as_tensor(md.faces, dtype=torch.int64, device=dev)
    meshes = Meshes(verts=[verts], faces=[faces])
    if vertex_colors is not None:
        vc = np.asarray(vertex_colors, np.float32)
    elif md.vertex_colors is not None:
        vc = md.vertex_colors.astype(np.float32)
    elif md.face_colors is not None:
        vc = None
    else:
        vc = np.tile(np.asarray(hex_to_rgb(DEFAULT_MESH_COLOR), np.float32) / 255.0, (len(md.verts), 1))
    vcol = torch.as_tensor(vc, device=dev) if vc is not None else None
    fcol = torch.as_tensor(md.face_colors, dtype=torch.float32, device=dev) if vc is None else None
    fn = meshes.faces_normals_packed()
    bg = torch.as_tensor(background, dtype=torch.float32, device=dev)
    rasterizer = MeshRasterizer(raster_settings=RasterizationSettings(image_size=(h, w), faces_per_pixel=1))

    @torch.no_grad()
    def render(azimuth: float, elevation: float, theta: float, distance: float) -> np.ndarray:
        vals = [torch.tensor([float(v)], dtype=torch.float32, device=dev) for v in (azimuth, elevation, theta, distance)]
        cams = cameras_from_pose(*vals, focal_px=f, principal_px=pp, image_size=(h, w))
        frag = rasterizer(meshes, cameras=cams)
        p2f = frag.pix_to_face[0, ..., 0]                     # (H, W), -1 = background
        hit = p2f >= 0
        fid = p2f.clamp(min=0)
        if vcol is not None:
            bary = frag.bary_coords[0, :, :, 0]               # (H, W, 3)
            col = (vcol[faces[fid]] * bary[..., None]).sum(-2)
        else:
            col = fcol[fid]
        centre = cams.get_camera_center()[0]                   # (3,) world
        light = centre / centre.norm().clamp(min=1e-8)
        shade = ambient + (1.0 - ambient) * (fn[fid] @ light).abs()
        img = torch.where(hit[..., None], (col * shade[..., None]).clamp(0, 1), bg)
        return img.cpu().numpy()

    return render


def render_pose(mesh: Any, azimuth: float, elevation: float, theta: float = 0.0, distance: float = 3.0,
                **kwargs: Any) -> np.ndarray:
    """One-off :func:`mesh_pose_renderer` call (angles in radians): ``(H, W, 3)`` in [0, 1]."""
    return mesh_pose_renderer(mesh, **kwargs)(azimuth, elevation, theta, distance)
