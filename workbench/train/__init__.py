"""workbench.train: the iteration-based training engine shared by every method.

What you get
------------
* :class:`Trainer` -- ``Trainer(model, optimizer, run_dir, cfg, scheduler, callbacks).fit(step_fn,
  batches, eval_fn)``: iterations (not epochs), step callbacks, evaluation and checkpoints every N
  iterations, ``tqdm.auto`` progress, ``run_dir/metrics.csv``, atomic ``run_dir/checkpoint.pt``
  (model, optimizer, scheduler, extra state, every RNG, step, config).
* Exact resume: re-running the same code after a crash, ``kill -9`` or Ctrl-C continues from the
  checkpoint and reproduces (on CPU, bit for bit) the final weights and ``metrics.csv`` of an
  uninterrupted run (the ``time`` column aside). Requirements: build the model/optimizer the same
  way, draw batches from a resumable factory (:class:`ResumableLoader`, :func:`step_batches`), and
  keep every random draw in ``step_fn`` on the global RNGs (or on generators you put in ``state=``).
* NaN guard: a NaN/inf loss (or gradient norm) raises :class:`NonFiniteLossError` with ``.step``,
  ``.value`` and ``.last_checkpoint``; the last good checkpoint is never overwritten.
* Ctrl-C / SIGTERM: the current iteration finishes, a checkpoint is written, ``fit`` returns a
  :class:`FitResult` with ``status == "interrupted"`` (a second Ctrl-C aborts at once).
* ``TrainConfig.amp = "bf16"``: autocast on CUDA (float32 on CPU).
* Multi-process: the same script runs under ``torchrun --nproc_per_node=N script.py``; the
  Trainer initialises the process group (``nccl`` on GPU, ``gloo`` on CPU), wraps the model in
  ``DistributedDataParallel``, gives each rank its slice of every global batch (with
  :class:`ResumableLoader`), averages logged scalars over ranks, and writes files on rank 0 only.

Conventions
-----------
* ``step`` passed to ``step_fn`` is the 0-based iteration being computed; ``step`` in
  ``metrics.csv``, callbacks, checkpoints and :class:`FitResult` is the number of *completed*
  iterations. A NaN error reports the 0-based iteration at which the loss was NaN.
* The learning rate of iteration ``step`` is ``lr * lr_factor(step)`` (warm-up, then constant,
  multistep or cosine; see :mod:`workbench.train.schedules`). Method-specific milestones (e.g. a
  rigid-then-deformable switch) go in the method config and are read in ``step_fn`` with
  :func:`stage_at` / :func:`linear_ramp`.
* Under DDP ``step_fn`` receives the ``DistributedDataParallel`` wrapper: call ``model(...)``
  (the forward is what synchronises gradients) and reach submodules via :func:`unwrap_model`.
  ``eval_fn`` always receives the plain model and runs on rank 0 only.

Usage (a complete script; also runs as ``torchrun --nproc_per_node=2 this_script.py``)
--------------------------------------------------------------------------------------
.. code-block:: python

    import torch
    from torch.utils.data import TensorDataset
    from workbench.core import seed_everything
    from workbench.train import (TrainConfig, Trainer, ResumableLoader, History, build_optimizer,
                                 build_scheduler, unwrap_model)

    cfg = TrainConfig.for_profile("smoke", overrides=["lr=3e-3", "schedule=cosine", "warmup_iters=5"])
    seed_everything(cfg.seed)                        # model init is reproducible too
    x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
    train_set, val = TensorDataset(x[:200], y[:200]), (x[200:], y[200:])

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = build_optimizer(model, cfg)                # or any torch.optim optimizer
    sched = build_scheduler(opt, cfg)                # per-iteration LambdaLR

    def step_fn(model, batch, step):
        xb, yb = batch                               # already on the device
        logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        return {"loss": loss, "acc": (logits.argmax(1) == yb).float().mean()}

    def eval_fn(model, step):                        # model in eval() mode, under no_grad
        xv, yv = (t.to(next(model.parameters()).device) for t in val)
        return {"acc": (model(xv).argmax(1) == yv).float().mean().item()}

    history = History()                              # live curves: history.frame()
    trainer = Trainer(model, opt, "runs/demo/mlp", cfg, scheduler=sched, callbacks=[history])
    result = trainer.fit(step_fn, ResumableLoader(train_set, cfg.batch_size, seed=cfg.seed), eval_fn)
    result.status, result.step, result.last_eval       # "completed", 20, {"acc": ...}
    # Run it again: it finds runs/demo/mlp/checkpoint.pt at step 20 and returns at once.
    # Kill it mid-run and run it again: it resumes and ends with identical weights and metrics.

Related: :mod:`workbench.eval.results` reads ``runs/<method>/<run>/`` back into pandas tables;
:func:`load_model_weights` loads a run's weights for evaluation.
"""
from .callbacks import Callback, History, LambdaCallback
from .checkpoint import (CHECKPOINT_NAME, capture_rng_state, load_checkpoint, load_model_weights,
                         restore_rng_state, save_checkpoint)
from .config import TrainConfig
from .data import BatchFactory, ResumableLoader, move_to_device, step_batches
from .distributed import (DistInfo, barrier, cleanup, dist_info, get_rank, get_world_size, init_distributed,
                          is_main_process, unwrap_model)
from .engine import FitResult, NonFiniteGradientError, Trainer, build_optimizer
from .metrics_log import MetricsLog, read_rows
from .schedules import IterationSchedule, build_scheduler, linear_ramp, lr_factor, stage_at
from ..core.errors import NonFiniteLossError, TrainingError

__all__ = [
    "Trainer", "TrainConfig", "FitResult", "build_optimizer", "build_scheduler",
    "Callback", "History", "LambdaCallback",
    "ResumableLoader", "step_batches", "move_to_device", "BatchFactory",
    "IterationSchedule", "lr_factor", "stage_at", "linear_ramp",
    "CHECKPOINT_NAME", "load_checkpoint", "load_model_weights", "save_checkpoint",
    "capture_rng_state", "restore_rng_state",
    "MetricsLog", "read_rows",
    "DistInfo", "dist_info", "init_distributed", "cleanup", "barrier", "get_rank", "get_world_size",
    "is_main_process", "unwrap_model",
    "NonFiniteLossError", "NonFiniteGradientError", "TrainingError",
]
