"""Per-category cuboid meshes of the neural mesh model.

Each category ``y`` is represented by one cuboid (the tight box of its shapes, from the dataset's
``meta.yaml`` ``cuboids``), gridded into about ``n_vertices`` vertices by
:func:`workbench.geometry.cuboid_mesh`. Classes are padded to the largest vertex count in the bank
(``valid`` masks the padding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ...core.errors import DataError
from ...geometry import cuboid_mesh


def novum_cuboid_vertex_count(size: Sequence[float], n_vertices: int) -> int:
    """Vertex count of NOVUM's ``createCuboidMesh`` rule (each face gridded separately).

    The grid edge is ``sqrt(total area / n_vertices)``; each face of sides ``(a, b)`` gets
    ``(ceil(a/l) + 1) * (ceil(b/l) + 1)`` vertices (box-edge vertices are duplicated).
    """
    sx, sy, sz = (float(s) for s in size)
    area = 2 * (sx * sy + sy * sz + sx * sz)
    edge = math.sqrt(area / n_vertices)
    n = lambda s: max(1, math.ceil(s / edge)) + 1  # noqa: E731
    return 2 * (n(sx) * n(sy) + n(sy) * n(sz) + n(sx) * n(sz))


def procedural_cuboids(n: int, seed: int = 0, instances: int = 3) -> list[tuple[float, float, float]]:
    """Cuboid sizes of ``n`` procedural categories of the synthetic world (``instances`` sampled
    shapes each; the box holding 99% of their vertex coordinates, as NOVUM)."""
    from ...data.procedural import procedural_categories
    from ...data.world import category_cuboid, make_object, sample_params

    out = []
    for i, cat in enumerate(procedural_categories(n, seed=seed)):
        rng = np.random.default_rng(1000 * seed + i)
        models = [make_object(cat, sample_params(cat, rng)) for _ in range(instances)]
        size, _ = category_cuboid(models)
        out.append(tuple(float(v) for v in size))
    return out


def cuboid_about(size: Sequence[float], target: int):
    """``cuboid_mesh`` whose actual vertex count (duplicated box edges included) is the closest
    to ``target`` (NOVUM's ``number_vertices`` overshoots; the paper's K is ~500 real slots).

    Returns ``(verts (V, 3), faces (F, 3))``.
    """
    size_t = torch.as_tensor([float(v) for v in size], dtype=torch.float32)
    best, n = None, int(target)
    tried = set()
    for _ in range(12):
        if n in tried or n < 8:
            break
        tried.add(n)
        v, f = _verts_faces(cuboid_mesh(size_t, n))
        if best is None or abs(v.shape[0] - target) < abs(best[0].shape[0] - target):
            best = (v, f)
        if v.shape[0] == target:
            break
        n = max(8, int(round(n * target / v.shape[0])) if n * target / v.shape[0] != n else n - 1)
    return best


def category_vertex_counts(n_classes: int, n_vertices: int = 500, seed: int = 0) -> list[int]:
    """Vertex counts of ``n_classes`` procedural category cuboids meshed with about ``n_vertices`` each."""
    sizes = procedural_cuboids(n_classes, seed)
    return [int(cuboid_about(s, n_vertices)[0].shape[0]) for s in sizes]


def _verts_faces(m):
    """``cuboid_mesh`` may return ``(verts, faces)`` or a ``Meshes``."""
    if isinstance(m, tuple):
        return m
    return m.verts_packed(), m.faces_packed()


@dataclass
class CategoryMeshes:
    """Cuboid meshes of all categories, padded for the vertex bank.

    Attributes:
        names: category names, index = class id.
        verts: list of ``(V_y, 3)`` float tensors (object frame, world units).
        faces: list of ``(F_y, 3)`` long tensors.
    """

    names: list[str]
    verts: list[torch.Tensor]
    faces: list[torch.Tensor]

    @property
    def n_vertices(self) -> list[int]:
        return [int(v.shape[0]) for v in self.verts]

    @property
    def max_vertices(self) -> int:
        return max(self.n_vertices)

    def padded_verts(self) -> torch.Tensor:
        """``(Y, K, 3)`` vertices, padded slots at the origin (mask them with the bank's ``valid``)."""
        K = self.max_vertices
        out = torch.zeros(len(self.verts), K, 3)
        for i, v in enumerate(self.verts):
            out[i, : v.shape[0]] = v
        return out

    def to(self, device) -> "CategoryMeshes":
        return CategoryMeshes(self.names, [v.to(device) for v in self.verts], [f.to(device) for f in self.faces])


def build_category_meshes(cuboids: Mapping[str, Sequence[float]], names: Sequence[str],
                          n_vertices: int, centers: Mapping[str, Sequence[float]] | None = None) -> CategoryMeshes:
    """Cuboid meshes for ``names`` from ``cuboids`` (``{name: [sx, sy, sz]}`` full side lengths),
    each about ``n_vertices`` vertices, translated to ``centers[name]`` when given."""
    verts, faces = [], []
    for n in names:
        if n not in cuboids:
            raise DataError(f"meta.yaml cuboids has no entry for category '{n}'")
        size = torch.as_tensor([float(s) for s in cuboids[n]], dtype=torch.float32)
        if size.shape != (3,) or (size <= 0).any():
            raise DataError(f"meta.yaml cuboids['{n}'] must be 3 positive side lengths, got {cuboids[n]}")
        v, f = cuboid_about(size, n_vertices)
        v = torch.as_tensor(v, dtype=torch.float32)
        if centers and n in centers:
            v = v + torch.as_tensor([float(c) for c in centers[n]], dtype=torch.float32)
        verts.append(v)
        faces.append(torch.as_tensor(f, dtype=torch.long))
    return CategoryMeshes(list(names), verts, faces)
