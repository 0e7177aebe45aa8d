"""Paper-layout tables (Tables 1-4 of 3D-CompNets) from evaluation results, paper numbers beside ours.

Our numbers are percentages measured on the synthetic ``views`` world; the paper's are on
ImageNet3D (ResNet-50 / ViT-B backbones). They share the layout, not the data: the side columns
are for orientation, not for equality. Mapping of columns: ``iid`` = our ``test`` split, ``occ_l*``
= ``occ_l*``, corruptions by name, Table 2's "synthetic" domain shift = our flat CAD-style
``style`` split, Table 3 = our ``unknown`` split (held-out categories; the paper's ten classes
differ, so only its average is a side value).

``pose_detail`` is ours, not the paper's: IID pose accuracy with the predicted and with the
ground-truth class, also modulo each test shape's own turns about its vertical axis (a stool has no
azimuth), beside the prior-guess chance level (a random training pose), plain and modulo symmetry.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from . import paper

OCC = ("occ_l1", "occ_l2", "occ_l3")
CORR = ("brightness", "frost", "snow", "fog")
SPLIT_OF = {"iid": "test", "brightness": "corrupt_brightness", "frost": "corrupt_frost", "snow": "corrupt_snow",
            "fog": "corrupt_fog", "style": "style_cad"}
TABLE4_COLS = ("iid",) + OCC + ("occ_avg",) + CORR + ("corr_avg",)


def _pct(x):
    return None if x is None else round(100.0 * float(x), 1)


def _split_value(results: Mapping, split: str, what: str):
    r = results.get("splits", {}).get(SPLIT_OF.get(split, split))
    if r is None:
        return None
    if what == "class":
        return r.get("acc")
    return r.get("pose", {}).get("acc_pi6")


def _row4(results: Mapping, what: str) -> dict[str, Any]:
    vals = {"iid": _split_value(results, "iid", what)}
    for s in OCC + CORR:
        vals[s] = _split_value(results, s, what)
    occ = [vals[s] for s in OCC if vals[s] is not None]
    cor = [vals[s] for s in CORR if vals[s] is not None]
    vals["occ_avg"] = sum(occ) / len(occ) if len(occ) == len(OCC) else None
    vals["corr_avg"] = sum(cor) / len(cor) if len(cor) == len(CORR) else None
    return {k: _pct(v) for k, v in vals.items()}


def _paper_row(variant: str, table: str):
    return paper.VARIANT_TO_PAPER.get(variant, {}).get(table)


def variant_of(cfg) -> str:
    """Which paper row a config corresponds to (for the side columns)."""
    vit = cfg.model.backbone == "vit_b"
    if cfg.model.kind == "dualhead":
        return "dualhead_vit" if vit else "dualhead"
    if cfg.loss.contrast == "full":
        return "novum"
    if vit:
        return "compnet3d_vit"
    if not cfg.loss.use_weights:
        return "compnet3d_noweights"
    return "compnet3d_n64" if cfg.loss.n_sample == 64 else "compnet3d"


def table4(rows: Iterable[tuple[str, str, Mapping]]) -> pd.DataFrame:
    """``rows = [(label, variant, results)]`` -> Table 4 (class and pose blocks, paper side columns)."""
    out = []
    for task in ("class", "pose"):
        for label, variant, res in rows:
            ours = _row4(res, task)
            pname = _paper_row(variant, "table4")
            pvals = dict(zip(paper.TABLE4_COLUMNS, paper.TABLE4[task][pname])) if pname else {}
            rec = {"task": task, "model": label, "paper_row": pname or "-"}
            for c in TABLE4_COLS:
                rec[c] = ours[c]
                rec[f"{c} (paper)"] = pvals.get(c)
            out.append(rec)
    return pd.DataFrame(out)


def pose_detail(rows: Iterable[tuple[str, str, Mapping]]) -> pd.DataFrame:
    """IID pose in more detail than the paper's Table 4 (see the module docstring); empty without pose."""
    out = []
    for label, _variant, res in rows:
        r = res.get("splits", {}).get("test", {})
        if "pose" not in r:
            continue
        ch = r.get("chance", {})
        out.append({"model": label, "n": r.get("n"),
                    "acc pi/6": _pct(r["pose"].get("acc_pi6")),
                    "median deg": None if "median_deg" not in r["pose"] else round(r["pose"]["median_deg"], 1),
                    "acc pi/6, gt class": _pct(r.get("pose_gt", {}).get("acc_pi6")),
                    "acc pi/6 mod sym": _pct(r.get("pose_sym", {}).get("acc_pi6")),
                    "acc pi/6 mod sym, gt class": _pct(r.get("pose_gt_sym", {}).get("acc_pi6")),
                    "chance acc pi/6": _pct(ch.get("acc_pi6")),
                    "chance mod sym": _pct(ch.get("acc_pi6_sym"))})
    return pd.DataFrame(out)


