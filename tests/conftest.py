"""Fixtures shared by the whole suite.

* ``_isolate_torch_globals`` (autouse): every test runs single-threaded torch (tiny ops; on the shared
  2-core CI machine multi-threaded OpenMP/MKL regions spend most of their time waiting for sibling
  threads; results do not depend on the thread count), and the global state that
  ``seed_everything()`` changes (deterministic algorithms) is restored afterwards.
* ``smoke_data``: a function ``smoke_data(preset, workers=None) -> Path`` returning the synthetic
  preset in the smoke profile (seed 0). Generation is deterministic and cached by
  preset/profile/seed/generator version, so the datasets live in pytest's cache
  (``.pytest_cache/d/workbench-smoke-data``) and are generated once per checkout, under a file lock
  so that parallel workers never generate the same dataset twice. ``WB_TEST_FRESH_DATA=1`` (or
  ``-p no:cacheprovider``) generates them into a temporary directory instead.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolate_torch_globals():
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        now = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
        if now != (det, warn):  # the first call imports torch._inductor (seconds): only when changed
            torch.use_deterministic_algorithms(det, warn_only=warn)


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
def smoke_data_root(request, tmp_path_factory) -> Path:
    """The directory holding the cached smoke-profile datasets (see the module docstring)."""
    cache = getattr(request.config, "cache", None)
    if os.environ.get("WB_TEST_FRESH_DATA") or cache is None:
        return tmp_path_factory.mktemp("smoke-data")
    return Path(cache.mkdir("workbench-smoke-data"))


@pytest.fixture(scope="session")
def smoke_data(smoke_data_root):
    """``smoke_data(preset, workers=None) -> Path``: the smoke-profile preset (seed 0), generated once."""
    from workbench.core.errors import DataError
    from workbench.data.generate import default_output, generate

    def get(preset: str, workers: int | None = None) -> Path:
        out = smoke_data_root / default_output(preset, "smoke", 0).name
        kwargs = dict(profile="smoke", seed=0, out=out, progress=False)
        if workers is not None:
            kwargs["workers"] = workers
        with _file_lock(smoke_data_root / ".generate.lock"):
            try:
                return Path(generate(preset, **kwargs))
            except DataError:   # a stale cached dataset (config changed without a version bump)
                return Path(generate(preset, force=True, **kwargs))

    return get
