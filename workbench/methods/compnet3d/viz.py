"""Figures of 3D-CompNets built from :mod:`workbench.viz` building blocks.

* :func:`activation_figure` -- per-vertex feature activation maps ``f_i . C_k`` on test images;
* :func:`pose_search_trace` + :func:`pose_search_figure` / :func:`pose_search_widget` -- the
  render-and-compare search (the 144-pose grid, then every refinement step) stepped with a slider;
* :func:`confusion_history_figure` -- the confusion-weight matrix at each recomputation (slider),
  showing how it sparsifies;
* :func:`ablation_launcher` -- a ``launch(cfg, progress)`` for :func:`workbench.viz.widgets.ablation_panel`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...geometry.pose import pose_to_rt, rotation_error
from .correspond import rasterize


def _np_img(image: torch.Tensor) -> np.ndarray:
    return image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _colormap(x: np.ndarray, vmin: float = -1.0, vmax: float = 1.0) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["magma"]
    return cmap(np.clip((x - vmin) / (vmax - vmin + 1e-12), 0, 1))[..., :3]


@torch.no_grad()
def activation_maps(model, images: torch.Tensor, class_id: int, vertex_ids: Sequence[int]) -> torch.Tensor:
    """``(B, n, H, W)`` similarity ``f_i . C_k`` of each chosen vertex, upsampled to the image."""
    model.eval()
    fmap = model(images)
    C = model.bank.vertex[class_id, list(vertex_ids)]                    # (n, D)
    sim = torch.einsum("bdhw,nd->bnhw", fmap, C)
    return F.interpolate(sim, size=images.shape[-2:], mode="nearest")


def pick_vertices(model, class_id: int, n: int = 4) -> list[int]:
    """``n`` vertices spread over the cuboid (farthest-point sampling on the vertex positions)."""
    V = model.verts[class_id, : int(model.n_verts[class_id])].cpu()
    chosen = [int(V[:, 1].argmax())]
    d = (V - V[chosen[0]]).norm(dim=-1)
    while len(chosen) < min(n, V.shape[0]):
        k = int(d.argmax())
        chosen.append(k)
        d = torch.minimum(d, (V - V[k]).norm(dim=-1))
    return chosen


def activation_figure(model, batch: Mapping[str, Any], class_names: Sequence[str], n_images: int = 3,
                      n_vertices: int = 4, cell_size: int = 130):
    """Images (rows) and the activation maps of ``n_vertices`` vertices of each image's class."""
    from ...viz import image_grid

    images = batch["image"][:n_images].to(model.verts.device)
    labels = batch["label"][:n_images].tolist()
    tiles, titles = [], []
    for b, y in enumerate(labels):
        vids = pick_vertices(model, y, n_vertices)
        maps = activation_maps(model, images[b: b + 1], y, vids)[0].cpu().numpy()
        img = _np_img(images[b])
        tiles.append(img)
        titles.append(f"{class_names[y]}")
        for k, m in zip(vids, maps):
            tiles.append(0.35 * img + 0.65 * _colormap(m))
            titles.append(f"vertex {k}")
    return image_grid(tiles, titles=titles, ncols=n_vertices + 1, cell_size=cell_size,
                      title="Per-vertex activation f.C_k (bright = the vertex's feature matches)")


@torch.no_grad()
def pose_overlay(image: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, R: torch.Tensor, T: torch.Tensor,
                 focal: float, principal: Sequence[float], color=(0.1, 0.9, 0.3), alpha: float = 0.45) -> np.ndarray:
    """The cuboid at pose ``(R, T)`` drawn over ``image (3, H, W)``: shaded faces + outline."""
    H, W = image.shape[-2:]
    fr = rasterize([verts.cpu()], [faces.cpu()], R.reshape(1, 3, 3).cpu().float(), T.reshape(1, 3).cpu().float(),
                   torch.tensor([float(focal)]), torch.tensor([list(map(float, principal))]), (H, W))
    p2f = fr.pix_to_face[0, ..., 0].numpy()
    img = _np_img(image.cpu())
    cover = p2f >= 0
    fv = verts.cpu()[faces.cpu()]
    n = torch.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1)
    n = F.normalize(n @ R.reshape(3, 3).cpu().float(), dim=-1)          # view-space normals
    shade = (0.35 + 0.65 * n[:, 2].abs()).numpy()
    s = np.where(cover, shade[np.clip(p2f, 0, None)], 0.0)
    out = img.copy()
    tint = np.asarray(color)[None, None] * s[..., None]
    out[cover] = (1 - alpha) * img[cover] + alpha * tint[cover]
    edge = cover & ~(np.roll(cover, 1, 0) & np.roll(cover, -1, 0) & np.roll(cover, 1, 1) & np.roll(cover, -1, 1))
    out[edge] = color
    return np.clip(out, 0, 1)