def table2(rows: Iterable[tuple[str, str, Mapping]]) -> pd.DataFrame:
    out = []
    for label, variant, res in rows:
        pname = _paper_row(variant, "table2")
        p = paper.TABLE2.get(pname, {}) if pname else {}
        out.append({"model": label, "paper_row": pname or "-",
                    "iid": _pct(_split_value(res, "iid", "class")), "iid (paper)": p.get("iid"),
                    "style shift": _pct(_split_value(res, "style", "class")),
                    "synthetic shift (paper)": p.get("synthetic")})
    return pd.DataFrame(out)


def table3(rows: Iterable[tuple[str, str, Mapping]]) -> pd.DataFrame:
    """Zero-shot pose on unknown categories: acc at pi/6 per category (+ the seen class used)."""
    out = []
    for label, variant, res in rows:
        u = res.get("splits", {}).get("unknown")
        if not u or not u.get("per_category"):
            continue
        pname = _paper_row(variant, "table3")
        rec: dict[str, Any] = {"model": label, "paper_row": pname or "-"}
        accs = []
        for cat, d in u["per_category"].items():
            rec[cat] = _pct(d["acc_pi6"])
            if d.get("used_class"):
                rec[f"{cat} via"] = f"{d['used_class']} ({100 * d['used_fraction']:.0f}%)"
            accs.append(d["acc_pi6"])
        rec["avg"] = _pct(sum(accs) / len(accs))
        rec["avg (paper)"] = paper.TABLE3[pname][-1] if pname in paper.TABLE3 else None
        out.append(rec)
    return pd.DataFrame(out)


def table1(rows: Iterable[tuple[str, str, Mapping]]) -> pd.DataFrame:
    """Training cost: loss FLOPs per step, training time, IID accuracy (paper beside)."""
    ref = {"novum": "NOVUM (100 epochs)", "compnet3d": "3D-CompNets N=32", "compnet3d_n64": "3D-CompNets N=64"}
    out = []
    for label, variant, res in rows:
        tr = res.get("train", {})
        steps = max(1, tr.get("step", 0))
        p = paper.TABLE1.get(ref.get(variant, ""), {})
        lt = tr.get("last_train", {})
        gf = lt.get("loss_gflops")
        out.append({"model": label, "contrast": res.get("contrast"),
                    "loss GFLOPs/step": None if gf is None else f"{gf:.3g}",
                    "train time (s)": tr.get("train_time_s"), "steps": tr.get("step"),
                    "iid acc": _pct(_split_value(res, "iid", "class")),
                    "paper GFLOPs": p.get("gflops"), "paper train h": p.get("train_hours"),
                    "paper acc": p.get("acc")})
    return pd.DataFrame(out)


