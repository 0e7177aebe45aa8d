"""Training PiRO (and its baselines) with :class:`workbench.train.Trainer`.

One iteration: ``train.batch_size`` same-category object pairs from :class:`~.sampler.PairSampler`
(the same view indices for both objects of a pair), one forward pass of the 2P objects, the
objective of :class:`~.losses.PiroCriterion`, Adam, and the iteration-based step schedule.
Every ``train.eval_every`` iterations the Fig. 6 diagnostics (:func:`~.retrieval.separation_stats`:
``d_intra^max``, ``d_inter^min``, ``rho``) are computed in both spaces on a fixed subset of
train objects (and of test objects when given) and logged to ``metrics.csv`` as ``eval`` rows
(``train.rho_obj``, ``test.rho_cat``, ...). The official early-stop criterion (``es_ratio`` of the
object space above ``eval.early_stop_ratio``) is optional.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ...core.errors import DataError
from ...core.io import write_json
from ...core.seed import seed_everything
from ...train import Callback, Trainer, build_optimizer, build_scheduler, load_checkpoint, step_batches
from .config import PiroConfig
from .data import MultiViewSplit, load_split
from .losses import PiroCriterion
from .model import PiroNet, build_model
from .retrieval import separation_stats
from .sampler import PairSampler

log = logging.getLogger(__name__)

EARLY_STOP_FILE = "early_stop.json"


# ---------------------------------------------------------------------------- augmentation
def augment_views(x: torch.Tensor, max_rot_deg: float = 5.0, scale=(0.9, 1.1), max_shear_deg: float = 1.0,
                  flip_p: float = 0.5) -> torch.Tensor:
    """The official augmentation, per view: random horizontal flip and a small random affine.

    ``x (B, V, 3, H, W)`` in [0, 1] -> same shape; pixels mapped from outside the image repeat
    the border (backgrounds are not black). Draws from the global torch RNG (restored on resume
    by the Trainer).
    """
    b, v, c, h, w = x.shape
    n = b * v
    dev = x.device
    rot = (torch.rand(n, device=dev) * 2 - 1) * math.radians(max_rot_deg)
    sc = torch.empty(n, device=dev).uniform_(*scale)
    sh = (torch.rand(n, device=dev) * 2 - 1) * math.radians(max_shear_deg)
    flip = torch.where(torch.rand(n, device=dev) < flip_p, -1.0, 1.0)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # inverse map (output -> input coordinates) of flip, rotation, shear and scale
    a11 = flip * cos / sc
    a12 = (-sin + torch.tan(sh) * cos) / sc
    a21 = flip * sin / sc
    a22 = (cos + torch.tan(sh) * sin) / sc
    theta = torch.stack([torch.stack([a11, a12, torch.zeros_like(a11)], -1),
                         torch.stack([a21, a22, torch.zeros_like(a11)], -1)], 1)   # (n, 2, 3)
    grid = F.affine_grid(theta, (n, c, h, w), align_corners=False)
    out = F.grid_sample(x.reshape(n, c, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(b, v, c, h, w)


# ---------------------------------------------------------------------------- embedding a split
@torch.no_grad()
def embed_split(model: PiroNet, split: MultiViewSplit, batch_objects: int = 16, index=None,
                device: torch.device | str | None = None, halves: bool = True) -> dict[str, torch.Tensor]:
    """Embeddings of (a subset of) a split, in eval mode, on the CPU.

    Returns ``cat_sv (N, V, Dc)``, ``obj_sv (N, V, Do)``, ``cat_mv (N, Dc)``, ``obj_mv (N, Do)``,
    ``categories (N,)``, ``objects (N,)``; with ``halves`` also ``obj_mv_ref``/``obj_mv_query``
    (N, Do): the MV object embeddings of the first and of the second half of the views (the
    multi-view object protocol), from the same backbone features.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    idx = torch.arange(len(split)) if index is None else torch.as_tensor(index, dtype=torch.long)
    keys = ["cat_sv", "obj_sv", "cat_mv", "obj_mv"] + (["obj_mv_ref", "obj_mv_query"] if halves else [])
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    try:
        for s in range(0, len(idx), max(1, batch_objects)):
            chunk = idx[s:s + batch_objects]
            imgs = split.get(chunk).to(device)
            b, v = imgs.shape[:2]
            feats = model.features(imgs.flatten(0, 1)).view(b, v, -1)
            out = model.embed_features(feats)
            for k in ("cat_sv", "obj_sv", "cat_mv", "obj_mv"):
                parts[k].append(out[k].float().cpu())
            if halves:
                h = v // 2
                if h < 1:
                    raise DataError(f"multi-view object protocol needs >= 2 views, got {v}")
                parts["obj_mv_ref"].append(model.embed_features(feats[:, :h])["obj_mv"].float().cpu())
                parts["obj_mv_query"].append(model.embed_features(feats[:, h:])["obj_mv"].float().cpu())
    finally:
        model.train(was_training)
    res = {k: torch.cat(v_) for k, v_ in parts.items()}
    res["categories"] = split.categories[idx].clone()
    res["objects"] = split.objects[idx].clone()
    return res