def pose_search_trace(predictor, batch: Mapping[str, Any], i: int = 0, use_gt_class: bool = False,
                      n_grid_frames: int = 6) -> dict:
    """Record the render-and-compare search of image ``i`` of ``batch``.

    Returns ``{"frames": [(H, W, 3) overlays], "titles": [...], "loss": [...], "error_deg": [...],
    "class": name}``: first the ``n_grid_frames`` best grid poses (worst to best), then every
    refinement step.
    """
    from .evaluate import feature_intrinsics

    model = predictor.model
    dev = model.verts.device
    image = batch["image"][i: i + 1].to(dev)
    fmap = predictor.features(image)
    sub = {k: (v[i: i + 1] if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    focal, principal = feature_intrinsics(sub, image.shape[-2:], fmap.shape[-2:], dev)
    y = int(batch["label"][i]) if use_gt_class else int(predictor.classify(fmap).argmax(1))
    cls = torch.tensor([y], device=dev)
    res = predictor.pose(fmap, cls, focal, principal, record=True)
    verts = model.verts[y, : int(model.n_verts[y])]
    faces = model.faces[y]
    f_img, p_img = float(batch["focal"][i]), batch["principal"][i].tolist()
    R_gt = batch["R"][i].to(dev)
    frames, titles, losses, errs = [], [], [], []
    g = [t.to(dev) for t in predictor.rc.grid]
    order = res.grid_loss[0].argsort()
    for rank in reversed(range(min(n_grid_frames, order.numel()))):
        p = int(order[rank])
        R, T = pose_to_rt(g[0][p: p + 1], g[1][p: p + 1], g[2][p: p + 1],
                          torch.tensor([predictor.rc.distance], device=dev))
        frames.append(pose_overlay(batch["image"][i], verts, faces, R[0], T[0], f_img, p_img, color=(0.95, 0.6, 0.1)))
        losses.append(float(res.grid_loss[0, p]))
        errs.append(math.degrees(float(rotation_error(R, R_gt[None]))))
        titles.append(f"grid #{rank + 1} of {order.numel()}")
    for s, (R, T, loss) in enumerate(res.trajectory or []):
        frames.append(pose_overlay(batch["image"][i], verts, faces, R[0], T[0], f_img, p_img))
        losses.append(float(loss[0]))
        errs.append(math.degrees(float(rotation_error(R, R_gt[None]))))
        titles.append(f"refine step {s}")
    return {"frames": frames, "titles": titles, "loss": losses, "error_deg": errs,
            "class": model.class_names[y], "true_class": model.class_names[int(batch["label"][i])]
            if int(batch["label"][i]) >= 0 else str(batch["category_name"][i])}


def pose_search_figure(trace: Mapping[str, Any], size: int = 320):
    """Plotly figure stepping through :func:`pose_search_trace` frames with a slider (and play)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frames_np = [(255 * f).astype(np.uint8) for f in trace["frames"]]
    n = len(frames_np)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5],
                        subplot_titles=("pose (orange: grid, green: refinement)", "eq-8 loss / error"))
    fig.add_trace(go.Image(z=frames_np[0]), row=1, col=1)
    xs = list(range(n))
    fig.add_trace(go.Scatter(x=xs, y=trace["loss"], mode="lines+markers", name="loss"), row=1, col=2)
    fig.add_trace(go.Scatter(x=xs, y=[e / 180.0 for e in trace["error_deg"]], mode="lines", name="error / 180 deg",
                             line=dict(dash="dot")), row=1, col=2)
    fig.add_trace(go.Scatter(x=[0], y=[trace["loss"][0]], mode="markers", marker=dict(size=12, color="red"),
                             name="current"), row=1, col=2)
    fig.frames = [go.Frame(data=[go.Image(z=frames_np[k]), go.Scatter(), go.Scatter(),
                                 go.Scatter(x=[k], y=[trace["loss"][k]])],
                           traces=[0, 1, 2, 3], name=str(k),
                           layout=dict(annotations=[dict(text=f"{trace['titles'][k]}: error "
                                                         f"{trace['error_deg'][k]:.1f} deg", x=0.25, y=1.08,
                                                         xref="paper", yref="paper", showarrow=False)]))
                  for k in range(n)]
    steps = [dict(method="animate", label=str(k), args=[[str(k)], dict(mode="immediate", frame=dict(duration=0),
                                                                         transition=dict(duration=0))])
             for k in range(n)]
    fig.update_layout(
        width=2 * size + 80, height=size + 120, showlegend=True,
        title=f"render-and-compare with the '{trace['class']}' mesh (true class: {trace['true_class']})",
        sliders=[dict(steps=steps, active=0, currentvalue=dict(prefix="frame "), pad=dict(t=30))],
        updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.15, buttons=[
            dict(label="play", method="animate", args=[None, dict(frame=dict(duration=150), fromcurrent=True)])])])
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    return fig


def pose_search_widget(trace: Mapping[str, Any], size: int = 256):
    """ipywidgets version: ``(container, handles)`` with an ``IntSlider`` over the frames."""
    import ipywidgets as W

    from ...viz._util import png_bytes

    frames = [(255 * f).astype(np.uint8) for f in trace["frames"]]
    img = W.Image(value=png_bytes(frames[0]), format="png", width=size, height=size)
    slider = W.IntSlider(value=0, min=0, max=len(frames) - 1, description="step", continuous_update=True)
    play = W.Play(value=0, min=0, max=len(frames) - 1, interval=150)
    W.jslink((play, "value"), (slider, "value"))
    label = W.HTML()

    def show(k: int) -> None:
        img.value = png_bytes(frames[k])
        label.value = (f"<b>{trace['titles'][k]}</b>: loss {trace['loss'][k]:.4f}, "
                       f"error {trace['error_deg'][k]:.1f} deg (mesh of '{trace['class']}')")

    slider.observe(lambda ch: show(int(ch["new"])), names="value")
    show(0)
    box = W.VBox([W.HBox([play, slider]), img, label])
    return box, {"slider": slider, "play": play, "image": img, "label": label, "show": show}


def confusion_history_figure(history: Sequence, class_names: Sequence[str], size: int = 480):
    """Heatmap of the confusion weights at each recomputation, with a slider over the steps.

    ``history`` is ``ConfusionSchedule.history`` (``[(step, omega (Y, Y))]``), e.g. from the run's
    checkpoint (``checkpoint["extra"]["confusion"]["history"]``).
    """
    import plotly.graph_objects as go

    if not history:
        history = [(0, torch.ones(len(class_names), len(class_names)) - torch.eye(len(class_names)))]
    zs = [np.asarray(w.cpu() if isinstance(w, torch.Tensor) else w, dtype=float) for _, w in history]
    steps = [int(s) for s, _ in history]
    Y = len(class_names)
    off = ~np.eye(Y, dtype=bool)
    spars = [float((z[off] == 0).mean()) for z in zs]

    def heat(z):
        return go.Heatmap(z=z, x=list(class_names), y=list(class_names), zmin=0, zmax=1, colorscale="Blues",
                          hovertemplate="y=%{y}<br>y'=%{x}<br>w=%{z:.3f}<extra></extra>")

    fig = go.Figure(data=[heat(zs[0])],
                    frames=[go.Frame(data=[heat(z)], name=str(k),
                                     layout=dict(title=f"confusion weights after step {s}: "
                                                       f"{100 * sp:.0f}% of class pairs dropped"))
                            for k, (z, s, sp) in enumerate(zip(zs, steps, spars))])
    fig.update_layout(
        title=f"confusion weights after step {steps[0]}: {100 * spars[0]:.0f}% of class pairs dropped",
        width=size + 120, height=size + 140, yaxis=dict(autorange="reversed", title="class y"),
        xaxis=dict(title="contrasted class y'"),
        sliders=[dict(active=0, currentvalue=dict(prefix="recomputation "), pad=dict(t=40),
                      steps=[dict(method="animate", label=str(s),
                                  args=[[str(k)], dict(mode="immediate", frame=dict(duration=0))])
                             for k, s in enumerate(steps)])])
    return fig


def load_confusion_history(run_dir: str | Path) -> list:
    """``[(step, omega)]`` stored in a run's checkpoint (empty when the run has none)."""
    from ...train import load_checkpoint

    p = Path(run_dir) / "checkpoint.pt"
    if not p.is_file():
        return []
    ck = load_checkpoint(p)
    st = ck.get("extra", {}).get("confusion")
    return [(int(s), w) for s, w in st["history"]] if st else []


def ablation_launcher(data, run_root: str | Path, splits: Sequence[str] = ("test", "occ_l2")) -> Callable:
    """``launch(cfg, progress)`` for :func:`workbench.viz.widgets.ablation_panel`: trains ``cfg`` into a
    fresh folder under ``run_root``, evaluates ``splits`` and returns their accuracy/pose metrics and
    the training time."""
    import time

    from .evaluate import evaluate
    from .train import train

    counter = {"n": 0}

    def launch(cfg, progress=None) -> dict:
        counter["n"] += 1
        run_dir = Path(run_root) / f"ablation-{int(time.time())}-{counter['n']}"
        cbs = []
        if progress is not None:
            from ...train import LambdaCallback

            total = cfg.train.iterations
            cbs.append(LambdaCallback(on_step_end=lambda t, s, logs: progress(s, total, "training")))
        t0 = time.perf_counter()
        summary = train(cfg, run_dir, callbacks=cbs, data=data)
        t_train = time.perf_counter() - t0
        m = evaluate(cfg, run_dir, data=data, splits=list(splits))
        out = {k: v for k, v in m.items() if k.endswith((".acc", ".pose_acc_pi6"))}
        out["train_s"] = t_train
        if "omega_sparsity" in summary:
            out["omega_sparsity"] = summary["omega_sparsity"]
        return out

    return launch


ABLATION_FIELDS = ("loss.contrast", "loss.n_sample", "loss.use_weights", "loss.weight_threshold", "model.kappa",
                   "bank.momentum", "train.iterations")


def ablation_exclude(cfg, keep: Sequence[str] = ABLATION_FIELDS) -> list[str]:
    """Dotted config keys to hide in the ablation panel: everything but ``keep``."""
    from ...eval.results import flatten

    keys = list(flatten(cfg.to_dict()))
    return [k for k in keys if k not in keep]
