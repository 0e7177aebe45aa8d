"""Configuration of TTP (To The Point), its rigid baseline and ablations (as overrides).

One typed config with strict keys. ``PROFILES``: ``smoke`` (seconds; tests and notebook CI),
``quick`` (minutes on a 2-core CPU), ``full`` (the paper's settings on a GPU). Every schedule is
in iterations: the rigid warm-up is ``train.rigid_iters`` (the paper: 100 rigid epochs, then
deformation), ``train.iterations`` the whole run.

Loss weights default to the official code's "no keypoint" README settings (see
``shared/reference/ttp.md`` section 3); ``loss.keypoint`` is 0 there and 30 for the keypoint-
supervised variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...core.config import Config
from ...core.errors import ConfigError
from ...train.config import TrainConfig


@dataclass
class DataSection(Config):
    preset: str = "collection"
    """Synthetic data preset (one category per dataset, CMR-style object-centred crops)."""
    category: str = "bird"
    """World category (``bird``: articulated, non-rigid; ``car``/``airplane``: rigid)."""
    profile: str = "quick"
    """Data profile passed to ``workbench.data.generate``."""
    seed: int = 0
    root: str = ""
    """Explicit dataset root; empty = generate/cache the preset for ``category``."""
    variant: Literal["white", "textured"] = "textured"
    """``white``: the ``train``/``test`` splits on white; ``textured``: ``*_textured`` backgrounds."""
    image_size: int = 64
    """Network input size (square crops are resized to it)."""
    flip_train: bool = True
    """Concatenate every batch with its horizontal flip (official ``--flip_train``)."""
    max_train_images: int = 0
    """Cap on training images (0 = all)."""


@dataclass
class TemplateSection(Config):
    level: int = 3
    """Icosphere level of the mean-shape template (2: 162 vertices, 3: 642, 4: 2562)."""
    subdivisions: int = 0
    """Midpoint subdivisions after averaging (the official template is 642 vertices subdivided once)."""
    n_instances: int = 32
    """Reference instances averaged into the mean shape."""
    smooth: int = 2
    """Laplacian smoothing iterations of the mean shape."""
    method: Literal["hull", "occupancy"] = "hull"
    """Mean shape: the mean of the instances' star-shaped hulls (CMR/CSM-like blob), or the 0.5
    level set of their mean occupancy (drops the parts whose placement varies; see
    :mod:`workbench.methods.ttp.template`). Measured on the quick test birds, 3D IoU of the
    template alone: hull 0.229 (level 2) / 0.266 (level 3), occupancy 0.196 / 0.232."""


@dataclass
class ModelSection(Config):
    backbone: str = "resnet18"
    """Encoder trunk (``workbench.nn.build_backbone``); the paper uses ResNet-18."""
    pretrained: bool = False
    """ImageNet weights for the trunk, only when present locally (never downloaded)."""
    feat_channels: int = 256
    """Channels of the conv4x4/stride-2 + BN + LeakyReLU layer after the trunk."""
    feat_grid: int = 4
    """Spatial size of the flattened feature map (4 x 4 x 256 = 4096 in the paper)."""
    num_basis: int = 16
    """K, deformation basis components; 0 = the rigid model."""
    basis_init: float = 0.01
    """Basis initialised uniform in [0, basis_init) per coordinate (official ``rand * 0.01``), in
    units of ``shape_unit``."""
    shape_unit: float = 0.17
    """The official template's standard deviation (bird.obj: 0.17). Our template is normalised to
    1 for the camera; the basis parameters and the shape priors are expressed in the official units
    so that the official initialisation, basis learning rate and prior weights keep their meaning
    (with 1 the priors are (1/0.17)^2 ~ 35x stronger relative to the image losses)."""
    gamma_init: float = 1.0
    """Ridge weight gamma of the closed-form shape step (official ``exp(w)`` with w = 0)."""
    learn_gamma: bool = True
    """Learn gamma as ``exp(w)`` (official); False keeps it fixed."""
    vis_power: float = 2.0
    """Solver weights ``w = v ** vis_power``: 2 = the official code (residuals times v), 1 = the paper."""
    solver_iterations: int = 4
    """Alternations of pose and shape (paper: 4)."""
    lm_max_iters: int = 30
    """Levenberg-Marquardt iterations cap of each pose solve."""
    points_grad: bool = True
    """Implicit gradients reach the 3D points (the official BPnP gives them none)."""
    solver_grad_clip: float = 100.0
    """Per-sample clip of the pose layer's input gradients (official: 100); 0 disables."""
    init_from_template: bool = True
    """Start the point head's bias at the template seen from the front (else zeros, official)."""
    head_init_std: float = 1e-4
    """Std of the point head's weights (official N(0, 0.01) * 0.01)."""


