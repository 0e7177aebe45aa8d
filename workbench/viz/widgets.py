"""Interactive notebook tools (ipywidgets + plotly ``FigureWidget``).

Every builder returns ``(container, handles)``: ``container`` is the widget to display, and
``handles`` a dict of the controls and outputs, so a test (or a notebook) can drive the tool
without a browser -- set ``handles["azimuth"].value = 90`` and read ``handles["figure"].data`` and
``handles["status"].value``.

* :func:`pose_explorer` -- azimuth/elevation/theta/distance sliders re-render a mesh through the
  workbench renderer; a 3D view shows the camera frustum.
* :func:`dataset_browser` -- filter a dataset index by split/category/occlusion/corruption and page
  through an image grid with mask and keypoint overlays.
* :func:`run_comparer` -- pick runs, overlay their curves, show their results table.
* :func:`ablation_panel` -- turn a config dataclass into widgets, launch a short run with a live
  progress bar, append a results row when it finishes.
* :func:`embedding_explorer` -- UMAP scatter with hover thumbnails and lasso selection.

Handlers run synchronously in the kernel; widget updates made while a handler runs (the progress
bar) are sent to the browser as they happen.
"""
from __future__ import annotations

import dataclasses
import html
import logging
import math
import time
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import ConfigError, DataError, WorkbenchError
from ._util import as_image_list, png_data_uri, thumbnail, to_hwc_image, to_mask, to_numpy

logger = logging.getLogger(__name__)

_BLANK = np.ones((8, 8, 3), np.float32)


def _status(text: str, kind: str = "info") -> str:
    color = {"info": "#333", "ok": "#1a7f37", "error": "#cf222e", "busy": "#9a6700"}[kind]
    return f'<span class="wb-status wb-status-{kind}" style="color:{color}">{html.escape(text)}</span>'


