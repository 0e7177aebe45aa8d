"""Fixtures for the notebook tests: an isolated smoke-profile environment.

Every notebook runs with ``WB_PROFILE=smoke``; ``WB_RUNS_DIR`` and ``WB_OUTPUTS_DIR`` point at a
temporary directory per test session and ``WB_DATA_DIR`` at the cached smoke datasets (see
:func:`smoke_data_dir`), so nothing is written into the repository.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from nbhelpers import REPO

SMOKE_PRESETS = ("views", "multiview", "collection", "retrieval")


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock across processes (pytest-xdist workers) on ``path``."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def smoke_data_dir(request, tmp_path_factory) -> Path:
    """A data directory holding the four synthetic presets in the smoke profile (seed 0).

    Generation is deterministic and cached by preset/profile/seed/generator version, so by default
    the datasets live in pytest's cache (``.pytest_cache/d/workbench-smoke-data``) and are
    generated once per checkout; ``WB_TEST_FRESH_DATA=1`` (or ``-p no:cacheprovider``) generates
    them into a temporary directory instead. Generating here, under a file lock, also keeps
    parallel notebook runs from generating the same dataset at the same time.
    """
    from workbench.core.errors import DataError
    from workbench.data.generate import default_output, generate

    cache = getattr(request.config, "cache", None)
    if os.environ.get("WB_TEST_FRESH_DATA") or cache is None:
        root = tmp_path_factory.mktemp("smoke-data")
    else:
        root = Path(cache.mkdir("workbench-smoke-data"))
    with _file_lock(root / ".generate.lock"):
        for preset in SMOKE_PRESETS:
            name = default_output(preset, "smoke", 0).name
            try:
                generate(preset, profile="smoke", seed=0, out=root / name, progress=False)
            except DataError:   # a stale cached dataset (config changed without a version bump)
                generate(preset, profile="smoke", seed=0, out=root / name, progress=False, force=True)
    return root


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
