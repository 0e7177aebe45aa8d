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
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ..geometry.pose import pose_to_rt
from ..render.raycast import raycast_mesh
from .materials import evaluate_materials
from .world import ObjectModel

__all__ = ["Light", "render_views", "project_keypoints", "sample_light"]


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


def _pool(x: np.ndarray, s: int) -> np.ndarray:
    """Mean over non-overlapping s x s blocks of axes 1, 2 of ``(N, H*s, W*s, ...)``."""
    acc = None
    for i in range(s):
        for j in range(s):
            part = x[:, i::s, j::s]
            acc = part.copy() if acc is None else acc + part
    return acc / (s * s)


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
    out = raycast_mesh(model.verts, model.faces, R_t, T_t, focal * s, pp * s, (H * s, W * s))
    hit = out["mask"].numpy()
    face = out["face_ids"].numpy()
    bary = out["bary"].numpy()
    depth = out["depth"].numpy()
    if lights is None:
        lights = [Light()] * N
    rgb = np.zeros((N, H * s, W * s, 3), np.float32)
    idx = np.nonzero(hit)
    if idx[0].size:
        f = face[idx]
        bc = bary[idx].astype(np.float64)
        tri = model.verts[model.faces[f]].astype(np.float64)  # (M, 3, 3)
        pts = np.einsum("mk,mkj->mj", bc, tri)
        view = idx[0]
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
        elif style == "grey":
            up = np.array([0.0, 1.0, 0.0])
            l2 = np.clip(n @ up, 0, None) * 0.35
            g = 0.3 + 0.5 * ndl + l2
            col = np.repeat(g[:, None], 3, 1)
        else:
            raise ValueError(f"unknown style '{style}' (valid: shaded, cad, grey)")
        rgb[idx] = np.clip(col, 0, 1).astype(np.float32)
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
    return {"rgb": rgb_o.astype(np.float32), "alpha": cov, "depth": dep, "R": R, "T": T}
