"""Training of TTP through :class:`workbench.train.Trainer` (resumable, iteration schedules).

One step (batch of B crops; ``flip_train`` appends their horizontal flips, 2B samples):

1. regress points and visibility, solve pose and deformation (rigid before ``train.rigid_iters``);
2. render the reconstruction: soft silhouette, texture re-synthesis, z-buffer visibility, and the
   texture from the mirrored camera;
3. the weighted losses of :mod:`.losses` (shape priors only once the deformation is on);
4. equivariance: the regressor on a random affine warp of the B originals (kornia; regressed in
   the same encoder pass as the batch, with its own batch-norm statistics), and the flip
   consistency between each image and its flip.

``train(cfg, run_dir)`` returns the last logged training scalars; ``config.yaml``, ``metrics.csv``
and ``checkpoint.pt`` are written by the Trainer.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError
from ...core.seed import seed_everything
from ...train import ResumableLoader, Trainer, build_optimizer, build_scheduler
from .augment import EquivarianceAugment, flip_images, flip_keypoints, flip_points, flip_pose
from .config import TTPConfig
from .data import TTPDataset, dataset_root
from .losses import (TextureLoss, chamfer_coverage, chamfer_inside, cycle_loss, deformation_magnitude,
                     edge_length_loss, equivariance_loss, keypoint_loss, mask_l1, mask_points,
                     mesh_edges, mirror_consistency, visibility_loss)
from .model import TTPModel, TTPOutput, screen_points
from .priors import shape_priors
from .rendering import render_all, render_texture
from .template import Template, build_template

log = logging.getLogger(__name__)

__all__ = ["train", "build_model", "load_template", "TTPObjective", "threads"]


def load_template(cfg: TTPConfig, category: str | None = None) -> Template:
    t = cfg.template
    return build_template(category or cfg.data.category, level=t.level, subdivisions=t.subdivisions,
                          n_instances=t.n_instances, smooth=t.smooth, method=t.method)


def build_model(cfg: TTPConfig, template: Template | None = None) -> TTPModel:
    return TTPModel(template if template is not None else load_template(cfg), cfg.model)


@contextlib.contextmanager
def threads(n: int):
    """Temporarily set torch's intra-op threads (``n <= 0``: unchanged)."""
    if n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _half(out: TTPOutput, sl: slice) -> SimpleNamespace:
    return SimpleNamespace(R=out.R[sl], t=out.t[sl], scale=out.scale[sl], centre=out.centre[sl])


