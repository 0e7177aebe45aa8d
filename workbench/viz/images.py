"""Image grids with overlays: masks, keypoints, correspondences, rendered-vs-input comparisons.

Images are embedded as PNG data URIs (compact figures, fast widgets). Pixel coordinates follow
the project convention: ``(x, y)`` with x right, y down, origin at the top-left *corner* of the
image, so pixel ``(row i, col j)`` covers ``[j, j+1] x [i, i+1]`` and its centre is
``(j + 0.5, i + 0.5)``. Keypoints and correspondences are drawn in these coordinates.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import ShapeError
from ._util import (as_image_list, colormap, hex_to_rgb, palette_color, png_data_uri, sample_colorscale, to_mask,
                    to_numpy)


def overlay_mask(image: np.ndarray, mask: np.ndarray, color: str = "#00CC96", alpha: float = 0.45,
                 mode: str = "fill") -> np.ndarray:
    """Blend a mask into an ``(H, W, 3)`` image.

    ``mode="fill"`` tints the mask area with ``color`` at ``alpha``; ``"contour"`` paints the
    mask's one-pixel boundary. Soft masks (values in (0, 1)) tint proportionally.
    """
    img = image.astype(np.float32).copy()
    m = to_mask(mask)
    if m.shape != img.shape[:2]:
        raise ShapeError(f"mask shape {m.shape} does not match the image {img.shape[:2]}")
    col = np.asarray(hex_to_rgb(color), np.float32) / 255.0
    if mode == "fill":
        a = (alpha * m)[..., None]
        return img * (1 - a) + col * a
    if mode == "contour":
        b = m > 0.5
        inner = b.copy()
        inner[1:] &= b[:-1]
        inner[:-1] &= b[1:]
        inner[:, 1:] &= b[:, :-1]
        inner[:, :-1] &= b[:, 1:]
        edge = b & ~inner
        img[edge] = col
        return img
    raise ValueError(f"mode must be 'fill' or 'contour', got '{mode}'")


def _image_trace(img: np.ndarray) -> go.Image:
    # x0/y0 = 0.5: the first pixel's centre sits at (0.5, 0.5), matching the pixel convention
    return go.Image(source=png_data_uri(img), x0=0.5, y0=0.5, dx=1, dy=1, hoverinfo="x+y", name="image")


def _keypoint_traces(kp: np.ndarray, vis: np.ndarray | None, names: Sequence[str] | None,
                     size: float = 8.0) -> list[go.Scatter]:
    kp = to_numpy(kp, np.float64).reshape(-1, 2)
    v = np.ones(len(kp), bool) if vis is None else to_numpy(vis).reshape(-1).astype(bool)
    text = list(names) if names is not None else [str(k) for k in range(len(kp))]
    cols = [palette_color(k) for k in range(len(kp))]
    sym = ["circle" if b else "circle-open" for b in v]
    return [go.Scatter(x=kp[:, 0], y=kp[:, 1], mode="markers", text=text,
                       marker=dict(color=cols, size=size, symbol=sym, line=dict(width=1.5, color="white")),
                       hovertemplate="%{text}: (%{x:.1f}, %{y:.1f})<extra></extra>", showlegend=False,
                       name="keypoints")]


def image_grid(images: Any, *, titles: Sequence[str] | None = None, ncols: int | None = None,
               masks: Any = None, mask_alpha: float = 0.45, mask_mode: str = "fill",
               mask_colors: Sequence[str] | None = None,
               keypoints: Any = None, keypoints_visible: Any = None, keypoint_names: Sequence[str] | None = None,
               row_titles: Sequence[str] | None = None, cell_size: int = 170, title: str | None = None,
               spacing: float = 0.02) -> go.Figure:
    """A grid of images with optional mask and keypoint overlays.

    Args:
        images: ``(B, C, H, W)`` tensor/array or a list of images (any layout accepted by
            :func:`workbench.viz._util.to_hwc_image`).
        titles: one per image.
        ncols: columns (default ``min(B, 6)``).
        masks: ``(B, 1, H, W)``/list, or a mapping ``{label: masks}`` to overlay several (e.g.
            ground truth and prediction) with ``mask_colors`` and a legend.
        mask_mode: ``"fill"`` or ``"contour"``.
        keypoints: ``(B, K, 2)`` pixel coordinates; ``keypoints_visible`` ``(B, K)``; invisible
            keypoints are drawn hollow.
        row_titles: labels of the rows (e.g. "input", "rendered").
    """
    imgs = as_image_list(images)
    n = len(imgs)
    if n == 0:
        raise ShapeError("image_grid: no images")
    ncols = int(ncols or min(n, 6))
    nrows = math.ceil(n / ncols)
    mask_sets: dict[str, Any] = {}
    if masks is not None:
        mask_sets = dict(masks) if isinstance(masks, Mapping) else {"mask": masks}
    colors = list(mask_colors) if mask_colors else ["#00CC96", "#EF553B", "#636EFA", "#FFA15A"]
    for k, (label, ms) in enumerate(mask_sets.items()):
        ml = [ms[i] for i in range(len(ms))]
        if len(ml) != n:
            raise ShapeError(f"masks '{label}': expected {n}, got {len(ml)}")
        for i in range(n):
            imgs[i] = overlay_mask(imgs[i], ml[i], colors[k % len(colors)], mask_alpha, mask_mode)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=spacing, vertical_spacing=spacing * 2 + (0.06 if titles else 0.0) / max(nrows, 1),
                        row_titles=list(row_titles) if row_titles else None)
    for i, img in enumerate(imgs):
        r, c = i // ncols + 1, i % ncols + 1
        fig.add_trace(_image_trace(img), row=r, col=c)
        if keypoints is not None:
            vis = None if keypoints_visible is None else keypoints_visible[i]
            for tr in _keypoint_traces(keypoints[i], vis, keypoint_names):
                fig.add_trace(tr, row=r, col=c)
        h, w = img.shape[:2]
        fig.update_xaxes(range=[0, w], row=r, col=c)
        fig.update_yaxes(range=[h, 0], row=r, col=c)
    for k, label in enumerate(mask_sets if len(mask_sets) > 1 else []):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label,
                                 marker=dict(color=colors[k % len(colors)], size=10, symbol="square")))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_annotations(font_size=11 if cell_size >= 140 else 10)
    for i in range(n):
        r, c = i // ncols + 1, i % ncols + 1
        idx = (r - 1) * ncols + c
        fig.update_yaxes(scaleanchor=f"x{'' if idx == 1 else idx}", row=r, col=c)
    top = 40 if title else (24 if titles else 6)
    aspect = float(np.median([im.shape[0] / im.shape[1] for im in imgs]))
    cell_h = cell_size * aspect + (22 if titles else 0)
    fig.update_layout(title=title, height=int(nrows * cell_h + top + 10), width=ncols * cell_size + (40 if row_titles else 10),
                      margin=dict(l=5, r=5 + (30 if row_titles else 0), t=top, b=5), plot_bgcolor="white",
                      showlegend=len(mask_sets) > 1, legend=dict(orientation="h", y=-0.02))
    return fig


def correspondence_figure(image_a: Any, image_b: Any, points_a: Any, points_b: Any, *,
                          inliers: Any = None, scores: Any = None, max_lines: int = 150, gap: int = 8,
                          colorscale: str = "Viridis", title: str | None = None, seed: int = 0,
                          height: int = 320) -> go.Figure:
    """Two images side by side with lines between corresponding points.

    Args:
        points_a, points_b: ``(M, 2)`` pixel coordinates in their own image.
        inliers: optional ``(M,)`` bools: inliers green, outliers red.
        scores: optional ``(M,)`` values coloured with ``colorscale`` (ignored when ``inliers`` is given).
        max_lines: at most this many (a fixed random subset, ``seed``) are drawn.
    """
    a, b = as_image_list([image_a, image_b])
    pa = to_numpy(points_a, np.float64).reshape(-1, 2)
    pb = to_numpy(points_b, np.float64).reshape(-1, 2)
    if pa.shape != pb.shape:
        raise ShapeError(f"points_a {pa.shape} and points_b {pb.shape} must have the same shape")
    h = max(a.shape[0], b.shape[0])
    canvas = np.ones((h, a.shape[1] + gap + b.shape[1], 3), np.float32)
    canvas[: a.shape[0], : a.shape[1]] = a
    off = a.shape[1] + gap
    canvas[: b.shape[0], off:] = b
    m = len(pa)
    keep = np.arange(m)
    if m > max_lines:
        keep = np.sort(np.random.default_rng(seed).choice(m, max_lines, replace=False))
    fig = go.Figure(_image_trace(canvas))
    groups: list[tuple[str, np.ndarray, str]] = []
    if inliers is not None:
        inl = to_numpy(inliers).reshape(-1).astype(bool)[keep]
        groups = [("inlier", keep[inl], "#2CA02C"), ("outlier", keep[~inl], "#D62728")]
    elif scores is not None:
        s = to_numpy(scores, np.float64).reshape(-1)
        lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
        bins = np.clip(((s[keep] - lo) / (hi - lo + 1e-12) * 8).astype(int), 0, 7)
        cols = sample_colorscale((np.arange(8) + 0.5) / 8, 0, 1, colorscale)
        groups = [(f"score bin {k}", keep[bins == k], cols[k]) for k in range(8)]
    else:
        groups = [("match", keep, "#FFA15A")]
    for label, idx, col in groups:
        if len(idx) == 0:
            continue
        seg = np.full((3 * len(idx), 2), np.nan)
        seg[0::3] = pa[idx]
        seg[1::3] = pb[idx] + [off, 0]
        fig.add_trace(go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines+markers", name=label,
                                 line=dict(color=col, width=1.2), marker=dict(size=4, color=col),
                                 hoverinfo="skip", showlegend=inliers is not None))
    fig.update_xaxes(visible=False, range=[0, canvas.shape[1]])
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x")
    fig.update_layout(title=title, height=height, width=int(height * canvas.shape[1] / h) + 20,
                      margin=dict(l=5, r=5, t=40 if title else 5, b=5), plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.05))
    fig.layout.meta = {"n_matches": int(m), "n_drawn": int(len(keep))}
    return fig


def error_image(a: np.ndarray, b: np.ndarray, colorscale: str = "Inferno", vmax: float | None = None) -> np.ndarray:
    """Per-pixel mean absolute difference of two ``(H, W, 3)`` images as a colour-mapped image."""
    d = np.abs(a - b).mean(axis=-1)
    vmax = float(d.max()) if vmax is None else vmax
    return colormap(d, 0.0, max(vmax, 1e-8), colorscale).reshape(*d.shape, 3).astype(np.float32)


def render_comparison(inputs: Any, rendered: Any, *, masks: Any = None, titles: Sequence[str] | None = None,
                      cell_size: int = 150, title: str | None = None, with_error: bool = True) -> go.Figure:
    """Input vs rendered images: rows "input", "rendered", "overlay" (50/50 blend, or the render
    pasted inside ``masks``), and "|error|" (mean absolute difference, colour-mapped).

    ``inputs`` and ``rendered``: ``(B, 3, H, W)`` or lists of images of equal sizes.
    """
    ins = as_image_list(inputs, "inputs")
    ren = as_image_list(rendered, "rendered")
    if len(ins) != len(ren):
        raise ShapeError(f"{len(ins)} inputs but {len(ren)} rendered images")
    ml = None if masks is None else [to_mask(masks[i]) for i in range(len(ins))]
    rows: list[list[np.ndarray]] = [ins, ren, [], []]
    for i, (x, y) in enumerate(zip(ins, ren)):
        if x.shape != y.shape:
            raise ShapeError(f"input {i} {x.shape} and rendered {y.shape} differ in size")
        if ml is None:
            rows[2].append(0.5 * x + 0.5 * y)
        else:
            m = ml[i][..., None]
            rows[2].append(x * (1 - m) + y * m)
    vmax = max(float(np.abs(x - y).mean(-1).max()) for x, y in zip(ins, ren))
    rows[3] = [error_image(x, y, vmax=vmax) for x, y in zip(ins, ren)]
    names = ["input", "rendered", "overlay", "|error|"]
    if not with_error:
        rows, names = rows[:3], names[:3]
    flat = [im for row in rows for im in row]
    t = None
    if titles is not None:
        t = list(titles) + [""] * (len(flat) - len(titles))
    fig = image_grid(flat, ncols=len(ins), titles=t, row_titles=names, cell_size=cell_size, title=title)
    fig.layout.meta = {"max_abs_error": vmax}
    return fig
