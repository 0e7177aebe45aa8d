"""TTP's network: point regressor, deformable template and the differentiable solver layer.

Pipeline of :meth:`TTPModel.forward` for a batch of images ``(B, 3, H, W)``::

    ResNet-18 trunk -> conv4x4/s2 (512 -> 256) + BN + LeakyReLU -> 4 x 4 x 256 -> Linear -> 3N
        u = tanh(.)     (B, N, 2)  image position of every template vertex, normalised [-1, 1]
        v = sigmoid(.)  (B, N)     its visibility
    camera intrinsics from u:  s = std(u), c = mean(u)                  (not predicted)
    solver (solver.py): T rounds of  pose <- IFT layer(V, u, w = v ** vis_power, s, c)
                                     shape <- closed form c = (O^T W O + gamma I)^-1 O^T W Y
    V = template + sum_k c_k B_k ; projection s (R V + t)_xy + c and depth s (R V)_z

The basis ``B`` (K x N x 3) and ``gamma = exp(log_gamma)`` are learned; the template is fixed.
Coordinates: ``u`` x right, y down, ``[-1, 1]`` over the crop with ``align_corners=False``
(pixel column j has centre ``(2 j + 1) / W - 1``), i.e. directly usable by ``grid_sample``.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core.errors import ShapeError
from ...nn import build_backbone
from ...nn.conv import use_small_map_convs
from .config import ModelSection
from .solver import (PoseSolverOptions, SolverIterate, camera_from_points, deform,
                     project_weak_perspective, solve_pose_and_shape)
from .template import Template

__all__ = ["TTPEncoder", "GroupedBatchNorm2d", "PointHead", "DeformableShape", "TTPModel", "TTPOutput", "SIDE_VIEW"]

# A side view of the canonical frame (+Y up, front +Z): the front to the image right, up to the top
# (image y points down). Column convention, det +1.
SIDE_VIEW = torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])


class GroupedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that can normalise consecutive slices of a batch separately.

    With ``batch_sizes`` set (see :meth:`TTPEncoder.batch_groups`) and in training mode, the batch
    is split into those slices and each goes through the batch norm on its own, in order: outputs,
    gradients and running-statistics updates are those of one call per slice. So several batches
    share one pass through the convolutions (whose per-call cost on the CPU is dominated by the
    weights, not the batch) without mixing their batch statistics.
    """

    batch_sizes: tuple[int, ...] | None = None

    def forward(self, x: Tensor) -> Tensor:
        sizes = self.batch_sizes
        if sizes is None or len(sizes) < 2 or not (self.training or self.running_mean is None):
            return super().forward(x)
        if sum(sizes) != x.shape[0]:
            raise ShapeError(f"GroupedBatchNorm2d: batch groups {sizes} do not add up to the batch {x.shape[0]}")
        return torch.cat([super(GroupedBatchNorm2d, self).forward(p) for p in x.split(list(sizes))])


class TTPEncoder(nn.Module):
    """Image -> flattened ``channels x grid x grid`` features (the paper's 4 x 4 x 256 = 4096)."""

    def __init__(self, backbone: str = "resnet18", pretrained: bool = False, channels: int = 256,
                 grid: int = 4):
        super().__init__()
        self.trunk = build_backbone(backbone, pretrained=pretrained)
        self.reduce = nn.Sequential(
            nn.Conv2d(self.trunk.out_channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True))
        self.grid = grid
        self.out_features = channels * grid * grid
        use_small_map_convs(self)
        for m in self.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = GroupedBatchNorm2d

    @contextlib.contextmanager
    def batch_groups(self, sizes: Sequence[int]) -> Iterator[None]:
        """Within the block, a forward pass normalises the consecutive batch slices of ``sizes``
        separately (see :class:`GroupedBatchNorm2d`)."""
        bns = [m for m in self.modules() if isinstance(m, GroupedBatchNorm2d)]
        for m in bns:
            m.batch_sizes = tuple(int(n) for n in sizes)
        try:
            yield
        finally:
            for m in bns:
                m.batch_sizes = None

    def forward(self, images: Tensor) -> Tensor:
        f = self.reduce(self.trunk.features(images))
        if f.shape[-1] != self.grid or f.shape[-2] != self.grid:
            f = F.adaptive_avg_pool2d(f, self.grid)
        return f.flatten(1)


