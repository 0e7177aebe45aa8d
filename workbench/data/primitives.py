"""Watertight triangle-mesh primitives in numpy, used to build the parts of the synthetic world.

Every builder returns ``(verts (V, 3) float64, faces (F, 3) int64)``: a closed, edge-manifold
surface (every edge shared by exactly two faces) with faces wound counter-clockwise seen from
outside (right-hand normals point outwards, positive signed volume). Parts are allowed to
intersect each other; each part on its own is watertight.

Builders
--------
``box``, ``hexahedron`` (8 arbitrary corners: tapered wings, wedges), ``lathe`` (surface of
revolution of an ``(r, y)`` profile about +Y), ``cylinder``/``cone``/``frustum`` between two
points, ``ellipsoid``, ``capsule``, ``tube`` (a circle swept along a polyline, capped) and
``torus``. ``transform`` applies ``v @ R.T * s + t`` and ``merge`` concatenates meshes.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence, Tuple

import numpy as np

Mesh = Tuple[np.ndarray, np.ndarray]

__all__ = [
    "Mesh", "rot_x", "rot_y", "rot_z", "rotation_between", "signed_volume", "orient_outward",
    "box", "hexahedron", "lathe", "cylinder", "frustum", "ellipsoid", "capsule", "tube", "torus",
    "transform", "merge", "is_watertight", "circle_profile",
]


# ----------------------------------------------------------------------------- rotations
def rot_x(a: float) -> np.ndarray:
    """Column-vector rotation about +X by ``a`` radians (apply as ``v @ R.T``)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation (column-vector convention) taking unit direction ``a`` to ``b``."""
    a = np.asarray(a, np.float64) / np.linalg.norm(a)
    b = np.asarray(b, np.float64) / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: rotate pi about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 0.0, 1.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


# ----------------------------------------------------------------------------- helpers
def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed mesh (positive when faces are wound outwards)."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum() / 6.0)


def orient_outward(mesh: Mesh) -> Mesh:
    """Flip the winding of every face if the signed volume is negative."""
    v, f = mesh
    if signed_volume(v, f) < 0:
        f = f[:, ::-1].copy()
    return v, f


def is_watertight(verts: np.ndarray, faces: np.ndarray) -> bool:
    """True when every undirected edge is used by exactly two faces, once in each direction."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if (e[:, 0] == e[:, 1]).any():
        return False
    n = int(verts.shape[0])
    directed = e[:, 0] * n + e[:, 1]
    if np.unique(directed).size != directed.size:
        return False
    reverse = e[:, 1] * n + e[:, 0]
    return bool(np.isin(reverse, directed).all())


def transform(mesh: Mesh, R: np.ndarray | None = None, t: Sequence[float] | None = None,
              s: float | Sequence[float] = 1.0) -> Mesh:
    """Scale (scalar or per-axis, in the local frame), then rotate, then translate."""
    v, f = mesh
    v = v * np.asarray(s, np.float64)
    if R is not None:
        v = v @ np.asarray(R, np.float64).T
    if t is not None:
        v = v + np.asarray(t, np.float64)
    if np.linalg.det(np.diag(np.broadcast_to(np.asarray(s, np.float64), (3,)))) < 0:
        f = f[:, ::-1].copy()  # a mirror flips the orientation
    return v, f


def merge(meshes: Iterable[Mesh]) -> Mesh:
    vs, fs, off = [], [], 0
    for v, f in meshes:
        vs.append(v)
        fs.append(f + off)
        off += v.shape[0]
    if not vs:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(vs), np.concatenate(fs)


# ----------------------------------------------------------------------------- builders
_HEX_FACES = np.array([
    # corner i = (x = i & 1, y = (i >> 1) & 1, z = (i >> 2) & 1)
    [0, 2, 3], [0, 3, 1],  # z = 0 (-Z face)
    [4, 5, 7], [4, 7, 6],  # z = 1 (+Z)
    [0, 1, 5], [0, 5, 4],  # y = 0 (-Y)
    [2, 6, 7], [2, 7, 3],  # y = 1 (+Y)
    [0, 4, 6], [0, 6, 2],  # x = 0 (-X)
    [1, 3, 7], [1, 7, 5],  # x = 1 (+X)
], dtype=np.int64)


