"""The iteration-based training loop shared by every method (see :mod:`workbench.train` for usage).

One iteration (``step``, 0-based while it runs):

1. for each of ``cfg.accumulate`` micro-batches: take the next batch from the resumable batch
   stream, move it to the device, call ``step_fn(model, batch, step)`` under bf16 autocast when
   asked for on CUDA, and back-propagate ``loss / accumulate``;
2. average the returned scalars over processes (one all-reduce, which also carries the Ctrl-C
   flag so that every rank stops at the same iteration);
3. a NaN/inf loss or gradient norm raises :class:`NonFiniteLossError` *before* the optimizer
   step and without writing a checkpoint, so the last good ``checkpoint.pt`` is kept;
4. clip the gradient norm (``cfg.grad_clip``), ``optimizer.step()``, ``scheduler.step()``;
5. with ``s = step + 1`` completed iterations: log (``s % log_every``), evaluate
   (``s % eval_every`` and at the end), checkpoint (``s % checkpoint_every``, at the end and on
   Ctrl-C/SIGTERM).

Evaluation runs on rank 0 with the unwrapped model in ``eval()`` mode under ``no_grad``, with
the RNG states saved and restored around it, so evaluating more or less often never changes
the training trajectory. Afterwards every submodule gets back its own train/eval mode.

``fit`` calls ``model.train()`` once at the start; to keep parts of a model in eval mode (frozen
BatchNorm, a perceptual-loss network), override the model's ``train(mode)`` to re-freeze them.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import torch
from tqdm.auto import tqdm

from ..core.config import Config
from ..core.device import get_device
from ..core.errors import CheckpointError, NonFiniteLossError, TrainingError
from ..core.seed import seed_everything
from .callbacks import Callback
from .checkpoint import (CHECKPOINT_NAME, CHECKPOINT_VERSION, capture_rng_state, load_checkpoint,
                         load_state_dict_checked, restore_rng_state, save_checkpoint)
from .config import TrainConfig
from .data import BatchFactory, move_to_device
from .distributed import DistInfo, all_gather_object, barrier, init_distributed
from .metrics_log import BASE_COLUMNS, MetricsLog

log = logging.getLogger(__name__)

StepFn = Callable[[torch.nn.Module, Any, int], "torch.Tensor | Mapping[str, Any]"]
EvalFn = Callable[[torch.nn.Module, int], "Mapping[str, Any] | None"]

RESERVED = set(BASE_COLUMNS) | {"lr", "grad_norm"}



def _progress_disabled_by_env() -> bool:
    """``TQDM_DISABLE=1`` (set by ``workbench run`` for its parallel workers, which share one overall
    progress bar) turns the per-run bar off even though the config asks for it."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")

class NonFiniteGradientError(NonFiniteLossError):
    """The gradient norm became NaN/inf although the loss was finite."""

    def __init__(self, step: int, value: float, last_checkpoint: str | None = None):
        super().__init__(step, value, last_checkpoint)
        where = f"; last good checkpoint kept at {last_checkpoint}" if last_checkpoint else ""
        self.args = (f"gradient norm is {value} at step {step} (loss finite): training stopped{where}",)

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns.

    ``status`` is ``"completed"`` (``step == cfg.iterations``, possibly already so before the
    call) or ``"interrupted"`` (Ctrl-C / SIGTERM: a checkpoint at ``step`` was written).
    """

    status: Literal["completed", "interrupted"]
    step: int
    run_dir: Path
    checkpoint: Path | None
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    elapsed_s: float = 0.0

    @property
    def completed(self) -> bool:
        return self.status == "completed"


def _fused_ok(params: list) -> bool:
    """Whether torch's fused Adam kernel applies: floating-point parameters on the CPU or CUDA."""
    tensors = [t for g in params for t in (g["params"] if isinstance(g, dict) else [g])]
    return bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)


