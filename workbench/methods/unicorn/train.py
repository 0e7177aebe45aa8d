"""Training of UNICORN through :class:`workbench.train.Trainer` (resumable; schedules in iterations).

Alternate optimisation (``train.alternate``, the paper's): even iterations are **3D-steps**, odd ones
**P-steps**.

* 3D-step: render the most likely candidate with its R, T **detached**; loss
  ``L_rec + swap x L_swap + normal x L_normal + laplacian x L_lap``. Only the encoder and the 3D
  group (code/scale heads, deformation field, generators) receive gradients.
* P-step: render all K candidates with the mesh, texture and background **detached**; loss
  ``sum_k p_k L_rec(I, I_k) + uniform x sum_k |mean_b p_k - 1/K|``. Only the encoder and the pose
  group (rotation, translation and probability heads) receive gradients.

Swap reconstruction (3D-steps, once the shape and texture latents are both non-empty and from
``train.swap_from`` on): for each
input a random viewpoint bin is drawn, the bank's nearest item by texture code (mt) and by shape
code (ms) in that bin are re-encoded by the current network (no grad), and the renders
``(verts^mt, texture, pose^mt, bg^mt)`` vs ``I^mt`` and ``(verts, texture^ms, pose^ms, bg^ms)`` vs
``I^ms`` are compared (mean over the valid queries). The batch is then pushed into the bank.

Mean-texture trick: before ``train.constant_texture_until`` every batch (official ``constant_txt``,
the white-background setting's stage 1), then before ``cfg.mean_texture_end()`` with probability
``loss.mean_texture_p`` per batch, the predicted texture maps are replaced by their mean colour
(20 % texel subset).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from ...core.errors import ConfigError
from ...core.seed import seed_everything
from ...train import ResumableLoader, Trainer, build_scheduler
from .bank import MemoryBank
from .config import UnicornConfig
from .data import UnicornDataset, dataset_roots
from .losses import MeshRegularizer, ReconstructionLoss, mean_texture, uniformity_prior
from .model import UnicornModel

log = logging.getLogger(__name__)

__all__ = ["train", "build_model", "UnicornObjective", "threads", "build_bank"]


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


def build_model(cfg: UnicornConfig) -> UnicornModel:
    return UnicornModel(cfg)


def build_bank(cfg: UnicornConfig) -> MemoryBank:
    S = cfg.data.image_size
    return MemoryBank(cfg.swap.memory_size, cfg.model.shape_sizes[-1], cfg.model.texture_sizes[-1], (3, S, S),
                      cfg.swap.bins, cfg.swap.angle_range)


class UnicornObjective(torch.nn.Module):
    """All of UNICORN's losses for one iteration: ``forward(model, batch, step) -> dict``.

    ``"loss"`` holds the weighted total of the step's kind; the other entries are logged scalars
    (``rec`` for 3D-steps, ``rec_pose`` for P-steps, ``swap``, ``normal``, ``laplacian``, ``uniform``,
    ``p_max``, ``stage``, ``kind`` = 0 for 3D / 1 for P; 3D-steps also log ``coverage``, the mean soft
    alpha of the renders, and ``deform``, the mean displacement norm: an "empty render" collapse shows
    as coverage far from the images' object coverage, or a runaway deformation).
    """

    def __init__(self, cfg: UnicornConfig, model: UnicornModel, bank: MemoryBank | None = None):
        super().__init__()
        self.cfg = cfg
        L = cfg.loss
        self.rec = ReconstructionLoss(L.perceptual_kind, L.rgb, L.perceptual, L.ssim)
        self.reg = MeshRegularizer(model.faces.cpu(), model.template.shape[0])
        self.bank = bank

    @property
    def perceptual_kind(self) -> str:
        return self.rec.kind

    def step_kind(self, step: int) -> str:
        """``"3d"``, ``"pose"`` or ``"joint"`` (``train.alternate = False``)."""
        if not self.cfg.train.alternate:
            return "joint"
        return "3d" if step % 2 == 0 else "pose"

    def forward(self, model, batch: dict, step: int, kind: str | None = None) -> dict:
        cfg, L = self.cfg, self.cfg.loss
        core: UnicornModel = model.module if hasattr(model, "module") else model
        x = batch["image"]
        kind = kind or self.step_kind(step)
        out = model(x, step)
        texture = out.texture
        if step < cfg.train.constant_texture_until:
            texture = mean_texture(texture)
        elif step < cfg.mean_texture_end() and L.mean_texture_p > 0 and torch.rand(()) < L.mean_texture_p:
            texture = mean_texture(texture)
        terms: dict[str, torch.Tensor] = {}
        logs: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        if kind in ("3d", "joint"):
            R, T = out.best_rt()
            R, T = R.detach(), T.detach()
            renders = [(out.verts, texture, R, T, out.background, x)]
            swap = self._swap_inputs(core, out, texture, R, x, step)
            if swap is not None:
                renders.append(swap[0])
            verts, tex, Rr, Tr, bg, target = (torch.cat([r[i] for r in renders]) if renders[0][i] is not None
                                              else None for i in range(6))
            rgb, alpha = core.render(verts, tex, Rr, Tr, bg)
            rec = self.rec(rgb, target)
            B = x.shape[0]
            logs["coverage"] = alpha[:B].detach().mean()          # collapse diagnostic (empty render -> 0)
            logs["deform"] = out.deform.detach().norm(dim=-1).mean()
            terms["rec"] = rec[:B].mean()
            total = total + terms["rec"]
            if swap is not None:
                terms["swap"] = rec[B:].mean()
                total = total + L.swap * terms["swap"]
                logs["swap_valid"] = swap[1]
            if L.normal > 0:
                terms["normal"] = self.reg.normal_consistency(out.verts)
                total = total + L.normal * terms["normal"]
            if L.laplacian > 0:
                terms["laplacian"] = self.reg.laplacian(out.verts)
                total = total + L.laplacian * terms["laplacian"]
            if self.bank is not None:
                self.bank.push(x, out.z_sh, out.z_tx, R)
        if kind in ("pose", "joint"):
            B, K = out.proba.shape
            verts = out.verts.detach().repeat_interleave(K, 0)
            tex = texture.detach().repeat_interleave(K, 0)
            bg = out.background.detach().repeat_interleave(K, 0) if out.background is not None else None
            rgb, _ = core.render(verts, tex, out.R.reshape(B * K, 3, 3), out.T.reshape(B * K, 3), bg)
            rec_k = self.rec(rgb, x.repeat_interleave(K, 0)).view(B, K)
            terms["rec_pose"] = (out.proba * rec_k).sum(1).mean()
            terms["uniform"] = uniformity_prior(out.proba)
            total = total + terms["rec_pose"] + L.uniform * terms["uniform"]
        with torch.no_grad():
            logs.update({k: v.detach() for k, v in terms.items()})
            logs["p_max"] = out.proba.max(1).values.mean()
            logs["stage"] = torch.tensor(float(cfg.stage_at(step) if cfg.model.progressive else 3))
            logs["kind"] = torch.tensor({"3d": 0.0, "pose": 1.0, "joint": 0.5}[kind])
        return {"loss": total, **logs}

    def _swap_inputs(self, core: UnicornModel, out, texture, R, x, step):
        """Inputs of the swapped renders (or None): ``((verts, tex, R, T, bg, target), valid fraction)``."""
        cfg = self.cfg
        ns, nt, _ = core.sizes_at(step)
        if (self.bank is None or cfg.loss.swap <= 0 or ns == 0 or nt == 0 or len(self.bank) == 0
                or step < cfg.train.swap_from):
            return None
        B = x.shape[0]
        bins = torch.randint(cfg.swap.bins, (B,))
        idx_tx, idx_sh, valid = self.bank.select(R, out.z_sh, out.z_tx, bins)
        if not bool(valid.any()):
            return None
        q = torch.nonzero(valid).flatten()
        imgs = self.bank.get_images(torch.cat([idx_tx[q], idx_sh[q]])).to(x.device)
        with torch.no_grad():
            nb = core.forward(imgs, step)
        Rn, Tn = nb.best_rt()
        n = q.numel()
        qd = q.to(x.device)
        verts = torch.cat([nb.verts[:n], out.verts[qd]])
        tex = torch.cat([texture[qd], nb.texture[n:]])
        bg = torch.cat([nb.background[:n], nb.background[n:]]) if nb.background is not None else None
        return (verts, tex, Rn, Tn, bg, imgs), valid.float().mean()


def _optimizer(model: UnicornModel, cfg: UnicornConfig) -> torch.optim.Optimizer:
    """Adam over all parameters; the texture branch (``texture_head``, ``tex_gen``) at
    ``train.lr x train.texture_lr_scale`` (one group when the scale is 1)."""
    from ...train import build_optimizer

    scale = cfg.train.texture_lr_scale
    if scale <= 0:
        raise ConfigError(f"train.texture_lr_scale must be > 0, got {scale}")
    if scale == 1.0:
        return build_optimizer(model, cfg.train)
    tex = {id(p) for mod in (model.texture_head, model.tex_gen) for p in mod.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) not in tex]},
              {"params": [p for p in params if id(p) in tex], "lr": cfg.train.lr * scale}]
    return build_optimizer(groups, cfg.train)


def train(cfg: UnicornConfig, run_dir: str | Path, resume: bool = True, callbacks=()) -> dict:
    """Train UNICORN on ``cfg.data`` into ``run_dir`` (resumable); returns the last training scalars."""
    run_dir = Path(run_dir)
    with threads(cfg.train.num_threads):
        seed_everything(cfg.seed)
        roots = dataset_roots(cfg.data)
        ds = UnicornDataset(roots, "train", cfg.data.variant, cfg.data.image_size, cfg.data.max_train_images)
        model = build_model(cfg)
        bank = build_bank(cfg)
        objective = UnicornObjective(cfg, model, bank)
        opt = _optimizer(model, cfg)
        sched = build_scheduler(opt, cfg.train)
        trainer = Trainer(model, opt, run_dir, cfg.train, scheduler=sched, callbacks=callbacks, config=cfg,
                          state={"bank": bank}, resume=resume)
        objective.to(trainer.device)
        loader = ResumableLoader(ds, cfg.train.batch_size, seed=cfg.train.seed)
        log.info("UNICORN: training on %s (%d images, %s, perceptual term: %s)", ",".join(ds.categories), len(ds),
                 cfg.data.variant, objective.perceptual_kind)
        result = trainer.fit(lambda m, b, s: objective(m, b, s), loader)
    out = dict(result.last_train)
    out.update({"status": result.status, "step": result.step, "perceptual_kind": objective.perceptual_kind})
    return out
