"""Fixtures of the eval tests: undo the global torch state that seed_everything() changes."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_determinism():
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(det, warn_only=warn)