class TTPObjective(torch.nn.Module):
    """All of TTP's losses for one batch (a module so that the perceptual network moves with it).

    ``forward(model, batch, step) -> dict`` with the weighted total in ``"loss"`` and every term.
    """

    def __init__(self, cfg: TTPConfig, keypoint_names=(), flip_pairs=()):
        super().__init__()
        self.cfg = cfg
        self.texture = TextureLoss(cfg.loss.texture_kind) if cfg.loss.texture > 0 else None
        self.augment = EquivarianceAugment(cfg.loss.equiv_degrees, cfg.loss.equiv_translate,
                                           cfg.loss.equiv_scale)
        self.keypoint_names = tuple(keypoint_names)
        self.flip_pairs = [tuple(p) for p in flip_pairs]

    @property
    def texture_kind(self) -> str:
        return self.texture.kind if self.texture is not None else "none"

    def rigid_at(self, model: TTPModel, step: int) -> bool:
        return model.shape.num_basis == 0 or step < self.cfg.train.rigid_iters

    def forward(self, model, batch: dict, step: int) -> dict:
        cfg, L = self.cfg, self.cfg.loss
        core: TTPModel = model.module if hasattr(model, "module") else model
        x, mask, dist = batch["image"], batch["mask"], batch["dist"]
        kp, kpv = batch["keypoints"], batch["keypoints_visible"]
        B = x.shape[0]
        flip = cfg.data.flip_train
        if flip:
            kpf, kpvf = flip_keypoints(kp, kpv, self.keypoint_names, self.flip_pairs)
            x, mask, dist = (torch.cat([a, flip_images(a)]) for a in (x, mask, dist))
            kp, kpv = torch.cat([kp, kpf]), torch.cat([kpv, kpvf])
        rigid = self.rigid_at(core, step)
        # random draws in the order of the original step (coverage samples, then the warp)
        pts, valid = mask_points(mask, L.coverage_points)
        x_w = M = None
        if L.equivariance > 0 or L.equiv_mirror > 0:
            Be = max(1, int(round(B * L.equiv_fraction)))
            x_w, _, M = self.augment(x[:Be])
        # the warped images share the encoder pass (their own batch-norm statistics)
        out = model(x, rigid=rigid, aux_images=x_w)
        S = cfg.render.size
        xr = x if x.shape[-1] == S else F.interpolate(x, size=(S, S), mode="bilinear", antialias=True,
                                                     align_corners=False)
        mr = mask if mask.shape[-1] == S else F.interpolate(mask, size=(S, S), mode="area")
        faces = core.faces
        r = render_all(out.proj, out.depth, faces, S, uv=out.u, image=xr, sigma_px=cfg.render.sigma_px,
                       faces_per_pixel=cfg.render.faces_per_pixel, depth_tol=cfg.render.depth_tol)
        terms: dict[str, torch.Tensor] = {}
        terms["mask"] = mask_l1(r.silhouette, mr)
        if self.texture is not None:
            tex = self.texture(r.rgb, xr * mr)
            if L.texture_mirror:
                R_m, t_m = flip_pose(out.R, out.t)
                c_m = out.centre * out.centre.new_tensor([-1.0, 1.0])
                proj_m, depth_m = screen_points(out.verts, R_m, t_m, out.scale, c_m)
                rgb_m, _ = render_texture(proj_m, depth_m, faces, out.u, xr, S)
                m_ref = mr if L.mirror_mask == "gt" else r.silhouette.detach()
                tex = 0.5 * (tex + self.texture(rgb_m, flip_images(xr) * flip_images(m_ref)))
            terms["texture"] = tex
        terms["chamfer_inside"] = chamfer_inside(out.u, dist)
        terms["chamfer_coverage"] = chamfer_coverage(out.u, pts, valid)
        cyc = cycle_loss(out.u, out.proj)
        if L.cycle_edges:
            cyc = cyc + edge_length_loss(out.u, out.proj, self._edges(faces))
        terms["cycle"] = cyc
        terms["visibility"] = visibility_loss(out.vis, r.visibility)
        if x_w is not None:
            u_w = out.aux[0]
            eqv = equivariance_loss(u_w, out.u[:Be], M)
            if flip:
                eqv = eqv + (out.u[B:] - flip_points(out.u[:B], core.shape.symmetry)).pow(2).sum(-1).mean()
                terms["equiv_mirror"] = mirror_consistency(_half(out, slice(0, B)), _half(out, slice(B, 2 * B)))
            terms["equivariance"] = eqv
        if L.keypoint > 0:
            ids = core.shape.keypoint_ids
            if ids.numel() == 0 or kp.shape[1] != ids.numel():
                raise ConfigError(f"loss.keypoint > 0 needs template keypoints matching the data's "
                                  f"({ids.numel()} vs {kp.shape[1]})")
            terms["keypoint"] = keypoint_loss(out.proj[:, ids], kp, kpv)
        if not rigid:
            terms.update(shape_priors(core.shape, out.verts, L))
            unit = core.shape.unit
            terms["deformation"] = deformation_magnitude(out.verts * unit, core.shape.template * unit)
        weights = {"mask": L.mask, "texture": L.texture, "chamfer_inside": L.chamfer_inside,
                   "chamfer_coverage": L.chamfer_coverage, "cycle": L.cycle, "visibility": L.visibility,
                   "equivariance": L.equivariance, "equiv_mirror": L.equiv_mirror, "keypoint": L.keypoint,
                   "laplacian": L.laplacian, "laplacian_basis": L.laplacian_basis, "arap": L.arap,
                   "arap_basis": L.arap_basis, "deformation": L.deformation}
        total = sum(weights[k] * v for k, v in terms.items() if weights[k] > 0)
        with torch.no_grad():
            inter = (r.silhouette * mr).flatten(1).sum(1)
            union = (r.silhouette + mr - r.silhouette * mr).flatten(1).sum(1).clamp_min(1e-6)
            logs = {f"l_{k}": v.detach() for k, v in terms.items()}
            logs.update({"iou": (inter / union).mean(), "gamma": core.gamma.detach(),
                         "rigid": torch.tensor(float(rigid)), "vis_mean": out.vis.mean().detach()})
        return {"loss": total, **logs}

    def _edges(self, faces: torch.Tensor) -> torch.Tensor:
        key = (faces.data_ptr(), faces.shape[0], str(faces.device))
        if getattr(self, "_edge_key", None) != key:
            self._edge_cache = mesh_edges(faces)
            self._edge_key = key
        return self._edge_cache


def _optimizer(model: TTPModel, cfg: TTPConfig) -> torch.optim.Optimizer:
    basis = [model.shape.basis] if model.shape.num_basis > 0 else []
    head = list(model.head.parameters()) if cfg.train.head_lr > 0 else []
    special = {id(p) for p in basis + head}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    groups = [{"params": rest, "lr": cfg.train.lr}]
    if head:
        groups.append({"params": head, "lr": cfg.train.head_lr})
    if basis:
        groups.append({"params": basis, "lr": cfg.train.basis_lr})
    return build_optimizer(groups, cfg.train)  # fused Adam / multi-tensor SGD


def train(cfg: TTPConfig, run_dir: str | Path, resume: bool = True, callbacks=()) -> dict:
    """Train TTP on ``cfg.data`` into ``run_dir`` (resumable); returns the last training scalars."""
    run_dir = Path(run_dir)
    # the top-level seed also drives data order and augmentation (train.seed adds to it); the
    # config written to the run is the one given
    tcfg = cfg.train.merged({"seed": cfg.seed + cfg.train.seed})
    with threads(cfg.train.num_threads):
        seed_everything(cfg.seed)
        root = dataset_root(cfg.data)
        ds = TTPDataset(root, "train", cfg.data.variant, cfg.data.image_size, cfg.data.max_train_images)
        template = load_template(cfg, ds.category or cfg.data.category)
        model = build_model(cfg, template)
        objective = TTPObjective(cfg, ds.keypoint_names, ds.flip_pairs)
        opt = _optimizer(model, cfg)
        sched = build_scheduler(opt, tcfg)
        trainer = Trainer(model, opt, run_dir, tcfg, scheduler=sched, callbacks=callbacks, config=cfg,
                          resume=resume)
        objective.to(trainer.device)     # stateless (frozen perceptual net): not checkpointed
        loader = ResumableLoader(ds, tcfg.batch_size, seed=tcfg.seed)
        log.info("TTP: training %s (%d images, template %d vertices, texture loss %s)", ds.category,
                 len(ds), template.num_verts, objective.texture_kind)
        result = trainer.fit(lambda m, b, s: objective(m, b, s), loader)
    out = dict(result.last_train)
    out.update({"status": result.status, "step": result.step, "texture_kind": objective.texture_kind})
    return out
