"""Paper-layout tables (Tables 1, 2/3 and 4) with the paper's numbers beside ours.

``tables(runs_df)`` takes the rows of :func:`workbench.eval.results.collect_runs` for PiRO (or
any DataFrame with a ``path`` column pointing at run directories) and returns
``{"table1": ..., "table2": ..., "table4": ...}``. Our numbers are the mean (and ``±`` std as a
separate ``*_std`` table attribute) over the seeds of each variant at each profile; the paper's
rows follow, labelled by dataset.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paper
from .baselines import TABLE1_ROWS, TABLE2_ROWS, TABLE4_ROWS

ACC = ("sv_cat_acc", "mv_cat_acc", "sv_obj_acc", "mv_obj_acc")
MAP = ("sv_cat_map", "mv_cat_map", "sv_obj_map", "mv_obj_map")
NAMES = {"sv_cat_acc": "SV-cat acc", "mv_cat_acc": "MV-cat acc", "sv_obj_acc": "SV-obj acc",
         "mv_obj_acc": "MV-obj acc", "sv_cat_map": "SV-cat mAP", "mv_cat_map": "MV-cat mAP",
         "sv_obj_map": "SV-obj mAP", "mv_obj_map": "MV-obj mAP"}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_records(runs_df: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated run: ``variant``, ``profile``, ``seed``, ``dataset`` and the metrics."""
    rows = []
    for _, r in runs_df.iterrows():
        path = Path(str(r.get("path", "")))
        ev = _read_json(path / "eval.json")
        if not ev:
            continue
        info = _read_json(path / "run.json")
        name = path.name
        parts = name.split("-")
        variant = r.get("variant") if isinstance(r.get("variant"), str) else info.get("variant")
        if not variant and len(parts) >= 3:
            variant = "-".join(parts[1:-1])
        profile = r.get("profile") if isinstance(r.get("profile"), str) else info.get("profile", parts[0])
        dataset = "synthetic"
        cfg_path = path / "config.yaml"
        if cfg_path.is_file():
            import yaml

            try:
                data = (yaml.safe_load(cfg_path.read_text()) or {}).get("data", {})
                dataset = data.get("source", "synthetic")
                if dataset == "synthetic":
                    dataset += "/" + str(data.get("subset", "fine"))
                if data.get("categories"):
                    dataset += f" [{len(data['categories'])} categories]"
            except yaml.YAMLError:
                pass
        rows.append({"run": name, "variant": variant, "profile": profile, "seed": info.get("seed"),
                     "dataset": dataset, **{k: v for k, v in ev.items() if isinstance(v, (int, float))}})
    return pd.DataFrame(rows)


def _ours(rec: pd.DataFrame, variant: str, cols: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(label, mean (len(cols),), std)]`` per (profile, dataset) for one variant."""
    out = []
    sub = rec[rec["variant"] == variant] if len(rec) else rec
    for (profile, dataset), g in (sub.groupby(["profile", "dataset"]) if len(sub) else []):
        vals = g[list(cols)].to_numpy(dtype=float)
        out.append((f"ours ({dataset}, {profile}, n={len(g)})", vals.mean(0),
                    vals.std(0) if len(g) > 1 else np.full(len(cols), np.nan)))
    return out


def _frame(rows: list[tuple[tuple, Any]], columns: list[str], index_names: list[str], caption: str,
           std: dict | None = None) -> pd.DataFrame:
    df = pd.DataFrame([v for _, v in rows], index=pd.MultiIndex.from_tuples([k for k, _ in rows], names=index_names),
                      columns=columns, dtype=float) if rows else pd.DataFrame(columns=columns)
    df.attrs["caption"] = caption
    if std:
        df.attrs["std"] = std
    return df


def table1(rec: pd.DataFrame) -> pd.DataFrame:
    """Single vs dual space on the eight tasks (+ averages)."""
    cols = list(ACC) + ["acc_avg"] + list(MAP) + ["map_avg"]
    rows, std = [], {}
    for space, variant in TABLE1_ROWS:
        for label, mean, sd in _ours(rec, variant, tuple(cols)):
            rows.append(((label, space), mean))
            std[f"{label}|{space}"] = sd.tolist()
    for ds in paper.DATASETS:
        for space in ("Single", "Dual"):
            rows.append(((f"paper ({ds})", space), paper.TABLE1[ds][space]))
    names = [NAMES.get(c, "Avg acc" if c == "acc_avg" else "Avg mAP") for c in cols]
    return _frame(rows, names, ["source", "space"],
                  "Table 1: single vs dual embedding space (accuracy and mAP x100)", std)


def table2(rec: pd.DataFrame) -> pd.DataFrame:
    """Baselines vs PiRO on SV/MV category and SV object tasks (Tables 2 and 3)."""
    three_acc, three_map = ("sv_cat_acc", "mv_cat_acc", "sv_obj_acc"), ("sv_cat_map", "mv_cat_map", "sv_obj_map")
    cols = list(three_acc) + ["acc_avg3"] + list(three_map) + ["map_avg3"]
    rows, std = [], {}
    if len(rec):
        rec = rec.copy()
        rec["acc_avg3"] = rec[list(three_acc)].mean(axis=1)
        rec["map_avg3"] = rec[list(three_map)].mean(axis=1)
    for variant, label in TABLE2_ROWS.items():
        for src, mean, sd in _ours(rec, variant, tuple(cols)):
            rows.append(((src, label), mean))
            std[f"{src}|{label}"] = sd.tolist()
    for ds in ("ModelNet-40", "ObjectPI", "FG3D"):
        for label, vals in paper.TABLE2[ds].items():
            rows.append(((f"paper ({ds})", label), vals))
    names = [NAMES[c] for c in three_acc] + ["Avg acc"] + [NAMES[c] for c in three_map] + ["Avg mAP"]
    return _frame(rows, names, ["source", "method"],
                  "Tables 2/3: pose-invariant baselines vs PiRO (x100; averages over the three tasks)", std)


def table4(rec: pd.DataFrame) -> pd.DataFrame:
    """Loss ablation: classification / retrieval averages over the four tasks."""
    rows, std = [], {}
    for variant, label in TABLE4_ROWS.items():
        for src, mean, sd in _ours(rec, variant, ("acc_avg", "map_avg")):
            rows.append(((src, label), mean))
            std[f"{src}|{label}"] = sd.tolist()
    for ds in paper.DATASETS:
        for label, vals in paper.TABLE4.items():
            rows.append(((f"paper ({ds})", label), vals[ds] if vals[ds] is not None else (np.nan, np.nan)))
    return _frame(rows, ["Classification avg", "Retrieval avg"], ["source", "setting"],
                  "Table 4: loss ablation (averages of the four accuracies / four mAPs, x100)", std)


def tables(runs_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper-layout tables from PiRO's runs (see the module docstring)."""
    rec = run_records(runs_df) if len(runs_df) else pd.DataFrame()
    return {"table1": table1(rec), "table2": table2(rec), "table4": table4(rec)}
