"""Distributed (multi-process) helpers: the same entry point runs alone or under ``torchrun``.

``torchrun --nproc_per_node=N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` sees them and initialises the
default process group (``nccl`` when CUDA is used, ``gloo`` on CPU). Without these variables
everything here is a cheap no-op describing a single process, so library code can call
:func:`is_main_process`, :func:`barrier` etc. unconditionally.
"""
from __future__ import annotations

import atexit
import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..core.errors import TrainingError

log = logging.getLogger(__name__)

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Who this process is: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise TrainingError(f"WORLD_SIZE='{os.environ['WORLD_SIZE']}' is not an integer") from None


def dist_info() -> DistInfo:
    """The current process's :class:`DistInfo` (initialised group, else environment, else single)."""
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    ws = env_world_size()
    if ws > 1:
        return DistInfo(int(os.environ.get("RANK", "0")), ws, local)
    return DistInfo()


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the default process group when launched by ``torchrun`` (idempotent).

    ``backend`` defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise. With NCCL the
    current CUDA device is set to ``LOCAL_RANK``. The group is destroyed at interpreter exit.
    """
    if dist.is_available() and dist.is_initialized():
        return dist_info()
    ws = env_world_size()
    if ws <= 1:
        return DistInfo()
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise TrainingError(f"WORLD_SIZE={ws} but {', '.join(missing)} not set; launch with "
                            f"`torchrun --nproc_per_node={ws} ...`")
    if not dist.is_available():
        raise TrainingError("torch.distributed is not available in this PyTorch build")
    info = dist_info()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if info.local_rank >= torch.cuda.device_count():
            raise TrainingError(f"LOCAL_RANK={info.local_rank} but only {torch.cuda.device_count()} CUDA "
                                f"device(s) are visible")
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    atexit.register(cleanup)
    log.info("initialised process group: backend=%s rank=%d/%d", backend, info.rank, info.world_size)
    return dist_info()


def cleanup() -> None:
    """Destroy the default process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def get_rank() -> int:
    return dist_info().rank


def get_world_size() -> int:
    return dist_info().world_size


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the only process that writes files."""
    return dist_info().is_main


def barrier() -> None:
    """Wait for every process (no-op without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean of ``t`` over processes (returned for convenience); identity when single."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def all_gather_object(obj):
    """List of ``obj`` from every rank (``[obj]`` when single)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a ``DistributedDataParallel``/``DataParallel`` wrapper (or ``model``)."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                              torch.nn.DataParallel)) else model
