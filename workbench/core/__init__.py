"""Core services: typed configs, errors, seeding, device selection, atomic IO, paths."""
from .config import Config, PROFILE_NAMES, parse_overrides, resolve_profile
from .device import get_device
from .errors import (CheckpointError, ConfigError, DataError, ManifestError, NonFiniteLossError,
                     RenderError, ShapeError, TrainingError, WorkbenchError, check_shape)
from .io import atomic_dir, atomic_open, atomic_path, save_torch, write_json, write_text, write_yaml
from .paths import data_dir, outputs_dir, runs_dir
from .seed import rng_state, seed_everything, set_rng_state

__all__ = [
    "Config", "PROFILE_NAMES", "parse_overrides", "resolve_profile", "get_device",
    "CheckpointError", "ConfigError", "DataError", "ManifestError", "NonFiniteLossError",
    "RenderError", "ShapeError", "TrainingError", "WorkbenchError", "check_shape",
    "atomic_dir", "atomic_open", "atomic_path", "save_torch", "write_json", "write_text", "write_yaml",
    "data_dir", "outputs_dir", "runs_dir", "rng_state", "seed_everything", "set_rng_state",
]
