"""PiRO figures built from :mod:`workbench.viz`: rho curves (Fig. 6), embedding spaces (Fig. 5),
retrieval galleries, and the embedding-dimension ablation (Fig. 7).

Every function returns a plotly figure, or ``(container, handles)`` for widgets, and never
displays anything itself.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ...core.errors import DataError

log = logging.getLogger(__name__)

RHO_METRICS = ("train.rho_obj", "train.d_intra_max_obj", "train.d_inter_min_obj")


def rho_curves(runs: Mapping[str, str | Path], metrics: Sequence[str] = RHO_METRICS, title: str | None = None):
    """Fig. 6: ``d_intra^max``, ``d_inter^min`` and ``rho`` of the object space over training.

    ``runs``: ``{label: run_dir}`` (e.g. ``{"single": ..., "dual": ...}``); reads the ``eval`` rows
    of each ``metrics.csv``. ``title=""`` draws no title.
    """
    from ...viz import load_metrics, training_curves

    frames = {}
    for name, path in runs.items():
        df = load_metrics(path)
        if "phase" in df.columns:
            df = df[df["phase"] == "eval"]
        frames[name] = df
    present = [m for m in metrics if any(m in f.columns for f in frames.values())]
    if not present:
        raise DataError(f"no rho metrics ({', '.join(metrics)}) in the runs' metrics.csv")
    if title is None:
        title = "Fig. 6: object-space separation over training (rho = d_inter^min / d_intra^max)"
    return training_curves(frames, present, ncols=len(present), title=title or None)


def confusable_categories(emb: Mapping[str, torch.Tensor], n: int = 5, space: str = "cat") -> list[int]:
    """The ``n`` categories whose mean MV embeddings are closest together (a greedy clique).

    Starts from the closest pair of category centroids and adds the category with the smallest
    mean distance to those chosen. Used to pick the "five confusable categories" of Fig. 5.
    """
    cats = emb["categories"]
    uniq = cats.unique()
    if len(uniq) <= n:
        return [int(c) for c in uniq]
    mv = torch.nn.functional.normalize(emb[f"{space}_mv"].float(), dim=-1)
    cent = torch.stack([mv[cats == c].mean(0) for c in uniq])
    d = torch.cdist(cent, cent) + torch.eye(len(uniq)) * 1e9
    i, j = divmod(int(d.argmin()), len(uniq))
    chosen = [i, j]
    while len(chosen) < n:
        rest = [k for k in range(len(uniq)) if k not in chosen]
        k = min(rest, key=lambda r: float(d[r, chosen].mean()))
        chosen.append(k)
    return [int(uniq[k]) for k in chosen]


def space_points(emb: Mapping[str, torch.Tensor], space: str, categories: Sequence[int] | None = None,
                 category_names: Sequence[str] | None = None) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """SV embeddings of one space (``"obj"``/``"cat"``) of the chosen categories as rows.

    Returns ``(features (M, D), labels DataFrame (category, object, view), (object_index, view) (M, 2))``.
    """
    sv = emb[f"{space}_sv"]
    cats = emb["categories"]
    keep = torch.ones_like(cats, dtype=torch.bool) if categories is None else \
        torch.isin(cats, torch.as_tensor(list(categories)))
    idx = torch.nonzero(keep).squeeze(1)
    v = sv.shape[1]
    feats = sv[idx].reshape(len(idx) * v, -1).numpy()
    obj_idx = idx.repeat_interleave(v).numpy()
    views = np.tile(np.arange(v), len(idx))
    names = [category_names[int(c)] if category_names else str(int(c)) for c in cats[idx].repeat_interleave(v)]
    labels = pd.DataFrame({"category": names, "object": [f"obj {int(emb['objects'][i])}" for i in obj_idx],
                           "view": views})
    return feats, labels, np.stack([obj_idx, views], 1)


def embedding_spaces(emb: Mapping[str, torch.Tensor], images: torch.Tensor | None = None, categories=None,
                     category_names: Sequence[str] | None = None, method: str = "umap", seed: int = 0,
                     interactive: bool = True):
    """Fig. 5: the object space and the category space of the same views, side by side.

    Args:
        emb: test embeddings (``embeddings.pt``'s ``"test"`` dict or :func:`~.train.embed_split`).
        images: ``(N, V, 3, H, W)`` images of those objects (thumbnails on hover), optional.
        categories: category indices to show (default: the five most confusable).
        method: ``"umap"`` or ``"pca"`` (no numba compile; used by the smoke profile).
        interactive: return two :func:`workbench.viz.widgets.embedding_explorer` widgets in an HBox
            (``(container, {"object": handles, "category": handles})``); else two figures.
    """
    from ...viz import embedding_figure, umap_embed

    cats = list(categories) if categories is not None else confusable_categories(emb)
    out = {}
    for space, label in (("obj", "object"), ("cat", "category")):
        feats, labels, where = space_points(emb, space, cats, category_names)
        xy = umap_embed(feats, method=method, metric="cosine" if method == "umap" else "euclidean", seed=seed)
        ims = None
        if images is not None:
            ims = images[torch.as_tensor(where[:, 0]), torch.as_tensor(where[:, 1])]
            ims = ims.float() / 255.0 if ims.dtype == torch.uint8 else ims
        out[label] = (xy, labels, ims)
    if not interactive:
        return {k: embedding_figure(xy, lab, color_by="object" if k == "object" else "category",
                                    title=f"{k} space") for k, (xy, lab, _) in out.items()}
    import ipywidgets as W

    from ...viz.widgets import embedding_explorer

    boxes, handles = [], {}
    for k, (xy, lab, ims) in out.items():
        box, h = embedding_explorer(xy, lab, images=ims, color_by="category" if k == "category" else "object",
                                    height=420)
        boxes.append(W.VBox([W.HTML(f"<b>{k} space</b>"), box]))
        handles[k] = h
    return W.HBox(boxes), handles


def retrieval_gallery(emb: Mapping[str, torch.Tensor], images: torch.Tensor, queries: Sequence[tuple[int, int]],
                      k: int = 5, space: str = "obj", category_names: Sequence[str] | None = None):
    """Single-view retrieval: each row is a query view and its top-k other test views.

    Args:
        emb: test embeddings; images: ``(N, V, 3, H, W)`` of the same objects.
        queries: ``(object index, view)`` pairs.
        space: ``"obj"`` (object retrieval: the same object's other views are relevant) or ``"cat"``.
    Titles mark hits with ✓ (same object for ``obj``, same category for ``cat``).
    """
    from ...viz import image_grid

    sv = emb[f"{space}_sv"]
    n, v = sv.shape[:2]
    flat = sv.reshape(n * v, -1)
    cats, objs = emb["categories"], torch.arange(n)
    tiles, titles = [], []

    def name(c):
        return category_names[int(c)] if category_names else str(int(c))

    for o, view in queries:
        q = o * v + view
        d = torch.cdist(flat[q:q + 1], flat)[0]
        d[q] = float("inf")
        top = torch.argsort(d, stable=True)[:k]
        tiles.append(images[o, view])
        titles.append(f"query {name(cats[o])} #{int(emb['objects'][o])}")
        for r, t in enumerate(top.tolist()):
            to, tv = divmod(t, v)
            hit = (to == o) if space == "obj" else (cats[to] == cats[o])
            tiles.append(images[to, tv])
            titles.append(f"{r + 1}. {'✓' if hit else '✗'} {name(cats[to])} #{int(emb['objects'][to])}")
    tiles_t = torch.stack([t.float() / 255.0 if t.dtype == torch.uint8 else t for t in tiles])
    return image_grid(tiles_t, titles=titles, ncols=k + 1, cell_size=120,
                      title=f"{'object' if space == 'obj' else 'category'}-space retrieval: query + top-{k}")


def dimension_ablation(launch: Callable[[int, int], Mapping[str, float]], dims: Sequence[int] = (16, 32, 64, 128),
                       metrics: Sequence[str] = ("sv_cat_acc", "sv_obj_acc", "sv_cat_map", "sv_obj_map")):
    """Fig. 7 as a widget: pick the category and object embedding sizes with sliders, train, plot.

    Args:
        launch: ``launch(cat_dim, obj_dim) -> metrics`` (a short train + evaluate).
        dims: the slider positions.
    Returns:
        ``(container, handles)``; handles: ``cat_dim``/``obj_dim`` (SelectionSlider), ``run``
        (Button), ``figure`` (FigureWidget: metrics vs dimension), ``results`` (dict
        ``(cat_dim, obj_dim) -> metrics``), ``run_dims(cat_dim, obj_dim)`` (what the button calls),
        ``table()`` (DataFrame), ``status`` (HTML).
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    from ...viz._util import palette_color

    dims = [int(d) for d in dims]
    cat_s = W.SelectionSlider(options=dims, value=dims[len(dims) // 2], description="category dim",
                              continuous_update=False, style={"description_width": "110px"})
    obj_s = W.SelectionSlider(options=dims, value=dims[len(dims) // 2], description="object dim",
                              continuous_update=False, style={"description_width": "110px"})
    run = W.Button(description="train + evaluate", button_style="primary", icon="play")
    status = W.HTML("<i>pick the sizes and press the button</i>")
    fig = go.FigureWidget()
    fig.update_layout(height=360, width=720, title="Fig. 7: performance vs embedding dimension",
                      xaxis=dict(title="embedding dimension (category = object, or as chosen)", type="log"),
                      yaxis=dict(title="x100"), margin=dict(l=50, r=10, t=50, b=40))
    results: dict[tuple[int, int], dict] = {}

    def table() -> pd.DataFrame:
        rows = [{"cat_dim": c, "obj_dim": o, **{m: r.get(m, np.nan) for m in metrics}} for (c, o), r in results.items()]
        return pd.DataFrame(rows).sort_values(["obj_dim", "cat_dim"]) if rows else pd.DataFrame()

    def redraw() -> None:
        df = table()
        with fig.batch_update():
            fig.data = []
            for i, m in enumerate(metrics):
                space = "obj_dim" if "obj" in m else "cat_dim"
                sub = df.groupby(space, as_index=False)[m].mean() if len(df) else df
                fig.add_scatter(x=sub[space] if len(sub) else [], y=sub[m] if len(sub) else [],
                                mode="lines+markers", name=f"{m} (vs {space})", line=dict(color=palette_color(i)))

    def run_dims(cat_dim: int, obj_dim: int) -> dict:
        key = (int(cat_dim), int(obj_dim))
        if key not in results:
            status.value = f"training cat_dim={key[0]}, obj_dim={key[1]}..."
            results[key] = dict(launch(*key))
        status.value = (f"cat_dim={key[0]}, obj_dim={key[1]}: " +
                        ", ".join(f"{m}={results[key].get(m, float('nan')):.1f}" for m in metrics))
        redraw()
        return results[key]

    run.on_click(lambda _: run_dims(cat_s.value, obj_s.value))
    box = W.VBox([W.HBox([cat_s, obj_s, run]), status, fig])
    return box, {"cat_dim": cat_s, "obj_dim": obj_s, "run": run, "figure": fig, "results": results,
                 "run_dims": run_dims, "table": table, "status": status}


def write_run_figures(run_dir: str | Path, test_emb: Mapping[str, torch.Tensor], test_images: torch.Tensor | None,
                      category_names: Sequence[str] | None = None) -> list[Path]:
    """Export a run's figures to ``run_dir/figures`` (PNG; the report embeds them).

    ``rho.png``: Fig. 6 curves of this run; ``retrieval_obj.png``: three object-space queries
    with their top-5. Export problems are logged, never raised (figures are a by-product).
    """
    from ...viz import export

    run_dir = Path(run_dir)
    out = []
    jobs = []
    if (run_dir / "metrics.csv").is_file():
        jobs.append(("rho.png", lambda: rho_curves({run_dir.name: run_dir}, title="")))
    if test_images is not None and len(test_emb["categories"]) > 0:
        n = len(test_emb["categories"])
        queries = [(o, 0) for o in range(0, n, max(1, n // 3))][:3]
        jobs.append(("retrieval_obj.png", lambda: retrieval_gallery(test_emb, test_images, queries, k=5, space="obj",
                                                                    category_names=category_names)))
    for name, make in jobs:
        try:
            res = export(make(), run_dir / "figures" / name)
            out.extend(res.paths)
        except Exception as e:  # noqa: BLE001 - a figure must never fail an evaluation
            log.warning("piro: could not write %s: %s", name, e)
    return out
