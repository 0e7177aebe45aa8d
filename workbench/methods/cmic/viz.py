"""CMIC figures and notebook tools, built from :mod:`workbench.viz`.

* :func:`retrieval_gallery` -- queries and their top-k shapes (one render each; green = correct).
* :func:`retrieved_meshes_figure` -- the top-k shapes of one query in the 3D mesh viewer.
* :func:`attention_figure` -- a query's attention weights over the 12 views of a shape.
* :func:`query_embedding_coords` / :func:`embedding_explorers` -- the query embedding space
  (paper Fig. 4, with and without the category loss) in the embedding explorer.
* :func:`colour_transfer_widget` -- pick a target and a colour source image, see the transfer.
* :func:`save_run_figures` -- the figures ``evaluate`` writes into ``run_dir/figures/``.

Everything returns figures or ``(container, handles)`` and never displays anything.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...core.errors import DataError
from .colour import COLOUR_SPACES, colour_transfer
from .data import RetrievalData

log = logging.getLogger(__name__)


def _best_view(data: RetrievalData, repo: str, row: int, view: int = 1) -> torch.Tensor:
    r = getattr(data, repo)
    return r.get([row])[0, view]  # (1, H, W)


def retrieval_gallery(data: RetrievalData, predictions: dict, queries: Sequence[int], k: int = 5,
                      repository: str = "seen", view: int = 1, cell_size: int = 110):
    """Grid: one row per query (the query image, then its top-``k`` shapes as one grey render each).

    Titles give the rank, the score and whether the shape is the ground truth (seen repository).
    """
    from ...viz import image_grid

    topk = predictions[f"{repository}_topk"]
    scores = predictions[f"{repository}_scores"]
    gt = predictions["gt"]
    repo = getattr(data, repository)
    images, titles = [], []
    for j in queries:
        img, _ = data.test.get([int(predictions["query_index"][j])])
        images.append(img[0].numpy())
        titles.append(f"query {j} ({data.categories[int(data.test.categories[j])]})")
        for r in range(k):
            s = int(topk[j, r])
            ren = repo.get([s])[0, view].expand(3, -1, -1).numpy()
            ok = repository == "seen" and s == int(gt[j])
            titles.append(f"#{r + 1} {'✓ ' if ok else ''}{data.categories[int(repo.categories[s])]} "
                          f"{float(scores[j, r]):.2f}")
            images.append(ren)
    return image_grid(images, titles=titles, ncols=k + 1, cell_size=cell_size,
                      title=f"top-{k} retrieval ({repository} repository)")


def retrieved_meshes_figure(data: RetrievalData, predictions: dict, query: int, k: int = 5,
                            repository: str = "seen", height: int = 320):
    """The ground-truth shape and the top-``k`` retrieved meshes of one query, in the 3D viewer."""
    from ...geometry import load_ply
    from ...viz import mesh_figure

    repo = getattr(data, repository)
    rows = [int(s) for s in predictions[f"{repository}_topk"][query, :k]]
    gt = int(predictions["gt"][query])
    meshes, names = [], []
    if gt >= 0 and data.seen.mesh_paths[gt]:
        v, f = load_ply(data.seen.mesh_paths[gt])[:2]
        meshes.append((v, f)), names.append("ground truth")
    for r, s in enumerate(rows):
        if not repo.mesh_paths[s]:
            raise DataError(f"shape {int(repo.shape_ids[s])} has no mesh path")
        v, f = load_ply(repo.mesh_paths[s])[:2]
        meshes.append((v, f))
        names.append(f"#{r + 1}{' ✓' if repository == 'seen' and s == gt else ''}")
    return mesh_figure(meshes, names=names, height=height)


@torch.no_grad()
def attention_weights(model, data: RetrievalData, query: int, shapes: Sequence[int], cfg) -> torch.Tensor:
    """Attention ``(len(shapes), M)`` of test query ``query`` over the views of seen shapes ``shapes``."""
    from .augment import resize

    model.eval()
    dev = next(model.parameters()).device
    img, mask = data.test.get([query])
    q = model.embed_queries(resize(img.to(dev), cfg.model.image_size), resize(mask.to(dev), cfg.model.image_size))
    r = model.embed_views(resize(data.seen.get(list(shapes)).to(dev), cfg.model.render_size))
    return model.attention.weights(q, r)[0].cpu()


def attention_figure(model, data: RetrievalData, query: int, shape: int, cfg, cell_size: int = 90):
    """The query, then the 12 views of ``shape`` titled with their attention weight, and a bar chart."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ...viz._util import to_hwc_image

    w = attention_weights(model, data, query, [shape], cfg)[0].numpy()
    views = data.seen.get([shape])[0]  # (M, 1, H, W)
    M = views.shape[0]
    img, _ = data.test.get([query])
    fig = make_subplots(rows=2, cols=M + 1, specs=[[{"type": "image"}] * (M + 1), [{"colspan": M + 1}] + [None] * M],
                        row_heights=[0.45, 0.55], vertical_spacing=0.08, horizontal_spacing=0.005,
                        subplot_titles=["query"] + [f"v{m}: {w[m]:.2f}" for m in range(M)] + ["attention over views"])
    fig.add_trace(go.Image(z=(to_hwc_image(img[0].numpy()) * 255).astype(np.uint8)), 1, 1)
    for m in range(M):
        fig.add_trace(go.Image(z=(to_hwc_image(views[m].expand(3, -1, -1).numpy()) * 255).astype(np.uint8)), 1, m + 2)
    fig.add_trace(go.Bar(x=[f"v{m}" for m in range(M)], y=w, marker_color="#4c78a8", name="weight"), 2, 1)
    fig.add_hline(y=1 / M, line_dash="dot", row=2, col=1, annotation_text="uniform")
    fig.update_xaxes(visible=False, row=1)
    fig.update_yaxes(visible=False, row=1)
    fig.update_layout(height=2 * cell_size + 220, width=(M + 1) * cell_size, showlegend=False,
                      title=f"query {query} vs shape {int(data.seen.shape_ids[shape])}", margin=dict(l=10, r=10, t=60, b=10))
    fig.update_annotations(font_size=10)
    return fig