# --------------------------------------------------------------------------- pose explorer
def pose_explorer(mesh: Any, *, render_fn: Callable[[float, float, float, float], Any] | None = None,
                  image_size: tuple[int, int] = (128, 128), focal_px: float | None = None,
                  azimuth: float = 30.0, elevation: float = 15.0, theta: float = 0.0, distance: float = 3.0,
                  distance_range: tuple[float, float] = (1.5, 8.0), show_scene: bool = True,
                  continuous_update: bool = False, title: str | None = None) -> tuple[W.VBox, dict]:
    """Sliders for (azimuth, elevation, theta, distance) that re-render ``mesh``.

    Args:
        mesh: a :class:`~workbench.geometry.mesh.Meshes` (first mesh used) or ``(verts, faces)``.
        render_fn: ``render_fn(azimuth, elevation, theta, distance) -> (H, W, 3)`` image (angles in
            radians). Default: :func:`workbench.viz.posed.mesh_pose_renderer` (the workbench
            rasterizer with simple Lambert shading).
        azimuth, elevation, theta: initial angles in **degrees** (the sliders are in degrees);
            ``distance`` in object units.
        show_scene: also show the mesh and the camera frustum in 3D.
    Handles:
        ``azimuth, elevation, theta, distance`` (sliders), ``figure`` (FigureWidget: trace 0 is the
        rendered image, then the mesh and the frustum), ``status`` (HTML), ``render()`` (force a
        re-render), ``renders`` (number of renders so far, in a one-element list).
    """
    from .cameras import frustum_points, frustum_trace
    from .mesh import as_mesh_list, mesh_trace, scene_layout

    h, w = image_size
    f = focal_px if focal_px is not None else 0.5 * min(h, w) / math.tan(math.radians(15.0))
    if render_fn is None:
        from .posed import mesh_pose_renderer

        render_fn = mesh_pose_renderer(mesh, image_size=image_size, focal_px=f)
    md = as_mesh_list(mesh)[0]
    slider = dict(continuous_update=continuous_update, style={"description_width": "75px"},
                  layout=W.Layout(width="330px"))
    hs = {
        "azimuth": W.FloatSlider(value=azimuth, min=-180, max=180, step=5, description="azimuth", **slider),
        "elevation": W.FloatSlider(value=elevation, min=-85, max=85, step=5, description="elevation", **slider),
        "theta": W.FloatSlider(value=theta, min=-180, max=180, step=5, description="theta", **slider),
        "distance": W.FloatSlider(value=distance, min=distance_range[0], max=distance_range[1], step=0.25,
                                  description="distance", **slider),
    }
    for s in hs.values():
        s.add_class("wb-pose-slider")
    if show_scene:
        fig = make_subplots(rows=1, cols=2, specs=[[{"type": "xy"}, {"type": "scene"}]],
                            column_widths=[0.45, 0.55], subplot_titles=["rendered view", "camera"],
                            horizontal_spacing=0.02)
    else:
        fig = make_subplots(rows=1, cols=1)
    fig.add_trace(go.Image(source=png_data_uri(_BLANK), x0=0.5, y0=0.5, name="render"), row=1, col=1)
    fig.update_xaxes(visible=False, range=[0, w], row=1, col=1)
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x", row=1, col=1)
    if show_scene:
        mt = mesh_trace(md, opacity=0.85)
        mt.showlegend = False
        fig.add_trace(mt, row=1, col=2)
        fig.add_trace(frustum_trace(np.zeros((8, 3)), "#d62728", "camera", showlegend=False), row=1, col=2)
        fig.update_layout(scene=scene_layout(camera=dict(up=dict(x=0, y=1, z=0), eye=dict(x=1.6, y=1.2, z=2.2))))
    fig.update_layout(height=330, width=720 if show_scene else 360, margin=dict(l=5, r=5, t=30, b=5),
                      title=title, showlegend=False)
    fw = go.FigureWidget(fig)
    status = W.HTML(_status("ready"))
    status.add_class("wb-pose-status")
    counter = [0]

    def render(*_: Any) -> None:
        a, e, t, d = (hs["azimuth"].value, hs["elevation"].value, hs["theta"].value, hs["distance"].value)
        t0 = time.perf_counter()
        try:
            img = to_hwc_image(render_fn(math.radians(a), math.radians(e), math.radians(t), float(d)), "render")
        except Exception as exc:  # noqa: BLE001 - show the error in the tool, keep it alive
            logger.exception("pose explorer render failed")
            status.value = _status(f"render failed: {exc}", "error")
            return
        ms = (time.perf_counter() - t0) * 1000
        fg = float((np.abs(img - img[0, 0]).sum(-1) > 1e-3).mean())
        with fw.batch_update():
            fw.data[0].source = png_data_uri(img)
            if show_scene:
                from ..geometry.pose import pose_to_rt
                import torch

                R, T = pose_to_rt(*(torch.tensor([v], dtype=torch.float64) for v in
                                    (math.radians(a), math.radians(e), math.radians(t), float(d))))
                pts = frustum_points(to_numpy(R), to_numpy(T), f, (w / 2, h / 2), (h, w), depth=0.35 * d)[0]
                fr = frustum_trace(pts, "#d62728", "camera")
                fw.data[2].x, fw.data[2].y, fw.data[2].z = fr.x, fr.y, fr.z
        counter[0] += 1
        status.value = _status(f"azimuth {a:.0f}°, elevation {e:.0f}°, theta {t:.0f}°, distance {d:.2f} "
                               f"| render {ms:.0f} ms, object covers {100 * fg:.1f}% of the image", "ok")

    for s in hs.values():
        s.observe(render, names="value")
    render()
    controls = W.VBox(list(hs.values()) + [status], layout=W.Layout(justify_content="center"))
    box = W.VBox([W.HBox([controls]), fw])
    box.add_class("wb-pose-explorer")
    return box, {**hs, "figure": fw, "status": status, "render": render, "renders": counter}


# --------------------------------------------------------------------------- dataset browser
FILTER_COLUMNS = ("split", "category", "occlusion_level", "corruption")


