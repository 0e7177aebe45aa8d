"""TTP's baselines and ablations as config overrides, and the paper-layout tables.

Every variant is the one :class:`~.model.TTPModel` with overrides (never a copy). The synthetic
``collection`` preset gives a non-rigid category (``bird``: articulated wings, neck, tail) and a
rigid one (``car``); "rigid" as a *model* means no deformation basis (``num_basis = 0``).

============  ========  =====  =========  =================================================
variant       category  K      keypoints  paper row
============  ========  =====  =========  =================================================
full          bird      16     no         Tables 1-3 (TTP without keypoints)
rigid         bird      0      no         Table 1 rigid column, Table 3b "rigid"
kp            bird      16     yes (30)   Tables 1, 2 (TTP with keypoints)
rigid_kp      bird      0      yes        Table 1 rigid column with keypoints
K4/K8/K32/K64 bird      4..64  no         Table 3b
no_pixel      bird      16     no         Table 3a "- L_pixel"
no_vis        bird      16     no         Table 3a "- L_vis"
no_equiv      bird      16     no         Table 3a "- L_equiv"
car           car       16     no         Table 4 (rigid category, without keypoints)
car_kp        car       16     yes        Table 4 (with keypoints)
car_rigid     car       0      no         Table 4 (rigid model)
============  ========  =====  =========  =================================================
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .. import Variant
from . import paper

__all__ = ["VARIANTS", "tables", "table1", "table2", "table3a", "table3b", "table4", "table5"]

KP_WEIGHT = 30.0


def _v(name: str, desc: str, K: int | None = None, kp: bool = False, category: str | None = None,
       loss: dict | None = None) -> Variant:
    ov: dict = {}
    if K is not None:
        ov.setdefault("model", {})["num_basis"] = K
    if kp:
        ov.setdefault("loss", {})["keypoint"] = KP_WEIGHT
    if loss:
        ov.setdefault("loss", {}).update(loss)
    if category is not None:
        ov.setdefault("data", {})["category"] = category
    return Variant(name, ov, desc)


VARIANTS = (
    _v("full", "TTP, K = 16 deformation basis, no keypoint supervision (bird)"),
    _v("rigid", "rigid model: the template only, no deformation basis (bird)", K=0),
    _v("kp", "TTP with keypoint reprojection supervision (weight 30)", kp=True),
    _v("rigid_kp", "rigid model with keypoint supervision", K=0, kp=True),
    _v("car", "TTP on a rigid category (car), no keypoints", category="car"),
    _v("car_rigid", "rigid model on the car category", K=0, category="car"),
    _v("car_kp", "TTP on cars with keypoint supervision", kp=True, category="car"),
    _v("no_pixel", "without the texture (pixel) loss", loss={"texture": 0.0}),
    _v("no_vis", "without the visibility loss", loss={"visibility": 0.0}),
    _v("no_equiv", "without the equivariance losses", loss={"equivariance": 0.0, "equiv_mirror": 0.0}),
    _v("K4", "K = 4 basis components", K=4),
    _v("K8", "K = 8 basis components", K=8),
    _v("K32", "K = 32 basis components", K=32),
    _v("K64", "K = 64 basis components", K=64),
)

_PROFILE_ORDER = ("full", "quick", "smoke")


def _read_runs(runs_df: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated TTP run: variant, profile, seed and the flat ``eval.json`` metrics."""
    from ...eval.results import flatten

    rows = []
    if runs_df is None or not len(runs_df):
        return pd.DataFrame(columns=["variant", "profile", "seed", "run"])
    for _, r in runs_df.iterrows():
        if "method" in r and r["method"] != "ttp":
            continue
        path = Path(r["path"]) if isinstance(r.get("path"), (str, Path)) else None
        if path is None or not (path / "eval.json").is_file():
            continue
        info = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
        variant = info.get("variant") or _variant_from_name(path.name)
        row = {"variant": variant, "profile": info.get("profile", r.get("profile")),
               "seed": info.get("seed", r.get("seed")), "run": path.name}
        row.update(flatten(json.loads((path / "eval.json").read_text())))
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["variant", "profile", "seed", "run"])