class PointHead(nn.Module):
    """One linear layer to ``N x (x, y, visibility)``; u = tanh, v = sigmoid."""

    def __init__(self, in_features: int, num_points: int, init_std: float = 1e-4,
                 init_points: Tensor | None = None):
        super().__init__()
        self.num_points = num_points
        self.fc = nn.Linear(in_features, 3 * num_points)
        nn.init.normal_(self.fc.weight, 0.0, init_std)
        nn.init.zeros_(self.fc.bias)
        if init_points is not None:
            with torch.no_grad():
                b = self.fc.bias.view(num_points, 3)
                b[:, :2] = torch.atanh(init_points.clamp(-0.95, 0.95))

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        out = self.fc(feats).view(feats.shape[0], self.num_points, 3)
        return torch.tanh(out[..., :2]), torch.sigmoid(out[..., 2])


class DeformableShape(nn.Module):
    """Template ``T`` (fixed buffers) plus the learnable low-rank basis ``B`` (K, N, 3).

    Units: the template is normalised to a per-axis RMS radius of 1 (what the weak-perspective
    camera with ``s = std(u)`` expects), but the basis parameters live in the official template's
    units (bird.obj has std ``unit`` = 0.17): ``B = basis / unit``. So the official initialisation
    (``rand * 0.01``) and basis learning rate (1e-2) keep their meaning, and so do the official
    shape-prior weights, which :func:`~.priors.shape_priors` evaluates on ``unit * V``.
    """

    def __init__(self, template: Template, num_basis: int, basis_init: float = 0.01, unit: float = 1.0):
        super().__init__()
        self.unit = float(unit)
        self.register_buffer("template", template.verts.clone().float())
        self.register_buffer("faces", template.faces.clone().long())
        self.register_buffer("keypoint_ids", template.keypoint_ids.clone().long())
        self.register_buffer("symmetry", template.symmetry.clone().long())
        self.num_basis = int(num_basis)
        N = template.verts.shape[0]
        self.basis = nn.Parameter(torch.rand(self.num_basis, N, 3) * basis_init)

    @property
    def num_verts(self) -> int:
        return int(self.template.shape[0])

    @property
    def effective_basis(self) -> Tensor:
        """(K, N, 3) basis in template units."""
        return self.basis / self.unit

    def forward(self, coeffs: Tensor) -> Tensor:
        """(B, K) coefficients -> (B, N, 3) vertices."""
        if self.num_basis == 0:
            return self.template.expand(coeffs.shape[0], -1, -1)
        return deform(self.template, self.effective_basis, coeffs)


@dataclass
class TTPOutput:
    """Everything :meth:`TTPModel.forward` computes (B samples, N vertices, K basis components).

    u (B, N, 2) regressed points; vis (B, N) visibility; weights (B, N) solver weights;
    scale (B,), centre (B, 2) the weak-perspective intrinsics; R (B, 3, 3) column-convention
    rotations, t (B, 2), rotvec (B, 3); coeffs (B, K); verts (B, N, 3) in template units;
    proj (B, N, 2) reprojection ``pi(V)``; depth (B, N) screen depth; history: every solver round.
    """

    u: Tensor
    vis: Tensor
    weights: Tensor
    scale: Tensor
    centre: Tensor
    R: Tensor
    t: Tensor
    rotvec: Tensor
    coeffs: Tensor
    verts: Tensor
    proj: Tensor
    depth: Tensor
    history: list[SolverIterate] = field(default_factory=list)
    aux: tuple[Tensor, Tensor] | None = None
    """``(u, vis)`` regressed for the ``aux_images`` of :meth:`TTPModel.forward` (else None)."""

    def at_iteration(self, k: int) -> "TTPOutput":
        """The output as if the solver had stopped after round ``k`` (1-based; Table 2)."""
        h = self.history[k - 1]
        proj, depth = screen_points(h.verts, h.R, h.t, self.scale, self.centre)
        return TTPOutput(self.u, self.vis, self.weights, self.scale, self.centre, h.R, h.t,
                         self.rotvec, h.coeffs, h.verts, proj, depth, self.history[:k])


def screen_points(verts: Tensor, R: Tensor, t: Tensor, scale: Tensor, centre: Tensor
                  ) -> tuple[Tensor, Tensor]:
    """(B, N, 3) vertices -> projection (B, N, 2) and screen depth ``s (R V)_z`` (B, N)."""
    proj = project_weak_perspective(verts, R, t, scale, centre)
    depth = scale[:, None] * (verts @ R[:, 2:].transpose(1, 2))[..., 0]
    return proj, depth