def build_optimizer(params: torch.nn.Module | Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD from ``cfg`` over a module's trainable parameters (or given params/groups).

    Adam and AdamW use torch's fused kernel where it applies (the same update rule as the default
    per-parameter loop; ResNet-18 at 1 CPU thread: ~10 ms a step instead of ~74 ms), SGD the
    multi-tensor one. Move the model to its device before building the optimizer.
    """
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    params = list(params)
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                   fused=True if _fused_ok(params) else None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    raise TrainingError(f"unknown optimizer '{cfg.optimizer}'")  # pragma: no cover - Literal-checked


def _scalar(v: Any, key: str, where: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise TrainingError(f"{where}: '{key}' must be a scalar, got a tensor of shape {tuple(v.shape)}")
        return v.detach().reshape(()).float()
    if isinstance(v, (int, float)) or hasattr(v, "__float__"):
        return torch.tensor(float(v))
    raise TrainingError(f"{where}: '{key}' must be a scalar tensor or number, got {type(v).__name__}")


class Trainer:
    """Iteration-based training with exact resume, NaN guard, Ctrl-C handling and DDP.

    Args:
        model: the model; moved to the training device (build the optimizer *after* creating the
            model on CPU or on that device -- ``Module.to`` keeps parameter identity).
        optimizer: any ``torch.optim`` optimizer over the model's (and ``state`` modules')
            parameters; :func:`build_optimizer` builds one from ``cfg``.
        run_dir: where ``checkpoint.pt``, ``metrics.csv`` and ``config.yaml`` go (rank 0 writes).
        cfg: :class:`TrainConfig`.
        scheduler: stepped once per iteration (see :func:`workbench.train.build_scheduler`), or None.
        callbacks: :class:`Callback` objects (run on rank 0).
        config: the full run config (e.g. the method config); written to ``config.yaml`` on a
            fresh start and stored in the checkpoint. Defaults to ``cfg``.
        state: extra objects with ``state_dict()``/``load_state_dict()`` to checkpoint (memory
            banks, EMA models, loss modules...). ``nn.Module`` objects are moved to the device.
        resume: resume from ``run_dir/checkpoint.pt`` when it exists (default). With ``False``
            the run starts over and a previous checkpoint, ``metrics.csv`` and ``eval.json`` in
            ``run_dir`` are removed.

    Attributes: ``device``, ``dist`` (:class:`DistInfo`), ``step`` (completed iterations),
    ``model`` (always the unwrapped module), ``ddp_model`` (the DDP wrapper or None),
    ``last_checkpoint``, ``last_eval``, ``is_main``.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, run_dir: str | Path,
                 cfg: TrainConfig, scheduler: Any = None, callbacks: Iterable[Callback] = (), *,
                 config: Config | None = None, state: Mapping[str, Any] | None = None,
                 resume: bool = True):
        if not isinstance(cfg, TrainConfig):
            raise TrainingError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist: DistInfo = init_distributed(backend="gloo" if cfg.device == "cpu" else None)
        self.device = self._pick_device()
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.callbacks = list(callbacks)
        self.config = config
        self.state_objects = dict(state or {})
        for name, obj in self.state_objects.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TrainingError(f"state['{name}'] has no state_dict()/load_state_dict()")
            if isinstance(obj, torch.nn.Module):
                obj.to(self.device)
        self._check_optimizer_devices()
        self.resume = resume
        self.step = 0
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        self.metrics_path = self.run_dir / "metrics.csv"
        self.last_checkpoint: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        self.ddp_model: torch.nn.Module | None = None
        self._metrics: MetricsLog | None = None
        self._stop_requested = False
        self._stop_agreed = False
        self._elapsed = 0.0
        self._t0 = 0.0
        self._meter: dict[str, Any] = {"sums": {}, "counts": {}, "lr": None}
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ setup
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def _pick_device(self) -> torch.device:
        dev = get_device(self.cfg.device)
        if self.dist.enabled and dev.type == "cuda":
            dev = torch.device("cuda", self.dist.local_rank)
        return dev

    def _check_optimizer_devices(self) -> None:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.device.type != self.device.type or (
                        self.device.index is not None and p.device.index not in (None, self.device.index)):
                    raise TrainingError(
                        f"an optimizer parameter {tuple(p.shape)} is on {p.device} but training runs on "
                        f"{self.device}: pass every module owning optimized parameters as the model or in "
                        f"state=, or move it to trainer.device before building the optimizer")

    def _autocast(self):
        if self.cfg.amp == "bf16":
            if self.device.type == "cuda":
                return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if "amp" not in self._warned:
                self._warned.add("amp")
                log.warning("amp=bf16 is applied on CUDA only; training on %s in float32", self.device)
        return contextlib.nullcontext()

    def _clean_stale_tmp(self) -> None:
        for p in self.run_dir.glob(".*.tmp"):
            if p.name.startswith((f".{CHECKPOINT_NAME}.", ".metrics.csv.", ".config.yaml.")):
                p.unlink(missing_ok=True)

    def _fresh_start(self) -> int:
        if self.is_main:
            removed = []
            for name in (CHECKPOINT_NAME, "metrics.csv", "eval.json"):
                p = self.run_dir / name
                if p.exists():
                    p.unlink()
                    removed.append(name)
            if removed:
                log.warning("starting %s from scratch: removed %s", self.run_dir, ", ".join(removed))
            cfg = self.config if self.config is not None else self.cfg
            cfg.save(self.run_dir / "config.yaml")
        barrier()
        seed_everything(self.cfg.seed + self.dist.rank, deterministic=self.cfg.deterministic)
        self.step = 0
        self._elapsed = 0.0
        self._meter = {"sums": {}, "counts": {}, "lr": None}
        return 0

    def _restore(self) -> int:
        ckpt = load_checkpoint(self.checkpoint_path)
        where = str(self.checkpoint_path)
        load_state_dict_checked(self.model, ckpt["model"], where)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{where}: optimizer state does not fit: {e}") from None
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        extra = ckpt.get("extra", {})
        for name, obj in self.state_objects.items():
            if name not in extra:
                raise CheckpointError(f"{where}: no state for '{name}' (has {sorted(extra)})")
            obj.load_state_dict(extra[name])
        rngs = ckpt.get("rng") or []
        if len(rngs) == self.dist.world_size:
            if self.cfg.deterministic:  # what seed_everything() sets on a fresh start
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.benchmark = False
            restore_rng_state(rngs[self.dist.rank])
        else:
            log.warning("%s was written by %d process(es), now %d: RNG streams reseeded (not bit-exact)",
                        where, len(rngs), self.dist.world_size)
            seed_everything(self.cfg.seed + self.dist.rank + 7919 * int(ckpt["step"]), self.cfg.deterministic)
        meter = ckpt.get("meter") or {}
        sums = dict(meter.get("sums", {}))
        counts = meter.get("counts") or {k: meter.get("count", 1) for k in sums}  # older single-count format
        self._meter = {"sums": sums, "counts": dict(counts), "lr": meter.get("lr")}
        self._elapsed = float(ckpt.get("elapsed", 0.0))
        self._warn_config_changes(ckpt)
        if self.is_main:
            MetricsLog(self.metrics_path).truncate(int(ckpt["step"]))
        barrier()
        self.step = int(ckpt["step"])
        self.last_checkpoint = self.checkpoint_path
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return self.step

    def _warn_config_changes(self, ckpt: dict) -> None:
        old = ckpt.get("train_config") or {}
        new = self.cfg.to_dict()
        changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
        if changed:
            log.warning("resuming %s with a changed TrainConfig: %s", self.run_dir, "; ".join(changed))

    # ------------------------------------------------------------------ checkpoint
    def save_checkpoint(self) -> Path:
        """Write ``checkpoint.pt`` now (collective under DDP: call it on every rank)."""
        rngs = all_gather_object(capture_rng_state())
        if self.is_main:
            cfg = self.config if self.config is not None else self.cfg
            state = {
                "version": CHECKPOINT_VERSION,
                "step": self.step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "extra": {k: v.state_dict() for k, v in self.state_objects.items()},
                "rng": rngs,
                "meter": self._meter,
                "elapsed": self._elapsed_now(),
                "config": cfg.to_dict(),
                "train_config": self.cfg.to_dict(),
                "world_size": self.dist.world_size,
            }
            save_checkpoint(self.checkpoint_path, state)
        barrier()
        self.last_checkpoint = self.checkpoint_path
        if self.is_main:
            for cb in self.callbacks:
                _call(cb, "on_checkpoint", self, self.step, self.checkpoint_path)
        return self.checkpoint_path

    def _elapsed_now(self) -> float:
        return self._elapsed + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    # ------------------------------------------------------------------ one iteration
    def _split_output(self, out: Any, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        where = f"step_fn at step {step}"
        if isinstance(out, torch.Tensor):
            out = {"loss": out}
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TrainingError(f"{where} must return a scalar loss tensor or a dict with a 'loss' key, "
                                f"got {type(out).__name__}")
        loss = out["loss"]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TrainingError(f"{where}: 'loss' must be a scalar tensor, got {loss!r:.80}")
        if not loss.requires_grad:
            raise TrainingError(f"{where}: 'loss' does not require grad (computed under no_grad, or from "
                                f"parameters with requires_grad=False?)")
        bad = RESERVED.intersection(out)
        if bad:
            raise TrainingError(f"{where}: keys {sorted(bad)} are reserved for the trainer's own columns")
        return loss.reshape(()), {k: _scalar(v, k, where) for k, v in out.items()}

    def _train_step(self, step_fn: StepFn, it: Iterator[Any], step: int) -> dict[str, float]:
        cfg = self.cfg
        model = self.ddp_model if self.ddp_model is not None else self.model
        accum = cfg.accumulate
        sums: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            try:
                batch = next(it)
            except StopIteration:
                raise TrainingError(f"the batch stream ended at step {step}; `batches(start)` must return an "
                                    f"infinite iterator (see workbench.train.ResumableLoader)") from None
            batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
            no_sync = self.ddp_model is not None and micro < accum - 1
            with (self.ddp_model.no_sync() if no_sync else contextlib.nullcontext()):
                with self._autocast():
                    out = step_fn(model, batch, step)
                loss, scalars = self._split_output(out, step)
                (loss / accum if accum > 1 else loss).backward()
            for k, v in scalars.items():
                sums[k] = sums[k] + v if k in sums else v
        keys = list(sums)
        lr = float(self.optimizer.param_groups[0]["lr"])
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if params:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        else:
            norm = torch.zeros((), device=self.device)
        vals = [sums[k].to(self.device) / accum for k in keys]
        packed = torch.stack(vals + [norm.float().to(self.device),
                                     torch.tensor(float(self._stop_requested), device=self.device)])
        if self.dist.enabled:
            torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.SUM)
            packed /= self.dist.world_size
        values = packed.tolist()
        logs = dict(zip(keys, values[:len(keys)]))
        norm_v, stop = values[len(keys)], values[len(keys) + 1] > 0
        ckpt = str(self.last_checkpoint) if self.last_checkpoint else None
        if not math.isfinite(logs["loss"]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(step, logs["loss"], ckpt)
        if not math.isfinite(norm_v):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteGradientError(step, norm_v, ckpt)
        if cfg.grad_clip > 0 and params:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)  # also parameters outside the optimizer
        self._stop_agreed = stop  # every rank sees the same value (it went through the all-reduce)
        logs["lr"] = lr
        logs["grad_norm"] = norm_v
        return logs

    # ------------------------------------------------------------------ logging / eval
    def _meter_update(self, logs: Mapping[str, float]) -> None:
        m = self._meter
        for k, v in logs.items():
            if k != "lr":  # per-key counts: a key logged only on some steps is averaged over those
                m["sums"][k] = m["sums"].get(k, 0.0) + v
                m["counts"][k] = m["counts"].get(k, 0) + 1
        m["lr"] = logs["lr"]

    def _write_train_row(self) -> dict[str, Any]:
        m = self._meter
        means = {k: s / m["counts"][k] for k, s in m["sums"].items()}
        row = {"step": self.step, "phase": "train", "time": round(self._elapsed_now(), 3), **means,
               "lr": m["lr"]}
        self._meter = {"sums": {}, "counts": {}, "lr": None}
        self.last_train = {k: v for k, v in row.items() if k not in BASE_COLUMNS}
        if self.is_main:
            self._metrics.append(row)
            for cb in self.callbacks:
                _call(cb, "on_log", self, self.step, row)
        return row

    def evaluate(self, eval_fn: EvalFn) -> dict[str, float]:
        """Run ``eval_fn(model, step)`` now on rank 0 (others wait) and log an ``eval`` row."""
        metrics: dict[str, float] = {}
        if self.is_main:
            if self._metrics is None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._metrics = MetricsLog(self.metrics_path)
            model = self.model
            modes = [(m, m.training) for m in model.modules()]  # restored per module afterwards
            rng = capture_rng_state()
            model.eval()
            try:
                with torch.no_grad(), self._autocast():
                    out = eval_fn(model, self.step)
            finally:
                for m, mode in modes:
                    m.training = mode
                restore_rng_state(rng)
            metrics = self._eval_floats(out)
            self._metrics.append({"step": self.step, "phase": "eval", "time": round(self._elapsed_now(), 3),
                                  **metrics})
            self.last_eval = metrics
            for cb in self.callbacks:
                _call(cb, "on_eval", self, self.step, metrics)
        barrier()
        return metrics

    def _eval_floats(self, out: Any, prefix: str = "") -> dict[str, float]:
        if out is None:
            return {}
        if not isinstance(out, Mapping):
            raise TrainingError(f"eval_fn must return a dict of metrics (or None), got {type(out).__name__}")
        flat: dict[str, float] = {}
        for k, v in out.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                flat.update(self._eval_floats(v, prefix=f"{name}."))
                continue
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            try:
                flat[name] = float(v)
            except (TypeError, ValueError):
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("eval metric '%s' is not a scalar; not written to metrics.csv", name)
                continue
            if name in RESERVED:
                raise TrainingError(f"eval_fn returned the reserved key '{name}'")
        return flat

    # ------------------------------------------------------------------ signals
    @contextlib.contextmanager
    def _signal_guard(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}

        def handler(signum, frame):
            if self._stop_requested:
                for s, h in previous.items():
                    signal.signal(s, h)
                raise KeyboardInterrupt
            self._stop_requested = True
            log.warning("received %s: finishing the current iteration, saving a checkpoint and stopping "
                        "(send it again to abort at once)", signal.Signals(signum).name)

        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.getsignal(s)
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ main loop
    def fit(self, step_fn: StepFn, batches: BatchFactory, eval_fn: EvalFn | None = None) -> FitResult:
        """Train until ``cfg.iterations`` (resuming from ``run_dir/checkpoint.pt`` if present).

        Args:
            step_fn: ``step_fn(model, batch, step) -> loss tensor | {"loss": tensor, name: scalar}``;
                ``model`` is the DDP wrapper under ``torchrun`` (call ``model(...)``, reach
                submodules through ``workbench.train.unwrap_model(model)``), ``batch`` is on the
                device, ``step`` is the 0-based iteration. Every rank must return the same keys.
            batches: ``batches(start) -> iterator`` over micro-batches ``start, start+1, ...``
                (:class:`ResumableLoader`, :func:`step_batches`); called once with
                ``start = step * cfg.accumulate``.
            eval_fn: ``eval_fn(model, step) -> {name: float}`` (nested dicts are flattened with
                dots), run every ``cfg.eval_every`` iterations and at the end.

        Returns:
            :class:`FitResult`. Raises :class:`NonFiniteLossError` on a NaN/inf loss or gradient.
        """
        cfg = self.cfg
        self._stop_requested = self._stop_agreed = False
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._clean_stale_tmp()
        barrier()
        resumed = self.resume and self.checkpoint_path.is_file()
        start = self._restore() if resumed else self._fresh_start()
        self._metrics = MetricsLog(self.metrics_path) if self.is_main else None
        if self.dist.enabled and self.ddp_model is None:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DDP(self.model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters)
        if self.is_main:
            for cb in self.callbacks:
                _call(cb, "on_fit_start", self, start)
        status: Literal["completed", "interrupted"] = "completed"
        self._t0 = time.perf_counter()
        pbar = tqdm(total=cfg.iterations, initial=min(start, cfg.iterations), desc=self.run_dir.name,
                    disable=not (self.is_main and cfg.progress) or _progress_disabled_by_env(), dynamic_ncols=True)
        try:
            with self._signal_guard():
                it = iter(batches(start * cfg.accumulate)) if start < cfg.iterations else iter(())
                self.model.train()
                self.optimizer.zero_grad(set_to_none=True)
                self.model.zero_grad(set_to_none=True)
                for step in range(start, cfg.iterations):
                    logs = self._train_step(step_fn, it, step)
                    self.step = s = step + 1
                    self._meter_update(logs)
                    if self.is_main:
                        for cb in self.callbacks:
                            _call(cb, "on_step_end", self, s, logs)
                    last = s == cfg.iterations
                    if s % cfg.log_every == 0 or last:
                        row = self._write_train_row()
                        pbar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}", refresh=False)
                    if eval_fn is not None and ((cfg.eval_every and s % cfg.eval_every == 0) or last):
                        self.evaluate(eval_fn)
                    # Under DDP only the all-reduced flag may be used, or ranks would stop at different
                    # iterations; a single process can react to a signal within the current iteration.
                    stop = self._stop_agreed if self.dist.enabled else self._stop_requested
                    if last or stop or (cfg.checkpoint_every and s % cfg.checkpoint_every == 0):
                        self.save_checkpoint()
                    pbar.update(1)
                    if stop and not last:
                        status = "interrupted"
                        log.warning("training interrupted at step %d; checkpoint saved to %s", s,
                                    self.checkpoint_path)
                        break
        finally:
            pbar.close()
            self._elapsed = self._elapsed_now()
            self._t0 = 0.0
        result = FitResult(status=status, step=self.step, run_dir=self.run_dir, checkpoint=self.last_checkpoint,
                           last_train=dict(self.last_train), last_eval=dict(self.last_eval),
                           resumed_from=start if resumed else None, elapsed_s=self._elapsed)
        if self.is_main:
            for cb in self.callbacks:
                _call(cb, "on_fit_end", self, result)
        return result


def _call(cb: Any, hook: str, *args) -> None:
    fn = getattr(cb, hook, None)
    if fn is not None:
        fn(*args)
