"""Training of 3D-CompNets, NOVUM (``loss.contrast=full``) and the dual-head baseline.

One iteration of the neural mesh model (``CompNetStep``):

1. every ``calib_every`` iterations: classify the held-out calibration split with eq 7 and turn its
   confusion matrix into the pair weights (eqs 4-5);
2. feature map ``F = Phi(I)``; each image's class cuboid is projected with the ground-truth pose
   (vertex-to-cell correspondences, visibility through the renderer);
3. the contrastive loss (grouped eqs 2-5 or NOVUM's full contrast) on the visible vertex features
   against the vertex and background banks (copies of the bank are used in the loss graph);
4. the banks move: vertex momentum update (eq 6) and ``T`` new background features per image.

The dual head (``model.kind=dualhead``) is trained with cross-entropy on the class and on the
three pose-angle bins. Training goes through :class:`workbench.train.Trainer` (resumable,
``metrics.csv``, ``checkpoint.pt``); ``train_summary.json`` records time and loss FLOPs.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError
from ...core.io import write_json
from ...data.transforms import photometric_batch
from ...train import ResumableLoader, Trainer, build_optimizer, build_scheduler, unwrap_model
from .classify import class_scores
from .config import AugmentSection, CompNet3DConfig
from .confusion import ConfusionSchedule
from .correspond import compute_correspondences
from .data import TaskData, load_task_data
from .losses import compnet_loss, loss_flops
from .model import DualHead, NeuralMeshModel, angles_to_bins

log = logging.getLogger(__name__)


def build_model(cfg: CompNet3DConfig, data: TaskData) -> torch.nn.Module:
    """The model of ``cfg.model.kind`` for the data's classes and image size."""
    if cfg.model.kind == "compnet":
        return NeuralMeshModel(cfg, data.meshes, data.image_size)
    if cfg.model.kind == "dualhead":
        return DualHead(cfg, data.n_classes, data.image_size)
    raise ConfigError(f"model.kind must be 'compnet' or 'dualhead', got {cfg.model.kind!r}")