def hexahedron(corners: np.ndarray) -> Mesh:
    """Closed 8-corner solid; corner ``i`` sits at logical ``(i & 1, (i >> 1) & 1, (i >> 2) & 1)``."""
    v = np.asarray(corners, np.float64).reshape(8, 3)
    return orient_outward((v, _HEX_FACES.copy()))


def box(center: Sequence[float], size: Sequence[float]) -> Mesh:
    """Axis-aligned box with full side lengths ``size``."""
    c = np.asarray(center, np.float64)
    s = np.asarray(size, np.float64) / 2
    idx = np.arange(8)
    corners = np.stack([(idx & 1) * 2 - 1, ((idx >> 1) & 1) * 2 - 1, ((idx >> 2) & 1) * 2 - 1], -1)
    return hexahedron(c + corners * s)


def lathe(profile: np.ndarray, segments: int = 16, phase: float = 0.0) -> Mesh:
    """Revolve an ``(M, 2)`` profile of ``(r, y)`` about +Y.

    The first and last profile points must have ``r = 0`` (they become poles); intermediate points
    need ``r > 0``. Returns a closed surface.
    """
    p = np.asarray(profile, np.float64)
    if p.shape[0] < 3 or p[0, 0] != 0 or p[-1, 0] != 0:
        raise ValueError("lathe profile must start and end on the axis (r = 0) with >= 3 points")
    rings = p[1:-1]
    m = rings.shape[0]
    ang = phase + 2 * np.pi * np.arange(segments) / segments
    cs, sn = np.cos(ang), np.sin(ang)
    ring_v = np.stack([rings[:, :1] * sn[None], np.repeat(rings[:, 1:2], segments, 1), rings[:, :1] * cs[None]], -1)
    verts = np.concatenate([[[0, p[0, 1], 0]], ring_v.reshape(-1, 3), [[0, p[-1, 1], 0]]])
    top = verts.shape[0] - 1
    j = np.arange(segments)
    jn = (j + 1) % segments
    faces = [np.stack([np.zeros(segments, np.int64), 1 + jn, 1 + j], -1)]
    for i in range(m - 1):
        a, b = 1 + i * segments, 1 + (i + 1) * segments
        faces.append(np.stack([a + j, a + jn, b + jn], -1))
        faces.append(np.stack([a + j, b + jn, b + j], -1))
    last = 1 + (m - 1) * segments
    faces.append(np.stack([np.full(segments, top), last + j, last + jn], -1))
    return orient_outward((verts, np.concatenate(faces).astype(np.int64)))


def circle_profile(radius: float, n: int = 8) -> np.ndarray:
    """Semicircle profile for ``lathe`` (a sphere of ``radius`` centred at y = 0)."""
    t = np.linspace(-np.pi / 2, np.pi / 2, n + 1)
    pr = np.stack([radius * np.cos(t), radius * np.sin(t)], -1)
    pr[0, 0] = pr[-1, 0] = 0.0
    return pr


def _place_along(mesh: Mesh, p0: Sequence[float], p1: Sequence[float]) -> Mesh:
    """Map a mesh built along +Y from y = 0 to y = L onto the segment p0 -> p1."""
    p0 = np.asarray(p0, np.float64)
    d = np.asarray(p1, np.float64) - p0
    R = rotation_between(np.array([0.0, 1.0, 0.0]), d)
    return transform(mesh, R=R, t=p0)


def frustum(p0: Sequence[float], p1: Sequence[float], r0: float, r1: float, segments: int = 16) -> Mesh:
    """Truncated cone between points ``p0`` (radius ``r0``) and ``p1`` (radius ``r1``)."""
    L = float(np.linalg.norm(np.asarray(p1, np.float64) - np.asarray(p0, np.float64)))
    prof = [(0.0, 0.0), (r0, 0.0), (r1, L), (0.0, L)] if r1 > 0 else [(0.0, 0.0), (r0, 0.0), (0.0, L)]
    if r0 <= 0:
        prof = [(0.0, 0.0), (r1, L), (0.0, L)]
    return _place_along(lathe(np.array(prof), segments), p0, p1)


