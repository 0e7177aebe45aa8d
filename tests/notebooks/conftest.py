"""Fixtures for the notebook tests: an isolated smoke-profile environment.

Every notebook runs with ``WB_PROFILE=smoke``; ``WB_RUNS_DIR`` and ``WB_OUTPUTS_DIR`` point at a
temporary directory per test session and ``WB_DATA_DIR`` at the cached smoke datasets (see
:func:`smoke_data_dir`), so nothing is written into the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbhelpers import REPO

SMOKE_PRESETS = ("views", "multiview", "collection", "retrieval")


@pytest.fixture(scope="session")
def smoke_data_dir(smoke_data, smoke_data_root) -> Path:
    """A data directory holding the four synthetic presets in the smoke profile (seed 0), generated
    once per checkout by the root conftest's ``smoke_data`` (cached, under a file lock, so parallel
    notebook runs never generate the same dataset at the same time)."""
    for preset in SMOKE_PRESETS:
        smoke_data(preset)
    return smoke_data_root


@pytest.fixture(scope="session")
def smoke_env(tmp_path_factory, smoke_data_dir) -> dict[str, str]:
    """Environment variables for running notebooks: smoke profile, the shared smoke datasets and
    temporary runs/outputs directories."""
    base = tmp_path_factory.mktemp("notebook-env")
    env = {
        "WB_PROFILE": "smoke",
        "WB_DATA_DIR": str(smoke_data_dir),
        "WB_RUNS_DIR": str(base / "runs"),
        "WB_OUTPUTS_DIR": str(base / "outputs"),
        "MPLBACKEND": "Agg",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for k in ("WB_RUNS_DIR", "WB_OUTPUTS_DIR"):
        Path(env[k]).mkdir(parents=True, exist_ok=True)
    return env


@pytest.fixture
def smoke_environ(smoke_env, monkeypatch) -> dict[str, str]:
    """Apply :func:`smoke_env` to ``os.environ`` for one test (kernels inherit it)."""
    for k, v in smoke_env.items():
        monkeypatch.setenv(k, v)
    # the kernel must import the checkout under test even if it is not pip-installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return smoke_env