def _variant_from_name(name: str) -> str:
    parts = name.split("-")
    return parts[1] if len(parts) >= 3 else name


def _pick_profile(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    for p in _PROFILE_ORDER:
        sub = df[df["profile"] == p]
        if len(sub):
            return sub, p
    return df, "?"


def _mean(df: pd.DataFrame, variant: str, key: str, scale: float = 1.0) -> float:
    if not len(df) or key not in df.columns:
        return math.nan
    v = pd.to_numeric(df.loc[df["variant"] == variant, key], errors="coerce").dropna()
    return float(v.mean() * scale) if len(v) else math.nan


def _fmt(x, digits=3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _caption(df: pd.DataFrame, title: str, profile: str) -> pd.DataFrame:
    df.attrs["caption"] = (f"{title} (ours: profile '{profile}', synthetic 'collection' preset; "
                           f"paper: Kokkinos & Kokkinos 2021, CUB / Pascal3D+)")
    return df


def table1(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 1: mIoU and PCK@0.1 of rigid and non-rigid models, with and without keypoints."""
    rows = []
    for (method, kp, hyp), vals in paper.TABLE1.items():
        rows.append({"method": method, "keypoints": kp, "hypotheses": hyp, "source": "paper (CUB)",
                     "rigid mIoU": vals[0], "rigid PCK": vals[1], "non-rigid mIoU": vals[2],
                     "non-rigid PCK": vals[3]})
    for kp, rigid_v, full_v in (("yes", "rigid_kp", "kp"), ("no", "rigid", "full")):
        rows.append({"method": "TTP (ours)", "keypoints": kp, "hypotheses": 1, "source": "ours (bird)",
                     "rigid mIoU": _fmt(_mean(df, rigid_v, "miou")),
                     "rigid PCK": _fmt(_mean(df, rigid_v, "pck@0.1", 100), 1),
                     "non-rigid mIoU": _fmt(_mean(df, full_v, "miou")),
                     "non-rigid PCK": _fmt(_mean(df, full_v, "pck@0.1", 100), 1)})
    return _caption(pd.DataFrame(rows), "Table 1: mask IoU and keypoint-reprojection PCK@0.1", profile)


def table2(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 2: solver iterations at test time."""
    rows = []
    for k in (1, 2, 3, 4):
        row = {"iterations": k}
        for label, variant in (("with keypoints", "kp"), ("without keypoints", "full")):
            pm, pp = paper.TABLE2[label][k]
            row[f"{label} mIoU (paper)"] = pm
            row[f"{label} mIoU (ours)"] = _fmt(_mean(df, variant, f"iterations.{k}.miou"))
            row[f"{label} PCK (paper)"] = pp
            row[f"{label} PCK (ours)"] = _fmt(_mean(df, variant, f"iterations.{k}.pck@0.1", 100), 1)
        rows.append(row)
    return _caption(pd.DataFrame(rows), "Table 2: test-time solver iterations", profile)


def table3a(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 3a: loss ablation (ours without keypoints)."""
    names = {"TTP": "full", "- L_pixel": "no_pixel", "- L_vis": "no_vis", "- L_equiv": "no_equiv"}
    rows = []
    for label, variant in names.items():
        p = paper.TABLE3A[label]
        rows.append({"variant": label,
                     "with kp mIoU (paper)": p["with keypoints"][0], "with kp PCK (paper)": p["with keypoints"][1],
                     "w/o kp mIoU (paper)": p["without keypoints"][0],
                     "w/o kp PCK (paper)": p["without keypoints"][1],
                     "w/o kp mIoU (ours)": _fmt(_mean(df, variant, "miou")),
                     "w/o kp PCK (ours)": _fmt(_mean(df, variant, "pck@0.1", 100), 1),
                     "w/o kp transfer PCK (ours)": _fmt(_mean(df, variant, "transfer_pck@0.1", 100), 1)})
    return _caption(pd.DataFrame(rows), "Table 3a: loss ablation", profile)


def table3b(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 3b: number of basis components (ours without keypoints)."""
    names = {"rigid": "rigid", 4: "K4", 8: "K8", 16: "full", 32: "K32", 64: "K64"}
    rows = []
    for K, variant in names.items():
        p = paper.TABLE3B[K]
        rows.append({"K": str(K),
                     "with kp mIoU (paper)": p["with keypoints"][0], "with kp PCK (paper)": p["with keypoints"][1],
                     "w/o kp mIoU (paper)": p["without keypoints"][0],
                     "w/o kp PCK (paper)": p["without keypoints"][1],
                     "w/o kp mIoU (ours)": _fmt(_mean(df, variant, "miou")),
                     "w/o kp PCK (ours)": _fmt(_mean(df, variant, "pck@0.1", 100), 1),
                     "w/o kp 3D IoU (ours)": _fmt(_mean(df, variant, "iou3d"))})
    return _caption(pd.DataFrame(rows), "Table 3b: number of basis components", profile)


def table4(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Table 4: 3D voxel IoU (32^3); paper on Pascal3D+, ours on the synthetic car and bird."""
    rows = []
    for method, vals in paper.TABLE4.items():
        rows.append({"method": method, "aeroplane (paper)": vals["aeroplane"], "car (paper)": vals["car"]})
    ours = {"TTP with keypoints": ("car_kp", "kp"), "TTP without keypoints": ("car", "full"),
            "rigid model (no basis)": ("car_rigid", "rigid"), "template only": ("car", "full")}
    for method, (car_v, bird_v) in ours.items():
        suffix = "_template" if method == "template only" else ""
        rows.append({"method": f"{method} (ours)",
                     "car (ours, rigid category)": _fmt(_mean(df, car_v, "iou3d" + suffix)),
                     "bird (ours, non-rigid category)": _fmt(_mean(df, bird_v, "iou3d" + suffix)),
                     "car Chamfer (ours, lower better)": _fmt(_mean(df, car_v, "chamfer3d" + suffix), 4),
                     "bird Chamfer (ours, lower better)": _fmt(_mean(df, bird_v, "chamfer3d" + suffix), 4)})
    return _caption(pd.DataFrame(rows), "Table 4: 3D IoU (32^3 voxels) and surface Chamfer distance", profile)


def table5(benchmark_json: str | Path | None = None) -> pd.DataFrame:
    """Table 5: run time (ms/image); ours from ``benchmarks/ttp_solver.py`` output when present."""
    rows = []
    for (dev, it), (cnn, opt, total) in paper.TABLE5.items():
        rows.append({"device": dev, "iterations": it, "batch": 1, "source": "paper (official, L-BFGS)",
                     "CNN ms": cnn, "optimisation ms": opt, "total ms": total})
    if benchmark_json is None:
        from ...core.paths import outputs_dir

        benchmark_json = outputs_dir() / "benchmarks" / "ttp_solver.json"
    p = Path(benchmark_json)
    if p.is_file():
        data = json.loads(p.read_text())
        for r in data.get("rows", []):
            for src, key in (("ours (batched LM + IFT)", "ours_ms_per_image"),
                             ("reference (per-sample L-BFGS)", "reference_ms_per_image")):
                rows.append({"device": r["device"].upper(), "iterations": r["iterations"], "batch": r["batch"],
                             "source": src, "CNN ms": _fmt(r["cnn_ms_per_image"], 2),
                             "optimisation ms": _fmt(r[key], 2),
                             "total ms": _fmt(r["cnn_ms_per_image"] + r[key], 2)})
    df = pd.DataFrame(rows)
    df.attrs["caption"] = "Table 5: run time per image at 256 x 256 (ours: benchmarks/ttp_solver.py)"
    return df


def tables(runs_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper-layout tables (ours beside the paper's numbers) from ``collect_runs`` output."""
    df = _read_runs(runs_df)
    df, profile = _pick_profile(df)
    return {"table1": table1(df, profile), "table2": table2(df, profile), "table3a": table3a(df, profile),
            "table3b": table3b(df, profile), "table4": table4(df, profile), "table5": table5()}
