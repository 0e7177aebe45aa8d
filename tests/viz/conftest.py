"""Fixtures of the viz tests: small analytic meshes and images."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def cube():
    """Unit cube centred at the origin: 8 vertices, 12 outward triangles, 18 unique edges."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], np.float64)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int64)
    return v, f


@pytest.fixture
def box_mesh():
    """An elongated box (not symmetric under 90 degree turns), as a workbench Meshes."""
    torch = pytest.importorskip("torch")
    from workbench.geometry import Meshes

    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.15, 0.15) for z in (-0.25, 0.25)], np.float32)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int64)
    return Meshes(verts=[torch.tensor(v)], faces=[torch.tensor(f)])