def dataset_browser(index: Any, *, n: int = 12, ncols: int = 6, cell_size: int = 120,
                    filters: Sequence[str] = FILTER_COLUMNS, show_masks: bool = False,
                    show_keypoints: bool = True) -> tuple[W.VBox, dict]:
    """Filter and page through a dataset.

    Args:
        index: a :class:`workbench.data.DatasetIndex` or its root directory. Used: ``.df`` (one row
            per image), ``.load_image(i)``, ``.load_mask(i)``; keypoints from the ``keypoints_2d`` /
            ``keypoints_visible`` columns when present.
        n: images per page; ``filters``: columns offered as dropdowns (those present in the index).
    Handles:
        one Dropdown per filter column (``split``, ``category``, ...), ``page`` (IntSlider),
        ``masks`` / ``keypoints`` (Checkbox), ``figure`` (FigureWidget, one Image trace per cell),
        ``status`` (HTML), ``selection()`` (row positions in ``df`` shown now), ``matching()``
        (all row positions matching the filters).
    """
    if isinstance(index, (str, Path)):
        from ..data import DatasetIndex

        index = DatasetIndex(index)
    labels = index.df.index.to_numpy()          # load_image/load_mask take the index labels
    df: pd.DataFrame = index.df.reset_index(drop=True)
    cols = [c for c in filters if c in df.columns]
    dd: dict[str, W.Dropdown] = {}
    for c in cols:
        vals = sorted(df[c].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        dd[c] = W.Dropdown(options=["(all)"] + [v for v in vals], value="(all)", description=c.replace("_", " "),
                           style={"description_width": "80px"}, layout=W.Layout(width="230px"))
    page = W.IntSlider(value=0, min=0, max=0, description="page", continuous_update=False,
                       layout=W.Layout(width="300px"))
    cb_masks = W.Checkbox(value=show_masks, description="masks", indent=False, layout=W.Layout(width="80px"))
    cb_kp = W.Checkbox(value=show_keypoints, description="keypoints", indent=False, layout=W.Layout(width="100px"))
    nrows = math.ceil(n / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[" "] * n, horizontal_spacing=0.01,
                        vertical_spacing=0.08 / nrows)
    for k in range(n):
        r, c = k // ncols + 1, k % ncols + 1
        fig.add_trace(go.Image(source=png_data_uri(_BLANK), x0=0.5, y0=0.5, name=f"cell {k}"), row=r, col=c)
    for k in range(n):
        r, c = k // ncols + 1, k % ncols + 1
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(size=6, color="#EF553B",
                                                                         line=dict(width=1, color="white")),
                                 hoverinfo="skip", showlegend=False, name=f"kp {k}"), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_annotations(font_size=9)
    fig.update_layout(height=int(nrows * (cell_size + 22)) + 10, width=ncols * cell_size + 10,
                      margin=dict(l=5, r=5, t=22, b=5), plot_bgcolor="white")
    fw = go.FigureWidget(fig)
    status = W.HTML()
    shown: list[int] = []

    def matching() -> np.ndarray:
        m = np.ones(len(df), bool)
        for c, w in dd.items():
            if w.value != "(all)":
                m &= (df[c] == w.value).to_numpy()
        return np.flatnonzero(m)

    def refresh(*_: Any) -> None:
        idx = matching()
        pages = max(1, math.ceil(len(idx) / n))
        if page.max != pages - 1:
            page.max = pages - 1
        p = min(page.value, pages - 1)
        sel = idx[p * n:(p + 1) * n]
        shown[:] = [int(i) for i in sel]
        with fw.batch_update():
            for k in range(n):
                kp_tr = fw.data[n + k]
                if k < len(sel):
                    i = int(sel[k])
                    img = to_hwc_image(index.load_image(labels[i]))
                    if cb_masks.value:
                        from .images import overlay_mask

                        img = overlay_mask(img, to_mask(index.load_mask(labels[i])))
                    fw.data[k].source = png_data_uri(img)
                    row = df.iloc[i]
                    fw.layout.annotations[k].text = _cell_title(row)
                    ax = "x" if k == 0 else f"x{k + 1}"
                    fw.layout[ax.replace("x", "xaxis", 1)].range = [0, img.shape[1]]
                    fw.layout[ax.replace("x", "yaxis", 1)].range = [img.shape[0], 0]
                    if cb_kp.value and "keypoints_2d" in df.columns and row["keypoints_2d"] is not None:
                        kp = np.asarray(list(row["keypoints_2d"]), np.float64).reshape(-1, 2)
                        vis = (np.asarray(list(row["keypoints_visible"]), bool).reshape(-1)
                               if "keypoints_visible" in df.columns and row["keypoints_visible"] is not None
                               else np.ones(len(kp), bool))
                        kp_tr.x, kp_tr.y = kp[vis, 0], kp[vis, 1]
                    else:
                        kp_tr.x, kp_tr.y = [], []
                else:
                    fw.data[k].source = png_data_uri(_BLANK)
                    fw.layout.annotations[k].text = " "
                    kp_tr.x, kp_tr.y = [], []
        a, b = (p * n + 1, p * n + len(sel)) if len(sel) else (0, 0)
        status.value = _status(f"{len(idx)} of {len(df)} images match; showing {a}-{b} (page {p + 1}/{pages})",
                               "ok" if len(idx) else "info")

    def on_filter(*_: Any) -> None:
        if page.value != 0:
            page.value = 0   # triggers refresh
        else:
            refresh()

    for w in dd.values():
        w.observe(on_filter, names="value")
    page.observe(refresh, names="value")
    cb_masks.observe(refresh, names="value")
    cb_kp.observe(refresh, names="value")
    refresh()
    filt = W.HBox(list(dd.values()), layout=W.Layout(flex_flow="row wrap"))
    box = W.VBox([filt, W.HBox([page, cb_masks, cb_kp]), status, fw])
    box.add_class("wb-dataset-browser")
    return box, {**dd, "page": page, "masks": cb_masks, "keypoints": cb_kp, "figure": fw, "status": status,
                 "selection": lambda: list(shown), "matching": lambda: matching().tolist(), "df": df}


