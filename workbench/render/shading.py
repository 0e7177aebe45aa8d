"""Lights, materials, Phong/flat shading and shaders (a pytorch3d-compatible subset).

Shaders are ``nn.Module`` s called as ``shader(fragments, meshes, **kwargs)`` returning channels-last
images ``(N, H, W, C + 1)``; :class:`MeshRenderer` chains a rasterizer and a shader.
``images.permute(0, 3, 1, 2)`` (or :func:`to_bchw`) gives the project's ``(B, C, H, W)`` layout.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import RenderError
from ..geometry.mesh import Meshes
from .blending import (BlendParams, hard_rgb_blend, layered_active_slots, layered_rgb_blend, layered_rgb_blend_packed,
                       sigmoid_alpha_blend, silhouette_alpha_packed, softmax_rgb_blend)
from .fragments import Fragments, PackedFragments, packed_of
from .interp import interpolate_face_attributes, interpolate_vertex_attributes

__all__ = ["PointLights", "DirectionalLights", "AmbientLights", "Materials", "phong_shading", "flat_shading",
           "HardPhongShader", "SoftPhongShader", "HardFlatShader", "SoftSilhouetteShader", "LayeredShader",
           "MeshRenderer", "to_bchw"]


def _vec(x, dtype=torch.float32, device="cpu") -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device)
    return t.reshape(-1, t.shape[-1]) if t.dim() else t.reshape(1, 1)


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(N or 1, C)`` -> ``(N or 1, 1, 1, 1, C)`` to broadcast against ``(N, H, W, K, C)``."""
    return t.to(like).reshape(t.shape[0], *([1] * (like.dim() - 2)), t.shape[-1])


