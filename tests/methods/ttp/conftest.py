"""Shared fixtures of the TTP tests.

* Single-threaded torch (the root conftest's autouse fixture): the solver tests make thousands
  of tiny (5x5, 16x16) batched LAPACK calls
  and the smoke runs many small tensor ops. On a loaded machine every multi-threaded MKL/OpenMP
  region can cost a scheduler quantum (measured: 15-25 ms for a 4x5x5 Cholesky with 2 threads on
  the shared 2-core box vs 3 us single-threaded); results do not depend on the thread count.
* ``collection_smoke``: the ``collection`` preset in the smoke profile (seed 0), from the root
  conftest's cached ``smoke_data``.
"""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def collection_smoke(smoke_data) -> Path:
    return smoke_data("collection", workers=0)
