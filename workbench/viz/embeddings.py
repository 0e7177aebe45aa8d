"""Embedding explorer (static part): UMAP/PCA projection and a 2D/3D scatter coloured by labels.

:func:`umap_embed` projects ``(N, D)`` features to 2 or 3 dimensions with umap-learn (PCA as an
explicit alternative). :func:`embedding_figure` draws them with one trace per category (so the
legend toggles categories), hover text with the labels, and optionally image thumbnails placed
on the 2D plot. The interactive explorer with hover thumbnails and lasso selection is
:func:`workbench.viz.widgets.embedding_explorer`.

Note: umap-learn compiles with numba on first use (about 10-15 s per process on a 2-core CPU);
later fits in the same process are fast. Keep N at a few thousand in the smoke/quick profiles.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..core.errors import ShapeError
from ._util import palette_color, png_data_uri, thumbnail, to_numpy

logger = logging.getLogger(__name__)


def pca_embed(features: Any, n_components: int = 2) -> np.ndarray:
    """Principal components of centred features: ``(N, D)`` -> ``(N, n_components)``."""
    x = to_numpy(features, np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out = u[:, :n_components] * s[:n_components]
    if out.shape[1] < n_components:
        out = np.pad(out, ((0, 0), (0, n_components - out.shape[1])))
    return out


def umap_embed(features: Any, n_components: int = 2, *, n_neighbors: int = 15, min_dist: float = 0.1,
               metric: str = "euclidean", seed: int | None = 0, method: str = "umap") -> np.ndarray:
    """Project ``(N, D)`` features to ``(N, n_components)`` (2 or 3).

    Args:
        method: ``"umap"`` (umap-learn, ``n_neighbors`` clipped to N-1) or ``"pca"``.
        metric: UMAP metric, e.g. ``"euclidean"`` or ``"cosine"`` (for L2-normalised embeddings).
        seed: fixes UMAP's randomness (UMAP then runs single-threaded, reproducibly); ``None``
            allows parallel, non-deterministic runs.
    Raises:
        ShapeError: features are not 2D, contain NaN/inf, or ``n_components`` is not 2 or 3.
    """
    x = to_numpy(features, np.float32)
    if x.ndim != 2:
        raise ShapeError(f"features: expected (N, D), got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ShapeError(f"features: {bad} rows contain NaN or inf")
    if n_components not in (2, 3):
        raise ShapeError(f"n_components must be 2 or 3, got {n_components}")
    n = x.shape[0]
    if method == "pca":
        return pca_embed(x, n_components)
    if method != "umap":
        raise ValueError(f"method must be 'umap' or 'pca', got '{method}'")
    if n <= n_components + 2:
        logger.warning("only %d points: using PCA instead of UMAP", n)
        return pca_embed(x, n_components)
    try:
        import umap
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("umap-learn is not installed (pip install umap-learn), or use method='pca'") from e
    reducer = umap.UMAP(n_components=n_components, n_neighbors=max(2, min(n_neighbors, n - 1)),
                        min_dist=min_dist, metric=metric, random_state=seed,
                        init="spectral" if n > n_components + 10 else "random")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", message=".*k >= N.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        return np.asarray(reducer.fit_transform(x), np.float64)


def _as_label_table(labels: Any, n: int) -> dict[str, list]:
    if labels is None:
        return {}
    if hasattr(labels, "to_dict") and hasattr(labels, "columns"):
        labels = {c: list(labels[c]) for c in labels.columns}
    if not isinstance(labels, Mapping):
        labels = {"label": list(labels)}
    out = {}
    for k, v in labels.items():
        vv = list(to_numpy(v)) if hasattr(v, "shape") else list(v)
        if len(vv) != n:
            raise ShapeError(f"labels['{k}']: expected {n} values, got {len(vv)}")
        out[str(k)] = vv
    return out


def embedding_figure(coords: Any, labels: Any = None, *, color_by: str | None = None,
                     hover: Sequence[str] | None = None, images: Any = None, show_images: int = 0,
                     image_size: float | None = None, marker_size: float = 6.0, title: str | None = None,
                     height: int = 520, width: int | None = None, colorscale: str = "Viridis",
                     max_categories: int = 40) -> go.Figure:
    """Scatter of 2D/3D embedding coordinates.

    Args:
        coords: ``(N, 2)`` or ``(N, 3)`` (e.g. from :func:`umap_embed`).
        labels: a DataFrame or ``{column: values}`` (e.g. ``category``, ``instance``, ``azimuth``).
        color_by: a label column. Categorical columns (strings, or integers with at most
            ``max_categories`` values) get one trace per value and a legend; numeric ones a colour bar.
        hover: label columns shown on hover (default: all).
        images: optional ``(N, 3, H, W)`` or a list, used when ``show_images > 0`` to place that
            many thumbnails (an even subset) on the 2D plot.
    Returns:
        A figure whose traces carry ``customdata[:, 0]`` = the point's row index in ``coords``.
    """
    xy = to_numpy(coords, np.float64)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3):
        raise ShapeError(f"coords: expected (N, 2) or (N, 3), got {tuple(xy.shape)}")
    n, dim = xy.shape
    table = _as_label_table(labels, n)
    if color_by is not None and color_by not in table:
        raise ShapeError(f"color_by='{color_by}' is not a label column (have: {', '.join(table) or 'none'})")
    hover_cols = list(hover) if hover is not None else list(table)
    for c in hover_cols:
        if c not in table:
            raise ShapeError(f"hover column '{c}' is not a label column")
    idx = np.arange(n)
    hov_text = ["<br>".join([f"#{i}"] + [f"{c}: {_fmt(table[c][i])}" for c in hover_cols]) for i in range(n)]

    def make(sel: np.ndarray, name: str, color: Any, showscale: bool = False, showlegend: bool = True) -> go.BaseTraceType:
        marker = dict(size=marker_size if dim == 2 else marker_size * 0.6, color=color, opacity=0.85,
                      line=dict(width=0.5, color="white") if dim == 2 else None)
        if showscale:
            marker.update(colorscale=colorscale, showscale=True, colorbar=dict(title=dict(text=color_by)))
        common = dict(mode="markers", name=name, marker=marker, customdata=idx[sel][:, None],
                      hovertext=[hov_text[i] for i in sel], hoverinfo="text", showlegend=showlegend)
        if dim == 2:
            return go.Scattergl(x=xy[sel, 0], y=xy[sel, 1], **common) if n > 5000 else \
                go.Scatter(x=xy[sel, 0], y=xy[sel, 1], **common)
        return go.Scatter3d(x=xy[sel, 0], y=xy[sel, 1], z=xy[sel, 2], **common)

    fig = go.Figure()
    if color_by is None:
        fig.add_trace(make(idx, "points", palette_color(0), showlegend=False))
    else:
        vals = table[color_by]
        if _is_categorical(vals, max_categories):
            cats = sorted(set(vals), key=_sort_key)
            for k, cval in enumerate(cats):
                sel = np.array([i for i in range(n) if vals[i] == cval], dtype=int)
                fig.add_trace(make(sel, _fmt(cval), palette_color(k)))
        else:
            fig.add_trace(make(idx, color_by, np.asarray(vals, np.float64), showscale=True, showlegend=False))
    if show_images and images is not None and dim == 2:
        from ._util import as_image_list

        ims = as_image_list(images)
        if len(ims) != n:
            raise ShapeError(f"images: expected {n}, got {len(ims)}")
        span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-9))
        size = image_size or span * 0.07
        pick = np.linspace(0, n - 1, min(show_images, n)).round().astype(int)
        for i in pick:
            fig.add_layout_image(source=png_data_uri(thumbnail(ims[i], 64)), x=xy[i, 0], y=xy[i, 1],
                                 xref="x", yref="y", sizex=size, sizey=size, xanchor="center",
                                 yanchor="middle", layer="above", opacity=0.95)
    kw: dict[str, Any] = dict(title=title, height=height, width=width, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                              legend=dict(itemsizing="constant", title=dict(text=color_by or "")),
                              dragmode="lasso" if dim == 2 else "orbit")
    if dim == 2:
        fig.update_xaxes(title="dim 1", showticklabels=False, zeroline=False)
        fig.update_yaxes(title="dim 2", showticklabels=False, zeroline=False, scaleanchor="x")
        kw["plot_bgcolor"] = "#f7f7f7"
    else:
        kw["scene"] = dict(xaxis=dict(title="dim 1", showticklabels=False), yaxis=dict(title="dim 2", showticklabels=False),
                           zaxis=dict(title="dim 3", showticklabels=False), aspectmode="cube")
    fig.update_layout(**kw)
    return fig


def point_indices(fig: go.Figure, trace_index: int, point_inds: Sequence[int]) -> list[int]:
    """Global row indices of points ``point_inds`` of trace ``trace_index`` (via ``customdata``)."""
    cd = fig.data[trace_index].customdata
    if cd is None:
        return list(point_inds)
    return [int(cd[i][0]) for i in point_inds]


def _is_categorical(vals: list, max_categories: int) -> bool:
    if any(isinstance(v, (str, bool, np.bool_)) for v in vals):
        return True
    try:
        arr = np.asarray(vals, np.float64)
    except (TypeError, ValueError):
        return True
    if np.all(np.mod(arr, 1) == 0) and len(set(vals)) <= max_categories:
        return True
    return False


def _sort_key(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating)) else (1, 0.0, str(v))


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)
