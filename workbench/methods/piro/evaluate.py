"""Evaluating a trained PiRO run: the eight tasks, rho, saved embeddings.

``evaluate(cfg, run_dir)`` loads ``checkpoint.pt``, embeds the train split (the gallery) and the
test split (the probes), computes the eight tasks of :func:`~.retrieval.eight_tasks` with the
official protocol (and the category mAPs without the query itself, ``*_noself``; and
``sv_obj_acc_within_cat`` and ``sv_obj_map_within_cat``, SV object recognition and retrieval among the
views of the query's own category, the fine-grained setting PiRO's object loss targets), the Fig. 6
separation statistics of the test objects in both spaces, and writes

* ``eval.json`` (flat ``{metric: value}``; accuracies/mAPs x100; undefined values, e.g. rho
  without two objects in a category, as ``null``; plus ``profile``), atomically;
* ``figures/rho.png`` and ``figures/retrieval_obj.png`` when ``eval.figures`` (see
  :func:`~.viz.write_run_figures`);
* ``embeddings.pt``: the test embeddings (SV/MV, both spaces, half-view MV object embeddings),
  the train MV/SV category embeddings and the labels, for the notebook's UMAP and galleries.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

import torch

from ...core.device import get_device
from ...core.io import save_torch, write_json
from .config import PiroConfig
from .data import MultiViewSplit
from .retrieval import (eight_tasks, ranking_map, resolve_backend, separation_stats, within_category_map,
                        within_category_nn_accuracy)
from .train import EARLY_STOP_FILE, embed_split, load_data, load_trained

log = logging.getLogger(__name__)


def compute_metrics(train_emb: Mapping[str, torch.Tensor], test_emb: Mapping[str, torch.Tensor],
                    k: int = 10, backend: str = "auto", exclude_self: bool = False) -> dict[str, float]:
    """The eight tasks, the no-self category mAPs, the within-category SV object diagnostics and the
    test separation stats from embeddings."""
    res = eight_tasks(train_emb["cat_sv"], train_emb["cat_mv"], train_emb["categories"],
                      test_emb["cat_sv"], test_emb["cat_mv"], test_emb["obj_sv"], test_emb["categories"],
                      test_emb["obj_mv_ref"], test_emb["obj_mv_query"], k=k, backend=backend,
                      exclude_self=exclude_self)
    n, v = test_emb["cat_sv"].shape[:2]
    cv = test_emb["categories"].repeat_interleave(v)
    sv = test_emb["cat_sv"].reshape(n * v, -1)
    res["sv_cat_map_noself"] = 100.0 * ranking_map(sv, sv, cv, cv, exclude=torch.arange(n * v))
    res["mv_cat_map_noself"] = 100.0 * ranking_map(test_emb["cat_mv"], test_emb["cat_mv"], test_emb["categories"],
                                                   test_emb["categories"], exclude=torch.arange(n))
    obj_v = torch.arange(n).repeat_interleave(v)
    obj_sv = test_emb["obj_sv"].reshape(n * v, -1)
    res["sv_obj_acc_within_cat"] = 100.0 * within_category_nn_accuracy(obj_sv, obj_v, cv)
    res["sv_obj_map_within_cat"] = 100.0 * within_category_map(obj_sv, obj_v, cv)
    for space in ("obj", "cat"):
        s = separation_stats(test_emb[f"{space}_sv"], test_emb["categories"])
        res.update({f"{key}_{space}": val for key, val in s.items()})
    return res


def evaluate(cfg: PiroConfig, run_dir: str | Path, data: Mapping[str, MultiViewSplit] | None = None,
             backbone_factory=None, save_embeddings: bool = True) -> dict[str, Any]:
    """Evaluate a trained run; writes ``eval.json`` (and ``embeddings.pt``) and returns the metrics."""
    run_dir = Path(run_dir)
    data = dict(data) if data is not None else load_data(cfg)
    tr, te = data["train"], data["test"]
    device = get_device(cfg.train.device)
    model, _ = load_trained(cfg, run_dir, backbone_factory=backbone_factory, device=device)
    bo = cfg.eval.batch_objects
    tr_emb = embed_split(model, tr, bo, halves=False)
    te_emb = embed_split(model, te, bo, halves=True)
    backend = resolve_backend(cfg.eval.backend)
    metrics = compute_metrics(tr_emb, te_emb, k=cfg.eval.knn_k, backend=backend, exclude_self=cfg.eval.exclude_self)
    ckpt_step = int(torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["step"])
    metrics.update({"n_train_objects": len(tr), "n_test_objects": len(te), "n_views": te.num_views,
                    "n_categories": tr.num_classes, "step": ckpt_step,
                    "early_stopped": int((run_dir / EARLY_STOP_FILE).exists())})
    if save_embeddings:
        save_torch(run_dir / "embeddings.pt", {
            "test": {k: v for k, v in te_emb.items()},
            "train": {k: tr_emb[k] for k in ("cat_mv", "obj_mv", "categories", "objects")},
            "category_names": list(tr.category_names),
            "backend": backend,
        })
    metrics["profile"] = cfg.profile
    if cfg.eval.figures:
        from .viz import write_run_figures

        write_run_figures(run_dir, te_emb, te.images, te.category_names)
    write_json(run_dir / "eval.json", {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                       for k, v in metrics.items()})
    log.info("piro eval %s: %s", run_dir.name,
             {k: round(v, 2) for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)})
    return metrics
