"""TTP figures and notebook widgets, built from :mod:`workbench.viz` blocks.

* :func:`correspondence_grid` -- the regressed points over the images (visible ones filled), with
  the reprojection of the reconstructed mesh;
* :func:`solver_stepper` -- a slider over every state of the solver (initial pose, each
  Levenberg-Marquardt step, each closed-form shape update) for one image;
* :func:`basis_explorer` -- sliders on the deformation coefficients, the mesh in the 3D viewer;
* :func:`reconstruction_figure` -- a reconstruction, textured by the image, from the camera's
  viewpoint and from the side;
* :func:`training_figure` -- the training curves of runs.

Figures are plotly ``Figure`` objects (never shown); widgets return ``(container, handles)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ...viz import image_grid, mesh_figure, training_curves
from ...viz._util import png_data_uri, to_hwc_image
from .model import TTPModel, TTPOutput, screen_points
from .solver import trace_solver

__all__ = ["correspondence_grid", "solver_stepper", "basis_explorer", "reconstruction_figure",
           "training_figure", "to_pixels", "display_frame"]


def to_pixels(u: torch.Tensor, size: int) -> np.ndarray:
    """Normalised coordinates (..., 2) -> pixel coordinates (x right, y down, centres at j + 0.5)."""
    return ((u.detach().cpu().numpy() + 1.0) * 0.5 * size)


def display_frame(verts: torch.Tensor) -> np.ndarray:
    """Camera frame (x right, y down, z away) -> a viewer frame (x right, y up, z towards you)."""
    v = verts.detach().cpu().numpy().copy()
    v[..., 1:] *= -1
    return v


def correspondence_grid(images: torch.Tensor, out: TTPOutput, n: int = 6, vis_threshold: float = 0.5,
                        reprojection: bool = True, cell_size: int = 170) -> go.Figure:
    """Regressed points over the first ``n`` images (filled: predicted visible); a second row shows
    the reprojection ``pi(V)`` of the reconstruction by the solved camera."""
    n = min(n, images.shape[0])
    S = images.shape[-1]
    imgs = [images[i] for i in range(n)]
    kps = [to_pixels(out.u[i], S) for i in range(n)]
    vis = [(out.vis[i] > vis_threshold).cpu().numpy() for i in range(n)]
    titles = [f"regressed u ({int(v.sum())} visible)" for v in vis]
    if reprojection:
        imgs += imgs
        kps += [to_pixels(out.proj[i], S) for i in range(n)]
        vis += vis
        titles += ["reprojection pi(V)"] * n
    return image_grid(imgs, keypoints=kps, keypoints_visible=vis, titles=titles, ncols=n,
                      cell_size=cell_size, title="TTP correspondences")


def _mesh_edges_xy(xy: np.ndarray, faces: np.ndarray) -> tuple[list, list]:
    e = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
    xs = np.stack([xy[e[:, 0], 0], xy[e[:, 1], 0], np.full(len(e), np.nan)], 1).reshape(-1)
    ys = np.stack([xy[e[:, 0], 1], xy[e[:, 1], 1], np.full(len(e), np.nan)], 1).reshape(-1)
    return xs.tolist(), ys.tolist()


def solver_stepper(model: TTPModel, images: torch.Tensor, index: int = 0, iterations: int | None = None,
                   size: int = 320) -> tuple[Any, dict]:
    """A slider over the solver's states for one image.

    Shows the image, the regressed points (coloured by visibility) and the projected mesh of the
    current state (wireframe + vertices). Handles: ``step`` (IntSlider), ``figure`` (FigureWidget),
    ``status`` (HTML), ``stages`` (the list from :func:`~.solver.trace_solver`).
    """
    import ipywidgets as W

    model.eval()
    img = images[index:index + 1]
    with torch.no_grad():
        u, vis = model.regress(img)
        w = vis ** model.cfg.vis_power
        rigid = model.rigid or model.shape.num_basis == 0
        stages = trace_solver(u, w, model.shape.template, None if rigid else model.shape.effective_basis,
                              model.gamma, iterations=iterations or model.cfg.solver_iterations,
                              options=model.solver_options, rigid=rigid)
    from .solver import camera_from_points

    s, c = camera_from_points(u)
    S = img.shape[-1]
    faces = model.faces.cpu().numpy()
    up = to_pixels(u[0], S)

    def proj_px(st):
        p, _ = screen_points(st["verts"], st["R"], st["t"], s, c)
        return to_pixels(p[0], S)

    fig = go.Figure()
    fig.add_trace(go.Image(source=png_data_uri(to_hwc_image(img[0])), x0=0.5 * 0, y0=0, dx=1, dy=1))
    xs, ys = _mesh_edges_xy(proj_px(stages[0]), faces)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(30,120,255,0.6)", width=1),
                             name="projected mesh", hoverinfo="skip"))
    p0 = proj_px(stages[0])
    fig.add_trace(go.Scatter(x=p0[:, 0], y=p0[:, 1], mode="markers", marker=dict(size=4, color="#1f77b4"),
                             name="pi(V)"))
    fig.add_trace(go.Scatter(x=up[:, 0], y=up[:, 1], mode="markers",
                             marker=dict(size=6, color=vis[0].cpu().numpy(), colorscale="RdYlGn", cmin=0, cmax=1,
                                         symbol="x", colorbar=dict(title="v", len=0.5)), name="regressed u"))
    fig.update_xaxes(visible=False, range=[0, S])
    fig.update_yaxes(visible=False, range=[S, 0], scaleanchor="x")
    fig.update_layout(width=size + 120, height=size, margin=dict(l=5, r=5, t=30, b=5), legend=dict(x=1.02, y=1))
    fw = go.FigureWidget(fig)
    slider = W.IntSlider(value=0, min=0, max=len(stages) - 1, description="solver step",
                         continuous_update=True, layout=W.Layout(width="420px"))
    status = W.HTML()

    def show(*_):
        st = stages[slider.value]
        p = proj_px(st)
        xs, ys = _mesh_edges_xy(p, faces)
        with fw.batch_update():
            fw.data[1].x, fw.data[1].y = xs, ys
            fw.data[2].x, fw.data[2].y = p[:, 0].tolist(), p[:, 1].tolist()
        what = {"init": "affine initial pose", "pose": f"LM step {st['step']}",
                "shape": "closed-form shape update"}[st["kind"]]
        status.value = (f"round {st['round']} &middot; {what} &middot; weighted reprojection energy "
                        f"{float(st['energy'][0]):.4g}")

    slider.observe(show, names="value")
    show()
    box = W.VBox([W.HBox([slider, status]), fw])
    return box, {"step": slider, "figure": fw, "status": status, "stages": stages, "show": show}


def basis_explorer(model: TTPModel, coeffs: torch.Tensor | None = None, components: int = 6,
                   span: float = 3.0, height: int = 420) -> tuple[Any, dict]:
    """Sliders on the first ``components`` deformation coefficients; the mesh ``T + sum_k c_k B_k``
    in the 3D viewer. ``coeffs`` (K,) sets the starting point (e.g. a reconstruction's); the
    slider range is ``+- span`` times the larger of 1 and its magnitude.

    Handles: ``sliders`` (list of FloatSlider), ``figure`` (FigureWidget), ``status``, ``reset``.
    """
    import ipywidgets as W

    K = model.shape.num_basis
    T = model.shape.template.detach()
    faces = model.faces.cpu().numpy()
    if K == 0:
        fig = go.FigureWidget(mesh_figure([(display_frame(T), faces)], names=["template (rigid model)"],
                                          height=height))
        return W.VBox([W.HTML("rigid model: no deformation basis"), fig]), {"sliders": [], "figure": fig}
    B = model.shape.effective_basis.detach()
    c0 = torch.zeros(K) if coeffs is None else coeffs.detach().cpu().reshape(-1)[:K].clone()
    order = torch.argsort(B.flatten(1).norm(dim=1), descending=True)[:components].tolist()
    rng = float(span * max(1.0, c0.abs().max()))
    sliders = [W.FloatSlider(value=float(c0[k]), min=-rng, max=rng, step=rng / 50, description=f"c[{k}]",
                             continuous_update=False, layout=W.Layout(width="320px")) for k in order]

    def verts(c):
        return display_frame(T + torch.einsum("k,knd->nd", c, B))

    fig = go.FigureWidget(mesh_figure([(verts(c0), faces)], names=["T + B c"], height=height, wireframe=True))
    status = W.HTML()

    def update(*_):
        c = c0.clone()
        for k, sl in zip(order, sliders):
            c[k] = sl.value
        v = verts(c)
        with fig.batch_update():
            for tr in fig.data:
                role = (tr.meta or {}).get("role") if isinstance(tr.meta, dict) else None
                if role == "mesh":
                    tr.x, tr.y, tr.z = v[:, 0], v[:, 1], v[:, 2]
                elif role == "wireframe":
                    e = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
                    pts = np.full((len(e) * 3, 3), np.nan)
                    pts[0::3], pts[1::3] = v[e[:, 0]], v[e[:, 1]]
                    tr.x, tr.y, tr.z = pts[:, 0], pts[:, 1], pts[:, 2]
        disp = float(np.linalg.norm(v - display_frame(T), axis=1).mean())
        status.value = f"mean vertex displacement from the template: {disp:.3f} (template RMS radius 1)"

    def reset(*_):
        for k, sl in zip(order, sliders):
            sl.value = float(c0[k])

    for sl in sliders:
        sl.observe(update, names="value")
    update()
    button = W.Button(description="reset")
    button.on_click(reset)
    box = W.HBox([W.VBox(sliders + [button, status]), fig])
    return box, {"sliders": sliders, "figure": fig, "status": status, "reset": reset, "order": order}


def reconstruction_figure(model: TTPModel, out: TTPOutput, images: torch.Tensor, index: int = 0,
                          side_degrees: float = 90.0, height: int = 380) -> go.Figure:
    """The reconstruction of image ``index`` textured by the image: as the camera sees it, and
    rotated by ``side_degrees`` about the vertical axis."""
    import math

    V = out.verts[index].detach()
    R = out.R[index].detach()
    cam = V @ R.T                                                         # camera frame
    colors = TTPModel.sample_texture(images[index:index + 1], out.u[index:index + 1])[0].clamp(0, 1)
    a = math.radians(side_degrees)
    Ry = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    v1 = display_frame(cam)
    v2 = (torch.from_numpy(v1).float() @ Ry.T).numpy()
    faces = model.faces.cpu().numpy()
    col = colors.cpu().numpy()
    fig = mesh_figure([(v1, faces), (v2, faces)], names=["camera view", f"rotated {side_degrees:.0f} deg"],
                      vertex_colors=[col, col], height=height, title="TTP reconstruction (texture from the image)")
    front = dict(eye=dict(x=0.0, y=0.0, z=2.2), up=dict(x=0, y=1, z=0))
    fig.update_scenes(camera=front)
    return fig


def training_figure(runs: Any, metrics: Sequence[str] = ("loss", "iou", "l_mask", "l_cycle", "l_visibility",
                                                         "l_equivariance")) -> go.Figure:
    """Training curves (``runs``: a run directory or ``{name: run_dir}``)."""
    return training_curves(runs, metrics=list(metrics), smooth=0.6, title="TTP training")