class _Lights:
    def __init__(self, ambient_color, diffuse_color, specular_color, device="cpu"):
        self.ambient_color = _vec(ambient_color, device=device)
        self.diffuse_color = _vec(diffuse_color, device=device)
        self.specular_color = _vec(specular_color, device=device)
        self.device = torch.device(device)

    def to(self, device):
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        self.device = torch.device(device)
        return self

    def _direction(self, points: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def diffuse(self, normals: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        d = self._direction(points)
        cos = (F.normalize(normals, dim=-1, eps=1e-6) * d).sum(-1, keepdim=True)
        return _bcast(self.diffuse_color, normals) * F.relu(cos)

    def specular(self, normals: torch.Tensor, points: torch.Tensor, camera_position: torch.Tensor,
                 shininess) -> torch.Tensor:
        n = F.normalize(normals, dim=-1, eps=1e-6)
        d = self._direction(points)
        cos = (n * d).sum(-1, keepdim=True)
        view = F.normalize(_bcast(camera_position, points) - points, dim=-1, eps=1e-6)
        reflect = -d + 2 * cos * n
        alpha = F.relu((view * reflect).sum(-1, keepdim=True)) * (cos > 0).to(points.dtype)
        sh = torch.as_tensor(shininess, dtype=points.dtype, device=points.device).reshape(-1, *([1] * (points.dim() - 1)))
        return _bcast(self.specular_color, normals) * torch.pow(alpha, sh)


class PointLights(_Lights):
    """Point light at ``location`` (world); pytorch3d default colours (0.5, 0.3, 0.2)."""

    def __init__(self, ambient_color=((0.5, 0.5, 0.5),), diffuse_color=((0.3, 0.3, 0.3),),
                 specular_color=((0.2, 0.2, 0.2),), location=((0.0, 1.0, 0.0),), device="cpu"):
        super().__init__(ambient_color, diffuse_color, specular_color, device)
        self.location = _vec(location, device=device)

    def _direction(self, points):
        return F.normalize(_bcast(self.location, points) - points, dim=-1, eps=1e-6)


class DirectionalLights(_Lights):
    """Directional light; ``direction`` points from the surface towards the light."""

    def __init__(self, ambient_color=((0.5, 0.5, 0.5),), diffuse_color=((0.3, 0.3, 0.3),),
                 specular_color=((0.2, 0.2, 0.2),), direction=((0.0, 1.0, 0.0),), device="cpu"):
        super().__init__(ambient_color, diffuse_color, specular_color, device)
        self.direction = _vec(direction, device=device)

    def _direction(self, points):
        return F.normalize(_bcast(self.direction, points), dim=-1, eps=1e-6).expand_as(points)


class AmbientLights(_Lights):
    """Ambient light only (no diffuse or specular term)."""

    def __init__(self, ambient_color=((1.0, 1.0, 1.0),), device="cpu"):
        super().__init__(ambient_color, ((0.0, 0.0, 0.0),), ((0.0, 0.0, 0.0),), device)

    def _direction(self, points):
        return torch.zeros_like(points)


class Materials:
    def __init__(self, ambient_color=((1.0, 1.0, 1.0),), diffuse_color=((1.0, 1.0, 1.0),),
                 specular_color=((1.0, 1.0, 1.0),), shininess=64.0, device="cpu"):
        self.ambient_color = _vec(ambient_color, device=device)
        self.diffuse_color = _vec(diffuse_color, device=device)
        self.specular_color = _vec(specular_color, device=device)
        self.shininess = torch.as_tensor(shininess, dtype=torch.float32, device=device)

    def to(self, device):
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        return self


def _light_colors(normals, points, lights, cameras, materials, texels):
    ambient = _bcast(materials.ambient_color, texels) * _bcast(lights.ambient_color, texels)
    diffuse = _bcast(materials.diffuse_color, texels) * lights.diffuse(normals, points)
    specular = _bcast(materials.specular_color, texels) * lights.specular(
        normals, points, cameras.get_camera_center(), materials.shininess)
    return (ambient + diffuse) * texels + specular


def phong_shading(meshes: Meshes, fragments: Fragments, lights, cameras, materials, texels: torch.Tensor):
    """Per-pixel Phong: interpolated positions and vertex normals -> ``(N, H, W, K, C)`` colours."""
    faces = meshes.faces_packed()
    points = interpolate_vertex_attributes(fragments.pix_to_face, fragments.bary_coords, faces, meshes.verts_packed())
    normals = interpolate_vertex_attributes(fragments.pix_to_face, fragments.bary_coords, faces,
                                            meshes.verts_normals_packed())
    return _light_colors(normals, points, lights, cameras, materials, texels)


def flat_shading(meshes: Meshes, fragments: Fragments, lights, cameras, materials, texels: torch.Tensor):
    """Flat shading with face normals and face centroids -> ``(N, H, W, K, C)`` colours."""
    fv = meshes.faces_verts_packed()
    p2f = fragments.pix_to_face
    ones = torch.full_like(fragments.bary_coords, 1.0 / 3.0)
    centroid = interpolate_face_attributes(p2f, ones, fv)
    fn = meshes.faces_normals_packed()[:, None, :].expand(-1, 3, -1)
    normals = interpolate_face_attributes(p2f, ones, fn)
    return _light_colors(normals, centroid, lights, cameras, materials, texels)


def _texels(meshes: Meshes, fragments: Fragments) -> torch.Tensor:
    if meshes.textures is None:  # plain white
        return torch.ones(*fragments.pix_to_face.shape, 3, dtype=fragments.bary_coords.dtype,
                          device=fragments.bary_coords.device) * (fragments.pix_to_face >= 0)[..., None]
    return meshes.sample_textures(fragments)


class _Shader(nn.Module):
    def __init__(self, device="cpu", cameras=None, lights=None, materials=None, blend_params=None):
        super().__init__()
        self.cameras = cameras
        self.lights = lights if lights is not None else PointLights(device=device)
        self.materials = materials if materials is not None else Materials(device=device)
        self.blend_params = blend_params if blend_params is not None else BlendParams()

    def to(self, device):
        if self.cameras is not None:
            self.cameras = self.cameras.to(device)
        self.lights.to(device)
        self.materials.to(device)
        return super().to(device)

    def _cams(self, kwargs):
        cams = kwargs.get("cameras", self.cameras)
        if cams is None:
            raise RenderError(f"{type(self).__name__}: cameras are required (constructor or call argument)")
        return cams


class HardPhongShader(_Shader):
    def forward(self, fragments: Fragments, meshes: Meshes, **kwargs) -> torch.Tensor:
        colors = phong_shading(meshes, fragments, kwargs.get("lights", self.lights), self._cams(kwargs),
                               kwargs.get("materials", self.materials), _texels(meshes, fragments))
        return hard_rgb_blend(colors, fragments, kwargs.get("blend_params", self.blend_params))


class SoftPhongShader(_Shader):
    def forward(self, fragments: Fragments, meshes: Meshes, **kwargs) -> torch.Tensor:
        cams = self._cams(kwargs)
        colors = phong_shading(meshes, fragments, kwargs.get("lights", self.lights), cams,
                               kwargs.get("materials", self.materials), _texels(meshes, fragments))
        znear = kwargs.get("znear", getattr(cams, "znear", 1.0))
        zfar = kwargs.get("zfar", getattr(cams, "zfar", 100.0))
        return softmax_rgb_blend(colors, fragments, kwargs.get("blend_params", self.blend_params), znear=znear, zfar=zfar)


class HardFlatShader(_Shader):
    def forward(self, fragments: Fragments, meshes: Meshes, **kwargs) -> torch.Tensor:
        colors = flat_shading(meshes, fragments, kwargs.get("lights", self.lights), self._cams(kwargs),
                              kwargs.get("materials", self.materials), _texels(meshes, fragments))
        return hard_rgb_blend(colors, fragments, kwargs.get("blend_params", self.blend_params))


def _packed(fragments) -> Optional[PackedFragments]:
    return fragments if isinstance(fragments, PackedFragments) else packed_of(fragments)


class SoftSilhouetteShader(nn.Module):
    """Soft silhouette: ``(N, H, W, 4)``, rgb = 1 and the sigmoid alpha in the last channel.

    Accepts dense :class:`Fragments` or the torch backend's :class:`PackedFragments`.
    """

    accepts_packed = True

    def __init__(self, blend_params: Optional[BlendParams] = None):
        super().__init__()
        self.blend_params = blend_params if blend_params is not None else BlendParams()

    def forward(self, fragments, meshes: Meshes = None, **kwargs) -> torch.Tensor:
        bp = kwargs.get("blend_params", self.blend_params)
        p = _packed(fragments)
        if p is not None:
            alpha = silhouette_alpha_packed(p, bp)
            return torch.cat([torch.ones(*alpha.shape, 3, dtype=alpha.dtype, device=alpha.device), alpha[..., None]], -1)
        colors = torch.ones_like(fragments.bary_coords)
        return sigmoid_alpha_blend(colors, fragments, bp)


class LayeredShader(nn.Module):
    """UNICORN "raw" shading (texture x ambient, unlit) with :func:`layered_rgb_blend`.

    Accepts dense :class:`Fragments` or :class:`PackedFragments`; with the packed view only the slots
    that can contribute (up to the nearest face containing the pixel centre) are textured and blended.
    """

    accepts_packed = True
    only_until_opaque = True  # slots behind the nearest face containing the pixel centre are invisible

    def __init__(self, blend_params: Optional[BlendParams] = None, ambient: float = 1.0):
        super().__init__()
        self.blend_params = blend_params if blend_params is not None else BlendParams()
        self.ambient = ambient

    def forward(self, fragments, meshes: Meshes, **kwargs) -> torch.Tensor:
        bp = kwargs.get("blend_params", self.blend_params)
        p = _packed(fragments)
        tex = meshes.textures
        if p is not None and (tex is None or hasattr(tex, "sample_textures_packed")):
            idx = layered_active_slots(p)
            if tex is None:
                colors = torch.ones(idx.numel(), 3, dtype=meshes.verts_packed().dtype, device=idx.device)
            else:
                colors = tex.sample_textures_packed(p, meshes.faces_packed(), idx)
            return layered_rgb_blend_packed(p, colors * self.ambient, idx, bp)
        if isinstance(fragments, PackedFragments):
            fragments = fragments.to_dense()
        colors = _texels(meshes, fragments) * self.ambient
        return layered_rgb_blend(colors, fragments, bp)


class MeshRenderer(nn.Module):
    """``rasterizer`` then ``shader``; one mesh with several cameras is extended to one per camera.

    Shaders with ``accepts_packed = True`` receive the torch backend's :class:`PackedFragments`
    directly (no dense ``(N, H, W, K)`` tensors are built); for shaders that also set
    ``only_until_opaque = True`` (layered compositing) the rasterizer skips the slots hidden behind the
    nearest face containing each pixel centre.
    """

    def __init__(self, rasterizer, shader):
        super().__init__()
        self.rasterizer = rasterizer
        self.shader = shader

    def to(self, device):
        self.rasterizer.to(device)
        self.shader.to(device)
        return self

    def forward(self, meshes_world: Meshes, **kwargs) -> torch.Tensor:
        cams = kwargs.get("cameras", self.rasterizer.cameras)
        if cams is not None and len(cams) > 1 and len(meshes_world) == 1:
            meshes_world = meshes_world.extend(len(cams))
        dense = not getattr(self.shader, "accepts_packed", False)
        if not dense and getattr(self.shader, "only_until_opaque", False):
            fragments = self.rasterizer(meshes_world, dense=dense, until_opaque=True, **kwargs)
        else:
            fragments = self.rasterizer(meshes_world, dense=dense, **kwargs)
        return self.shader(fragments, meshes_world, **kwargs)


def to_bchw(images: torch.Tensor) -> torch.Tensor:
    """Channels-last renderer output ``(N, H, W, C)`` -> ``(N, C, H, W)``."""
    return images.permute(0, 3, 1, 2)
