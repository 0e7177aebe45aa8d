"""`TrainConfig`: the optimisation and bookkeeping settings shared by every method.

Every schedule is written in **iterations** (optimizer steps), never in epochs. A method config
embeds it as ``train: TrainConfig = field(default_factory=TrainConfig)`` and overrides it from
its own ``PROFILES`` (``{"smoke": {"train": {"iterations": 20}}}``) or the CLI
(``train.lr=3e-4``). ``TrainConfig.PROFILES`` holds sensible bookkeeping defaults per profile
that methods may reuse (``{"smoke": {"train": TrainConfig.PROFILES["smoke"], ...}}``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..core.config import Config
from ..core.errors import ConfigError


@dataclass
class TrainConfig(Config):
    """Optimisation, schedule and bookkeeping settings of one training run.

    Counting: one *iteration* (``step``) is one optimizer update, made of ``accumulate``
    micro-batches of ``batch_size`` samples on each of the ``world_size`` processes.
    """

    iterations: int = 1000
    """Number of optimizer updates of the whole run."""
    batch_size: int = 32
    """Samples per micro-batch **per process** (the global batch is batch_size * accumulate * world_size)."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """Used by :func:`workbench.train.build_optimizer`; ignored when you build your own optimizer."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    """SGD momentum."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam/AdamW betas."""
    schedule: Literal["constant", "multistep", "cosine"] = "constant"
    """Learning-rate schedule after warm-up (see :mod:`workbench.train.schedules`)."""
    milestones: list[int] = field(default_factory=list)
    """Iterations at which ``multistep`` multiplies the learning rate by ``gamma``."""
    gamma: float = 0.1
    warmup_iters: int = 0
    """Linear warm-up from lr/warmup_iters to lr over the first ``warmup_iters`` iterations."""
    min_lr_ratio: float = 0.0
    """Final learning rate of ``cosine`` as a fraction of ``lr``."""
    grad_clip: float = 0.0
    """Clip the global gradient L2 norm to this value; 0 disables clipping (the norm is still logged)."""
    accumulate: int = 1
    """Micro-batches per optimizer update (gradient accumulation; the loss is divided by it)."""
    amp: Literal["none", "bf16"] = "none"
    """``bf16`` autocast on CUDA; ignored (float32, with a warning) on CPU."""
    eval_every: int = 0
    """Call ``eval_fn`` every N iterations (0: only at the end of the run)."""
    checkpoint_every: int = 500
    """Write ``checkpoint.pt`` every N iterations (0: only at the end or on interruption)."""
    log_every: int = 10
    """Append a ``train`` row (means over the last N iterations) to ``metrics.csv`` every N iterations."""
    seed: int = 0
    """Seeds python/numpy/torch at the start of a fresh run (rank r uses seed + r) and the data order."""
    deterministic: bool = True
    """Ask torch for deterministic algorithms (bit-exact CPU runs and resumes); False may be faster on GPU."""
    device: str = "auto"
    """``auto`` (cuda > mps > cpu, or ``$WB_DEVICE``), ``cpu``, ``cuda``, ``cuda:1``..."""
    num_workers: int = 0
    """DataLoader worker processes of :class:`workbench.train.ResumableLoader`."""
    find_unused_parameters: bool = False
    """Passed to DistributedDataParallel: set it when some parameters get no gradient in some steps."""
    progress: bool = True
    """Show a ``tqdm.auto`` progress bar (rank 0 only)."""

    PROFILES = {
        "smoke": {"iterations": 20, "batch_size": 8, "eval_every": 10, "checkpoint_every": 10, "log_every": 5},
        "quick": {"iterations": 2000, "batch_size": 16, "eval_every": 500, "checkpoint_every": 250,
                  "log_every": 20},
        "full": {"iterations": 100000, "batch_size": 32, "eval_every": 5000, "checkpoint_every": 2000,
                 "log_every": 50},
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = {"iterations": self.iterations, "batch_size": self.batch_size,
                    "accumulate": self.accumulate, "log_every": self.log_every}
        for name, v in positive.items():
            if v < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {v}")
        nonneg = {"eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every,
                  "warmup_iters": self.warmup_iters, "grad_clip": self.grad_clip, "lr": self.lr,
                  "weight_decay": self.weight_decay, "num_workers": self.num_workers}
        for name, v in nonneg.items():
            if v < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {v}")
        if self.milestones and self.schedule != "multistep":
            raise ConfigError(f"TrainConfig.milestones={self.milestones} is only used by schedule=multistep "
                              f"(schedule is '{self.schedule}')")
        if list(self.milestones) != sorted(self.milestones) or any(m < 0 for m in self.milestones):
            raise ConfigError(f"TrainConfig.milestones must be increasing non-negative iterations, "
                              f"got {self.milestones}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
