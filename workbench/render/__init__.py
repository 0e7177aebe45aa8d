"""workbench.render: differentiable mesh rasterizer (pytorch3d semantics) and open3d ray casting."""
from .raycast import raycast_cameras, raycast_mesh, raycast_rays

__all__ = ["raycast_cameras", "raycast_mesh", "raycast_rays"]
