"""workbench.viz: plotly/ipywidgets building blocks for notebooks and reports.

Functions return figures (``plotly.graph_objects.Figure``) or pandas ``Styler`` objects and never
call ``show``; notebooks display them. Interactive tools live in :mod:`workbench.viz.widgets`
(imported on demand: it needs ipywidgets).

* meshes: :func:`mesh_figure` (vertex/face/UV colours, wireframe toggle, keypoints, scalar maps)
* cameras: :func:`camera_figure` (ground-truth and predicted frusta coloured by error)
* images: :func:`image_grid` (mask/keypoint overlays), :func:`correspondence_figure`,
  :func:`render_comparison`
* embeddings: :func:`umap_embed`, :func:`embedding_figure`
* runs: :func:`training_curves`, :func:`confusion_matrix_figure`, :func:`results_table`
* files: :func:`export` (PNG/SVG/PDF via kaleido + Chromium, else matplotlib/HTML fallback)
* rendering for display: :func:`render_pose`, :func:`mesh_pose_renderer`
* datasets in the workbench schema: :func:`dataset_grid`, :func:`category_meshes_figure`,
  :func:`instance_pose_figure`, :func:`instance_mesh`, :func:`retrieval_renders`
* environment: :func:`environment_report`, :func:`dataset_status`
"""
from .cameras import camera_figure, frustum_points
from .datasets import category_meshes_figure, dataset_grid, instance_mesh, instance_pose_figure, retrieval_renders
from .curves import confusion_matrix, confusion_matrix_figure, load_metrics, training_curves
from .embeddings import embedding_figure, pca_embed, umap_embed
from .environment import dataset_status, environment_report
from .export import ExportResult, export, find_chrome, stop_export_server
from .images import correspondence_figure, image_grid, overlay_mask, render_comparison
from .mesh import MeshData, as_mesh_list, mesh_figure, set_wireframe, uv_to_vertex_colors
from .posed import mesh_pose_renderer, render_pose
from .tables import results_table

__all__ = [
    "camera_figure", "frustum_points", "confusion_matrix", "confusion_matrix_figure", "load_metrics",
    "training_curves", "embedding_figure", "pca_embed", "umap_embed", "dataset_status", "environment_report",
    "ExportResult", "export", "find_chrome", "stop_export_server", "correspondence_figure", "image_grid",
    "overlay_mask", "render_comparison", "MeshData", "as_mesh_list", "mesh_figure", "set_wireframe",
    "uv_to_vertex_colors", "mesh_pose_renderer", "render_pose", "results_table",
    "category_meshes_figure", "dataset_grid", "instance_mesh", "instance_pose_figure", "retrieval_renders",
]
