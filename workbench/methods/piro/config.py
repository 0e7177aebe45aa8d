"""PiRO configuration: one model, variants as overrides (see :mod:`.baselines`).

Profiles:

* ``smoke``: a few seconds on a 2-core CPU (tests, notebook under CI): small CNN, 32 px, 32-d.
* ``quick``: a few minutes on a 2-core CPU: ``small_cnn(width=16)`` trained from scratch, its
  64 x 7 x 7 feature map flattened (as the paper flattens VGG's 512 x 7 x 7), 64 px, 128-d
  embeddings, 6 random views per pair, 1000 iterations.
* ``full``: the paper's settings (VGG-16 with ImageNet weights -- torchvision's
  ``vgg16-397923af.pth`` must be in the torch hub cache or ``$WB_WEIGHTS_DIR``, nothing is
  downloaded --, 224 px, 2048-d, flattened 25088-d VGG feature, Adam 1e-5, the LR halved at
  20/40/60/80 % of the run, the official augmentation). Its 25k iterations suit the synthetic
  preset; the paper's 25 epochs on a real dataset are ``25 * N_train * Ncomp / pairs``
  iterations (Ncomp = 10 for ObjectPI/ModelNet-40, 3 for FG3D; e.g. ModelNet-40 with 3 pairs per
  batch: 25 * 3183 * 10 / 3 = 265k), and FG3D used lr 5e-5 and ``loss.inter_weight=2``.

Schedules are in iterations: one iteration is one batch of ``train.batch_size`` same-category
object *pairs* (the official code: 4 pairs for ObjectPI, 3 for ModelNet-40, 9 for FG3D); the
paper's StepLR (halve every 5 of 25 epochs) is ``schedule=multistep`` with four milestones at
20/40/60/80 % of the run and ``gamma=0.5``. The run seed is ``seed`` (``train.seed`` is set
from it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ...core.config import Config
from ...core.errors import ConfigError
from ...train import TrainConfig

OBJECTIVES = ("piro", "pi_cnn", "pi_proxy", "pi_tc", "mvcnn")
SOURCES = ("synthetic", "modelnet40", "objectpi", "fg3d")


@dataclass
class DataConfig(Config):
    """Where the multi-view objects come from.

    ``source="synthetic"`` generates (or reuses) the ``preset`` with ``workbench.data.generate``
    at ``profile``; the real datasets go through the data layer's adapters. ``root`` points at
    an existing dataset directory instead (any source). ``subset``: ``"coarse"`` uses the
    ``train``/``test`` splits (ModelNet-40-like everyday categories), ``"fine"`` the
    ``fine_train``/``fine_test`` splits of the multiview preset (FG3D-like: the label is a
    fine-grained family whose objects differ subtly). ``categories`` optionally restricts the
    run to some categories (names as in the dataset), empty = all.
    """

    source: str = "synthetic"
    preset: str = "multiview"
    profile: Optional[str] = None   # data profile; None = the run's profile
    seed: Optional[int] = None      # generation seed of the synthetic data; None = the run's seed
    overrides: list[str] = field(default_factory=list)  # preset overrides, e.g. ["fine_test_objects=8"]
    root: Optional[str] = None
    subset: str = "fine"            # "fine" (fine_train/fine_test) | "coarse" (train/test)
    categories: list[str] = field(default_factory=list)
    views: int = 12
    image_size: int = 64
    in_memory: bool = True
    workers: int = 0


@dataclass
class ModelConfig(Config):
    """PAN encoder (see :class:`~.model.PiroNet`)."""

    backbone: str = "small_cnn"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)   # e.g. {"width": 32, "stride": 8}
    pretrained: bool = False
    pool: str = "flatten"           # "flatten" (the paper: VGG-16's 512x7x7 = 25088-d feature) | "avg"
    input_norm: str = "none"        # "imagenet" for pretrained backbones
    dual: bool = True               # PiRO-DE (True) / PiRO-SE (False)
    attention: bool = True          # PAN self-attention (False: plain mean over views)
    cat_dim: int = 128
    obj_dim: int = 128
    dropout: float = 0.25


@dataclass
class LossConfig(Config):
    """Which losses and their hyper-parameters.

    ``objective="piro"`` sums the switched-on PiRO losses (eq. 10): ``use_cat`` (L-Softmax on
    the SV category embeddings), ``use_picat``, ``use_piobj``. The baselines replace them:
    ``pi_cnn``/``pi_proxy``/``pi_tc`` (Ho et al.'s pose-invariant losses) and ``mvcnn``
    (cross-entropy of a linear classifier on the view-pooled embedding).

    ``train_class_weights=False`` freezes the L-Softmax weights at their seeded ``N(0, 1)``
    initialisation, as the official code (whose weights are never handed to the optimiser).
    ``miner_weights`` applies the official hard-miner per-sample weights. ``squared_confuser``
    uses the squared confuser distance in the inter term, as the official code; ``inter_weight``
    is its lambda (1 for ObjectPI/ModelNet-40, 2 for FG3D). ``lsoftmax_anneal = [base, gamma,
    power, min]`` anneals L-Softmax from the ordinary softmax (the L-Softmax paper's
    ``lambda = max(min, base (1 + gamma it)^-power)``); ``base = 0`` (the official code) disables it.
    """

    objective: str = "piro"
    use_cat: bool = True
    use_picat: bool = True
    use_piobj: bool = True
    margin: int = 4
    lsoftmax_anneal: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0, 0.0])  # base, gamma, power, min
    train_class_weights: bool = True
    miner_weights: bool = True
    theta: float = 0.25
    alpha: float = 0.25
    beta: float = 1.0
    inter_weight: float = 1.0
    squared_confuser: bool = True
    pie_alpha: float = 1.0
    pie_beta: float = 1.0
    pie_margin: float = 1.0


@dataclass
class SamplingConfig(Config):
    """How training pairs are drawn (:class:`~.sampler.PairSampler`); ``train.batch_size`` is P.

    ``n_views``: views per object in a pair (0 = all, as the official code; the paper says "V
    randomly selected views"). ``augment``: the official augmentation (horizontal flip and a
    small random affine: +-5 deg, scale 0.9-1.1, shear +-1 deg), applied per view.
    """

    n_views: int = 0
    augment: bool = False


@dataclass
class EvalConfig(Config):
    """Evaluation protocol (:mod:`.retrieval`)."""

    knn_k: int = 10
    backend: str = "auto"           # "auto" | "faiss" | "torch"
    exclude_self: bool = False      # official: the query stays in its own category ranking
    batch_objects: int = 16         # objects per forward pass when embedding a split
    rho_objects: int = 64           # train objects used for the rho (Fig. 6) tracking
    early_stop_ratio: float = 0.0   # official criterion: stop once es_ratio > 1.5; 0 = off
    figures: bool = True            # write figures/rho.png and figures/retrieval_obj.png after evaluating


@dataclass
class PiroConfig(Config):
    profile: str = "quick"          # the profile this config was made for (informational)
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        iterations=2000, batch_size=4, lr=1e-3, schedule="multistep", milestones=[400, 800, 1200, 1600],
        gamma=0.5, eval_every=200, checkpoint_every=500, log_every=25))
    eval: EvalConfig = field(default_factory=EvalConfig)

    PROFILES = {
        "smoke": {
            "profile": "smoke",
            "data": {"image_size": 32},
            "model": {"backbone_kwargs": {"width": 16}, "cat_dim": 32, "obj_dim": 32},
            "sampling": {"n_views": 6},
            "train": {"iterations": 40, "lr": 2e-3, "milestones": [], "batch_size": 4,
                      "log_every": 10, "eval_every": 20, "checkpoint_every": 20, "progress": False},
            "eval": {"batch_objects": 32, "rho_objects": 16, "figures": False},
        },
        "quick": {
            "profile": "quick",
            "data": {"image_size": 64},
            "model": {"backbone_kwargs": {"width": 16}, "cat_dim": 128, "obj_dim": 128},
            "sampling": {"n_views": 6},
            "train": {"iterations": 1000, "lr": 1e-3, "milestones": [600, 800], "batch_size": 4,
                      "log_every": 50, "eval_every": 200, "checkpoint_every": 200},
        },
        "full": {
            "profile": "full",
            "data": {"image_size": 224, "in_memory": False, "workers": 8},
            "model": {"backbone": "vgg16", "pretrained": True, "pool": "flatten", "input_norm": "imagenet",
                      "cat_dim": 2048, "obj_dim": 2048},
            "sampling": {"augment": True},
            "train": {"iterations": 25000, "lr": 1e-5, "milestones": [5000, 10000, 15000, 20000],
                      "batch_size": 4, "log_every": 50, "eval_every": 1000, "checkpoint_every": 1000},
            "eval": {"batch_objects": 8, "rho_objects": 256},
        },
    }

    def validate(self) -> None:
        if self.loss.objective not in OBJECTIVES:
            raise ConfigError(f"loss.objective: '{self.loss.objective}' is not one of {list(OBJECTIVES)}")
        if self.data.subset not in ("coarse", "fine"):
            raise ConfigError(f"data.subset: '{self.data.subset}' is not one of ['coarse', 'fine']")
        if self.data.source not in SOURCES:
            raise ConfigError(f"data.source: '{self.data.source}' is not one of {list(SOURCES)}")
        if self.loss.objective == "piro" and not (self.loss.use_cat or self.loss.use_picat or self.loss.use_piobj):
            raise ConfigError("loss: objective 'piro' needs at least one of use_cat, use_picat, use_piobj")
        if self.model.pool not in ("avg", "flatten"):
            raise ConfigError(f"model.pool: '{self.model.pool}' is not one of ['avg', 'flatten']")
        if self.model.input_norm not in ("imagenet", "none"):
            raise ConfigError(f"model.input_norm: '{self.model.input_norm}' is not one of ['imagenet', 'none']")
        if self.eval.backend not in ("auto", "faiss", "torch"):
            raise ConfigError(f"eval.backend: '{self.eval.backend}' is not one of ['auto', 'faiss', 'torch']")
        if self.sampling.n_views == 1 or self.sampling.n_views < 0:
            raise ConfigError(f"sampling.n_views: {self.sampling.n_views} (need 0 = all, or >= 2)")
        if self.model.cat_dim < 1 or self.model.obj_dim < 1:
            raise ConfigError("model: cat_dim and obj_dim must be positive")
        if len(self.loss.lsoftmax_anneal) != 4 or self.loss.lsoftmax_anneal[0] < 0:
            raise ConfigError(f"loss.lsoftmax_anneal: expected [base >= 0, gamma, power, min], "
                              f"got {self.loss.lsoftmax_anneal}")
        if self.loss.margin < 1:
            raise ConfigError(f"loss.margin: {self.loss.margin} (need an integer >= 1)")
