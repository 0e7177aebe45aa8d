"""UNICORN's Table-3 ablations as config overrides, and the paper-layout tables.

Every variant is the one :class:`~.model.UnicornModel` with switches (never a copy):

===============  ==========================================  ===============================
variant          overrides                                    paper
===============  ==========================================  ===============================
full             --                                           Tables 2 and 3 "Full"
no_swap          ``loss.swap = 0``                            Table 3 "w/o L_swap"
no_progressive   ``model.progressive = False``                Table 3 "w/o progressive cond."
===============  ==========================================  ===============================

The undeformed ellipsoid template is evaluated inside every run (``template_chamfer_l1*``), so it
needs no run of its own.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .. import Variant
from . import paper

__all__ = ["VARIANTS", "tables", "table2", "table3"]

VARIANTS = (
    Variant("full", {}, "UNICORN: swap reconstruction, progressive conditioning, alternate optimisation"),
    Variant("no_swap", {"loss": {"swap": 0.0}}, "without the swap-reconstruction loss (Table 3)"),
    Variant("no_progressive", {"model": {"progressive": False}},
            "without progressive conditioning: full latent sizes from the start (Table 3)"),
)

_PROFILE_ORDER = ("full", "quick", "smoke")


def _variant_from_name(name: str) -> str:
    parts = name.split("-")
    return parts[1] if len(parts) >= 3 else name


def _read_runs(runs_df: pd.DataFrame | None) -> pd.DataFrame:
    """One row per evaluated UNICORN run: variant, profile, seed and the flat eval.json metrics."""
    from ...eval.results import flatten

    rows = []
    if runs_df is not None and len(runs_df):
        for _, r in runs_df.iterrows():
            if "method" in r and r["method"] != "unicorn":
                continue
            path = Path(r["path"]) if isinstance(r.get("path"), (str, Path)) else None
            if path is None or not (path / "eval.json").is_file():
                continue
            info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
            ev = json.loads((path / "eval.json").read_text())
            row = {"variant": info.get("variant") or _variant_from_name(path.name),
                   "profile": info.get("profile", r.get("profile", ev.get("profile"))),
                   "seed": info.get("seed", r.get("seed")), "run": path.name}
            row.update(flatten(ev))
            rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["variant", "profile", "seed", "run"])


def _pick_profile(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    for p in _PROFILE_ORDER:
        sub = df[df["profile"] == p]
        if len(sub):
            return sub, p
    return df, "?"


def _mean(df: pd.DataFrame, variant: str, key: str) -> float:
    if not len(df) or key not in df.columns:
        return math.nan
    v = pd.to_numeric(df.loc[df["variant"] == variant, key], errors="coerce").dropna()
    return float(v.mean()) if len(v) else math.nan


def _fmt(x, digits: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _pair(x, ref, digits: int = 3):
    """``"x (ref)"`` for a metric and its reference, None when the metric is missing (older runs)."""
    a, b = _fmt(x, digits), _fmt(ref, digits)
    return None if a is None else (f"{a} ({b})" if b is not None else f"{a}")


def _world_to_shapenet() -> dict[str, str]:
    return {w: s for s, w in paper.CATEGORY_MAP.items()}


def _categories(df: pd.DataFrame) -> list[str]:
    cats = []
    for c in df.columns:
        if c.endswith(".chamfer_l1_icp") and not c.startswith("mean."):
            cats.append(c.split(".")[0])
    return sorted(set(cats))


def table2(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 2 layout: Chamfer-L1 per category (ours with/without ICP, the template, the paper)."""
    w2s = _world_to_shapenet()
    rows = []
    for cat in _categories(df) + ["mean"]:
        sn = w2s.get(cat, "mean" if cat == "mean" else None)
        rows.append({
            "category": cat, "ShapeNet class": sn or "-",
            "ours CD-L1 (ICP)": _fmt(_mean(df, "full", f"{cat}.chamfer_l1_icp")),
            "ours CD-L1 (no ICP)": _fmt(_mean(df, "full", f"{cat}.chamfer_l1")),
            "template CD-L1 (ICP)": _fmt(_mean(df, "full", f"{cat}.template_chamfer_l1_icp")),
            "ours mask IoU": _fmt(_mean(df, "full", f"{cat}.mask_iou")),
            "ours colour L1 (mean-colour baseline)": _pair(_mean(df, "full", f"{cat}.colour_l1"),
                                                           _mean(df, "full", f"{cat}.colour_l1_mean_baseline")),
            "ours colour corr": _fmt(_mean(df, "full", f"{cat}.colour_corr")),
            "ours chroma corr": _fmt(_mean(df, "full", f"{cat}.chroma_corr")),
            "ours pose median deg (aligned)": _fmt(_mean(df, "full", f"{cat}.pose_aligned.median_deg"), 1),
            "paper UNICORN (ICP)": paper.table2_value("UNICORN (unsupervised, ICP)", sn) if sn else None,
            "paper DVR* (ICP)": paper.table2_value("DVR* (category-specific, ICP)", sn) if sn else None,
            "paper SoftRas": paper.table2_value("SoftRas", sn) if sn else None,
        })
    out = pd.DataFrame(rows)
    out.attrs["caption"] = (f"Table 2: Chamfer-L1 x10 (ours: profile '{profile}', synthetic 'collection' preset, "
                            f"rigid ICP; paper: ShapeNet NMR, 13 classes, mean over all 13)")
    return out


def table3(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 3 layout: ablation (full / w/o swap / w/o progressive), Chamfer-L1 after ICP."""
    names = (("full", "full", 0), ("w/o L_swap", "no_swap", 1), ("w/o progressive", "no_progressive", 2))
    w2s = _world_to_shapenet()
    rows = []
    for cat in _categories(df) + ["mean"]:
        sn = w2s.get(cat, "mean" if cat == "mean" else None)
        row = {"category": cat}
        for label, variant, j in names:
            row[f"{label} (ours)"] = _fmt(_mean(df, variant, f"{cat}.chamfer_l1_icp"))
            row[f"{label} (paper)"] = paper.TABLE3[sn][j] if sn in paper.TABLE3 else None
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["caption"] = (f"Table 3: ablations, Chamfer-L1 x10 after ICP (ours: profile '{profile}'; paper: "
                            f"ShapeNet, M = 256, mean over airplane/bench/car/chair)")
    return out


def tables(runs_df: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The paper-layout tables (ours beside the paper's numbers) from ``collect_runs`` output."""
    df, profile = _pick_profile(_read_runs(runs_df))
    return {"table2": table2(df, profile), "table3": table3(df, profile)}
