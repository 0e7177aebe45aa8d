"""Render world objects: open3d ray casting (``workbench.render.raycast``) + numpy shading.

:func:`render_views` renders one :class:`~workbench.data.world.ObjectModel` from N poses of the
(azimuth, elevation, theta, distance) chain (``workbench.geometry.pose.pose_to_rt``) with a pinhole
camera in pixels. Shading is Lambertian: ``albedo * (ambient + diffuse * max(0, n . l))`` with a
directional key light given in view space (so lighting follows the camera), smooth shading
normals interpolated from the model's per-corner normals, and solid procedural textures evaluated
at the 3D hit point. ``supersample`` s renders at s x s the resolution and box-filters, giving
anti-aliased colours and fractional coverage (alpha).

Styles: ``"shaded"`` (textured Lambertian), ``"cad"`` (flat face normals, untextured light grey:
the CAD-like domain shift), ``"grey"`` (flat-shaded greyscale, light from above, for retrieval
renders).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..core.errors import ShapeError
from ..geometry.pose import pose_to_rt
from ..render.raycast import _o3d
from .materials import evaluate_materials
from .world import ObjectModel

__all__ = ["Light", "render_views", "project_keypoints", "sample_light", "keypoint_self_visibility"]


@dataclass
class Light:
    """Directional key light in view space (unit vector from surface towards the light)."""

    direction: Sequence[float] = (0.3, 0.5, -0.8)
    ambient: float = 0.35
    diffuse: float = 0.75
    color: Sequence[float] = (1.0, 1.0, 1.0)

    def to_dict(self) -> dict:
        return {"direction": [round(float(x), 4) for x in self.direction], "ambient": round(float(self.ambient), 4),
                "diffuse": round(float(self.diffuse), 4), "color": [round(float(x), 4) for x in self.color]}


def sample_light(rng: np.random.Generator, variation: float = 1.0) -> Light:
    """A random key light from the camera's hemisphere (view space -Z is towards the camera)."""
    az = rng.uniform(-1.2, 1.2) * variation
    el = rng.uniform(0.1, 1.1) * variation + (1 - variation) * 0.5
    d = np.array([np.sin(az) * np.cos(el), np.sin(el), -np.cos(az) * np.cos(el)])
    tint = 1.0 + rng.uniform(-0.08, 0.08, 3) * variation
    return Light(tuple(d / np.linalg.norm(d)), float(rng.uniform(0.25, 0.5) if variation else 0.35),
                 float(rng.uniform(0.6, 0.9) if variation else 0.75), tuple(np.clip(tint, 0, 1.2)))


def project_keypoints(points: np.ndarray, R: np.ndarray, T: np.ndarray, focal: float,
                      principal: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """World points ``(K, 3)`` -> pixel coordinates ``(N, K, 2)`` and view depths ``(N, K)``.

    ``u = cx - f X / Z``, ``v = cy - f Y / Z`` with ``X_view = X_world @ R + T`` (DESIGN.md).
    """
    Xv = np.einsum("kj,nji->nki", points.astype(np.float64), R) + T[:, None, :]
    z = Xv[..., 2]
    u = principal[0] - focal * Xv[..., 0] / z
    v = principal[1] - focal * Xv[..., 1] / z
    return np.stack([u, v], -1), z


def keypoint_self_visibility(model: ObjectModel, R: np.ndarray, T: np.ndarray, eps: float = 0.005) -> np.ndarray:
    """``(N, K)`` bool: the segment camera -> keypoint is not blocked by the object itself.

    Casts one ray per (view, keypoint) from the camera centre (``C = -T R^T``) towards the keypoint;
    the keypoint (on the surface) is visible when the first hit is not more than ``eps`` (object
    units) in front of it.
    """
    C = -np.einsum("ni,nji->nj", T, R)  # (N, 3)
    kp = model.keypoints.astype(np.float64)[None]  # (1, K, 3)
    d = kp - C[:, None, :]
    dist = np.linalg.norm(d, axis=-1)
    dirs = d / np.maximum(dist[..., None], 1e-12)
    rays = np.empty(dirs.shape[:2] + (6,), np.float32)
    rays[..., :3] = C[:, None, :]
    rays[..., 3:] = dirs
    t, _, _ = _cast(model, rays)
    return ~(t.astype(np.float64) < dist - eps)


# ----------------------------------------------------------------------------- ray casting
# One open3d ``RaycastingScene`` (Embree BVH) per mesh, reused by every call on the same mesh
# (a job renders its object up to four times: shaded views, keypoint visibility, CAD, grey renders).
_SCENE: Dict[str, object] = {}
#: ``nthreads`` for ``cast_rays`` (0 = all cores); dataset workers set 1 (one process per core).
RAY_THREADS = 0


def _scene(model: ObjectModel):
    """The (cached) ray-casting scene of ``model``'s mesh. The cache holds the last mesh only and is
    keyed on the identity of its vertex/face arrays (models are not modified in place)."""
    if _SCENE.get("verts") is model.verts and _SCENE.get("faces") is model.faces:
        return _SCENE["scene"]
    o3d = _o3d()
    v = np.ascontiguousarray(model.verts, dtype=np.float32)
    f = np.ascontiguousarray(model.faces, dtype=np.uint32)
    if f.size and (int(f.min()) < 0 or int(f.max()) >= v.shape[0]):
        raise ShapeError(f"render_views: faces of '{model.category}' index vertices outside [0, {v.shape[0]})")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))
    _SCENE.clear()
    _SCENE.update(verts=model.verts, faces=model.faces, scene=scene)
    return scene


