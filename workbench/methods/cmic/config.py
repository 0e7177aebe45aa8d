"""CMIC configuration: one model; the paper's ablations are overrides (see :mod:`.baselines`).

Profiles:

* ``smoke``: seconds on a 2-core CPU (tests, the notebook under CI): tiny CNNs, 32 px, 32-D.
* ``quick``: about 4 minutes on a (shared) 2-core CPU: small CNNs (width 16), 64 px queries,
  32 px renders, 128-D, 16 queries + 16 shapes per batch, 600 iterations.
* ``full``: the paper's model (ResNet-50 query encoder, ResNet-34 render encoder, 224 px, 128-D,
  Adam 5e-5 with betas (0.5, 0.999), 30 queries + 30 shapes per batch, about 400 epochs of
  Pix3D's 2,648 training images = 35,000 iterations) for a GPU.

Schedules are in iterations (one iteration = one batch of ``batch_size`` queries and
``shapes_per_batch`` distinct shapes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from ...core.config import Config
from ...core.errors import ConfigError
from ...train.config import TrainConfig
from .colour import COLOUR_SPACES


@dataclass
class DataConfig(Config):
    """Where queries and shapes come from.

    ``source="synthetic"`` generates (or reuses) the ``preset`` with ``workbench.data.generate``
    at ``profile`` and ``seed``, or reads the workbench-schema directory ``root`` when given.
    ``source="pix3d" | "compcars" | "stanford_cars"`` reads the official layout at ``root`` through
    the data layer's adapters (``workbench.data.read_dataset``; CMIC's json splits and render
    pickle); with real data set ``load_size`` (queries and renders are resized to it on loading)
    and ``unseen_holdout=0`` (the paper's seen protocol uses every shape). ``categories``
    restricts queries and repositories to a subset (one category = a fine-grained,
    single-category run, as the paper's car datasets); empty = all.

    Splits (the synthetic preset's names): training queries come from ``train_split``, test queries
    from ``test_split``, shapes from the repository split ``repository`` (``multi``: the
    multi-category, Pix3D-like part; ``fine``: the single-category fine-grained part with
    ``fine_train`` / ``fine_test`` queries). The *seen* gallery holds the shapes the training
    queries show and every test query's ground truth (top-k and shape metrics). The *unseen*
    gallery (the paper's ShapeNet gallery, shape metrics only) is the repository split
    ``unseen_repository`` when the dataset has one; otherwise the last ``unseen_holdout`` shapes
    (by shape id) of every category are held out: their queries are dropped from training and
    testing, and they form the unseen gallery (0 = no unseen evaluation).

    ``preset_overrides`` are passed to the synthetic generator (``workbench.data.generate``), e.g.
    ``["materials_per_photo=true"]``: every photo of a shape gets new colours and textures. The
    ``quick`` and ``full`` profiles set it. With one fixed material per shape (the generator's
    default) a photo's colours identify its shape, a shortcut the grey renders cannot offer and
    that real photo/CAD pairs (Pix3D, Stanford Cars, CompCars) do not have; it makes colour
    augmentation look harmful (measured: no augmentation 26.5 vs colour transfer 22.3 top-1).
    """

    source: str = "synthetic"
    preset: str = "retrieval"
    preset_overrides: list[str] = field(default_factory=list)
    profile: str = "full"
    seed: int = 0
    root: Optional[str] = None
    categories: list[str] = field(default_factory=list)
    train_split: str = "train"
    test_split: str = "test"
    repository: str = "multi"
    unseen_repository: str = ""
    unseen_holdout: int = 5
    load_size: int = 0
    """Resize queries and renders to this side when loading (0: keep the stored size, which must
    then be the same for every image)."""
    shapes_per_batch: int = 30
    """Distinct shapes per batch: the batch's query shapes, merged, then filled up with random others
    (official: 30). Must be >= ``train.batch_size`` so every query's shape fits."""


@dataclass
class ModelConfig(Config):
    """Encoders and attention (:mod:`.model`)."""

    query_backbone: str = "resnet50"
    render_backbone: str = "resnet34"
    """The paper's ResNet-34; the official code uses ``resnet18``."""
    query_backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra arguments of :func:`workbench.nn.build_backbone` (e.g. ``{"width": 16}`` for ``small_cnn``)."""
    render_backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    """ImageNet weights for the backbones (official). Needs weights in the torch cache (no download here)."""
    dim: int = 128
    attention_hidden: int = 0
    """0: the official bias-free D x D linear on the query; > 0: an MLP with this hidden width."""
    attention_layers: int = 2
    attention_temperature: float = 1.0
    normalize_shape: bool = False
    """Re-normalise the attended shape embedding (official: no; it is a convex combination)."""
    use_mask: bool = True
    image_size: int = 224
    """Query input side (crops are resampled to it)."""
    render_size: int = 224
    """Render input side."""


@dataclass
class LossConfig(Config):
    """Losses (:mod:`.losses`). ``L = L_inst + category_weight * L_cat``."""

    instance: Literal["contrastive", "triplet"] = "contrastive"
    tau: float = 0.1
    category_weight: float = 0.2
    """beta_1 of the paper; 0 switches the category loss off."""
    category_include_gt: bool = True
    """Table 4: the ground-truth shape counts as a category positive (official code; better row)."""
    category_reduction: Literal["query", "pair"] = "query"
    """``query``: the paper's eq. 5 (mean over each query's positives); ``pair``: the official code."""
    triplet_margin: float = 0.2


@dataclass
class AugmentConfig(Config):
    """Query / render augmentation (:mod:`.augment`, :mod:`.colour`).

    ``colour``: ``transfer`` (the paper's colour transfer between queries of the batch), ``hsv``
    (HSV jitter with probability ``hsv_p``) or ``none`` (geometric augmentation only, as the
    paper's "none" rows). ``colour_space``: ``lab_reinhard`` (the paper), ``cielab`` (correct CIE
    Lab), ``cielab_x255`` (the official code's distorted Lab).
    """

    colour: Literal["transfer", "hsv", "none"] = "transfer"
    colour_space: str = "lab_reinhard"
    stats_region: Literal["image", "mask"] = "image"
    transfer_p: float = 1.0
    allow_self: bool = True
    hsv_p: float = 0.5
    hsv_hue: float = 0.1
    hsv_saturation: float = 0.4
    hsv_value: float = 0.4
    geometric: bool = True
    query_scale: tuple[float, float] = (0.85, 0.95)
    query_translate: float = 0.05
    render_scale: tuple[float, float] = (0.65, 0.9)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Aspect-ratio range (w/h, log-uniform) of the random-resized crops of queries and renders
    (torchvision's default, as the official code). The crop is resized to a square, so a ratio
    other than 1 stretches the object: (1, 1) keeps proportions."""
    flip_p: float = 0.5

    def validate(self) -> None:
        if self.colour_space not in COLOUR_SPACES:
            raise ConfigError(f"augment.colour_space '{self.colour_space}' is not one of {list(COLOUR_SPACES)}")
        for name in ("transfer_p", "hsv_p", "flip_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {v}")
        for name in ("query_scale", "render_scale"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ConfigError(f"augment.{name} must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= 1.0 <= hi:
            raise ConfigError(f"augment.crop_ratio must satisfy 0 < lo <= 1 <= hi, got {(lo, hi)}")

    def settings(self):
        from .augment import AugmentSettings

        return AugmentSettings(**self.to_dict())


@dataclass
class EvalConfig(Config):
    """Evaluation (:mod:`.evaluate`)."""

    topk: list[int] = field(default_factory=lambda: [1, 5, 10])
    shape_metrics: bool = True
    """Modified Hausdorff distance and voxel IoU between the retrieved and the ground-truth shape."""
    n_points: int = 10000
    """Points sampled per shape surface for the Hausdorff distance (official: 10k)."""
    voxel_resolution: int = 128
    """Voxel grid side for the IoU (official: 128^3 binvox)."""
    hausdorff_scale: float = 0.5
    """Coordinates are multiplied by this before the Hausdorff distance (the official code: 0.5)."""
    colour_shift: bool = True
    """Also evaluate on re-coloured test photos (``recolour_*`` metrics; see :mod:`.evaluate`)."""
    max_queries: int = 0
    """Evaluate on the first N test queries only (0 = all)."""
    query_chunk: int = 256
    shape_chunk: int = 2048
    batch_size: int = 64
    figures: bool = True


@dataclass
class CMICConfig(Config):
    profile: str = "full"
    """The profile these settings come from (recorded for the results tables; set by PROFILES)."""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        iterations=35000, batch_size=30, lr=5e-5, betas=(0.5, 0.999), eval_every=5000,
        checkpoint_every=2000, log_every=50))
    eval: EvalConfig = field(default_factory=EvalConfig)

    PROFILES = {
        "smoke": {
            "profile": "smoke",
            "data": {"profile": "smoke", "shapes_per_batch": 8, "unseen_holdout": 1},
            "model": {"query_backbone": "small_cnn", "render_backbone": "small_cnn", "dim": 32,
                      "query_backbone_kwargs": {"width": 16}, "render_backbone_kwargs": {"width": 16},
                      "image_size": 32, "render_size": 32},
            "train": {"iterations": 40, "batch_size": 8, "lr": 3e-3, "betas": (0.9, 0.999),
                      "eval_every": 0, "checkpoint_every": 20, "log_every": 5},
            "eval": {"n_points": 256, "voxel_resolution": 16, "batch_size": 32, "figures": False},
        },
        # quick, measured over seeds 0-7 (160 queries each, 600 iterations, small CNNs from scratch, render
        # crops anti-aliased as the evaluation's resize), mean +- sd; paired differences full - variant with
        # the t statistic over the 8 seeds:
        #   top-1 full 21.4 +- 3.1, aug_none 20.9 +- 3.0, no_cat 21.8 +- 3.4 (chance 1.25);
        #   colour transfer vs none: top-1 +0.5 (t = 0.6, not significant; full ahead in 5/8 seeds), on
        #     hue-rotated photos -1.3 (t = -1.7); the query embedding is more colour-invariant (0.938 vs
        #     0.907, t = 3.8), but top-10 -2.4 (t = -3.7) and category accuracy -2.0 (t = -2.8);
        #   category loss: category accuracy +3.1 (t = 4.8, 8/8 seeds), on the unseen repository +3.4
        #     (t = 4.5, 8/8); top-1 -0.4 (t = -0.5, not significant).
        # Without colour transfer the query encoder is already largely colour-invariant (cosine 0.91 between
        # a photo and its half-turn hue rotation): every photo has its own materials and the renders are
        # grey, so the instance contrast alone teaches the invariance that colour transfer adds; what is left
        # costs no retrieval (hue-rotated photos are retrieved as well without it). Before the render crops
        # were anti-aliased (a bilinear 2x shrink of the 64 px renders aliased them during training only),
        # colour transfer gained top-1 +2.1 (t = 2.1) and +2.5 on hue-rotated photos (t = 4.0).
        # Training photos with each shape's own colours and test photos with new ones (``materials_per_photo_
        # splits=[test, fine_test]``, the premise of real photos; seeds 0-7): colour transfer top-1 +0.9
        # (t = 1.2), top-10 +2.2 (t = 2.3), and it protects against colour shifts: re-coloured photos +3.5
        # (t = 5.2, 8/8), hue-rotated +6.4 (t = 6.2, 8/8), invariance 0.931 vs 0.826 (t = 7.8).
        # With one set of materials per shape (``data.preset_overrides=[]``: test photos share the training
        # photos' colours; seeds 0-2, before the anti-aliasing), colour transfer cost top-1 2.7, top-10 4.6
        # and category accuracy 6.7 points (colour is then a valid cue, which it removes). The category loss
        # adds category accuracy, not instance discrimination: about a quarter of the queries whose category
        # is right get the right instance, so its category gain moves top-1 by less than the seed noise.
        "quick": {
            "profile": "quick",
            "data": {"profile": "quick", "shapes_per_batch": 16, "preset_overrides": ["materials_per_photo=true"]},
            "model": {"query_backbone": "small_cnn", "render_backbone": "small_cnn", "dim": 128,
                      "query_backbone_kwargs": {"width": 16}, "render_backbone_kwargs": {"width": 16},
                      "image_size": 64, "render_size": 32},
            "train": {"iterations": 600, "batch_size": 16, "lr": 1e-3, "betas": (0.9, 0.999),
                      "schedule": "cosine", "warmup_iters": 50, "eval_every": 0,
                      "checkpoint_every": 100, "log_every": 20},
            "eval": {"n_points": 2048, "voxel_resolution": 32},
        },
        # the official batch of 30 queries (the shared train section's own full profile says 32)
        "full": {"profile": "full", "data": {"preset_overrides": ["materials_per_photo=true"]},
                 "train": {"batch_size": 30}},
    }

    def validate(self) -> None:
        if self.data.shapes_per_batch < self.train.batch_size:
            raise ConfigError(f"data.shapes_per_batch ({self.data.shapes_per_batch}) must be >= "
                              f"train.batch_size ({self.train.batch_size})")
        if self.loss.tau <= 0:
            raise ConfigError(f"loss.tau must be > 0, got {self.loss.tau}")
        if self.loss.category_weight < 0:
            raise ConfigError(f"loss.category_weight must be >= 0, got {self.loss.category_weight}")