@dataclass
class RenderSection(Config):
    size: int = 64
    """Render resolution for the mask/texture losses and evaluation (the input size by default)."""
    sigma_px: float = 0.5
    """Soft-silhouette edge width in pixels (official sigma 1e-4 at 256 px ~ 1.3 px; sharper here so
    that the silhouette interior is ~1 with few faces per pixel)."""
    faces_per_pixel: int = 16
    """Faces blended per pixel in the soft silhouette (official 20); too few punch holes into the
    interior of dense meshes."""
    depth_tol: float = 0.02
    """z-buffer tolerance of the visibility target (screen units; the half image width is 1)."""


@dataclass
class LossSection(Config):
    texture: float = 1.0
    """L_pixel: the masked image re-synthesised through the mesh vs the masked image."""
    texture_kind: Literal["auto", "perceptual", "ssim", "l1"] = "auto"
    """``auto``: VGG-16 perceptual distance when ImageNet VGG weights are present locally, SSIM
    otherwise (LPIPS-Alex, the official choice, needs weights that are never downloaded)."""
    texture_mirror: bool = True
    """Average with the render from the bilateral-symmetric (mirrored) camera."""
    mirror_mask: Literal["gt", "predicted"] = "gt"
    """Mask of the mirrored texture term: the GT mask (fixed) or the predicted one (official bug)."""
    mask: float = 2.0
    """L_mask: L1 between the soft silhouette and the GT mask."""
    chamfer_inside: float = 1.0
    """Silhouette consistency: mask distance transform sampled at the regressed points (``tex_dt``)."""
    chamfer_coverage: float = 3.0
    """Coverage: squared distance from sampled mask pixels to the nearest regressed point (``bdt``)."""
    coverage_points: int = 500
    """Mask pixels sampled per image for the coverage term."""
    cycle: float = 3.0
    """L_cycle: ``|u_i - pi(V_i)|^2`` between regressed and reprojected points."""
    cycle_edges: bool = True
    """Add edge-length preservation between the projected mesh and the u-mesh (official ``rigid``)."""
    visibility: float = 1.0
    """L_vis: MSE between predicted visibility and the z-buffer visibility (official MSE)."""
    equivariance: float = 1.0
    """L_eqv: regressed points of an affinely warped image vs the warped points (MSE)."""
    equiv_mirror: float = 0.1
    """Flip consistency: camera (scale, centre), rotation angle and translation of the flipped image."""
    equiv_fraction: float = 1.0
    """Fraction of the batch (before flipping) that also goes through the warped-image branch."""
    equiv_degrees: float = 40.0
    equiv_translate: float = 0.15
    equiv_scale: tuple[float, float] = (0.7, 1.2)
    keypoint: float = 0.0
    """L_kp: L1 reprojection of the template keypoint vertices (30 in the keypoint-supervised runs)."""
    laplacian: float = 1.0
    """Cotangent-Laplacian smoothness of the deformed mesh."""
    laplacian_basis: float = 1.0
    """Uniform-Laplacian smoothness of each basis component (as a displacement of the template)."""
    arap: float = 3.0
    """ARAP of the deformed mesh against the template (cotangent weights)."""
    arap_basis: float = 0.1
    """ARAP of each basis component (template + B_k) against the template."""
    deformation: float = 5.0
    """``|V - T|^2``: deformation magnitude (the paper's "volume" term against flattening)."""


@dataclass
class TrainSection(TrainConfig):
    rigid_iters: int = 1000
    """Rigid warm-up: the shape is the template (no basis) before this iteration."""
    basis_lr: float = 1e-2
    """Learning rate of the basis (its own Adam group in the official code)."""
    head_lr: float = 0.0
    """Learning rate of the point head (0 = ``lr``). Adam moves each of its 4096 x 3N weights by
    ~lr per step in a coherent direction, so the head's outputs move ~lr x 4096 x |feature| per
    step: a lower head rate keeps tanh from saturating when ``lr`` is raised for short runs."""
    num_threads: int = 0
    """torch intra-op threads during training (0 = leave torch's default)."""


