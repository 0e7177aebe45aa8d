"""workbench.render: differentiable mesh rendering with pytorch3d's names and semantics.

Pipeline (as pytorch3d): ``MeshRasterizer(cameras, RasterizationSettings)`` -> :class:`Fragments`
-> textures (``TexturesVertex``/``TexturesUV``) -> blending (hard, soft silhouette, SoftRas softmax,
UNICORN layered) or a shader, chained by ``MeshRenderer``. Renderer outputs are channels-last
``(N, H, W, C + 1)`` like pytorch3d (``to_bchw`` gives ``(N, C, H, W)``); ``render_features`` returns
``(N, C, H, W)`` feature maps directly.

Backends: ``"torch"`` (built in, vectorised, CPU and CUDA) and ``"pytorch3d"`` (optional; used by
``backend="auto"`` when importable; ``WORKBENCH_RENDER_BACKEND`` overrides ``"auto"``).
The torch backend also exposes a sparse :class:`PackedFragments` view that the built-in blends and
shaders use automatically. Ray casting with open3d for data generation: :mod:`workbench.render.raycast`.
"""
from .backend import get_backend, pytorch3d_available
from .blending import (BlendParams, hard_rgb_blend, hard_rgb_blend_packed, layered_active_slots, layered_rgb_blend,
                       layered_rgb_blend_packed, sigmoid_alpha_blend, sigmoid_alpha_blend_packed,
                       silhouette_alpha_packed, softmax_rgb_blend, softmax_rgb_blend_packed, trim_fragments)
from .features import render_features, render_mask_depth, vertex_visibility
from .fragments import Fragments, PackedFragments
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
    "trim_fragments", "hard_rgb_blend_packed", "layered_active_slots", "layered_rgb_blend_packed",
    "sigmoid_alpha_blend_packed", "silhouette_alpha_packed", "softmax_rgb_blend_packed",
    "render_features", "render_mask_depth", "vertex_visibility", "Fragments", "PackedFragments",
    "interpolate_face_attributes", "interpolate_vertex_attributes",
    "MeshRasterizer", "RasterizationSettings", "rasterize_meshes", "transform_to_ndc",
    "raycast_cameras", "raycast_mesh", "raycast_rays",
    "AmbientLights", "DirectionalLights", "HardFlatShader", "HardPhongShader", "LayeredShader", "Materials",
    "MeshRenderer", "PointLights", "SoftPhongShader", "SoftSilhouetteShader", "flat_shading", "phong_shading",
    "to_bchw", "TexturesUV", "TexturesVertex", "sample_image_at_points",
]
