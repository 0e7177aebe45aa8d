"""Fixtures of the train tests: isolate the global torch state the engine changes."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """seed_everything() turns on deterministic algorithms and reseeds; undo it after each test."""
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    torch.set_num_threads(1)
    yield
    now = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if now != (det, warn):  # the first call imports torch._inductor (seconds): only when changed
        torch.use_deterministic_algorithms(det, warn_only=warn)
    torch.set_num_threads(threads)
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    """An uninterrupted run of the tiny problem: (run_dir, final checkpoint dict, metrics rows)."""
    import _wb_tiny_run as tiny
    from workbench.train import load_checkpoint, read_rows

    det = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("tiny_reference") / "run"
    tiny.run(run_dir)
    if torch.are_deterministic_algorithms_enabled() != det:
        torch.use_deterministic_algorithms(det)
    torch.set_num_threads(threads)
    return run_dir, load_checkpoint(run_dir), read_rows(run_dir / "metrics.csv")[1]

