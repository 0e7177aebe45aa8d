"""Solid occupancy of triangle meshes (open3d ray parity), robust to unions of intersecting parts.

The synthetic world's objects are unions of closed primitives that intersect each other, so the
parity of ray crossings over the whole mesh is wrong inside overlaps. :func:`occupancy` tests every
connected component (each a closed part) separately and ORs the results. Used for the mean-shape
templates (:mod:`.template`) and the 3D IoU (:mod:`.evaluate`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["components", "occupancy", "grid_points"]


def components(faces: np.ndarray, n_verts: int) -> list[np.ndarray]:
    """Faces (F, 3) split by connected component (shared vertices)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    adj = coo_matrix((np.ones_like(rows), (rows, cols)), shape=(n_verts, n_verts))
    _, label = connected_components(adj, directed=False)
    flabel = label[f[:, 0]]
    return [f[flabel == c] for c in np.unique(flabel)]


def grid_points(res: int, bound: float = 0.5) -> np.ndarray:
    """(res^3, 3) voxel centres of the cube [-bound, bound]^3, ``ij`` order (x slowest)."""
    c = ((np.arange(res) + 0.5) / res * 2 - 1) * bound
    return np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)


def occupancy(verts: np.ndarray, faces: np.ndarray, points: np.ndarray, per_component: bool = True,
              nsamples: int = 3) -> np.ndarray:
    """(P,) bool: inside the mesh (majority of ``nsamples`` random-direction parity tests)."""
    import open3d as o3d

    v = np.asarray(verts, np.float32)
    comps = components(faces, v.shape[0]) if per_component else [np.asarray(faces, np.int64)]
    q = o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
    occ = np.zeros(len(points), bool)
    for f in comps:
        if len(f) < 4:
            continue
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(np.ascontiguousarray(f, np.uint32)))
        occ |= scene.compute_occupancy(q, nsamples=nsamples).numpy().astype(bool)
    return occ
