"""Notebook-level helpers: run a variant (resumably, reusing finished runs) and tabulate results.

Runs go to ``runs/piro/<profile>-<variant>-s<seed>`` like the pipeline's, so the notebook reuses
what ``workbench run`` trained (and vice versa) when the configs agree; a different config under
the same name is an error (pick another ``name``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ...core.config import resolve_profile
from ...core.errors import ConfigError
from ...core.io import write_json
from ...core.paths import runs_dir
from . import paper
from .baselines import get_variant, variant_config
from .config import PiroConfig
from .evaluate import evaluate
from .retrieval import TASKS
from .train import train

log = logging.getLogger(__name__)


def run_variant(variant: str, profile: str | None = None, overrides: Sequence[str] | None = None,
                seed: int = 0, name: str | None = None, data=None, root: Path | None = None,
                callbacks: Iterable = ()) -> dict[str, Any]:
    """Train and evaluate one variant unless its ``eval.json`` exists; returns ``{"cfg", "run_dir", "metrics"}``."""
    profile = resolve_profile(profile)
    cfg = variant_config(variant, profile, list(overrides or []) + [f"seed={seed}"])
    run_dir = Path(root or runs_dir()) / "piro" / (name or f"{profile}-{variant}-s{seed}")
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists() and PiroConfig.load(saved) != cfg:
        raise ConfigError(f"{saved} holds a different config; pass another name= or delete {run_dir}")
    if not saved.exists():
        cfg.save(saved)
    write_json(run_dir / "run.json", {"method": "piro", "variant": variant, "profile": profile, "seed": seed,
                                      "description": get_variant(variant).description})
    if (run_dir / "eval.json").exists():
        import json

        return {"cfg": cfg, "run_dir": run_dir, "metrics": json.loads((run_dir / "eval.json").read_text())}
    train(cfg, run_dir, data=data, callbacks=callbacks)
    return {"cfg": cfg, "run_dir": run_dir, "metrics": evaluate(cfg, run_dir, data=data)}


def eight_task_table(results: Mapping[str, Mapping[str, float]], paper_dataset: str | None = "FG3D",
                     extra: Sequence[str] = ("sv_obj_acc_within_cat", "sv_obj_map_within_cat", "rho_obj")
                     ) -> pd.DataFrame:
    """Ours (``{label: metrics}``) beside the paper's Table 1 rows of ``paper_dataset``, x100.

    ``extra`` columns (ours only): SV object recognition and retrieval among the query's own category and the
    test objects' rho in the object space.
    """
    cols = list(TASKS[:4]) + ["acc_avg"] + list(TASKS[4:]) + ["map_avg"]
    rows = {f"ours: {k}": [float(m.get(c) if m.get(c) is not None else float("nan")) for c in cols + list(extra)]
            for k, m in results.items()}
    if paper_dataset:
        for space in ("Single", "Dual"):
            rows[f"paper ({paper_dataset}): {space}"] = list(paper.TABLE1[paper_dataset][space]) + \
                [float("nan")] * len(extra)
    cols = cols + list(extra)
    df = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    df.attrs["caption"] = "The eight tasks (accuracy and mAP x100)"
    return df
