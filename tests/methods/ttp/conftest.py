"""Shared fixtures of the TTP tests.

The solver tests make thousands of tiny (5x5, 16x16) batched LAPACK calls. On a loaded machine
every multi-threaded MKL/OpenMP region can cost a scheduler quantum (measured: 15-25 ms for a
4x5x5 Cholesky with 2 threads on the shared 2-core box vs 3 us single-threaded), so these tests
run single-threaded; the results do not depend on the thread count.
"""
from __future__ import annotations

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
