"""Training curves from ``metrics.csv`` (several runs overlaid) and confusion-matrix heatmaps.

A run's ``metrics.csv`` (written by ``workbench.train``) has one row per logged step, a ``step``
column (iterations) and one column per scalar (``loss``, ``lr``, eval metrics logged every
``eval_every`` steps, ...); empty cells mean "not logged at this step".
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import DataError, ShapeError
from ._util import palette_color, to_numpy

X_CANDIDATES = ("step", "iteration", "iter", "global_step")
NON_METRIC = {"step", "iteration", "iter", "global_step", "epoch", "time", "wall_time", "timestamp", "split", "phase"}


def load_metrics(run: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """``metrics.csv`` of a run directory (or the csv path itself) as a DataFrame.

    Raises:
        DataError: the file is missing, empty or not a CSV with a header.
    """
    if isinstance(run, pd.DataFrame):
        return run
    p = Path(run)
    if p.is_dir():
        p = p / "metrics.csv"
    if not p.is_file():
        raise DataError(f"metrics file not found: {p}")
    try:
        from ..train.metrics_log import read_rows   # skips a partial last line of a live run

        header, rows = read_rows(p)
        if not header:
            raise DataError(f"{p}: empty metrics file")
        df = pd.DataFrame(rows, columns=header)
        for c in df.columns:
            if c != "phase":
                conv = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
                if conv.notna().sum() >= (df[c] != "").sum():   # a numeric column
                    df[c] = conv
    except ImportError:  # pragma: no cover - train layer absent
        try:
            df = pd.read_csv(p)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DataError(f"{p}: cannot read metrics CSV: {e}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: cannot read metrics CSV: {e}") from None
    return df


def _named_runs(runs: Any) -> dict[str, pd.DataFrame]:
    """``{name: DataFrame}`` from a mapping, a list of run dirs/csvs or a collect_runs table."""
    if isinstance(runs, pd.DataFrame) and not any(c in runs.columns for c in X_CANDIDATES):
        col = next((c for c in ("run_dir", "path", "dir") if c in runs.columns), None)
        if col is None:
            raise DataError("runs table has no 'run_dir'/'path' column to find metrics.csv")
        names = runs["run"] if "run" in runs.columns else runs.get("name", runs[col].map(lambda p: Path(p).name))
        if "method" in runs.columns:
            names = runs["method"].astype(str) + "/" + pd.Series(list(names), index=runs.index).astype(str)
        return {str(n): load_metrics(p) for n, p in zip(names, runs[col])}
    if isinstance(runs, (pd.DataFrame, str, os.PathLike)):
        runs = [runs]
    if isinstance(runs, Mapping):
        return {str(k): load_metrics(v) for k, v in runs.items()}
    out = {}
    for k, r in enumerate(runs):
        if isinstance(r, pd.DataFrame):
            name = f"run {k}"
        else:
            p = Path(r)
            d = p if p.is_dir() else p.parent
            name = f"{d.parent.name}/{d.name}" if d.parent.name else d.name
        out[name] = load_metrics(r)
    return out


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard-style); ``alpha`` in [0, 1), 0 = none."""
    if alpha <= 0:
        return values
    out = np.empty_like(values, dtype=np.float64)
    acc, w = 0.0, 0.0
    for i, v in enumerate(values):
        acc = alpha * acc + (1 - alpha) * v
        w = alpha * w + (1 - alpha)
        out[i] = acc / w
    return out


