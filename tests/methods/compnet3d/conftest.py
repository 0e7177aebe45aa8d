"""The smoke ``views`` dataset, generated once into pytest's cache (shared with the notebook tests)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def views_smoke_root(smoke_data) -> Path:
    return smoke_data("views")


@pytest.fixture
def one_thread():
    """Tiny tensors: avoid OpenMP contention on shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
