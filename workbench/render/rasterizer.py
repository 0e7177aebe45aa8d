"""``RasterizationSettings``, ``MeshRasterizer`` and ``rasterize_meshes`` (pytorch3d names and semantics).

``MeshRasterizer(cameras, raster_settings)(meshes)`` transforms the world vertices to NDC, replaces
NDC z by view-space z (so ``zbuf`` holds view depth) and rasterizes with the selected backend:
``"torch"`` (:mod:`workbench.render.rasterize_torch`, default) or ``"pytorch3d"`` (its compiled
kernel, used only when importable). Both return identical :class:`~workbench.render.Fragments`.

Settings defaults are pytorch3d's: ``perspective_correct=None`` means ``cameras.is_perspective()``,
``clip_barycentric_coords=None`` means ``blur_radius > 0``, ``z_clip_value=None`` means
``znear / 2`` for perspective-correct cameras that have a ``znear`` (FoV cameras), else no clipping.
``blur_radius`` is compared with **squared** NDC distances. ``bin_size``/``max_faces_per_bin`` are
passed to pytorch3d and ignored by the torch backend (which bins by face bounding boxes itself).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from ..core.errors import RenderError
from ..geometry.cameras import CamerasBase
from ..geometry.mesh import Meshes
from .backend import get_backend
from .fragments import Fragments
from .rasterize_torch import DEFAULT_MAX_PAIRS, rasterize_packed

__all__ = ["RasterizationSettings", "MeshRasterizer", "rasterize_meshes", "transform_to_ndc"]


@dataclass
class RasterizationSettings:
    """Rasterization parameters (pytorch3d defaults); ``image_size`` is an int or ``(H, W)``.

    ``max_pairs`` (torch backend only) bounds the number of (pixel, face) candidate pairs evaluated at
    once, hence peak memory (~100 bytes per pair).
    """

    image_size: Union[int, Tuple[int, int]] = 256
    blur_radius: float = 0.0
    faces_per_pixel: int = 1
    bin_size: Optional[int] = None
    max_faces_per_bin: Optional[int] = None
    perspective_correct: Optional[bool] = None
    clip_barycentric_coords: Optional[bool] = None
    cull_backfaces: bool = False
    z_clip_value: Optional[float] = None
    cull_to_frustum: bool = False
    max_pairs: int = DEFAULT_MAX_PAIRS


def _image_hw(image_size) -> Tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    if isinstance(image_size, torch.Tensor):
        image_size = image_size.reshape(-1).tolist()
    hw = tuple(int(x) for x in image_size)
    if len(hw) != 2 or min(hw) <= 0:
        raise RenderError(f"image_size must be an int or (H, W) of positive ints, got {image_size!r}")
    return hw  # type: ignore[return-value]


def transform_to_ndc(meshes: Meshes, cameras: CamerasBase, eps: Optional[float] = None) -> torch.Tensor:
    """Packed world vertices -> ``(V, 3)`` NDC x, y with **view-space z** (pytorch3d ``MeshRasterizer.transform``).

    A single camera is shared by all meshes; otherwise ``len(cameras)`` must equal ``len(meshes)``.
    """
    N = len(meshes)
    if len(cameras) not in (1, N):
        raise RenderError(f"got {len(cameras)} cameras for {N} meshes; use 1 camera or one per mesh "
                          f"(meshes.extend(k) repeats a mesh)")
    kwargs = {} if cameras.in_ndc() else {"image_size": cameras.get_image_size()}
    w2v = cameras.get_world_to_view_transform()
    proj = cameras.get_projection_transform().compose(cameras.get_ndc_camera_transform(**kwargs))
    vp = meshes.verts_padded()
    verts_view = w2v.transform_points(vp, eps=eps)
    verts_ndc = proj.transform_points(verts_view, eps=eps)
    verts_ndc = torch.cat([verts_ndc[..., :2], verts_view[..., 2:3]], -1)
    if meshes._homogeneous_padded is not None:
        return verts_ndc.reshape(-1, 3)
    v2m = meshes.verts_packed_to_mesh_idx()
    local = torch.arange(v2m.numel(), device=v2m.device) - meshes.mesh_to_verts_packed_first_idx()[v2m]
    return verts_ndc[v2m, local]


def _rasterize_pytorch3d(verts_ndc: torch.Tensor, meshes: Meshes, hw, blur_radius, K, bin_size,
                         max_faces_per_bin, perspective_correct, clip, cull_backfaces, z_clip,
                         cull_to_frustum) -> Fragments:
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes as p3d_rasterize
    from pytorch3d.structures import Meshes as P3DMeshes

    verts_list = list(verts_ndc.split(meshes.num_verts_per_mesh().tolist(), 0))
    p3d = P3DMeshes(verts=verts_list, faces=meshes.faces_list())
    out = p3d_rasterize(p3d, image_size=hw, blur_radius=blur_radius, faces_per_pixel=K, bin_size=bin_size,
                        max_faces_per_bin=max_faces_per_bin, perspective_correct=perspective_correct,
                        clip_barycentric_coords=clip, cull_backfaces=cull_backfaces, z_clip_value=z_clip,
                        cull_to_frustum=cull_to_frustum)
    return Fragments(*out[:4])


def rasterize_meshes(meshes: Meshes, image_size: Union[int, Tuple[int, int]] = 256, blur_radius: float = 0.0,
                     faces_per_pixel: int = 8, bin_size: Optional[int] = None,
                     max_faces_per_bin: Optional[int] = None, perspective_correct: bool = False,
                     clip_barycentric_coords: bool = False, cull_backfaces: bool = False,
                     z_clip_value: Optional[float] = None, cull_to_frustum: bool = False,
                     backend: str = "auto", max_pairs: int = DEFAULT_MAX_PAIRS, dense: bool = True,
                     until_opaque: bool = False):
    """Rasterize meshes whose vertices are already in NDC (x, y) with view z (pytorch3d's function).

    Returns :class:`Fragments`; with ``dense=False`` the torch backend returns its
    :class:`~workbench.render.fragments.PackedFragments` instead (pytorch3d always returns dense).
    ``until_opaque=True`` (torch backend, packed output only) lets it drop the slots hidden behind the
    nearest face containing the pixel centre (see :func:`~workbench.render.rasterize_torch.rasterize_packed`).
    """
    hw = _image_hw(image_size)
    if faces_per_pixel < 1:
        raise RenderError(f"faces_per_pixel must be >= 1, got {faces_per_pixel}")
    verts = meshes.verts_packed()
    if get_backend(backend) == "pytorch3d":
        return _rasterize_pytorch3d(verts, meshes, hw, blur_radius, faces_per_pixel, bin_size, max_faces_per_bin,
                                    perspective_correct, clip_barycentric_coords, cull_backfaces, z_clip_value,
                                    cull_to_frustum)
    return rasterize_packed(verts, meshes.faces_packed(), meshes.faces_packed_to_mesh_idx(), len(meshes), hw,
                            blur_radius=blur_radius, faces_per_pixel=faces_per_pixel,
                            perspective_correct=perspective_correct, clip_barycentric_coords=clip_barycentric_coords,
                            cull_backfaces=cull_backfaces, z_clip_value=z_clip_value, max_pairs=max_pairs,
                            dense=dense, until_opaque=until_opaque and not dense)


class MeshRasterizer(nn.Module):
    """World meshes + cameras -> :class:`Fragments` (pytorch3d ``MeshRasterizer``).

    Args:
        cameras: a camera batch of size 1 or ``len(meshes)`` (may also be given at call time).
        raster_settings: :class:`RasterizationSettings`.
        backend: ``"auto"`` | ``"torch"`` | ``"pytorch3d"`` (see :func:`workbench.render.get_backend`).
    """

    def __init__(self, cameras: Optional[CamerasBase] = None,
                 raster_settings: Optional[RasterizationSettings] = None, backend: str = "auto"):
        super().__init__()
        self.cameras = cameras
        self.raster_settings = raster_settings if raster_settings is not None else RasterizationSettings()
        self.backend = backend

    def to(self, device):  # cameras are not nn.Modules
        if self.cameras is not None:
            self.cameras = self.cameras.to(device)
        return super().to(device)

    def transform(self, meshes_world: Meshes, **kwargs) -> Meshes:
        """Meshes with vertices in NDC (x, y) and view-space z."""
        cameras = kwargs.get("cameras", self.cameras)
        if cameras is None:
            raise RenderError("MeshRasterizer: no cameras given (constructor or call argument)")
        if len(cameras) > 1 and len(meshes_world) == 1:
            meshes_world = meshes_world.extend(len(cameras))
        v = transform_to_ndc(meshes_world, cameras, eps=kwargs.get("eps"))
        if meshes_world._homogeneous_padded is not None:
            return Meshes(v.reshape(meshes_world.verts_padded().shape), meshes_world.faces_padded())
        return Meshes(meshes_world.packed_to_list(v, "verts"), meshes_world.faces_list())

    def forward(self, meshes_world: Meshes, dense: bool = True, until_opaque: bool = False, **kwargs) -> Fragments:
        """Rasterize; ``dense=False`` lets the torch backend return :class:`PackedFragments` only, and
        ``until_opaque=True`` (with ``dense=False``) lets it keep only the slots layered compositing sees."""
        if not isinstance(meshes_world, Meshes):
            raise RenderError(f"MeshRasterizer expects workbench Meshes, got {type(meshes_world).__name__}")
        cameras = kwargs.get("cameras", self.cameras)
        if cameras is None:
            raise RenderError("MeshRasterizer: no cameras given (constructor or call argument)")
        rs: RasterizationSettings = kwargs.get("raster_settings", self.raster_settings)
        meshes_proj = self.transform(meshes_world, **kwargs)
        clip = rs.clip_barycentric_coords
        if clip is None:
            clip = rs.blur_radius > 0.0
        persp = rs.perspective_correct if rs.perspective_correct is not None else cameras.is_perspective()
        z_clip = rs.z_clip_value
        if z_clip is None and persp:
            znear = cameras.get_znear()
            if znear is not None:
                z_clip = float(torch.as_tensor(znear).min()) / 2.0
        return rasterize_meshes(meshes_proj, image_size=rs.image_size, blur_radius=rs.blur_radius,
                                faces_per_pixel=rs.faces_per_pixel, bin_size=rs.bin_size,
                                max_faces_per_bin=rs.max_faces_per_bin, perspective_correct=persp,
                                clip_barycentric_coords=clip, cull_backfaces=rs.cull_backfaces,
                                z_clip_value=z_clip, cull_to_frustum=rs.cull_to_frustum,
                                backend=kwargs.get("backend", self.backend), max_pairs=rs.max_pairs, dense=dense,
                                until_opaque=until_opaque)