@dataclass
class EvalSection(Config):
    split: str = "test"
    """Evaluation split (``test``; the ``_textured`` suffix follows ``data.variant``)."""
    max_images: int = 0
    """Cap on evaluated images (0 = all)."""
    batch_size: int = 32
    pck_alphas: list[float] = field(default_factory=lambda: [0.1, 0.15])
    """PCK thresholds as fractions of max(bbox side)."""
    transfer_pairs: int = 200
    """Image pairs for keypoint-transfer PCK (0 disables)."""
    voxel_res: int = 32
    """Resolution of the 3D IoU voxel grid (Pascal3D+ protocol: 32^3)."""
    voxel_max_images: int = 100
    """Images whose reconstructions are voxelised (the slowest metric)."""
    iterations: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """Solver iterations reported per row of Table 2."""
    figures: bool = True
    """Write ``figures/correspondences.png`` (+ ``.pdf``): regressed points and the reprojection of the
    reconstruction on the first test images (read by ``workbench report``)."""


@dataclass
class TTPConfig(Config):
    seed: int = 0
    profile: str = "quick"
    """The profile this config was built for (recorded in the run)."""
    data: DataSection = field(default_factory=DataSection)
    template: TemplateSection = field(default_factory=TemplateSection)
    model: ModelSection = field(default_factory=ModelSection)
    render: RenderSection = field(default_factory=RenderSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=lambda: TrainSection(
        iterations=20000, rigid_iters=10000, batch_size=8, lr=1e-4, optimizer="adam",
        checkpoint_every=1000, eval_every=0, log_every=50))
    eval: EvalSection = field(default_factory=EvalSection)

    PROFILES = {
        "smoke": {
            "profile": "smoke",
            "data": {"profile": "smoke", "image_size": 32, "variant": "white"},
            "template": {"level": 1, "n_instances": 4},
            "model": {"backbone": "small_cnn", "num_basis": 4, "solver_iterations": 2,
                      "feat_channels": 32, "feat_grid": 2},
            "render": {"size": 32},
            "loss": {"coverage_points": 100, "equiv_fraction": 0.5},
            "train": {"iterations": 20, "rigid_iters": 10, "batch_size": 4, "lr": 1e-3, "head_lr": 1e-3,
                      "log_every": 4, "checkpoint_every": 12, "eval_every": 0, "progress": False},
            "eval": {"figures": False, "max_images": 8, "transfer_pairs": 16, "voxel_max_images": 2, "voxel_res": 16,
                     "iterations": [1, 2], "batch_size": 8},
        },
        "quick": {
            "profile": "quick",
            "data": {"profile": "quick", "image_size": 48, "variant": "white"},
            "template": {"level": 2},
            "model": {"backbone": "resnet18", "num_basis": 16},
            "render": {"size": 48},
            "loss": {"equiv_fraction": 0.5},
            "train": {"iterations": 300, "rigid_iters": 100, "batch_size": 8, "lr": 1e-3, "head_lr": 1e-4,
                      "log_every": 10, "checkpoint_every": 100, "eval_every": 0, "num_threads": 0},
            "eval": {"max_images": 200, "transfer_pairs": 200, "voxel_max_images": 60},
        },
        "full": {
            "profile": "full",
            "data": {"profile": "full", "image_size": 128},
            "template": {"level": 3, "subdivisions": 1},
            "model": {"backbone": "resnet18", "pretrained": False, "num_basis": 16},
            "render": {"size": 128, "faces_per_pixel": 24},
            "train": {"iterations": 60000, "rigid_iters": 30000, "batch_size": 8, "lr": 1e-4,
                      "log_every": 50, "checkpoint_every": 2000, "eval_every": 0},
            "eval": {"max_images": 0, "transfer_pairs": 1000, "voxel_max_images": 1000},
        },
    }

    def validate(self) -> None:
        if self.model.num_basis < 0:
            raise ConfigError(f"model.num_basis must be >= 0, got {self.model.num_basis}")
        if self.model.solver_iterations < 1:
            raise ConfigError(f"model.solver_iterations must be >= 1, got {self.model.solver_iterations}")
        if self.train.rigid_iters < 0:
            raise ConfigError(f"train.rigid_iters must be >= 0, got {self.train.rigid_iters}")
        if self.data.image_size < 16:
            raise ConfigError(f"data.image_size must be >= 16, got {self.data.image_size}")
        if not 0 < self.loss.equiv_scale[0] <= self.loss.equiv_scale[1]:
            raise ConfigError(f"loss.equiv_scale must be 0 < low <= high, got {self.loss.equiv_scale}")
        if any(i < 1 for i in self.eval.iterations):
            raise ConfigError(f"eval.iterations must be >= 1, got {self.eval.iterations}")