def tracking_subset(split: MultiViewSplit, n: int, seed: int = 0) -> torch.Tensor:
    """A fixed, category-balanced subset of ``n`` objects (those in categories with >= 2 objects)."""
    cats = split.categories.numpy()
    rng = np.random.default_rng([seed, 17])
    by_cat = [rng.permutation(np.nonzero(cats == c)[0]) for c in np.unique(cats)]
    by_cat = [x for x in by_cat if x.size >= 2]
    out: list[int] = []
    depth = 0
    while len(out) < n and any(depth < x.size for x in by_cat):
        for x in by_cat:
            if depth < x.size and len(out) < n:
                out.append(int(x[depth]))
        depth += 1
    return torch.tensor(sorted(out), dtype=torch.long)


def separation_metrics(emb: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``separation_stats`` of the object and category spaces, keys ``rho_obj``, ``d_intra_max_cat``..."""
    out = {}
    for space in ("obj", "cat"):
        s = separation_stats(emb[f"{space}_sv"], emb["categories"])
        out.update({f"{k}_{space}": v for k, v in s.items()})
    return out


# ---------------------------------------------------------------------------- training
class _EarlyStop(Callback):
    """The official early-convergence criterion: stop once ``es_ratio`` of the object space exceeds a ratio."""

    def __init__(self, ratio: float, run_dir: Path):
        self.ratio, self.run_dir = float(ratio), Path(run_dir)

    def on_eval(self, trainer, step, metrics):
        val = metrics.get("train.es_ratio_obj")
        if self.ratio > 0 and val is not None and math.isfinite(val) and val > self.ratio:
            log.info("early stop at step %d: es_ratio %.3f > %.3f", step, val, self.ratio)
            write_json(self.run_dir / EARLY_STOP_FILE, {"step": step, "es_ratio": val, "threshold": self.ratio})
            trainer._stop_requested = True   # finishes this iteration, checkpoints, returns


class _PairBatches(torch.utils.data.Dataset):
    """Batch ``k``: the images of the P pairs of ``sampler[k]`` (anchors then partners) and labels."""

    def __init__(self, sampler: PairSampler, split: MultiViewSplit):
        self.sampler, self.split = sampler, split

    def __len__(self) -> int:          # nominal; indices come from an infinite sampler
        return 2 ** 62

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        a, b, views = self.sampler[k]
        imgs = self.split.get(torch.cat([a, b]), torch.cat([views, views]))
        return {"images": imgs, "category": self.split.categories[a]}


class _Count:
    """``start, start + 1, ...`` forever (a DataLoader sampler)."""

    def __init__(self, start: int):
        self.start = int(start)

    def __iter__(self):
        k = self.start
        while True:
            yield k
            k += 1


def build_criterion(cfg: PiroConfig, num_classes: int) -> PiroCriterion:
    return PiroCriterion(cfg.loss, num_classes, cfg.model.cat_dim, seed=cfg.seed)


_DATA_CACHE: dict[tuple, dict[str, MultiViewSplit]] = {}


def load_data(cfg: PiroConfig, cache: bool = True) -> dict[str, MultiViewSplit]:
    """``{"train": ..., "test": ...}`` for a config (the test split indexed like the train one).

    In-memory splits are cached per process (a few, keyed by dataset root and data settings),
    so ``train`` then ``evaluate`` of a run, or several variants, decode the images once.
    """
    from .data import dataset_root, split_names

    d = cfg.data
    root = dataset_root(d, cfg.seed if d.seed is None else d.seed, profile=cfg.profile)
    tr_name, te_name = split_names(d)
    key = (str(getattr(root, "root", root)), tr_name, tuple(d.categories), d.views, d.image_size, d.in_memory)
    if cache and key in _DATA_CACHE:
        return dict(_DATA_CACHE[key])
    tr = load_split(d, tr_name, root=root)
    te = load_split(d, te_name, root=root, category_names=tr.category_names)
    out = {"train": tr, "test": te}
    if cache and d.in_memory:
        while len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = out
    return dict(out)


def train(cfg: PiroConfig, run_dir: str | Path, data: Mapping[str, MultiViewSplit] | None = None,
          callbacks: Iterable[Callback] = (), backbone_factory=None) -> dict[str, Any]:
    """Train (resumably) into ``run_dir``; returns ``{"status", "step", "last_train", "last_eval"}``.

    Args:
        cfg: a :class:`PiroConfig`.
        data: ``{"train": MultiViewSplit, "test": MultiViewSplit (optional)}``; loaded from
            ``cfg.data`` when None.
        callbacks: extra :class:`workbench.train.Callback` objects (e.g. ``History`` in notebooks).
        backbone_factory: override of ``workbench.nn.build_backbone`` (tests).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = dict(data) if data is not None else load_data(cfg)
    tr: MultiViewSplit = data["train"]
    te: MultiViewSplit | None = data.get("test")
    tcfg = cfg.train.merged({"seed": cfg.seed})
    if (run_dir / EARLY_STOP_FILE).exists() and (run_dir / "checkpoint.pt").exists():
        info = load_checkpoint(run_dir / "checkpoint.pt")
        return {"status": "early_stopped", "step": int(info["step"]), "last_train": {}, "last_eval": {}}

    seed_everything(cfg.seed)
    model = build_model(cfg.model, backbone_factory)
    criterion = build_criterion(cfg, tr.num_classes)
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    optimizer = build_optimizer(params, tcfg)  # Adam as the official code (fused)
    scheduler = build_scheduler(optimizer, tcfg)

    sampler = PairSampler(tr.categories.numpy(), tcfg.batch_size, tr.num_views, cfg.sampling.n_views, seed=cfg.seed)

    batch_source = _PairBatches(sampler, tr)
    if tr.images is not None or cfg.data.workers == 0:
        batches = step_batches(batch_source.__getitem__)
    else:   # read from disk in DataLoader workers; batch k still depends only on (seed, k)
        def batches(start: int):
            return iter(torch.utils.data.DataLoader(batch_source, batch_size=None, sampler=_Count(start),
                                                    num_workers=cfg.data.workers, persistent_workers=False,
                                                    pin_memory=torch.cuda.is_available()))

    augment = cfg.sampling.augment

    def step_fn(m: torch.nn.Module, batch: dict, step: int) -> dict:
        criterion.set_step(step)
        imgs = batch["images"]
        if augment:
            imgs = augment_views(imgs)
        out = m(imgs)
        p = imgs.shape[0] // 2
        out_a = {k: v[:p] for k, v in out.items() if v is not None}
        out_b = {k: v[p:] for k, v in out.items() if v is not None}
        return criterion(out_a, out_b, batch["category"])

    track = {}
    for name, split in (("train", tr), ("test", te)):
        idx = tracking_subset(split, cfg.eval.rho_objects, cfg.seed) if split is not None else None
        if idx is not None and len(idx) >= 2:      # needs a category with two objects
            track[name] = (split, idx)

    def eval_fn(m: PiroNet, step: int) -> dict | None:
        if not track:
            return None
        res = {}
        for name, (split, idx) in track.items():
            emb = embed_split(m, split, cfg.eval.batch_objects, index=idx, halves=False)
            res[name] = separation_metrics(emb)
        return res

    cbs = list(callbacks)
    if cfg.eval.early_stop_ratio > 0:
        cbs.append(_EarlyStop(cfg.eval.early_stop_ratio, run_dir))
    trainer = Trainer(model, optimizer, run_dir, tcfg, scheduler=scheduler, callbacks=cbs, config=cfg,
                      state={"criterion": criterion})
    result = trainer.fit(step_fn, batches, eval_fn)
    return {"status": result.status, "step": result.step, "last_train": result.last_train,
            "last_eval": result.last_eval, "elapsed_s": getattr(result, "elapsed_s", None)}


def load_trained(cfg: PiroConfig, run_dir: str | Path, num_classes: int | None = None,
                 backbone_factory=None, device: str | torch.device = "cpu") -> tuple[PiroNet, PiroCriterion | None]:
    """The model (and criterion, when ``num_classes`` is given) of a run, weights from ``checkpoint.pt``."""
    from ...core.errors import CheckpointError

    ckpt = load_checkpoint(Path(run_dir) / "checkpoint.pt", map_location=device)
    model = build_model(cfg.model, backbone_factory)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{run_dir}/checkpoint.pt does not fit the config's model: {e}") from None
    model.to(device).eval()
    crit = None
    if num_classes is not None:
        crit = build_criterion(cfg, num_classes)
        state = ckpt.get("extra", {}).get("criterion")
        if state is not None:
            crit.load_state_dict(state)
    return model, crit
