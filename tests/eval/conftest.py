"""Fixtures of the eval tests: single-threaded torch (tiny ops; no OpenMP spinning on a shared CPU) and
the global torch state that seed_everything() changes restored after each test."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolate_torch_globals():
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    now = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if now != (det, warn):  # the first call imports torch._inductor (seconds): only when changed
        torch.use_deterministic_algorithms(det, warn_only=warn)
