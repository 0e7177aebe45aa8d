"""Training: ``train(cfg, run_dir) -> dict`` through :class:`workbench.train.Trainer` (resumable).

One iteration: a batch of ``B`` queries and ``S_b`` distinct shapes (:class:`~.data.BatchSampler`)
-> query augmentation (crop/translate/flip shared with the mask, then colour transfer / HSV /
none) and render augmentation (crop/flip per view) -> embeddings and the ``(B, S_b)`` score
matrix -> ``L = L_inst + beta_1 L_cat`` (or the triplet baseline ``L_tri + beta_1 L_cat``).

The augmentation of iteration ``step`` draws from a generator seeded by ``(seed, step)``, so a
resumed run sees exactly the same batches and augmentations as an uninterrupted one.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...core.seed import seed_everything
from ...train import Trainer, build_optimizer, build_scheduler, step_batches
from .augment import augment_queries, augment_renders
from .config import CMICConfig
from .data import BatchSampler, RetrievalData, load_data
from .losses import category_contrastive_loss, instance_contrastive_loss, pair_distances, triplet_semihard_loss
from .model import CMIC, build_model

log = logging.getLogger(__name__)


def compute_losses(model: CMIC, batch: dict, cfg: CMICConfig, generator: torch.Generator | None = None,
                   augment: bool = True) -> dict:
    """Augment a batch, run the model, and return ``{"loss", "inst", "cat", "acc"}`` (+ the outputs).

    ``model`` may be a DDP wrapper (its forward is called).
    """
    aug = cfg.augment.settings()
    if augment:
        images, masks = augment_queries(batch["images"], batch["masks"], cfg.model.image_size, aug, generator)
        renders = augment_renders(batch["renders"], cfg.model.render_size, aug, generator)
    else:
        from .augment import resize

        images, masks = resize(batch["images"], cfg.model.image_size), resize(batch["masks"], cfg.model.image_size)
        renders = resize(batch["renders"], cfg.model.render_size)
    out = model(images, masks, renders)
    scores, target = out["scores"], batch["target"]
    lc = cfg.loss
    if lc.instance == "contrastive":
        inst = instance_contrastive_loss(scores, target, lc.tau)
    else:
        inst = triplet_semihard_loss(pair_distances(out["query"], out["shape_emb"]), target, lc.triplet_margin)
    if lc.category_weight > 0:
        cat = category_contrastive_loss(scores, target, batch["query_cat"], batch["shape_cat"], lc.tau,
                                        lc.category_include_gt, lc.category_reduction)
    else:
        cat = scores.sum() * 0.0
    acc = (scores.argmax(1) == target).float().mean()
    return {"loss": inst + lc.category_weight * cat, "inst": inst.detach(), "cat": cat.detach(),
            "acc": acc, "_out": out, "_images": images}


def make_trainer(cfg: CMICConfig, run_dir: Path, data: RetrievalData | None = None, callbacks=(),
                 resume: bool = True):
    """Build ``(trainer, step_fn, batches, eval_fn, data)`` for a run (used by :func:`train` and notebooks)."""
    data = data if data is not None else load_data(cfg.data)
    tcfg = cfg.train.merged({"seed": cfg.seed})
    seed_everything(cfg.seed)
    model = build_model(cfg.model)
    opt = build_optimizer(model, tcfg)
    sched = build_scheduler(opt, tcfg)
    sampler = BatchSampler(data.train, data.seen, tcfg.batch_size, cfg.data.shapes_per_batch, seed=cfg.seed)

    def step_fn(m, batch, step):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        out = compute_losses(m, batch, cfg, g)
        return {k: v for k, v in out.items() if not k.startswith("_")}

    def eval_fn(m, step):
        from .evaluate import retrieval_metrics

        res = retrieval_metrics(m, data, cfg, max_queries=min(256, len(data.test)), shape_metrics=False)
        return {k: v for k, v in res["metrics"].items() if k in ("top1", "top10", "category_acc")}

    trainer = Trainer(model, opt, run_dir, tcfg, scheduler=sched, callbacks=callbacks, config=cfg, resume=resume)
    return trainer, step_fn, step_batches(sampler.batch), eval_fn, data


def train(cfg: CMICConfig, run_dir: str | Path, data: RetrievalData | None = None, callbacks=()) -> dict:
    """Train (or resume) a CMIC run in ``run_dir``; returns the last logged training metrics.

    Args:
        cfg: the run's :class:`~.config.CMICConfig`.
        run_dir: ``runs/cmic/<run>/`` (checkpoint, metrics.csv, config.yaml).
        data: pre-loaded :class:`~.data.RetrievalData` (default: :func:`~.data.load_data` of ``cfg.data``).
        callbacks: extra :class:`workbench.train.Callback` objects (e.g. a live ``History``).
    """
    run_dir = Path(run_dir)
    trainer, step_fn, batches, eval_fn, data = make_trainer(cfg, run_dir, data, callbacks)
    log.info("cmic: training on %s", data.summary())
    result = trainer.fit(step_fn, batches, eval_fn if cfg.train.eval_every else None)
    out = dict(result.last_train)
    out.update({f"val_{k}": v for k, v in result.last_eval.items()})
    out.update({"status": result.status, "step": result.step, "elapsed_s": result.elapsed_s})
    return out
