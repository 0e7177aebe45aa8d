"""Shared fixtures of the TTP tests.

* Single-threaded torch: the solver tests make thousands of tiny (5x5, 16x16) batched LAPACK calls
  and the smoke runs many small tensor ops. On a loaded machine every multi-threaded MKL/OpenMP
  region can cost a scheduler quantum (measured: 15-25 ms for a 4x5x5 Cholesky with 2 threads on
  the shared 2-core box vs 3 us single-threaded); results do not depend on the thread count.
* ``collection_smoke``: the ``collection`` preset in the smoke profile (seed 0), generated once
  per checkout into pytest's cache (as the notebook tests do) under a file lock.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def collection_smoke(request, tmp_path_factory) -> Path:
    from workbench.core.errors import DataError
    from workbench.data.generate import default_output, generate

    cache = getattr(request.config, "cache", None)
    if os.environ.get("WB_TEST_FRESH_DATA") or cache is None:
        root = tmp_path_factory.mktemp("smoke-data")
    else:
        root = Path(cache.mkdir("workbench-smoke-data"))
    out = root / default_output("collection", "smoke", 0).name
    with _file_lock(root / ".generate.lock"):
        try:
            return generate("collection", profile="smoke", seed=0, out=out, workers=0, progress=False)
        except DataError:   # stale cache (config changed without a generator version bump)
            return generate("collection", profile="smoke", seed=0, out=out, workers=0, progress=False,
                            force=True)
