"""Checkpoints: one atomic ``checkpoint.pt`` per run, readable with ``torch.load(weights_only=True)``.

Contents (a dict)::

    version     int, CHECKPOINT_VERSION
    step        completed iterations; training resumes with iteration ``step``
    model       state_dict of the unwrapped model
    optimizer   optimizer.state_dict()
    scheduler   scheduler.state_dict() or None
    extra       {name: obj.state_dict()} for the ``state=`` objects given to the Trainer
    rng         list (one per rank) of python / numpy / torch (/ cuda) RNG states
    meter       running sums of the current logging window (exact metric resume)
    elapsed     training seconds so far
    config      the run config as a plain dict (TrainConfig or the method config)
    train_config  the TrainConfig as a plain dict
    world_size  number of processes that wrote it

Only plain Python containers, numbers, strings and tensors are stored, so loading never
executes pickled code.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import CheckpointError
from ..core.io import save_torch

CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states in a ``weights_only``-loadable form."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` atomically (a reader never sees a half-written file); return the path."""
    path = Path(path)
    save_torch(path, state)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by the Trainer (``path`` may be the file or its run directory).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable or not a
    workbench checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling/zip failure means a bad file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "step" not in ckpt:
        raise CheckpointError(f"{path} is not a workbench checkpoint (expected a dict with 'step' and 'model')")
    return ckpt


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> dict:
    """Load the ``model`` weights of a checkpoint (file or run directory) into ``model``.

    Returns the checkpoint dict. A key or shape mismatch raises :class:`CheckpointError` listing
    the offending keys.
    """
    ckpt = load_checkpoint(path)
    load_state_dict_checked(model, ckpt["model"], str(path), strict=strict)
    return ckpt


def load_state_dict_checked(module: torch.nn.Module, state: dict[str, Any], where: str,
                            strict: bool = True) -> None:
    """``module.load_state_dict(state)`` with a :class:`CheckpointError` that names the mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_short(shapes)}")
        raise CheckpointError(f"{where}: weights do not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=strict)


def _short(items: list[str], n: int = 6) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return "[" + ", ".join(items[:n]) + "]" + more
