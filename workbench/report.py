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
            mruns = runs[runs["method"] == name] if len(runs) else runs
            parts.append(f"<h2>{name}</h2><p>{html.escape(spec.description)}</p>")
            if not len(mruns):
                parts.append("<p class='missing'>no runs yet (run <code>workbench run</code>).</p>")
                continue
            tables = spec.tables(mruns) if spec.tables else {}
            for tname, df in tables.items():
                df.to_csv(tables_dir / f"{name}_{tname}.csv")
                write_text(tables_dir / f"{name}_{tname}.tex", df.to_latex(float_format="%.2f", na_rep="--"))
                caption = getattr(df, "attrs", {}).get("caption", tname)
                parts.append(f"<h3>{html.escape(caption)}</h3>{_table_html(df)}")
            figs = []
            for run_path in sorted({Path(p) for p in mruns["path"]}):
                for png in sorted((run_path / "figures").glob("*.png")):
                    dst = figs_dir / f"{name}_{run_path.name}_{png.name}"
                    shutil.copy2(png, dst)
                    pdf = png.with_suffix(".pdf")
                    if pdf.exists():
                        shutil.copy2(pdf, dst.with_suffix(".pdf"))
                    figs.append(_img_tag(png, f"{run_path.name}: {png.stem}"))
            if figs:
                parts.append("<div class='figs'>" + "".join(figs) + "</div>")
            for _, row in mruns.iterrows():
                overview_rows.append({"method": name, "run": row.get("run"), "profile": row.get("profile")})
        parts.append("<h2>Across methods</h2>")
        if overview_rows:
            overview = pd.DataFrame(overview_rows)
            overview.to_csv(tables_dir / "overview.csv", index=False)
            parts.append(_table_html(overview))
        else:
            parts.append("<p class='missing'>no runs yet.</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>workbench report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = out_dir / "report.html"
    write_text(path, page)
    return path