def _cell_title(row: pd.Series) -> str:
    parts = []
    if "category" in row:
        parts.append(str(row["category"]))
    if "azimuth" in row and row["azimuth"] is not None and not pd.isna(row["azimuth"]):
        parts.append(f"a{math.degrees(float(row['azimuth'])):.0f}°")
    if "occlusion_level" in row and row["occlusion_level"] not in (None, 0, "0", "none") and not pd.isna(row["occlusion_level"]):
        parts.append(f"occ {row['occlusion_level']}")
    if "corruption" in row and row["corruption"] not in (None, "", "none") and not pd.isna(row["corruption"]):
        parts.append(str(row["corruption"]))
    return " ".join(parts) or " "


# --------------------------------------------------------------------------- run comparer
def _discover_runs(root: Path) -> pd.DataFrame:
    """Runs under ``root/<method>/<run>/`` with their eval.json metrics (fallback when
    ``workbench.eval.results.collect_runs`` is unavailable)."""
    import json

    rows = []
    for mf in sorted(root.glob("*/*/metrics.csv")) + sorted(root.glob("*/*/eval.json")):
        d = mf.parent
        if any(r["run_dir"] == str(d) for r in rows):
            continue
        row: dict[str, Any] = {"method": d.parent.name, "run": d.name, "run_dir": str(d)}
        ej = d / "eval.json"
        if ej.is_file():
            try:
                data = json.loads(ej.read_text())
                row.update({k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            except (json.JSONDecodeError, OSError) as e:
                logger.warning("skipping unreadable %s: %s", ej, e)
        rows.append(row)
    return pd.DataFrame(rows)


def _runs_table(root: Path | None, runs: pd.DataFrame | None) -> pd.DataFrame:
    if runs is not None:
        df = runs.copy()
    else:
        try:
            from ..eval.results import collect_runs

            df = collect_runs(root)
        except ImportError:
            from ..core.paths import runs_dir

            df = _discover_runs(Path(root) if root is not None else runs_dir())
    if df.empty:
        return df
    if "run_dir" not in df.columns:
        for c in ("path", "dir"):
            if c in df.columns:
                df = df.rename(columns={c: "run_dir"})
                break
    if "run" not in df.columns:
        df["run"] = [Path(p).name for p in df["run_dir"]] if "run_dir" in df.columns else df.index.astype(str)
    if "method" not in df.columns:
        df["method"] = [Path(p).parent.name for p in df["run_dir"]] if "run_dir" in df.columns else ""
    df["label"] = df["method"].astype(str) + "/" + df["run"].astype(str)
    return df.reset_index(drop=True)


#: run-table columns that are not results (collect_runs' run columns and ours)
_RUN_META = ("method", "run", "path", "run_dir", "label", "profile", "seed", "complete", "status")


def run_comparer(root: str | Path | None = None, *, runs: pd.DataFrame | None = None,
                 metrics: Sequence[str] | None = None, paper: Any = None,
                 select: Sequence[str] | None = None) -> tuple[W.VBox, dict]:
    """Pick runs, overlay a metric's curves, and show the selected runs' results table.

    Args:
        root: runs directory (default ``workbench.core.paths.runs_dir()``), read with
            ``workbench.eval.results.collect_runs`` (one row per run, eval.json metrics as columns).
        runs: a ready table instead (needs ``run_dir``; ``method``/``run`` optional).
        metrics: result columns for the table (default: numeric eval columns).
        paper: the paper's numbers for :func:`workbench.viz.tables.results_table`.
        select: initial run labels (``method/run``); default: all.
    Handles:
        ``runs`` (SelectMultiple of ``method/run`` labels), ``metric`` (Dropdown of curve columns),
        ``smooth`` (FloatSlider), ``refresh`` (Button: re-scan the runs directory), ``figure``
        (FigureWidget), ``table`` (HTML), ``status`` (HTML), ``data()`` (the runs DataFrame).
    """
    from .curves import NON_METRIC, ema, load_metrics
    from .tables import results_table

    state: dict[str, Any] = {"df": _runs_table(Path(root) if root else None, runs), "curves": {}}
    sel = W.SelectMultiple(options=[], rows=8, description="runs", layout=W.Layout(width="360px"))
    metric = W.Dropdown(options=[], description="curve", layout=W.Layout(width="260px"))
    smooth = W.FloatSlider(value=0.0, min=0.0, max=0.95, step=0.05, description="smooth",
                           continuous_update=False, layout=W.Layout(width="260px"))
    refresh_btn = W.Button(description="rescan runs", icon="refresh", layout=W.Layout(width="130px"))
    fw = go.FigureWidget(go.Figure(layout=dict(height=340, width=720, margin=dict(l=50, r=10, t=30, b=40),
                                               xaxis=dict(title="step"), legend=dict(orientation="h", y=-0.2))))
    table = W.HTML()
    status = W.HTML()

    def load_curves() -> None:
        state["curves"] = {}
        for _, r in state["df"].iterrows():
            rd = r.get("run_dir")
            if rd is not None and (Path(rd) / "metrics.csv").is_file():
                try:
                    state["curves"][r["label"]] = load_metrics(rd)
                except DataError as e:
                    logger.warning("%s", e)
        cols: list[str] = []
        for c in state["curves"].values():
            cols += [k for k in c.columns if k not in NON_METRIC and k not in cols and pd.api.types.is_numeric_dtype(c[k])]
        labels = list(state["df"]["label"]) if not state["df"].empty else []
        keep = [l for l in (select or labels) if l in labels]
        sel.options = labels
        sel.value = tuple(keep)
        metric.options = cols
        if cols:
            metric.value = "loss" if "loss" in cols else cols[0]

    def draw(*_: Any) -> None:
        chosen = list(sel.value)
        m = metric.value
        traces = []
        for k, lab in enumerate(chosen):
            c = state["curves"].get(lab)
            if c is None or m is None or m not in c.columns:
                continue
            from ._util import palette_color

            phases = [None] if "phase" not in c.columns else list(dict.fromkeys(c["phase"].dropna()))
            for ph in phases:
                part = c if ph is None else c[c["phase"] == ph]
                sub = part.dropna(subset=[m])
                if sub.empty:
                    continue
                xs = sub["step"].to_numpy() if "step" in sub.columns else np.arange(len(sub))
                ys = sub[m].to_numpy(np.float64)
                is_eval = ph not in (None, "train")
                if smooth.value > 0 and not is_eval:
                    ys = ema(ys, smooth.value)
                traces.append(go.Scatter(x=xs, y=ys, mode="lines+markers" if is_eval or len(xs) < 30 else "lines",
                                         name=lab if not is_eval else f"{lab} ({ph})",
                                         line=dict(color=palette_color(k), dash="dash" if is_eval else None)))
        with fw.batch_update():
            fw.data = ()
            if traces:
                fw.add_traces(traces)
            fw.layout.yaxis.title = m or ""
            fw.layout.title = f"{m}" if m else "no curves"
        df = state["df"]
        rows = df[df["label"].isin(chosen)] if not df.empty else df
        mcols = list(metrics) if metrics is not None else [
            c for c in rows.columns
            if c not in _RUN_META and not str(c).startswith("config.")
            and pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])
            and rows[c].notna().any()]
        if len(rows) and mcols:
            t = rows.set_index("label")[mcols]
            pap = None
            if paper is not None:
                pap = {k: v for k, v in dict(paper).items() if k in t.index}
            table.value = results_table(t, paper=pap or None).to_html()
        else:
            table.value = "<i>no evaluated runs selected</i>"
        status.value = _status(f"{len(chosen)} of {len(df)} runs selected; {len(traces)} curves of '{m}'",
                               "ok" if traces else "info")

    def rescan(*_: Any) -> None:
        state["df"] = _runs_table(Path(root) if root else None, None) if runs is None else state["df"]
        load_curves()
        draw()

    load_curves()
    sel.observe(draw, names="value")
    metric.observe(draw, names="value")
    smooth.observe(draw, names="value")
    refresh_btn.on_click(rescan)
    draw()
    box = W.VBox([W.HBox([sel, W.VBox([metric, smooth, refresh_btn])]), status, fw, table])
    box.add_class("wb-run-comparer")
    return box, {"runs": sel, "metric": metric, "smooth": smooth, "refresh": refresh_btn, "figure": fw,
                 "table": table, "status": status, "data": lambda: state["df"]}


