"""Static fallback: redraw a plotly figure with matplotlib (used by :func:`workbench.viz.export`
when kaleido has no Chrome/Chromium).

It is an approximation that keeps what matters in the workbench's figures: subplot layout
(axis and scene domains), ``Scatter``/``Scattergl`` lines and markers, ``Image`` (z or PNG
source), ``Heatmap`` (with cell text), ``Bar``, ``Mesh3d`` (face/vertex/intensity colours with
Lambert shading), ``Scatter3d``, axis ranges/reversal/log scale, titles and subplot titles.
Any other trace type raises :class:`NotImplementedError` so the caller can fall back to HTML.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED = {"scatter", "scattergl", "image", "heatmap", "bar", "mesh3d", "scatter3d"}


def _arr(v: Any) -> np.ndarray:
    if v is None:
        return np.array([])
    return np.array([np.nan if x is None else x for x in v], dtype=np.float64) if isinstance(v, (list, tuple)) \
        else np.asarray(v, dtype=np.float64)


def _color(c: Any, default: str = "#1f77b4") -> Any:
    """A plotly colour (hex, rgb(), rgba(), name) -> matplotlib colour."""
    if c is None:
        return default
    if isinstance(c, str):
        s = c.strip()
        if s.startswith("rgb"):
            vals = [float(x) for x in s[s.index("(") + 1: s.index(")")].split(",")]
            rgb = tuple(v / 255.0 for v in vals[:3])
            return rgb + (vals[3],) if len(vals) == 4 else rgb
        return s
    return c


def _colors(c: Any, n: int, default: str) -> Any:
    if c is None or isinstance(c, str):
        return _color(c, default)
    c = list(c)
    if c and isinstance(c[0], str):
        return [_color(x) for x in c]
    return None  # numeric -> colormap


def _cmap(colorscale: Any):
    import matplotlib

    name = "viridis"
    if isinstance(colorscale, str):
        cand = colorscale.lower().rstrip("_r")
        for n in (colorscale, cand, cand.capitalize()):
            if n in matplotlib.colormaps:
                name = n
                break
        if colorscale.endswith("_r"):
            name = name + "_r" if not name.endswith("_r") else name
    elif colorscale:
        from matplotlib.colors import LinearSegmentedColormap

        try:
            return LinearSegmentedColormap.from_list("plotly", [(float(p), _color(c)) for p, c in colorscale])
        except (TypeError, ValueError):
            pass
    return matplotlib.colormaps.get(name, matplotlib.colormaps["viridis"])


def _domain(layout: Any, key: str) -> tuple[float, float]:
    obj = layout[key] if key in layout else None
    d = getattr(obj, "domain", None) if obj is not None else None
    if d is None or d == (None, None) or d is None:
        return (0.0, 1.0)
    return (float(d[0]), float(d[1]))


def _axis_key(ref: str | None, kind: str) -> str:
    ref = ref or kind
    return kind + "axis" + ref[1:]


def plotly_to_matplotlib(fig: Any, path: str | Path, fmt: str, width: int | None = None,
                         height: int | None = None, scale: float = 1.0) -> None:
    """Draw ``fig`` with matplotlib (Agg) and save it as ``fmt`` (png, svg, pdf, jpg) at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: F401  (registers 3d projection)

    for tr in fig.data:
        if tr.type not in SUPPORTED:
            raise NotImplementedError(f"trace type '{tr.type}' has no matplotlib fallback")
    lay = fig.layout
    w = width or lay.width or 700
    h = height or lay.height or 500
    dpi = 100
    mfig = plt.figure(figsize=(w / dpi, h / dpi), dpi=dpi * scale)
    axes: dict[str, Any] = {}
    m = lay.margin
    ml, mr = (m.l if m.l is not None else 60) / w, (m.r if m.r is not None else 30) / w
    mt, mb = (m.t if m.t is not None else 60) / h, (m.b if m.b is not None else 40) / h
    mt = max(mt, 0.06 if (lay.title and lay.title.text) else 0.02)

    def rect(xd: tuple[float, float], yd: tuple[float, float]) -> list[float]:
        x0 = ml + xd[0] * (1 - ml - mr)
        x1 = ml + xd[1] * (1 - ml - mr)
        y0 = mb + yd[0] * (1 - mt - mb)
        y1 = mb + yd[1] * (1 - mt - mb)
        return [x0, y0, max(x1 - x0, 0.01), max(y1 - y0, 0.01)]

    def get_ax(tr: Any):
        if tr.type in ("mesh3d", "scatter3d"):
            key = tr.scene or "scene"
            if key not in axes:
                sc = lay[key]
                xd = tuple(sc.domain.x) if sc.domain and sc.domain.x else (0.0, 1.0)
                yd = tuple(sc.domain.y) if sc.domain and sc.domain.y else (0.0, 1.0)
                axes[key] = mfig.add_axes(rect(xd, yd), projection="3d")
            return axes[key], key
        xa, ya = _axis_key(tr.xaxis, "x"), _axis_key(tr.yaxis, "y")
        key = xa + ya
        if key not in axes:
            axes[key] = mfig.add_axes(rect(_domain(lay, xa), _domain(lay, ya)))
            axes[key].patch.set_alpha(0.0)   # plotly overlays 2D axes and 3D scenes transparently
        return axes[key], key

    scene_data: dict[str, list[np.ndarray]] = {}
    for tr in fig.data:
        if tr.visible is False or tr.visible == "legendonly":
            continue
        ax, key = get_ax(tr)
        t = tr.type
        if t in ("scatter", "scattergl"):
            x, y = _arr(tr.x), _arr(tr.y)
            if y.size == 0:
                continue
            if x.size == 0:
                x = np.arange(len(y), dtype=np.float64)
            mode = tr.mode or "lines+markers"
            lc = _color(tr.line.color if tr.line else None, "#1f77b4")
            if "lines" in mode:
                ls = {"dash": "--", "dot": ":", "dashdot": "-."}.get(tr.line.dash if tr.line else None, "-")
                ax.plot(x, y, color=lc, lw=(tr.line.width or 2) * 0.6, ls=ls, alpha=tr.opacity or 1.0,
                        label=tr.name if tr.showlegend is not False else None)
            if "markers" in mode:
                mc = _colors(tr.marker.color if tr.marker else None, len(x), lc)
                kw = {}
                if mc is None:
                    kw = dict(c=_arr(tr.marker.color), cmap=_cmap(tr.marker.colorscale))
                else:
                    kw = dict(color=mc)
                ax.scatter(x, y, s=((tr.marker.size if tr.marker and isinstance(tr.marker.size, (int, float)) else 6) ** 2) * 0.5,
                           label=None if "lines" in mode or tr.showlegend is False else tr.name, **kw)
        elif t == "image":
            if tr.source:
                from ._util import decode_data_uri

                img = decode_data_uri(tr.source)
            else:
                img = np.asarray(tr.z, dtype=np.uint8)
            hh, ww = img.shape[:2]
            x0 = tr.x0 if tr.x0 is not None else 0
            y0 = tr.y0 if tr.y0 is not None else 0
            dx = tr.dx or 1
            dy = tr.dy or 1
            ax.imshow(img, extent=(x0 - dx / 2, x0 + dx * (ww - 0.5), y0 + dy * (hh - 0.5), y0 - dy / 2),
                      interpolation="nearest")
        elif t == "heatmap":
            z = np.asarray(tr.z, dtype=np.float64)
            im = ax.imshow(z, cmap=_cmap(tr.colorscale), vmin=tr.zmin, vmax=tr.zmax, aspect="auto")
            if tr.x is not None:
                ax.set_xticks(range(len(tr.x)), [str(v) for v in tr.x], rotation=45, ha="right", fontsize=7)
            if tr.y is not None:
                ax.set_yticks(range(len(tr.y)), [str(v) for v in tr.y], fontsize=7)
            if tr.text is not None and z.size <= 400:
                for i in range(z.shape[0]):
                    for j in range(z.shape[1]):
                        ax.text(j, i, str(tr.text[i][j]).replace("<br>", "\n"), ha="center", va="center", fontsize=6)
            mfig.colorbar(im, ax=ax, fraction=0.046)
        elif t == "bar":
            ax.bar([str(v) for v in tr.x], _arr(tr.y), color=_color(tr.marker.color if tr.marker else None),
                   label=tr.name)
        elif t == "mesh3d":
            _draw_mesh(ax, tr)
            scene_data.setdefault(key, []).append(np.stack([_arr(tr.x), _arr(tr.y), _arr(tr.z)], -1))
        elif t == "scatter3d":
            p = np.stack([_arr(tr.x), _arr(tr.y), _arr(tr.z)], -1)
            M = _to_mpl(p)
            mode = tr.mode or "markers"
            lc = _color(tr.line.color if tr.line else None, "#333")
            if "lines" in mode:
                ax.plot(M[:, 0], M[:, 1], M[:, 2], color=lc, lw=(tr.line.width or 2) * 0.5)
            if "markers" in mode:
                mc = _colors(tr.marker.color if tr.marker else None, len(p), lc)
                if mc is None:
                    ax.scatter(M[:, 0], M[:, 1], M[:, 2], c=_arr(tr.marker.color), cmap=_cmap(tr.marker.colorscale), s=8)
                else:
                    ax.scatter(M[:, 0], M[:, 1], M[:, 2], color=mc, s=8)
            scene_data.setdefault(key, []).append(p[np.isfinite(p).all(1)])

    # axes styling
    for key, ax in axes.items():
        if key.startswith("scene"):
            sc = lay[key]
            pts = np.concatenate(scene_data.get(key, [np.zeros((1, 3))]))
            M = _to_mpl(pts)
            lo, hi = M.min(0), M.max(0)
            c, r = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
            ax.set_xlim(c[0] - r, c[0] + r)
            ax.set_ylim(c[1] - r, c[1] + r)
            ax.set_zlim(c[2] - r, c[2] + r)
            ax.set_box_aspect((1, 1, 1))
            eye = sc.camera.eye if sc.camera and sc.camera.eye else None
            e = np.array([eye.x or 1.25, eye.y or 1.25, eye.z or 1.25]) if eye else np.array([1.25, 1.25, 1.25])
            E = _to_mpl(e[None])[0]
            ax.view_init(elev=math.degrees(math.atan2(E[2], math.hypot(E[0], E[1]))),
                         azim=math.degrees(math.atan2(E[1], E[0])))
            ax.set_axis_off()
            continue
        xa, ya = key.split("yaxis")[0], "yaxis" + key.split("yaxis")[1]
        xl, yl = lay[xa], lay[ya]
        for axis_obj, setter_lim, setter_lab, setter_scale in (
                (xl, ax.set_xlim, ax.set_xlabel, ax.set_xscale), (yl, ax.set_ylim, ax.set_ylabel, ax.set_yscale)):
            if axis_obj.type == "log":
                setter_scale("log")
            if axis_obj.range is not None:
                lo, hi = axis_obj.range
                if axis_obj.type == "log":
                    lo, hi = 10 ** lo, 10 ** hi
                setter_lim(lo, hi)
            if axis_obj.title and axis_obj.title.text:
                setter_lab(axis_obj.title.text, fontsize=8)
        if yl.autorange == "reversed":
            ax.invert_yaxis()
        if xl.visible is False or (xl.showticklabels is False and yl.showticklabels is False):
            ax.set_xticks([])
            ax.set_yticks([])
            if xl.visible is False:
                ax.set_axis_off()
        if yl.scaleanchor:
            ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=7)
        handles, labels = ax.get_legend_handles_labels()
        if labels and fig.layout.showlegend is not False and len(labels) <= 20:
            ax.legend(fontsize=6, loc="best")
    # titles
    if lay.title and lay.title.text:
        mfig.suptitle(_plain(lay.title.text), fontsize=11)
    for ann in lay.annotations or ():
        if ann.text and ann.xref in ("paper", None) and ann.yref in ("paper", None):
            px = ml + (ann.x or 0) * (1 - ml - mr)
            py = mb + (ann.y or 0) * (1 - mt - mb)
            mfig.text(px, py, _plain(ann.text), ha="center", va="bottom", fontsize=8,
                      rotation=ann.textangle if ann.textangle not in (None,) else 0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    mfig.savefig(path, format=fmt, dpi=dpi * scale)
    plt.close(mfig)


def _plain(text: str) -> str:
    import re

    return re.sub(r"<[^>]+>", " ", str(text).replace("<br>", "\n")).strip()


def _to_mpl(p: np.ndarray) -> np.ndarray:
    """Plotly scene coordinates with +Y up -> matplotlib's z-up frame: ``(x, y, z) -> (x, -z, y)``
    (a proper rotation, handedness kept)."""
    return np.stack([p[:, 0], -p[:, 2], p[:, 1]], -1)


def _draw_mesh(ax: Any, tr: Any) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    v = _to_mpl(np.stack([_arr(tr.x), _arr(tr.y), _arr(tr.z)], -1))
    f = np.stack([np.asarray(tr.i, int), np.asarray(tr.j, int), np.asarray(tr.k, int)], -1)
    tri = v[f]
    if tr.facecolor is not None:
        base = np.array([_rgb(c) for c in tr.facecolor])
    elif tr.vertexcolor is not None:
        vc = np.array([_rgb(c) for c in tr.vertexcolor])
        base = vc[f].mean(1)
    elif tr.intensity is not None:
        s = _arr(tr.intensity)
        lo = tr.cmin if tr.cmin is not None else np.nanmin(s)
        hi = tr.cmax if tr.cmax is not None else np.nanmax(s)
        t = np.clip((s - lo) / (hi - lo + 1e-12), 0, 1)
        base = _cmap(tr.colorscale)(t[f].mean(1))[:, :3]
    else:
        base = np.tile(np.array(_rgb(tr.color or "#9fb4d0")), (len(f), 1))
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, -0.5, 0.8])
    light /= np.linalg.norm(light)
    shade = 0.55 + 0.45 * np.abs(n @ light)
    cols = np.clip(base * shade[:, None], 0, 1)
    alpha = tr.opacity if tr.opacity is not None else 1.0
    ax.add_collection3d(Poly3DCollection(tri, facecolors=np.c_[cols, np.full(len(cols), alpha)], linewidths=0))


def _rgb(c: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    cc = _color(c)
    return tuple(cc[:3]) if isinstance(cc, tuple) else to_rgb(cc)