def training_curves(runs: Any, metrics: Sequence[str] | None = None, *, x: str | None = None,
                    smooth: float = 0.0, log_y: bool | Sequence[str] = False, ncols: int = 3,
                    title: str | None = None, height_per_row: int = 280, width: int | None = None) -> go.Figure:
    """Overlay the curves of several runs, one subplot per metric.

    Args:
        runs: ``{name: run_dir | metrics.csv | DataFrame}``, a list of run dirs, one run, or a
            :func:`workbench.eval.results.collect_runs` table with a ``run_dir`` column.
        metrics: columns to plot (default: every numeric column of any run except step/epoch/time).
        x: x column (default the first of step/iteration present, else the row number).
        smooth: EMA weight in [0, 1); the raw curve stays visible, faded.
        log_y: ``True`` for all metrics or a list of metric names plotted on a log axis.
    """
    data = _named_runs(runs)
    if not data:
        raise DataError("no runs to plot")
    if metrics is None:
        seen: list[str] = []
        for df in data.values():
            for c in df.columns:
                if c not in NON_METRIC and c not in seen and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any():
                    seen.append(c)
        metrics = seen
    metrics = list(metrics)
    if not metrics:
        raise DataError("the runs have no numeric metric columns")
    missing = [m for m in metrics if not any(m in df.columns for df in data.values())]
    if missing:
        have = sorted({c for df in data.values() for c in df.columns})
        raise DataError(f"metric(s) {missing} not in any run (columns: {', '.join(have)})")
    ncols = max(1, min(ncols, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=metrics, horizontal_spacing=0.08,
                        vertical_spacing=0.12 if nrows > 1 else 0.1)
    logs = set(metrics) if log_y is True else set(log_y or [])
    for r_i, (name, df) in enumerate(data.items()):
        xc = x or next((c for c in X_CANDIDATES if c in df.columns), None)
        color = palette_color(r_i)
        phases = ([None] if "phase" not in df.columns
                  else [ph for ph in ("train", "eval") if (df["phase"] == ph).any()]
                  + [ph for ph in df["phase"].dropna().unique() if ph not in ("train", "eval")])
        shown = False
        for m_i, m in enumerate(metrics):
            if m not in df.columns:
                continue
            row, col = m_i // ncols + 1, m_i % ncols + 1
            for ph in phases:
                part = df if ph is None else df[df["phase"] == ph]
                sub = part[[c for c in (xc, m) if c is not None]].dropna(subset=[m])
                if sub.empty:
                    continue
                xs = sub[xc].to_numpy() if xc else sub.index.to_numpy()
                ys = sub[m].to_numpy(np.float64)
                is_eval = ph not in (None, "train")
                label = name if ph in (None, "train") else f"{name} ({ph})"
                if smooth > 0 and not is_eval:
                    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1), opacity=0.3,
                                             legendgroup=name, showlegend=False, hoverinfo="skip", name=f"{name} raw"),
                                  row=row, col=col)
                    ys = ema(ys, smooth)
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if (len(xs) < 30 or is_eval) else "lines",
                                         line=dict(color=color, width=2, dash="dash" if is_eval else None),
                                         marker=dict(size=5 if is_eval else 4, symbol="diamond" if is_eval else "circle"),
                                         name=label, legendgroup=name, showlegend=not shown,
                                         meta={"run": name, "metric": m, "phase": ph},
                                         hovertemplate=f"{label}<br>{xc or 'row'}=%{{x}}<br>{m}=%{{y:.4g}}<extra></extra>"),
                              row=row, col=col)
                shown = True
            if m in logs:
                fig.update_yaxes(type="log", row=row, col=col)
            fig.update_xaxes(title_text=xc or "row", row=row, col=col)
    fig.update_layout(title=title, height=nrows * height_per_row + (60 if title else 30), width=width,
                      margin=dict(l=40, r=10, t=60 if title else 40, b=40), hovermode="closest",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02 + 0.06 * (title is not None), x=0))
    return fig


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` counts; row = true class, column = predicted class."""
    t = to_numpy(y_true).reshape(-1).astype(np.int64)
    p = to_numpy(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ShapeError(f"y_true has {t.size} labels but y_pred has {p.size}")
    c = int(num_classes if num_classes is not None else max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= c or p.max() >= c):
        raise ShapeError(f"labels must be in [0, {c})")
    cm = np.zeros((c, c), np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def confusion_matrix_figure(cm: Any = None, *, y_true: Any = None, y_pred: Any = None,
                            labels: Sequence[str] | None = None, normalize: bool = True,
                            colorscale: str = "Blues", title: str | None = None,
                            size: int | None = None, annotate: bool | None = None) -> go.Figure:
    """Heatmap of a confusion matrix (rows: true class, columns: predicted class).

    Give ``cm`` ``(C, C)`` counts, or ``y_true``/``y_pred``. With ``normalize`` the colours are
    row-normalised (recall per class) and the cell text shows the fraction and the count. The
    title carries the overall accuracy.
    """
    if cm is None:
        if y_true is None or y_pred is None:
            raise ShapeError("give cm or both y_true and y_pred")
        cm = confusion_matrix(y_true, y_pred, len(labels) if labels is not None else None)
    cm = to_numpy(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ShapeError(f"confusion matrix must be square, got {cm.shape}")
    c = cm.shape[0]
    labels = [str(l) for l in labels] if labels is not None else [str(i) for i in range(c)]
    if len(labels) != c:
        raise ShapeError(f"{len(labels)} labels for a {c}x{c} matrix")
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    z = frac if normalize else cm
    acc = float(np.trace(cm) / cm.sum()) if cm.sum() > 0 else float("nan")
    annotate = c <= 20 if annotate is None else annotate
    text = [[(f"{frac[i, j]:.2f}<br>({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}") for j in range(c)]
            for i in range(c)]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale=colorscale, zmin=0,
                               zmax=1.0 if normalize else None, text=text if annotate else None,
                               texttemplate="%{text}" if annotate else None, textfont=dict(size=10),
                               hovertemplate="true %{y}<br>pred %{x}<br>%{z:.3f}<extra></extra>",
                               colorbar=dict(title=dict(text="recall" if normalize else "count"))))
    size = size or int(min(900, 160 + 42 * c))
    t = title or "Confusion matrix"
    fig.update_layout(title=f"{t} (accuracy {acc:.3f})", width=size + 80, height=size,
                      xaxis=dict(title="predicted", side="bottom", tickangle=-45 if c > 6 else 0),
                      yaxis=dict(title="true", autorange="reversed", scaleanchor="x"),
                      margin=dict(l=60, r=20, t=50, b=60))
    fig.layout.meta = {"accuracy": acc}
    return fig
