"""Helpers shared by the notebook tests (importable by name; conftest modules are not)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"


def notebook_paths() -> list[Path]:
    """Every ``notebooks/*.ipynb`` in order (checkpoints excluded)."""
    return sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if not p.name.startswith("."))