# --------------------------------------------------------------------------- ablation panel
def _field_widget(name: str, tp: Any, value: Any) -> W.Widget:
    """A widget for one config field (by its annotated type)."""
    from ..core.config import _is_optional

    optional, inner = _is_optional(tp)
    origin = typing.get_origin(inner)
    desc = dict(description=name, style={"description_width": "150px"}, layout=W.Layout(width="360px"))
    if origin is typing.Literal:
        return W.Dropdown(options=list(typing.get_args(inner)), value=value, **desc)
    if not optional:
        if inner is bool:
            return W.Checkbox(value=bool(value), indent=False, **desc)
        if inner is int:
            return W.IntText(value=int(value), **desc)
        if inner is float:
            return W.FloatText(value=float(value), **desc)
        if inner is str:
            return W.Text(value=str(value), **desc)
    # Optional[...], lists, tuples, dicts: YAML text, coerced by Config.from_dict
    import yaml

    text = "null" if value is None else yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    w = W.Text(value=text, placeholder="YAML", **desc)
    w.add_class("wb-yaml-field")
    return w


def _config_widgets(cfg: Any, prefix: str = "", exclude: Sequence[str] = ()) -> tuple[list[W.Widget], dict[str, W.Widget]]:
    hints = typing.get_type_hints(type(cfg))
    items: list[W.Widget] = []
    fields: dict[str, W.Widget] = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        if key in exclude:
            continue
        val = getattr(cfg, f.name)
        if dataclasses.is_dataclass(val):
            sub_items, sub_fields = _config_widgets(val, prefix=f"{key}.", exclude=exclude)
            fields.update(sub_fields)
            if sub_items:
                items.append(W.VBox([W.HTML(f"<b>{html.escape(key)}</b>")] + sub_items,
                                    layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0")))
            continue
        w = _field_widget(f.name, hints[f.name], val)
        fields[key] = w
        items.append(w)
    return items, fields


def _widget_value(w: W.Widget) -> Any:
    if "wb-yaml-field" in w._dom_classes:
        import yaml

        try:
            return yaml.safe_load(w.value)
        except yaml.YAMLError as e:
            raise ConfigError(f"{w.description}: cannot parse '{w.value}': {e}") from None
    return w.value


def _nest(flat: Mapping[str, Any]) -> dict:
    out: dict = {}
    for k, v in flat.items():
        d = out
        parts = k.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class ProgressReporter:
    """The ``progress_callback`` handed to ``launch``: ``progress(value, total=None, text="")``.

    ``value`` is a fraction in [0, 1], or a step count when ``total`` is given. Updates the
    panel's progress bar and status line (sent to the browser immediately).
    """

    def __init__(self, bar: W.FloatProgress, label: W.HTML):
        self.bar, self.label, self.calls = bar, label, 0
        self.t0 = time.perf_counter()

    def __call__(self, value: float, total: float | None = None, text: str = "") -> None:
        frac = float(value) / float(total) if total else float(value)
        frac = min(max(frac, 0.0), 1.0)
        self.calls += 1
        self.bar.value = frac
        el = time.perf_counter() - self.t0
        eta = f", ~{el / frac - el:.0f} s left" if 0.02 < frac < 1 else ""
        step = f" ({int(value)}/{int(total)})" if total else ""
        self.label.value = _status(f"running {100 * frac:.0f}%{step} {text}{eta}".strip(), "busy")


def ablation_panel(cfg: Any, launch: Callable[[Any, ProgressReporter], Mapping[str, Any]], *,
                   title: str = "Ablation playground", exclude: Sequence[str] = (),
                   metrics: Sequence[str] | None = None, higher_is_better: Mapping[str, bool] | None = None,
                   capture_output: bool = True) -> tuple[W.VBox, dict]:
    """A form for a :class:`~workbench.core.config.Config` instance plus a "run" button.

    Each field becomes a widget (bool: checkbox, int/float: number box, ``Literal``: dropdown,
    str: text, anything else: YAML text); nested dataclasses become sections. "run" builds the
    config (``type(cfg).from_dict``, strict and typed), calls ``launch(cfg, progress)`` with a
    :class:`ProgressReporter`, and appends a row (changed fields, returned metrics, seconds) to
    the results table, with the best value per metric in bold.

    Args:
        launch: ``launch(cfg, progress) -> {metric: value}``; long work should call
            ``progress(step, total)`` now and then.
        exclude: dotted field names not offered (kept at ``cfg``'s values).
        metrics: the metric columns to show (default: every numeric value returned).
    Handles:
        ``fields`` ({dotted name: widget}), ``run`` (Button), ``progress`` (FloatProgress),
        ``status`` (HTML), ``results`` (HTML table), ``log`` (Output capturing launch's output),
        ``history`` (list of result rows as dicts), ``config()`` (the Config from the widgets),
        ``table()`` (results DataFrame), ``reset`` (Button restoring the initial values).
    """
    from .tables import results_table

    base = cfg
    items, fields = _config_widgets(cfg, exclude=exclude)
    run_btn = W.Button(description="run", button_style="primary", icon="play", layout=W.Layout(width="120px"))
    reset_btn = W.Button(description="reset", icon="undo", layout=W.Layout(width="100px"))
    bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress", layout=W.Layout(width="360px"))
    status = W.HTML(_status("set the fields and press run"))
    results = W.HTML()
    log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
    history: list[dict] = []
    initial = {k: w.value for k, w in fields.items()}
    base_flat = _flat(base.to_dict())

    def current_config() -> Any:
        values = {k: _widget_value(w) for k, w in fields.items()}
        merged = dict(base_flat)
        merged.update(values)
        return type(base).from_dict(_nest(merged))

    def table() -> pd.DataFrame:
        return pd.DataFrame(history).set_index("run") if history else pd.DataFrame()

    def render_table() -> None:
        df = table()
        if df.empty:
            results.value = ""
            return
        mcols = list(metrics) if metrics is not None else [
            c for c in df.columns if c not in ("changes", "seconds") and pd.api.types.is_numeric_dtype(df[c])]
        results.value = results_table(df, metrics=mcols, higher_is_better=higher_is_better).to_html()

    def on_run(_: Any = None) -> None:
        try:
            new_cfg = current_config()
        except WorkbenchError as e:
            status.value = _status(f"invalid config: {e}", "error")
            return
        changes = {k: v for k, v in _flat(new_cfg.to_dict()).items() if base_flat.get(k) != v}
        run_btn.disabled = True
        bar.value = 0.0
        bar.bar_style = ""
        reporter = ProgressReporter(bar, status)
        status.value = _status("starting...", "busy")
        t0 = time.perf_counter()
        try:
            if capture_output:
                with log:
                    out = launch(new_cfg, reporter)
            else:
                out = launch(new_cfg, reporter)
        except Exception as e:  # noqa: BLE001 - report in the panel, keep it usable
            logger.exception("ablation run failed")
            bar.bar_style = "danger"
            status.value = _status(f"run failed: {type(e).__name__}: {e}", "error")
            return
        finally:
            run_btn.disabled = False
        secs = time.perf_counter() - t0
        row: dict[str, Any] = {"run": len(history) + 1,
                               "changes": ", ".join(f"{k}={v}" for k, v in changes.items()) or "(defaults)"}
        for k, v in dict(out or {}).items():
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                row[k] = float(v)
        row["seconds"] = round(secs, 2)
        history.append(row)
        bar.value = 1.0
        bar.bar_style = "success"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("run", "changes", "seconds"))
        status.value = _status(f"run {row['run']} finished in {secs:.1f} s: {shown}", "ok")
        render_table()

    def on_reset(_: Any = None) -> None:
        for k, w in fields.items():
            w.value = initial[k]

    run_btn.on_click(on_run)
    reset_btn.on_click(on_reset)
    form = W.VBox(items, layout=W.Layout(max_height="420px", overflow="auto"))
    box = W.VBox([W.HTML(f"<h4>{html.escape(title)}</h4>"), form, W.HBox([run_btn, reset_btn, bar]),
                  status, results, log])
    box.add_class("wb-ablation-panel")
    return box, {"fields": fields, "run": run_btn, "reset": reset_btn, "progress": bar, "status": status,
                 "results": results, "log": log, "history": history, "config": current_config, "table": table}


# --------------------------------------------------------------------------- embedding explorer
def embedding_explorer(coords: Any, labels: Any = None, *, images: Any = None, color_by: str | None = None,
                       hover: Sequence[str] | None = None, thumb_size: int = 96, max_gallery: int = 24,
                       height: int = 480) -> tuple[W.VBox, dict]:
    """Interactive UMAP/PCA scatter: colour by a label, hover shows the image, lasso selects.

    Args:
        coords: ``(N, 2)`` or ``(N, 3)``; ``labels``: DataFrame or ``{column: values}``.
        images: ``(N, 3, H, W)`` or a list, shown on hover and in the selection gallery.
    Handles:
        ``color_by`` (Dropdown), ``figure`` (FigureWidget), ``thumb`` (Image widget of the hovered
        point), ``info`` (HTML labels of the hovered point), ``gallery`` (HTML of the selected
        thumbnails), ``status`` (HTML), ``selected()`` (sorted global indices of the lasso/box
        selection), ``hover(i)`` / ``select(indices)`` (what the plot events call).
    """
    from .embeddings import _as_label_table, _fmt, embedding_figure

    xy = to_numpy(coords, np.float64)
    n = xy.shape[0]
    table = _as_label_table(labels, n)
    ims = as_image_list(images) if images is not None else None
    if ims is not None and len(ims) != n:
        raise DataError(f"images: expected {n}, got {len(ims)}")
    thumbs = [thumbnail(im, thumb_size) for im in ims] if ims is not None else None
    options = ["(none)"] + list(table)
    color = W.Dropdown(options=options, value=color_by if color_by in table else "(none)", description="colour by",
                       layout=W.Layout(width="260px"))
    fw = go.FigureWidget(embedding_figure(xy, table, color_by=None if color.value == "(none)" else color.value,
                                          hover=hover, height=height, width=620))
    thumb = W.Image(format="png", width=thumb_size, height=thumb_size)
    info = W.HTML("<i>hover a point</i>", layout=W.Layout(width="220px"))
    gallery = W.HTML()
    status = W.HTML(_status(f"{n} points; use the lasso or box select tool to pick points"))
    selection: dict[int, list[int]] = {}

    def hover_point(i: int) -> None:
        i = int(i)
        if thumbs is not None:
            from ._util import png_bytes

            thumb.value = png_bytes(thumbs[i])
        info.value = "<br>".join([f"<b>#{i}</b>"] + [f"{html.escape(c)}: {html.escape(_fmt(v[i]))}"
                                                      for c, v in table.items()])

    def selected() -> list[int]:
        return sorted({i for v in selection.values() for i in v})

    def select(indices: Sequence[int]) -> None:
        selection.clear()
        selection[-1] = [int(i) for i in indices]
        _show_selection()

    def _show_selection() -> None:
        s = selected()
        if thumbs is not None and s:
            imgs = "".join(f'<img src="{png_data_uri(thumbs[i])}" title="#{i}" style="width:48px;margin:1px">'
                           for i in s[:max_gallery])
            more = f" (+{len(s) - max_gallery} more)" if len(s) > max_gallery else ""
            gallery.value = f"<div>{imgs}{more}</div>"
        else:
            gallery.value = ""
        counts = ""
        if color.value != "(none)" and s:
            vals = pd.Series([table[color.value][i] for i in s]).value_counts()
            counts = "; " + ", ".join(f"{_fmt(k)}: {v}" for k, v in vals.head(6).items())
        status.value = _status(f"{len(s)} of {n} points selected{counts}", "ok" if s else "info")

    def wire() -> None:
        for t_i, tr in enumerate(fw.data):
            def on_hover(trace, points, state, _t=t_i):
                if points.point_inds:
                    hover_point(int(fw.data[_t].customdata[points.point_inds[0]][0]))

            def on_sel(trace, points, selector, _t=t_i):
                selection[_t] = [int(fw.data[_t].customdata[i][0]) for i in points.point_inds]
                selection.pop(-1, None)
                _show_selection()

            def on_desel(trace, points, _t=t_i):
                selection.pop(_t, None)
                selection.pop(-1, None)
                _show_selection()

            tr.on_hover(on_hover)
            tr.on_selection(on_sel)
            tr.on_deselect(on_desel)

    def recolor(*_: Any) -> None:
        new = embedding_figure(xy, table, color_by=None if color.value == "(none)" else color.value,
                               hover=hover, height=height, width=620)
        with fw.batch_update():
            fw.data = ()
            fw.add_traces(list(new.data))
            fw.layout.legend.title.text = new.layout.legend.title.text
        selection.clear()
        wire()
        _show_selection()

    wire()
    color.observe(recolor, names="value")
    box = W.VBox([color, W.HBox([fw, W.VBox([thumb, info])]), status, gallery])
    box.add_class("wb-embedding-explorer")
    return box, {"color_by": color, "figure": fw, "thumb": thumb, "info": info, "gallery": gallery,
                 "status": status, "selected": selected, "hover": hover_point, "select": select}
