"""``workbench report``: collect ``runs/`` into tables, figures and one self-contained HTML page.

Outputs (under ``outputs/`` or ``$WB_OUTPUTS_DIR``):

* ``report.html``: one section per method (its paper-layout tables with the paper's numbers beside
  ours, the data each was measured on, its key figures), then a cross-method section. Images are
  embedded as base64, so the file opens offline.
* ``tables/<method>_<table>.csv`` and ``.tex``.
* ``figures/<method>_<figure>.png`` (and ``.pdf`` where the run wrote one).

Methods provide tables through ``MethodSpec.tables(runs_df)``; figures are the PNG files the runs
wrote into ``runs/<method>/<run>/figures/``.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import logging
import shutil
from pathlib import Path

import pandas as pd

from .core.io import atomic_dir, write_text
from .core.paths import outputs_dir, runs_dir
from .methods import METHOD_NAMES, get_method

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #aaa;margin-top:2em}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:0.9em}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;max-width:560px}
.figs img{max-width:100%;border:1px solid #ddd}.missing{color:#a00}
"""


def collect(runs_root: Path | None = None) -> pd.DataFrame:
    """All runs as one DataFrame (see :func:`workbench.eval.results.collect_runs`)."""
    from .eval.results import collect_runs

    return collect_runs(root=runs_root)


def _img_tag(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _png_to_pdf(png: Path, pdf: Path) -> None:
    """A PDF page holding ``png`` (for figures a run wrote only as PNG)."""
    from PIL import Image

    from .core.io import atomic_path

    with Image.open(png) as im, atomic_path(pdf) as tmp:
        im.convert("RGB").save(tmp, format="PDF", resolution=150.0)


def _export_figure(fig, figs_dir: Path, stem: str, caption: str) -> str | None:
    """Write a plotly figure as ``<stem>.png`` and ``.pdf``; returns its HTML tag (or None)."""
    from .viz.export import export

    try:
        res = export(fig, figs_dir / stem, formats=("png", "pdf"))
    except Exception as e:  # noqa: BLE001 -- a figure must not sink the report
        log.warning("report: figure %s failed: %s", stem, e)
        return None
    png = next((p for p in res.paths if p.suffix == ".png"), None)
    return _img_tag(png, caption) if png is not None else None


def _curves_figure(name: str, mruns: pd.DataFrame):
    """Training-loss curves of a method's runs (``metrics.csv``), one line per run."""
    from .eval.results import load_metrics
    from .viz.curves import training_curves

    data = {}
    for _, r in mruns.iterrows():
        try:
            df = load_metrics(Path(r["path"]), phase="train")
        except Exception:  # noqa: BLE001 -- a run without metrics.csv has no curve
            continue
        if len(df):
            data[str(r.get("variant") or r["run"])] = df
    if not data:
        return None
    cols = [c for c in ("loss", "loss/total", "total") if any(c in d.columns for d in data.values())]
    if not cols:  # the first numeric metric every run logs
        common = set.intersection(*(set(d.columns) for d in data.values())) - {"step", "phase", "time", "epoch", "lr"}
        cols = sorted(c for c in common if all(pd.api.types.is_numeric_dtype(d[c]) for d in data.values()))[:1]
    if not cols:
        return None
    fig = training_curves(data, metrics=cols[:1], smooth=0.6, title=f"{name}: training {cols[0]}", width=760)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0), margin=dict(t=70, b=90))
    return fig


