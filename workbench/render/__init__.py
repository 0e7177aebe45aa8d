"""workbench.render: differentiable mesh rendering with pytorch3d's names and semantics.

Backends: ``"torch"`` (built in, vectorised, CPU and CUDA) and ``"pytorch3d"`` (optional; used by
``backend="auto"`` when importable; ``WORKBENCH_RENDER_BACKEND`` overrides ``"auto"``).
Ray casting with open3d for data generation lives in :mod:`workbench.render.raycast`.
"""
from .backend import get_backend, pytorch3d_available
from .blending import (BlendParams, hard_rgb_blend, layered_rgb_blend, sigmoid_alpha_blend, softmax_rgb_blend,
                       trim_fragments)
from .features import render_features, render_mask_depth, vertex_visibility
from .fragments import Fragments
from .interp import interpolate_face_attributes, interpolate_vertex_attributes
from .rasterizer import MeshRasterizer, RasterizationSettings, rasterize_meshes, transform_to_ndc
from .raycast import raycast_cameras, raycast_mesh, raycast_rays
from .shading import (AmbientLights, DirectionalLights, HardFlatShader, HardPhongShader, LayeredShader, Materials,
                      MeshRenderer, PointLights, SoftPhongShader, SoftSilhouetteShader, flat_shading, phong_shading,
                      to_bchw)
from .textures import TexturesUV, TexturesVertex, sample_image_at_points

__all__ = [
    "get_backend", "pytorch3d_available",
    "BlendParams", "hard_rgb_blend", "layered_rgb_blend", "sigmoid_alpha_blend", "softmax_rgb_blend",
    "trim_fragments", "render_features", "render_mask_depth", "vertex_visibility", "Fragments",
    "interpolate_face_attributes", "interpolate_vertex_attributes",
    "MeshRasterizer", "RasterizationSettings", "rasterize_meshes", "transform_to_ndc",
    "raycast_cameras", "raycast_mesh", "raycast_rays",
    "AmbientLights", "DirectionalLights", "HardFlatShader", "HardPhongShader", "LayeredShader", "Materials",
    "MeshRenderer", "PointLights", "SoftPhongShader", "SoftSilhouetteShader", "flat_shading", "phong_shading",
    "to_bchw", "TexturesUV", "TexturesVertex", "sample_image_at_points",
]
