"""Shared settings for these tests.

The suite runs on a small shared CPU machine: with several busy processes, multi-threaded torch
ops spend most of their time waiting for their sibling threads, so these (small) tests run
single-threaded. The previous thread count is restored afterwards.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