def _timing_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Train and evaluation time of every run (``run.json`` timing, written by the pipeline)."""
    rows = []
    for _, r in runs.iterrows():
        def g(k):
            v = r.get(f"timing.{k}")
            return None if v is None or (isinstance(v, float) and pd.isna(v)) else float(v)

        rows.append({"method": r["method"], "variant": r.get("variant") or r["run"], "profile": r.get("profile"),
                     "train min (wall)": None if g("train_wall_s") is None else g("train_wall_s") / 60,
                     "train min (CPU)": None if g("train_cpu_s") is None else g("train_cpu_s") / 60,
                     "eval min (wall)": None if g("eval_wall_s") is None else g("eval_wall_s") / 60,
                     "torch threads": r.get("timing.threads")})
    return pd.DataFrame(rows)


def _timing_figure(tt: pd.DataFrame):
    import plotly.graph_objects as go

    tt = tt.dropna(subset=["train min (wall)"])
    if not len(tt):
        return None
    labels = [f"{m}: {v}" for m, v in zip(tt["method"], tt["variant"])]
    fig = go.Figure([go.Bar(y=labels, x=tt["train min (wall)"], orientation="h", name="train"),
                     go.Bar(y=labels, x=tt["eval min (wall)"].fillna(0), orientation="h", name="evaluate")])
    fig.update_layout(barmode="stack", title="Wall time per run (minutes)", width=760,
                      height=120 + 22 * len(tt), margin=dict(l=220, r=20, t=50, b=40))
    return fig


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(float_format=lambda v: f"{v:.2f}", na_rep="–", border=0, escape=True)


def build_report(out_dir: Path | None = None, runs_root: Path | None = None) -> Path:
    """Write the report, tables and figures; returns the path of ``report.html``."""
    out_dir = Path(out_dir or outputs_dir())
    runs_root = Path(runs_root or runs_dir())
    runs = collect(runs_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>workbench report</h1><p class='note'>Generated {_dt.datetime.now():%Y-%m-%d %H:%M} "
             f"from <code>{html.escape(str(runs_root))}</code>: {len(runs)} runs.</p>"]
    overview_rows = []
    with atomic_dir(out_dir / "tables", overwrite=True) as tables_dir, \
            atomic_dir(out_dir / "figures", overwrite=True) as figs_dir:
        for name in METHOD_NAMES:
            try:
                spec = get_method(name)
            except Exception as e:  # noqa: BLE001 -- a method not yet available gets a note
                parts.append(f"<h2>{name}</h2><p class='missing'>not available: {html.escape(str(e))}</p>")
                continue
            mruns = runs[(runs["method"] == name) & runs["complete"].astype(bool)] if len(runs) else runs
            parts.append(f"<h2>{name}</h2><p>{html.escape(spec.description)}</p>")
            if not len(mruns):
                parts.append("<p class='missing'>no finished runs yet (run <code>workbench run</code>).</p>")
                continue
            tables = spec.tables(mruns) if spec.tables else {}
            for tname, df in tables.items():
                df.to_csv(tables_dir / f"{name}_{tname}.csv")
                write_text(tables_dir / f"{name}_{tname}.tex", df.to_latex(float_format="%.2f", na_rep="--"))
                caption = getattr(df, "attrs", {}).get("caption", tname)
                parts.append(f"<h3>{html.escape(caption)}</h3>{_table_html(df)}")
            figs = []
            curves = _curves_figure(name, mruns)
            if curves is not None:
                tag = _export_figure(curves, figs_dir, f"{name}_curves", f"{name}: training curves")
                figs += [tag] if tag else []
            for run_path in sorted({Path(p) for p in mruns["path"]}):
                for png in sorted((run_path / "figures").glob("*.png")):
                    dst = figs_dir / f"{name}_{run_path.name}_{png.name}"
                    shutil.copy2(png, dst)
                    pdf = png.with_suffix(".pdf")
                    if pdf.exists():
                        shutil.copy2(pdf, dst.with_suffix(".pdf"))
                    else:
                        _png_to_pdf(png, dst.with_suffix(".pdf"))
                    figs.append(_img_tag(png, f"{run_path.name}: {png.stem}"))
            if figs:
                parts.append("<div class='figs'>" + "".join(figs) + "</div>")
            for _, row in mruns.iterrows():
                base = {"method": name, "variant": row.get("variant") or row.get("run"), "profile": row.get("profile"),
                        "seed": row.get("seed")}
                vals = {label: row.get(col) for label, col in spec.headline if col in row.index}
                if not vals:
                    overview_rows.append({**base, "metric": "-", "value": None})
                for label, v in vals.items():
                    overview_rows.append({**base, "metric": label, "value": pd.to_numeric(v, errors="coerce")})
        parts.append("<h2>Across methods</h2>")
        if overview_rows:
            overview = pd.DataFrame(overview_rows)
            overview.to_csv(tables_dir / "overview.csv", index=False)
            write_text(tables_dir / "overview.tex", overview.to_latex(index=False, float_format="%.3f", na_rep="--"))
            parts.append("<h3>Headline numbers of every run</h3><p class='note'>Each method's own tables above "
                         "put these beside the paper's numbers; the data each was measured on is in their captions."
                         "</p>" + _table_html(overview.set_index(["method", "variant"])))
            tt = _timing_table(runs[runs["complete"].astype(bool)])
            tt.to_csv(tables_dir / "timing.csv", index=False)
            write_text(tables_dir / "timing.tex", tt.to_latex(index=False, float_format="%.2f", na_rep="--"))
            parts.append("<h3>Compute per run</h3>" + _table_html(tt.set_index("method")))
            fig = _timing_figure(tt)
            tag = _export_figure(fig, figs_dir, "cross_timing", "wall time per run") if fig is not None else None
            if tag:
                parts.append("<div class='figs'>" + tag + "</div>")
        else:
            parts.append("<p class='missing'>no runs yet.</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>workbench report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = out_dir / "report.html"
    write_text(path, page)
    return path