def run_tables(results: Mapping, cfg) -> dict[str, pd.DataFrame]:
    """This run's rows of Tables 1-4."""
    variant = variant_of(cfg)
    rows = [(variant, variant, results)]
    tabs = {"table2": table2(rows), "table4": table4(rows)}
    t3 = table3(rows)
    if len(t3):
        tabs["table3"] = t3
    pd_ = pose_detail(rows)
    if len(pd_):
        tabs["pose_detail"] = pd_
    if cfg.model.kind == "compnet":
        tabs["table1"] = table1(rows)
    return tabs


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-markdown table (no ``tabulate`` dependency); None/NaN print as ``-``."""
    def fmt(v):
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 0.05 or v == 0 else f"{v:.3g}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


def tables_markdown(tabs: Mapping[str, pd.DataFrame], title: str = "") -> str:
    names = {"table1": "Table 1 - loss cost", "table2": "Table 2 - classification (IID / domain shift)",
             "table3": "Table 3 - zero-shot pose on unknown categories (acc at pi/6)",
             "table4": "Table 4 - robustness (class accuracy and pose accuracy at pi/6)",
             "pose_detail": "IID pose in detail, with chance levels (ours, not in the paper)"}
    parts = [f"# {title}\n" if title else "",
             "Ours: synthetic `views` world; paper: ImageNet3D (side columns, orientation only).\n"]
    for k in ("table1", "table2", "table3", "table4", "pose_detail"):
        if k in tabs:
            parts.append(f"## {names[k]}\n\n{to_markdown(tabs[k])}\n")
    return "\n".join(parts)


def _run_rows(runs_df) -> list[tuple[str, str, dict]]:
    """``(label, variant, eval.json)`` of every complete compnet3d run in a ``collect_runs`` frame."""
    import json
    from pathlib import Path

    from .config import CompNet3DConfig

    rows = []
    if runs_df is None or len(runs_df) == 0:
        return rows
    df = runs_df
    if "method" in df.columns:
        df = df[df["method"] == "compnet3d"]
    if "complete" in df.columns:
        df = df[df["complete"].astype(bool)]
    for _, r in df.iterrows():
        path = Path(r["path"])
        ev = path / "eval.json"
        if not ev.is_file():
            continue
        results = json.loads(ev.read_text())
        cfg = CompNet3DConfig.load(path / "config.yaml")
        variant = variant_of(cfg)
        runinfo = path / "run.json"
        label = json.loads(runinfo.read_text()).get("variant", variant) if runinfo.is_file() else variant
        rows.append((f"{label} [{r.get('run', path.name)}]", variant, results))
    return rows


def combined_tables(runs_df) -> dict[str, pd.DataFrame]:
    """Tables 1-4 over every complete compnet3d run of ``workbench.eval.results.collect_runs()``."""
    rows = _run_rows(runs_df)
    if not rows:
        return {}
    tabs = {"table2": table2(rows), "table4": table4(rows)}
    t3 = table3(rows)
    if len(t3):
        tabs["table3"] = t3
    t1 = table1([r for r in rows if r[1] != "dualhead" and r[1] != "dualhead_vit"])
    if len(t1):
        tabs["table1"] = t1
    pd_ = pose_detail(rows)
    if len(pd_):
        tabs["pose_detail"] = pd_
    profiles = sorted({str(r[2].get("profile")) for r in rows if isinstance(r[2], dict) and r[2].get("profile")})
    data = f"ours: synthetic 'views' preset{' (' + ', '.join(profiles) + ')' if profiles else ''}"
    captions = {
        "table1": f"Table 1: training cost of the contrastive loss, grouped vs full ({data}; paper: PASCAL3D+)",
        "table2": f"Table 2: IID classification accuracy and the synthetic/CAD-style domain shift ({data}; paper: PASCAL3D+ / OOD-CV)",
        "table3": f"Table 3: zero-shot pose on unseen categories, pose acc pi/6 ({data}; paper: PASCAL3D+ unseen classes)",
        "table4": f"Table 4: classification and pose under occlusion L1-L3 and corruptions ({data}; paper: OccludedPASCAL3D+ / PASCAL3D+-C)",
        "pose_detail": f"IID pose acc pi/6 with the predicted / ground-truth class, modulo each shape's vertical-axis "
                       f"symmetry, and the prior-guess chance ({data}; ours, not in the paper)",
    }
    for name, df in tabs.items():
        df.attrs.setdefault("caption", captions[name])
    return tabs
