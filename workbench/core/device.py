"""Device selection: cuda > mps > cpu, overridable by argument or ``WB_DEVICE``."""
from __future__ import annotations

import os

import torch

from .errors import ConfigError


def get_device(preference: str | torch.device | None = None) -> torch.device:
    """Return the device to run on.

    ``preference`` may be ``None``/``"auto"`` (``WB_DEVICE`` if set, else cuda > mps > cpu),
    or an explicit ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    """
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or os.environ.get("WB_DEVICE") or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        raise ConfigError(f"unknown device '{preference}' (expected auto, cpu, cuda[:N] or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{pref}' requested but CUDA is not available")
    return dev
