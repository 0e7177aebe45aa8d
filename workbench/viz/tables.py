"""Results tables as pandas ``Styler``: best value per metric column in bold, paper numbers beside ours.

Direction of "best": ``higher_is_better`` maps a metric to True/False; metrics not listed are
guessed from their name -- lower is better for names containing ``err``, ``loss``, ``median``,
``chamfer``, ``cd``, ``distance``, ``hausdorff``, ``mse``, ``mae``, ``time``, ``seconds``; higher otherwise
(accuracy, mAP, IoU, PCK, top-k, ...).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

LOWER_IS_BETTER = re.compile(r"(err|loss|median|chamfer|(^|_)cd($|_)|distance|hausdorff|mse|mae|time|_sec|seconds)",
                             re.I)
PAPER_SUFFIX = " (paper)"


def lower_is_better(metric: str) -> bool:
    """Guess the direction of a metric from its name (see the module docstring)."""
    return bool(LOWER_IS_BETTER.search(str(metric)))


def add_paper_columns(df: pd.DataFrame, paper: Any, metrics: Sequence[str]) -> pd.DataFrame:
    """Insert ``"<metric> (paper)"`` after each metric for which ``paper`` has at least one number.

    ``paper`` is ``{row_label: {metric: value}}`` or a DataFrame indexed like ``df``.
    """
    if paper is None:
        return df
    if isinstance(paper, pd.DataFrame):
        pdf = paper
    elif isinstance(paper, Mapping):
        pdf = pd.DataFrame.from_dict({k: dict(v) for k, v in paper.items()}, orient="index")
    else:
        raise TypeError("paper must be a mapping {row: {metric: value}} or a DataFrame")
    out = df.copy()
    unknown_rows = [r for r in pdf.index if r not in df.index]
    if unknown_rows:
        raise KeyError(f"paper numbers for rows not in the table: {unknown_rows} (rows: {list(df.index)})")
    cols: list[str] = []
    for c in df.columns:
        cols.append(c)
        if c in metrics and c in pdf.columns and pdf[c].notna().any():
            out[c + PAPER_SUFFIX] = pdf[c].reindex(df.index)
            cols.append(c + PAPER_SUFFIX)
    extra = [c for c in pdf.columns if c not in df.columns]
    if extra:
        raise KeyError(f"paper numbers for metrics not in the table: {extra}")
    return out[cols]


def best_rows(df: pd.DataFrame, metric: str, higher: bool, tol: float = 1e-12) -> list:
    """Index labels of the best value(s) of a column (ties all count; NaN ignored)."""
    s = pd.to_numeric(df[metric], errors="coerce").astype(float)
    if s.notna().sum() == 0:
        return []
    best = s.max() if higher else s.min()
    return list(s.index[(s - best).abs() <= tol * max(1.0, abs(best))])


def results_table(df: pd.DataFrame, *, metrics: Sequence[str] | None = None,
                  higher_is_better: Mapping[str, bool] | None = None, paper: Any = None,
                  precision: int | Mapping[str, int] = 3, caption: str | None = None,
                  percent: Sequence[str] = ()) -> "pd.io.formats.style.Styler":
    """Style a results table: rows = methods/variants, columns = metrics.

    Args:
        df: the table (index = row labels).
        metrics: numeric columns that compete for "best" (default: every numeric column).
        higher_is_better: direction per metric (default guessed, see the module docstring).
        paper: the paper's numbers, ``{row: {metric: value}}`` or a DataFrame; each metric with a
            paper number gets a ``"<metric> (paper)"`` column right after it (greyed, never bold).
        precision: decimals, globally or per column.
        percent: metrics stored as fractions to show as percentages.
    Returns:
        A ``Styler``; ``styler.data`` is the table with paper columns, and ``styler.best`` maps
        each metric to the row labels printed in bold.
    """
    if metrics is None:
        metrics = [c for c in df.columns
                   if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    metrics = list(metrics)
    for m in metrics:
        if m not in df.columns:
            raise KeyError(f"metric '{m}' is not a column (columns: {list(df.columns)})")
    hib = dict(higher_is_better or {})
    full = add_paper_columns(df, paper, metrics)
    best = {m: best_rows(df, m, hib.get(m, not lower_is_better(m))) for m in metrics}

    def fmt_for(col: str):
        base = col[: -len(PAPER_SUFFIX)] if col.endswith(PAPER_SUFFIX) else col
        p = precision.get(base, 3) if isinstance(precision, Mapping) else precision
        pct = base in percent

        def f(v: Any) -> str:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return "–"
            if isinstance(v, (int, float, np.integer, np.floating)):
                return f"{100 * float(v):.{max(p - 2, 1)}f}%" if pct else f"{float(v):.{p}f}"
            return str(v)
        return f

    styler = full.style.format({c: fmt_for(c) for c in full.columns})

    def bold(col: pd.Series) -> list[str]:
        rows = best.get(col.name, [])
        return ["font-weight: bold" if idx in rows else "" for idx in col.index]

    styler = styler.apply(bold, axis=0, subset=metrics)
    paper_cols = [c for c in full.columns if c.endswith(PAPER_SUFFIX)]
    if paper_cols:
        styler = styler.set_properties(subset=paper_cols, **{"color": "#777777", "font-style": "italic"})
    arrows = {m: (" ↑" if hib.get(m, not lower_is_better(m)) else " ↓") for m in metrics}
    styler = styler.relabel_index([f"{c}{arrows.get(c, '')}" for c in full.columns], axis=1)
    if caption:
        styler = styler.set_caption(caption)
    styler = styler.set_table_styles([{"selector": "th", "props": "text-align: center;"},
                                      {"selector": "td", "props": "text-align: right; padding: 2px 8px;"}])
    styler.best = best  # type: ignore[attr-defined]
    return styler
