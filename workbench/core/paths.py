"""Where data, runs and outputs live (overridable by environment variables)."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Generated and downloaded datasets: ``$WB_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("WB_DATA_DIR", "data")).resolve()


def runs_dir() -> Path:
    """Training runs: ``$WB_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("WB_RUNS_DIR", "runs")).resolve()


def outputs_dir() -> Path:
    """Reports, tables and figures: ``$WB_OUTPUTS_DIR`` or ``./outputs``."""
    return Path(os.environ.get("WB_OUTPUTS_DIR", "outputs")).resolve()
