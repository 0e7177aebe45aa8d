"""workbench.geometry: pose chain, cameras, meshes, point/mesh losses and shape metrics.

Names and conventions follow pytorch3d (see ``docs/architecture.md`` and ``DESIGN.md``).
"""
from .cameras import (CamerasBase, FoVOrthographicCameras, FoVPerspectiveCameras, OrthographicCameras,
                      PerspectiveCameras, camera_position_from_spherical_angles, cameras_from_pose,
                      get_ndc_to_screen_transform, get_screen_to_ndc_transform, look_at_view_transform,
                      pinhole_cameras, pixel_centers_ndc, project_points_pinhole, weak_perspective_project)
from .mesh import (Meshes, cuboid_mesh, ico_sphere, join_meshes_as_batch, load_obj, load_ply, loop_subdivide,
                   read_obj, read_ply, save_obj, save_ply, subdivide)
from .pose import (camera_center_from_rt, camera_position, inplane_rotation, look_at_rotation, pose_summary,
                   pose_to_rt, rotation_error, rt_to_pose)
from .transforms import Transform3d
from .align import ICPSolution, SimilarityTransform, apply_similarity, corresponding_points_alignment, icp
from .metrics import face_components, voxel_iou, voxelize_mesh
from .points import (chamfer_distance, chamfer_l1_x10, knn_gather, knn_points, modified_hausdorff,
                     normal_consistency_points, sample_points_from_meshes)
from .regularizers import (arap_energy, cot_laplacian, mesh_edge_loss, mesh_laplacian_smoothing,
                           mesh_normal_consistency)

__all__ = [
    "CamerasBase", "FoVOrthographicCameras", "FoVPerspectiveCameras", "OrthographicCameras",
    "PerspectiveCameras", "camera_position_from_spherical_angles", "cameras_from_pose",
    "get_ndc_to_screen_transform", "get_screen_to_ndc_transform", "look_at_view_transform",
    "pinhole_cameras", "pixel_centers_ndc", "project_points_pinhole", "weak_perspective_project",
    "Meshes", "cuboid_mesh", "ico_sphere", "join_meshes_as_batch", "load_obj", "load_ply", "read_obj",
    "read_ply", "save_obj", "save_ply", "subdivide", "loop_subdivide",
    "camera_center_from_rt", "camera_position", "inplane_rotation", "look_at_rotation", "pose_summary",
    "pose_to_rt", "rotation_error", "rt_to_pose", "Transform3d",
    "ICPSolution", "SimilarityTransform", "apply_similarity", "corresponding_points_alignment", "icp",
    "face_components", "voxel_iou", "voxelize_mesh", "chamfer_distance", "chamfer_l1_x10", "knn_gather", "knn_points",
    "modified_hausdorff", "normal_consistency_points", "sample_points_from_meshes", "arap_energy",
    "cot_laplacian", "mesh_edge_loss", "mesh_laplacian_smoothing", "mesh_normal_consistency",
]