def gather_cells(fmap: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """``fmap (B, D, h, w)``, ``cell (B, K)`` flat indices -> ``(B, K, D)``."""
    B, D = fmap.shape[:2]
    flat = fmap.flatten(2)                                                # (B, D, hw)
    return torch.gather(flat, 2, cell[:, None, :].expand(B, D, cell.shape[1])).transpose(1, 2)


def augment_batch(batch: dict, shift: float, scale: tuple[float, float]) -> dict:
    """Random zoom + translation of each image (and mask) with the camera intrinsics adjusted, so
    that the ground-truth projections still land on the object.

    A pixel at input image coordinates ``u`` moves to ``c + s (u - c) + t`` (``c`` the image centre,
    ``s`` in ``scale``, ``t`` up to ``shift`` x the image size per axis), hence ``f' = s f`` and
    ``p' = c + s (p - c) + t``. Breaks the absolute-position shortcut (a vertex's identity guessed
    from where it usually appears in the frame) that a CNN trained from scratch otherwise takes.
    Uses the global RNG (exactly reproduced on resume).
    """
    images = batch["image"]
    B, _, H, W = images.shape
    dev = images.device
    s = torch.empty(B, device=dev).uniform_(scale[0], scale[1])
    t = (torch.rand(B, 2, device=dev) * 2 - 1) * shift * torch.tensor([W, H], device=dev, dtype=images.dtype)
    theta = torch.zeros(B, 2, 3, device=dev, dtype=images.dtype)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = -2 * t[:, 0] / (W * s)
    theta[:, 1, 2] = -2 * t[:, 1] / (H * s)
    grid = F.affine_grid(theta, (B, 3, H, W), align_corners=False)
    out = dict(batch)
    out["image"] = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "mask" in batch:
        out["mask"] = F.grid_sample(batch["mask"].float(), grid, mode="nearest", padding_mode="zeros",
                                    align_corners=False)
    c = torch.tensor([W / 2, H / 2], device=dev, dtype=images.dtype)
    out["focal"] = batch["focal"] * s
    out["principal"] = c + s[:, None] * (batch["principal"] - c) + t
    return out


def augment(batch: dict, cfg: AugmentSection) -> dict:
    """The training augmentation of both models: :func:`augment_batch` (when ``cfg.enabled``) then
    the photometric jitter of ``cfg`` (when any of its strengths is non-zero)."""
    if cfg.enabled:
        batch = augment_batch(batch, cfg.shift, tuple(cfg.scale))
    if cfg.brightness or cfg.contrast or cfg.saturation or cfg.channel_shuffle or cfg.grayscale:
        batch = dict(batch)
        batch["image"] = photometric_batch(batch["image"], cfg.brightness, cfg.contrast, cfg.saturation,
                                           cfg.channel_shuffle, cfg.grayscale)
    return batch


def mask_at(mask: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``mask (B, 1, H, W)`` sampled at pixel coordinates ``uv (B, K, 2)`` -> ``(B, K)`` bool."""
    B, _, H, W = mask.shape
    col = uv[..., 0].floor().long().clamp(0, W - 1)
    row = uv[..., 1].floor().long().clamp(0, H - 1)
    bi = torch.arange(B, device=mask.device)[:, None].expand_as(col)
    return mask[bi, 0, row, col] > 0.5


def sample_background_cells(candidates: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` cells per image drawn uniformly (without replacement) among ``candidates (B, hw)``
    (all cells when an image has none) -> ``(B, n)`` long."""
    w = candidates.float()
    w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
    n = min(n, w.shape[1])
    return torch.multinomial(w, n, replacement=False)


@torch.no_grad()
def predict_classes(model: NeuralMeshModel, loader, device, max_images: int = 0,
                    gt_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq 7 predictions ``(pred, target)`` over a loader of task batches (model in eval mode)."""
    was = model.training
    model.eval()
    preds, targets, seen = [], [], 0
    for batch in loader:
        images = batch["image"].to(device)
        fmap = model(images)
        pm = None
        if gt_mask:
            pm = F.adaptive_max_pool2d(batch["mask"].to(device).float(), fmap.shape[-2:]) > 0.5
        S = class_scores(fmap, model.bank.vertex, model.bank.valid, model.bank.background, pixel_mask=pm)
        preds.append(S.argmax(1).cpu())
        targets.append(batch["label"])
        seen += images.shape[0]
        if max_images and seen >= max_images:
            break
    model.train(was)
    return torch.cat(preds)[: max_images or None], torch.cat(targets)[: max_images or None]


class CompNetStep:
    """``step_fn`` of the neural mesh model (see the module docstring); holds the confusion schedule."""

    def __init__(self, cfg: CompNet3DConfig, data: TaskData, schedule: ConfusionSchedule, device):
        self.cfg = cfg
        self.data = data
        self.schedule = schedule
        self.device = device
        self.radius_px = cfg.loss.exclude_radius * min(data.image_size)
        self.flops_total = 0
        self.last_rows = 0

    def calibrate(self, model: NeuralMeshModel, step: int) -> None:
        loader = self.data.loader("calib", batch_size=self.cfg.eval.batch_size)
        pred, target = predict_classes(model, loader, self.device, self.cfg.loss.calib_max_images)
        self.schedule.update(step, pred, target)
        log.info("step %d: confusion weights recomputed on %d calibration images (accuracy %.3f, "
                 "sparsity %.3f)", step, len(target), float((pred == target).float().mean()),
                 self.schedule.sparsity())

    def __call__(self, model, batch: dict, step: int) -> dict[str, Any]:
        cfg = self.cfg
        net: NeuralMeshModel = unwrap_model(model)
        if cfg.loss.contrast == "grouped" and cfg.loss.use_weights and self.schedule.due(step):
            self.calibrate(net, step)
        batch = augment(batch, cfg.augment)
        images, labels = batch["image"], batch["label"]
        fmap = model(images)                                             # (B, D, h, w)
        h, w = fmap.shape[-2:]
        corr = compute_correspondences(net.verts, net.n_verts, net.faces, labels, batch["R"], batch["T"],
                                       batch["focal"], batch["principal"], tuple(images.shape[-2:]), (h, w))
        feats = gather_cells(fmap, corr.cell)                           # (B, K, D)
        bank = net.bank
        if cfg.bank.visibility == "mesh_and_mask":
            corr.visible = corr.visible & mask_at(batch["mask"], corr.uv)
        # background cells: no vertex projection (paper) or outside the rendered cuboid
        if cfg.bank.bg_region == "non_vertex":
            occupied = torch.zeros(labels.shape[0], h * w, dtype=torch.bool, device=fmap.device)
            bi = torch.arange(labels.shape[0], device=fmap.device)[:, None].expand_as(corr.cell)
            occupied[bi[corr.inside], corr.cell[corr.inside]] = True
            cand = ~occupied
        else:
            cand = ~corr.fg_cells
        bg_feats = None
        if cfg.bank.bg_per_image > 0:
            cells = sample_background_cells(cand, cfg.bank.bg_per_image)
            bg_feats = gather_cells(fmap, cells).reshape(-1, fmap.shape[1])
        omega = self.schedule.omega.to(fmap.device) if cfg.loss.use_weights else None
        t_loss = time.perf_counter()
        out = compnet_loss(
            feats, corr.visible, labels, bank.vertex.clone(), bank.valid, bank.background.clone(),
            kappa=cfg.model.kappa, contrast=cfg.loss.contrast, omega=omega, n_sample=cfg.loss.n_sample,
            exclude=corr.exclusion(self.radius_px) if self.radius_px > 0 else None,
            bg_weight=cfg.loss.bg_weight, bg_feats=bg_feats, bg_reg_weight=cfg.loss.bg_reg_weight)
        if fmap.is_cuda:
            torch.cuda.synchronize(fmap.device)
        t_loss = time.perf_counter() - t_loss
        bank.update_vertices(feats.detach(), corr.visible, labels, cfg.bank.momentum, cfg.bank.average)
        if bg_feats is not None:
            bank.push_background(bg_feats.detach())
        rows = int(out["n_rows"])
        fl = loss_flops(rows, bank.max_vertices, bank.n_background, bank.n_classes, bank.dim,
                        cfg.loss.contrast, cfg.loss.n_sample,
                        n_bg_feats=0 if bg_feats is None or cfg.loss.bg_reg_weight == 0 else bg_feats.shape[0])
        self.flops_total += fl["total"]
        self.last_rows = rows
        return {"loss": out["loss"], "loss_in": out["loss_in"], "loss_cross": out["loss_cross"],
                "loss_bg_reg": out["loss_bg_reg"], "visible_rows": float(rows),
                "loss_gflops": fl["total"] / 1e9, "loss_fwd_ms": 1e3 * t_loss,
                "omega_sparsity": self.schedule.sparsity()}


class DualHeadStep:
    """``step_fn`` of the dual-head baseline: CE(class) + mean of the three angle-bin CEs."""

    def __init__(self, cfg: CompNet3DConfig):
        self.cfg = cfg
        self.bins = cfg.model.pose_bins

    def __call__(self, model, batch: dict, step: int) -> dict[str, Any]:
        batch = augment(batch, self.cfg.augment)  # as the mesh model's (the pose angles are unchanged)
        logits, pose = model(batch["image"])
        target = angles_to_bins(batch["azimuth"], batch["elevation"], batch["theta"], self.bins)
        l_cls = F.cross_entropy(logits, batch["label"])
        l_pose = F.cross_entropy(pose.reshape(-1, self.bins), target.reshape(-1))
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        return {"loss": l_cls + l_pose, "loss_cls": l_cls.detach(), "loss_pose": l_pose.detach(), "train_acc": acc}


def make_eval_fn(cfg: CompNet3DConfig, data: TaskData, device):
    """``eval_fn`` for the Trainer: classification accuracy on the ``val`` split (eq 7 for the mesh
    model, the class head for the dual head); pose is left to :func:`~.evaluate.evaluate`."""
    split = "val" if "val" in data.available_splits else "calib"

    @torch.no_grad()
    def eval_fn(model, step: int) -> dict:
        loader = data.loader(split, batch_size=cfg.eval.batch_size, max_images=cfg.eval.max_images)
        if isinstance(model, NeuralMeshModel):
            pred, target = predict_classes(model, loader, device)
        else:
            preds, targets = [], []
            for b in loader:
                preds.append(model(b["image"].to(device))[0].argmax(1).cpu())
                targets.append(b["label"])
            pred, target = torch.cat(preds), torch.cat(targets)
        return {f"{split}_acc": float((pred == target).float().mean())}

    return eval_fn


def calib_interval(cfg: CompNet3DConfig, n_train: int) -> int:
    """Iterations between confusion-weight recomputations (2 epochs-equivalent by default)."""
    if cfg.loss.calib_every > 0:
        return cfg.loss.calib_every
    per_epoch = max(1, math.ceil(n_train / cfg.train.batch_size))
    return max(1, round(cfg.loss.calib_every_epochs * per_epoch))


def train(cfg: CompNet3DConfig, run_dir: Path, callbacks=(), data: TaskData | None = None) -> dict:
    """Train (resumably) into ``run_dir``; returns the final training summary."""
    run_dir = Path(run_dir)
    data = data or load_task_data(cfg)
    torch.manual_seed(cfg.seed + cfg.train.seed)
    model = build_model(cfg, data)
    opt = build_optimizer(model, cfg.train)
    sched = build_scheduler(opt, cfg.train)
    state: dict[str, Any] = {}
    schedule = ConfusionSchedule(data.n_classes, calib_interval(cfg, data.n_train), cfg.loss.weight_threshold)
    if cfg.model.kind == "compnet":
        state["confusion"] = schedule
    # the run's ``seed`` drives model init, data order and every random draw (``train.seed`` offsets it)
    tcfg = cfg.train.merged({"seed": cfg.seed + cfg.train.seed})
    trainer = Trainer(model, opt, run_dir, tcfg, scheduler=sched, callbacks=list(callbacks), config=cfg,
                      state=state)
    if cfg.model.kind == "compnet":
        step_fn = CompNetStep(cfg, data, schedule, trainer.device)
    else:
        step_fn = DualHeadStep(cfg)
    loader = ResumableLoader(data.dataset("train"), cfg.train.batch_size, seed=tcfg.seed,
                             num_workers=cfg.train.num_workers)
    eval_fn = make_eval_fn(cfg, data, trainer.device) if cfg.train.eval_every > 0 else None
    t0 = time.perf_counter()
    result = trainer.fit(step_fn, loader, eval_fn)
    wall = time.perf_counter() - t0
    summary = {
        "status": result.status, "step": result.step, "train_time_s": result.elapsed_s,
        "wall_time_s_this_call": wall, "n_train": data.n_train, "n_calib": data.n_calib,
        "n_classes": data.n_classes, "classes": data.class_names, "last_train": result.last_train,
        "device": str(trainer.device),
    }
    if cfg.model.kind == "compnet":
        summary.update(calib_every=schedule.every, calib_updates=len(schedule.history),
                       omega_sparsity=schedule.sparsity(),
                       loss_gflops_this_call=getattr(step_fn, "flops_total", 0) / 1e9,
                       n_vertices=data.meshes.n_vertices)
    write_json(run_dir / "train_summary.json", summary)
    return summary
