"""The smoke ``views`` dataset, generated once into pytest's cache (shared with the notebook tests)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch


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
def views_smoke_root(request, tmp_path_factory) -> Path:
    from workbench.core.errors import DataError
    from workbench.data.generate import default_output, generate

    cache = getattr(request.config, "cache", None)
    if os.environ.get("WB_TEST_FRESH_DATA") or cache is None:
        root = tmp_path_factory.mktemp("smoke-data")
    else:
        root = Path(cache.mkdir("workbench-smoke-data"))
    out = root / default_output("views", "smoke", 0).name
    with _file_lock(root / ".generate.lock"):
        try:
            generate("views", profile="smoke", seed=0, out=out, progress=False)
        except DataError:   # stale cache (config changed without a version bump)
            generate("views", profile="smoke", seed=0, out=out, progress=False, force=True)
    return out


@pytest.fixture
def one_thread():
    """Tiny tensors: avoid OpenMP contention on shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