def cylinder(p0: Sequence[float], p1: Sequence[float], radius: float, segments: int = 16) -> Mesh:
    return frustum(p0, p1, radius, radius, segments)


@lru_cache(maxsize=64)
def _unit_sphere(segments: int, rings: int) -> Mesh:
    v, f = lathe(circle_profile(1.0, rings), segments)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def ellipsoid(center: Sequence[float], radii: Sequence[float], segments: int = 16, rings: int = 8,
              R: np.ndarray | None = None) -> Mesh:
    v, f = _unit_sphere(int(segments), int(rings))
    return transform((v, f.copy()), R=R, t=center, s=radii)


def capsule(p0: Sequence[float], p1: Sequence[float], radius: float, segments: int = 12, rings: int = 4) -> Mesh:
    """Cylinder with hemispherical ends between ``p0`` and ``p1``."""
    L = float(np.linalg.norm(np.asarray(p1, np.float64) - np.asarray(p0, np.float64)))
    t = np.linspace(-np.pi / 2, 0, rings + 1)
    bottom = np.stack([radius * np.cos(t), radius * np.sin(t)], -1)
    top = np.stack([radius * np.cos(-t[::-1]), L + radius * np.sin(-t[::-1])], -1)
    prof = np.concatenate([bottom, top])
    prof[0, 0] = prof[-1, 0] = 0.0
    return _place_along(lathe(prof, segments), p0, p1)


def _frames(path: np.ndarray) -> np.ndarray:
    """Parallel-transport normals along a polyline -> (P, 2, 3) (normal, binormal)."""
    tang = np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    ref = np.array([0.0, 1.0, 0.0]) if abs(tang[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    n = np.cross(tang[0], ref)
    n /= np.linalg.norm(n)
    out = np.zeros((path.shape[0], 2, 3))
    for i in range(path.shape[0]):
        if i > 0:
            n = n - np.dot(n, tang[i]) * tang[i]
            n /= np.linalg.norm(n) + 1e-12
        out[i, 0] = n
        out[i, 1] = np.cross(tang[i], n)
    return out


def tube(path: np.ndarray, radius: float | np.ndarray, segments: int = 10, closed: bool = False) -> Mesh:
    """A circle swept along an ``(P, 3)`` polyline; capped ends unless ``closed`` (a loop)."""
    path = np.asarray(path, np.float64)
    P = path.shape[0]
    r = np.broadcast_to(np.asarray(radius, np.float64), (P,))
    fr = _frames(np.concatenate([path[-1:], path, path[:1]]) if closed else path)
    if closed:
        fr = fr[1:-1]
    ang = 2 * np.pi * np.arange(segments) / segments
    ring = (np.cos(ang)[None, :, None] * fr[:, None, 0] + np.sin(ang)[None, :, None] * fr[:, None, 1])
    verts = (path[:, None] + r[:, None, None] * ring).reshape(-1, 3)
    j = np.arange(segments)
    jn = (j + 1) % segments
    faces = []
    n_seg = P if closed else P - 1
    for i in range(n_seg):
        a, b = i * segments, ((i + 1) % P) * segments
        faces.append(np.stack([a + j, a + jn, b + jn], -1))
        faces.append(np.stack([a + j, b + jn, b + j], -1))
    if not closed:
        c0, c1 = P * segments, P * segments + 1
        verts = np.concatenate([verts, path[:1], path[-1:]])
        faces.append(np.stack([np.full(segments, c0), jn, j], -1))
        last = (P - 1) * segments
        faces.append(np.stack([np.full(segments, c1), last + j, last + jn], -1))
    return orient_outward((verts, np.concatenate(faces).astype(np.int64)))


def torus(center: Sequence[float], R_major: float, r_minor: float, segments: int = 24, sides: int = 10,
          R: np.ndarray | None = None) -> Mesh:
    """Torus in the local XY plane (axis +Z) around ``center``."""
    t = 2 * np.pi * np.arange(segments) / segments
    path = np.stack([R_major * np.cos(t), R_major * np.sin(t), np.zeros_like(t)], -1)
    return transform(tube(path, r_minor, sides, closed=True), R=R, t=center)