def _cast(model: ObjectModel, rays: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast float32 rays ``(..., 6)`` ([origin, direction], world) against ``model``.

    Returns ``t (...)`` float32 ray parameter (``inf`` on a miss), ``face (...)`` int64 (-1 on a
    miss) and ``uv (..., 2)`` float32 (barycentrics of vertices 1 and 2 of the face).
    """
    o3d = _o3d()
    ans = _scene(model).cast_rays(o3d.core.Tensor.from_numpy(np.ascontiguousarray(rays, np.float32)),
                                  nthreads=RAY_THREADS)
    t = ans["t_hit"].numpy()
    face = ans["primitive_ids"].numpy().astype(np.int64)
    face[~np.isfinite(t)] = -1
    return t, face, ans["primitive_uvs"].numpy()


def _pool(x: np.ndarray, s: int) -> np.ndarray:
    """Mean over non-overlapping s x s blocks of axes 1, 2 of ``(N, H*s, W*s, ...)`` (float32)."""
    acc = x[:, 0::s, 0::s].astype(np.float32)
    for i in range(s):
        for j in range(s):
            if i or j:
                acc += x[:, i::s, j::s]
    acc *= np.float32(1.0 / (s * s))
    return acc


def _raycast_pinhole(model: ObjectModel, R: np.ndarray, T: np.ndarray, focal: float, pp: np.ndarray,
                     size: tuple) -> Dict[str, np.ndarray]:
    """Same rays as :func:`workbench.render.raycast.raycast_mesh` (pixel centres, unit view-space z
    so ``t`` is z-depth), built in float32 numpy and cast against the model's cached scene.

    Returns ``depth (N, H, W)`` float32 (``inf`` on a miss), ``face_ids (N, H, W)`` int64 (-1),
    ``uv (N, H, W, 2)`` float32 and ``mask (N, H, W)`` bool."""
    H, W = size
    u = np.arange(W, dtype=np.float32) + 0.5
    v = np.arange(H, dtype=np.float32) + 0.5
    dx = (pp[:, 0, None].astype(np.float32) - u[None]) / np.float32(focal)  # (N, W)
    dy = (pp[:, 1, None].astype(np.float32) - v[None]) / np.float32(focal)  # (N, H)
    Rt = R.transpose(0, 2, 1).astype(np.float32)  # view -> world: d_w = d_v @ R^T
    # d_w(h, w) = dx(w) R^T_0 + (dy(h) R^T_1 + R^T_2): a sum of a column term and a row term
    A = dx[:, :, None] * Rt[:, None, 0, :]  # (N, W, 3)
    B = dy[:, :, None] * Rt[:, None, 1, :] + Rt[:, None, 2, :]  # (N, H, 3)
    d = A[:, None, :, :] + B[:, :, None, :]  # (N, H, W, 3)
    C = (-np.einsum("ni,nji->nj", T, R)).astype(np.float32)
    rays = np.concatenate([np.broadcast_to(C[:, None, None, :], d.shape), d], -1)
    t, face, uv = _cast(model, rays)
    return {"depth": t, "face_ids": face, "uv": uv, "mask": face >= 0}


def render_views(model: ObjectModel, azimuth, elevation, theta, distance, focal: float,
                 principal: Sequence[float] | np.ndarray, image_size: int | Sequence[int], supersample: int = 1,
                 lights: Optional[Sequence[Light]] = None, style: str = "shaded") -> Dict[str, np.ndarray]:
    """Render N views of ``model``.

    Args:
        azimuth, elevation, theta, distance: ``(N,)`` radians / world units.
        focal: focal length in pixels (output resolution); principal ``(2,)`` or ``(N, 2)`` pixels.
        image_size: ``H`` or ``(H, W)`` of the output.
        lights: one :class:`Light` per view (default: a fixed front-top light).
        style: ``shaded`` | ``cad`` | ``grey``.

    Returns a dict of numpy arrays: ``rgb (N, H, W, 3)`` float32 colour *premultiplied* by
    ``alpha (N, H, W)`` (coverage in [0, 1]), ``depth (N, H, W)`` float32 mean z-depth of the covered
    sub-samples (``inf`` where uncovered), ``R (N, 3, 3)``, ``T (N, 3)`` (float64).
    """
    if style not in ("shaded", "cad", "grey"):
        raise ValueError(f"unknown style '{style}' (valid: shaded, cad, grey)")
    H, W = (int(image_size), int(image_size)) if np.isscalar(image_size) else (int(image_size[0]), int(image_size[1]))
    s = int(supersample)
    a = np.atleast_1d(np.asarray(azimuth, np.float64))
    N = a.shape[0]
    R_t, T_t = pose_to_rt(torch.as_tensor(a), torch.as_tensor(np.broadcast_to(elevation, (N,)).astype(np.float64)),
                          torch.as_tensor(np.broadcast_to(theta, (N,)).astype(np.float64)),
                          torch.as_tensor(np.broadcast_to(distance, (N,)).astype(np.float64)))
    R = R_t.numpy()
    T = T_t.numpy()
    pp = np.broadcast_to(np.asarray(principal, np.float64).reshape(-1, 2), (N, 2))
    # principal point at the super-sampled resolution: pixel centres of the fine grid
    out = _raycast_pinhole(model, R, T, focal * s, pp * s, (H * s, W * s))
    hit = out["mask"]
    depth = out["depth"]
    if lights is None:
        lights = [Light()] * N
    Hs, Ws = H * s, W * s
    rgb = np.zeros((N * Hs * Ws, 3), np.float32)
    flat = np.flatnonzero(hit)
    if flat.size:
        f = out["face_ids"].reshape(-1)[flat]
        uv = out["uv"].reshape(-1, 2)[flat].astype(np.float64)
        bc = np.concatenate([1.0 - uv.sum(1, keepdims=True), uv], 1)  # (M, 3) w.r.t. (v0, v1, v2)
        tri = model.verts[model.faces[f]].astype(np.float64)  # (M, 3, 3)
        pts = np.einsum("mk,mkj->mj", bc, tri)
        view = flat // (Hs * Ws)
        if style == "shaded":
            n = np.einsum("mk,mkj->mj", bc, model.corner_normals[f].astype(np.float64))
        else:
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        # face the camera: camera centre in world C = -T @ R^T
        Cw = -np.einsum("ni,nji->nj", T, R)
        to_cam = Cw[view] - pts
        flip = (n * to_cam).sum(1) < 0
        n[flip] *= -1
        ldir = np.stack([np.asarray(l.direction, np.float64) for l in lights])  # view space
        lw = np.einsum("ni,nji->nj", ldir, R)  # view -> world: l_w = l_v @ R^T
        amb = np.array([l.ambient for l in lights])[view]
        dif = np.array([l.diffuse for l in lights])[view]
        lcol = np.stack([np.asarray(l.color, np.float64) for l in lights])[view]
        ndl = np.clip((n * lw[view]).sum(1), 0, None)
        if style == "shaded":
            albedo = evaluate_materials(model.materials, model.face_slot[f], pts)
            shade = (amb + dif * ndl)[:, None] * lcol
            col = albedo * shade
        elif style == "cad":
            col = np.repeat(((0.45 + 0.55 * ndl) * 0.92)[:, None], 3, 1)
        else:  # grey
            # CMIC-like: white mesh, light from above (PointLights at (0, 3, 0)) + a weak headlight;
            # capped below white so that top faces stay visible on the white background
            up = np.clip(n @ np.array([0.0, 1.0, 0.0]), 0, None)
            head = np.clip((n * to_cam).sum(1) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-9), 0, None)
            g = 0.3 + 0.35 * up + 0.25 * head
            col = np.repeat(g[:, None], 3, 1)
        rgb[flat] = np.clip(col, 0, 1)
    rgb = rgb.reshape(N, Hs, Ws, 3)
    if s > 1:
        hitf = hit.astype(np.float32)
        cov = _pool(hitf, s)
        rgb_o = _pool(rgb, s)
        dsum = _pool(np.where(hit, depth, 0).astype(np.float32), s)
        dep = np.where(cov > 0, dsum / np.maximum(cov, 1e-6), np.inf).astype(np.float32)
    else:
        cov = hit.astype(np.float32)
        rgb_o = rgb
        dep = np.where(hit, depth, np.inf).astype(np.float32)
    return {"rgb": rgb_o.astype(np.float32, copy=False), "alpha": cov, "depth": dep, "R": R, "T": T}