class TTPModel(nn.Module):
    """TTP (see the module docstring). ``rigid`` (attribute or forward argument) skips the
    deformation: the training warm-up and the rigid baseline (``num_basis = 0``)."""

    def __init__(self, template: Template, cfg: ModelSection | None = None):
        super().__init__()
        cfg = cfg or ModelSection()
        self.cfg = cfg
        self.category = template.category
        self.encoder = TTPEncoder(cfg.backbone, cfg.pretrained, cfg.feat_channels, cfg.feat_grid)
        init = None
        if cfg.init_from_template:
            side = template.verts @ SIDE_VIEW.T
            init = 0.6 * side[:, :2] / side[:, :2].abs().max().clamp_min(1e-6)
        self.head = PointHead(self.encoder.out_features, template.num_verts, cfg.head_init_std, init)
        self.shape = DeformableShape(template, cfg.num_basis, cfg.basis_init, cfg.shape_unit)
        log_gamma = torch.tensor(math.log(cfg.gamma_init))
        if cfg.learn_gamma:
            self.log_gamma = nn.Parameter(log_gamma)
        else:
            self.register_buffer("log_gamma", log_gamma)
        self.solver_options = PoseSolverOptions(
            max_iters=cfg.lm_max_iters, points_grad=cfg.points_grad,
            grad_clip=cfg.solver_grad_clip if cfg.solver_grad_clip > 0 else None)
        self.rigid = cfg.num_basis == 0

    # ---------------------------------------------------------------- pieces
    @property
    def faces(self) -> Tensor:
        return self.shape.faces

    @property
    def gamma(self) -> Tensor:
        return self.log_gamma.exp()

    def regress(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) in [0, 1] -> u (B, N, 2), v (B, N)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(f"TTPModel: images must be (B, 3, H, W), got {tuple(images.shape)}")
        return self.head(self.encoder(images))

    def solve(self, u: Tensor, vis: Tensor, iterations: int | None = None, rigid: bool | None = None,
              R_init: Tensor | None = None, t_init: Tensor | None = None) -> TTPOutput:
        """Run the solver layer on given points (the regressor's, or any others)."""
        rigid = self.rigid if rigid is None else bool(rigid)
        rigid = rigid or self.shape.num_basis == 0
        iterations = iterations or self.cfg.solver_iterations
        w = vis.clamp_min(0) ** self.cfg.vis_power
        # the solver runs in float32 at least (bf16 autocast must not reach it)
        dtype = torch.promote_types(u.dtype, torch.float32)
        with torch.autocast(device_type=u.device.type, enabled=False):
            s, c = camera_from_points(u.to(dtype))
            out = solve_pose_and_shape(u.to(dtype), w.to(dtype), self.shape.template.to(dtype),
                                       None if rigid else self.shape.effective_basis.to(dtype), self.gamma.to(dtype),
                                       s, c, iterations=iterations, R_init=R_init, t_init=t_init,
                                       options=self.solver_options, rigid=rigid)
        coeffs = out.coeffs
        if coeffs.shape[1] != self.shape.num_basis:          # rigid pass: zero coefficients
            coeffs = u.new_zeros(u.shape[0], self.shape.num_basis)
            for h in out.history:
                h.coeffs = coeffs
        proj, depth = screen_points(out.verts, out.R, out.t, s, c)
        return TTPOutput(u=u, vis=vis, weights=w, scale=s, centre=c, R=out.R, t=out.t,
                         rotvec=out.rotvec, coeffs=coeffs, verts=out.verts, proj=proj,
                         depth=depth, history=out.history)

    def regress_groups(self, images: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """:meth:`regress` of several batches in one encoder pass, each batch with its own batch-norm
        statistics: the same results (up to float rounding) as one :meth:`regress` per batch, in order."""
        if len(images) == 1:
            return [self.regress(images[0])]
        sizes = [x.shape[0] for x in images]
        with self.encoder.batch_groups(sizes):
            u, vis = self.regress(torch.cat(list(images)))
        return list(zip(u.split(sizes), vis.split(sizes)))

    def forward(self, images: Tensor, iterations: int | None = None, rigid: bool | None = None,
                aux_images: Tensor | None = None) -> TTPOutput:
        """Regress and solve ``images`` (B, 3, H, W). ``aux_images`` (B', 3, H, W) are only regressed,
        in the same encoder pass with their own batch-norm statistics (training's equivariance branch),
        and returned in ``out.aux``."""
        if aux_images is None:
            u, vis = self.regress(images)
            return self.solve(u, vis, iterations=iterations, rigid=rigid)
        (u, vis), aux = self.regress_groups([images, aux_images])
        out = self.solve(u, vis, iterations=iterations, rigid=rigid)
        out.aux = aux
        return out

    @staticmethod
    def sample_texture(images: Tensor, u: Tensor) -> Tensor:
        """Per-vertex colours (B, N, C): the input image sampled at the regressed points."""
        out = F.grid_sample(images, u[:, :, None, :], mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out[..., 0].transpose(1, 2)
