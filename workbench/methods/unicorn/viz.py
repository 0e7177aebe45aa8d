"""UNICORN figures built from :mod:`workbench.viz` (figures are returned, never shown).

* :func:`reconstruction_grid` -- inputs, reconstructions from the predicted viewpoint, the hard
  silhouette, and renders from novel viewpoints (azimuth offsets of the chosen candidate).
* :func:`textured_mesh_figure` -- the predicted textured meshes in the 3D viewer (UV texture mapped
  to vertex colours).
* :func:`candidate_figure` -- the K pose-candidate probabilities per image.
* :func:`stage_figure` -- the progressive-conditioning latent sizes and curriculum switches over
  the iterations of a config.
* :func:`swap_examples` -- swap reconstructions between images: shape of one with the texture of
  the other, each seen from the other's viewpoint.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import UnicornConfig
from .model import UnicornModel, candidates_to_rt

__all__ = ["reconstruction_grid", "textured_mesh_figure", "candidate_figure", "stage_figure", "swap_examples",
           "novel_views"]


@torch.no_grad()
def novel_views(model: UnicornModel, images: torch.Tensor, azimuth_offsets_deg=(90.0, 180.0)) -> list[torch.Tensor]:
    """Renders ``(B, 3, S, S)`` of the reconstructions rotated by each azimuth offset (white background)."""
    model.eval()
    out = model(images)
    i = torch.arange(images.shape[0])
    ang = out.angles[i, out.best].clone()
    tr = out.trans[i, out.best]
    views = []
    for off in azimuth_offsets_deg:
        a = ang.clone()
        a[:, 0] = a[:, 0] + math.radians(off)
        R, T = candidates_to_rt(a, tr, model.cfg.model.distance)
        rgb, _ = model.render(out.verts, out.texture, R, T, None, sigma=0.0)
        views.append(rgb.clamp(0, 1))
    return views


@torch.no_grad()
def reconstruction_grid(model: UnicornModel, images: torch.Tensor, n: int = 6,
                        azimuth_offsets_deg=(90.0, 180.0)):
    """Rows: input, reconstruction (predicted viewpoint), silhouette, novel views; ``n`` columns."""
    from ...viz import image_grid

    model.eval()
    x = images[:n]
    rgb, _, out = model.reconstruct(x)
    R, T = out.best_rt()
    _, alpha = model.render(out.verts, out.texture, R, T, None, sigma=0.0)
    rows = [x, rgb.clamp(0, 1), alpha.expand(-1, 3, -1, -1)] + novel_views(model, x, azimuth_offsets_deg)
    names = ["input", "reconstruction", "silhouette"] + [f"azimuth +{int(o)} deg" for o in azimuth_offsets_deg]
    grid = torch.cat(rows)
    return image_grid(grid, ncols=x.shape[0], row_titles=names, cell_size=110,
                      title="UNICORN reconstructions (rows) of the test images (columns)")


@torch.no_grad()
def textured_mesh_figure(model: UnicornModel, images: torch.Tensor, n: int = 3):
    """The first ``n`` predicted meshes (object frame) with their UV textures as vertex colours."""
    from ...viz import mesh_figure, uv_to_vertex_colors

    model.eval()
    out = model(images[:n])
    faces = model.faces.cpu().numpy()
    uvs = model.uvs.cpu().numpy()
    meshes, colors = [], []
    for k in range(out.verts.shape[0]):
        v = out.verts[k].cpu().numpy()
        tex = out.texture[k].permute(1, 2, 0).cpu().numpy()
        colors.append(uv_to_vertex_colors(uvs, faces, faces, tex, num_verts=v.shape[0]))
        meshes.append((v, faces))
    return mesh_figure(meshes, names=[f"image {k}" for k in range(len(meshes))], vertex_colors=colors,
                       title="Predicted textured meshes (object frame)")


@torch.no_grad()
def candidate_figure(model: UnicornModel, images: torch.Tensor, n: int = 8):
    """Bar chart of the K candidate probabilities (x: candidate reference azimuth) per image."""
    import plotly.graph_objects as go

    model.eval()
    out = model(images[:n])
    K = out.proba.shape[1]
    fig = go.Figure()
    for k in range(out.proba.shape[0]):
        fig.add_bar(x=[f"{int(360 * j / K)} deg" for j in range(K)], y=out.proba[k].cpu().numpy(),
                    name=f"image {k}")
    fig.update_layout(barmode="group", title="Pose-candidate probabilities (reference azimuth of each candidate)",
                      yaxis_title="p_k", height=320)
    return fig


def stage_figure(cfg: UnicornConfig):
    """Latent sizes of the progressive stages and the curriculum switches over the iterations."""
    import plotly.graph_objects as go

    steps = np.unique(np.r_[0, cfg.train.milestones_stage, cfg.train.iterations])
    fig = go.Figure()
    for name, sizes in (("shape", cfg.model.shape_sizes), ("texture", cfg.model.texture_sizes),
                        ("background", cfg.model.background_sizes)):
        ys = [sizes[cfg.stage_at(int(s)) if cfg.model.progressive else 3] for s in steps]
        fig.add_scatter(x=steps, y=ys, mode="lines+markers", line_shape="hv", name=f"{name} latent size")
    for label, s in (("translation on", cfg.train.translation_from), ("deformation on", cfg.train.deformation_from),
                     ("scale on", cfg.train.scale_from), ("mean-texture trick off", cfg.mean_texture_end())):
        fig.add_vline(x=s, line_dash="dot", annotation_text=label, annotation_textangle=-90)
    fig.update_layout(title="Progressive conditioning and first-stage curriculum", xaxis_title="iteration",
                      yaxis_title="latent size", yaxis_type="log", height=340)
    return fig


@torch.no_grad()
def swap_examples(model: UnicornModel, images: torch.Tensor, pairs=((0, 1), (2, 3))):
    """For each pair (i, j): I_i, I_j, shape_i + texture_j seen as j, shape_j + texture_i seen as i."""
    from ...viz import image_grid

    model.eval()
    out = model(images)
    R, T = out.best_rt()
    tiles, titles = [], []
    for i, j in pairs:
        a, _ = model.render(out.verts[[i]], out.texture[[j]], R[[j]], T[[j]], None, sigma=0.0)
        b, _ = model.render(out.verts[[j]], out.texture[[i]], R[[i]], T[[i]], None, sigma=0.0)
        tiles += [images[i], images[j], a[0].clamp(0, 1), b[0].clamp(0, 1)]
        titles += [f"I{i}", f"I{j}", f"shape {i} + texture {j}, view {j}", f"shape {j} + texture {i}, view {i}"]
    return image_grid(torch.stack(tiles), titles=titles, ncols=4, cell_size=130, title="Swap reconstructions")