@torch.no_grad()
def query_embedding_coords(model, data: RetrievalData, cfg, n: int = 300, method: str = "umap", seed: int = 0
                           ) -> tuple[np.ndarray, dict, np.ndarray]:
    """2D coordinates of the first ``n`` test-query embeddings, their labels and images.

    Returns:
        ``(coords (n, 2), labels {category, shape}, images (n, 3, H, W))``.
    """
    from ...viz import umap_embed
    from .evaluate import embed_queries

    q = embed_queries(model, data.test, cfg.model.image_size, limit=n).cpu().numpy()
    n = q.shape[0]
    coords = umap_embed(q, 2, metric="cosine", seed=seed, method=method)
    labels = {"category": [data.categories[int(c)] for c in data.test.categories[:n]],
              "shape": [int(s) for s in data.test.shape_ids[:n]]}
    images, _ = data.test.get(torch.arange(n))
    return coords, labels, images.numpy()


def embedding_explorers(models: dict, data: RetrievalData, cfg, n: int = 300, method: str = "umap"):
    """One embedding explorer per model (e.g. ``{"with L_cat": m1, "without L_cat": m2}``), side by side.

    Returns ``(container, handles)`` with ``handles[name]`` the explorer handles of each model.
    """
    import ipywidgets as W

    from ...viz.widgets import embedding_explorer

    boxes, handles = [], {}
    for name, model in models.items():
        coords, labels, images = query_embedding_coords(model, data, cfg, n, method)
        box, h = embedding_explorer(coords, labels, images=images, color_by="category", height=420)
        boxes.append(W.VBox([W.HTML(f"<b>{name}</b>"), box]))
        handles[name] = h
    return W.HBox(boxes) if len(boxes) > 1 else boxes[0], handles


def colour_transfer_widget(images: torch.Tensor, masks: torch.Tensor | None = None, size: int = 160):
    """Pick a target (content) and a colour-source image; see the transfer in each colour space.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1]; masks: optional ``(N, 1, H, W)`` (for masked statistics).

    Returns:
        ``(container, handles)``; handles: ``target``, ``source`` (IntSliders), ``space``
        (Dropdown), ``region`` (Dropdown), ``target_img``, ``source_img``, ``result_img`` (Image
        widgets), ``result()`` (the current ``(3, H, W)`` result tensor).
    """
    import ipywidgets as W

    from ...viz._util import png_bytes, to_hwc_image

    n = images.shape[0]
    target = W.IntSlider(value=0, min=0, max=n - 1, description="target")
    source = W.IntSlider(value=min(1, n - 1), min=0, max=n - 1, description="colour source")
    space = W.Dropdown(options=list(COLOUR_SPACES), value="lab_reinhard", description="space")
    region = W.Dropdown(options=["image", "mask"] if masks is not None else ["image"], value="image",
                        description="statistics")
    imgs = {k: W.Image(format="png", width=size, height=size) for k in ("target_img", "source_img", "result_img")}
    state: dict[str, Any] = {}

    def update(*_):
        t, s = int(target.value), int(source.value)
        m_t = m_s = None
        if region.value == "mask" and masks is not None:
            m_t, m_s = masks[t:t + 1], masks[s:s + 1]
        out = colour_transfer(images[t:t + 1], images[s:s + 1], space.value, target_mask=m_t, source_mask=m_s)[0]
        state["result"] = out
        for key, im in (("target_img", images[t]), ("source_img", images[s]), ("result_img", out)):
            imgs[key].value = png_bytes(to_hwc_image(im.numpy()))

    for w in (target, source, space, region):
        w.observe(update, names="value")
    update()
    labels = [W.VBox([W.HTML(t), imgs[k]]) for t, k in (("target (content)", "target_img"),
                                                       ("colour source", "source_img"), ("transfer", "result_img"))]
    box = W.VBox([W.HBox([target, source]), W.HBox([space, region]), W.HBox(labels)])
    handles = dict(target=target, source=source, space=space, region=region, result=lambda: state["result"], **imgs)
    return box, handles


def save_run_figures(cfg, run_dir: str | Path, data: RetrievalData, predictions: dict, n_queries: int = 6) -> list[Path]:
    """Write ``figures/retrieval_seen.png`` (and ``retrieval_unseen.png``) for the report."""
    from ...viz import export

    fig_dir = Path(run_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    n = len(predictions["gt"])
    rows = list(np.linspace(0, n - 1, min(n_queries, n)).round().astype(int)) if n else []
    out = []
    for repo in ("seen", "unseen"):
        if f"{repo}_topk" in predictions and rows:
            fig = retrieval_gallery(data, predictions, rows, k=5, repository=repo)
            res = export(fig, fig_dir / f"retrieval_{repo}.png")
            out.extend(getattr(res, "paths", []))
    return out
