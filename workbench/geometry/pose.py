"""The one pose chain of the workbench: (azimuth, elevation, theta, distance) <-> (R, T).

Conventions (see ``DESIGN.md``; identical to pytorch3d / NeMo):

* angles are **radians**, distances in world units, everything batched with a leading ``N``;
* the camera centre is ``C = d (cos e sin a, sin e, cos e cos a)`` (object frame: +Y up, front +Z);
* the camera looks at the origin with up +Y (``look_at_rotation``), then rotates by the in-plane
  angle ``theta`` about its viewing axis: ``R = R_lookat @ Rz(theta)`` with the column-vector
  rotation ``Rz(theta) = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]`` (NeMo's ``rotation_theta``);
* world -> view with row vectors: ``X_view = X_world @ R + T`` and ``T = -C @ R``.

A positive ``theta`` turns the projected object counter-clockwise on screen, exactly as
PASCAL3D+'s in-plane rotation ``R2d(theta)`` (the whole chain reproduces PASCAL3D+'s projection
formula with the Z-up -> Y-up map ``(x, y, z) -> (x, z, -y)``; see ``tests/geometry/test_pose.py``).

``rotation_error`` is the geodesic angle computed in float64 and clamped;
``pose_summary`` reports accuracy at pi/6 and pi/18 plus the median error in degrees.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch

from ..core.errors import ShapeError

__all__ = [
    "camera_position", "look_at_rotation", "inplane_rotation", "pose_to_rt", "rt_to_pose",
    "camera_center_from_rt", "rotation_error", "pose_summary",
]

TensorLike = Union[torch.Tensor, float, Sequence[float], np.ndarray]



def _roma():
    """``roma``, imported on first use (it imports ``torch._dynamo``: ~2 s at start-up)."""
    import roma

    return roma

def _as_batch(*xs: TensorLike, device=None, dtype=None) -> Tuple[torch.Tensor, ...]:
    """Convert scalars / sequences / tensors to 1D tensors broadcast to a common length N.

    The dtype/device follow the first floating-point tensor argument (default dtype otherwise).
    """
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    if dtype is None:
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    ts = []
    for x in xs:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
        if t.dim() == 0:
            t = t.reshape(1)
        if t.dim() != 1:
            raise ShapeError(f"pose parameters must be scalars or 1D tensors (N,), got shape {tuple(t.shape)}")
        ts.append(t.to(device=device, dtype=dtype))
    try:
        ts = torch.broadcast_tensors(*ts)
    except RuntimeError as e:
        raise ShapeError(f"pose parameters have incompatible batch sizes {[tuple(t.shape) for t in ts]}") from e
    return tuple(ts)


def camera_position(azimuth: TensorLike, elevation: TensorLike, distance: TensorLike) -> torch.Tensor:
    """Camera centre ``d (cos e sin a, sin e, cos e cos a)``; angles in radians -> ``(N, 3)``."""
    a, e, d = _as_batch(azimuth, elevation, distance)
    return torch.stack([d * torch.cos(e) * torch.sin(a), d * torch.sin(e), d * torch.cos(e) * torch.cos(a)], -1)


def look_at_rotation(camera_position: torch.Tensor, at=((0.0, 0.0, 0.0),), up=((0.0, 1.0, 0.0),)) -> torch.Tensor:
    """pytorch3d ``look_at_rotation``: ``(N, 3)`` camera centres -> ``(N, 3, 3)`` world->view R.

    ``z = normalize(at - C)``, ``x = normalize(up x z)``, ``y = z x x``; when ``up`` is parallel to the
    viewing direction (``|x| < 5e-3``), ``x = normalize(y x z)`` instead. ``R = [x; y; z]^T``.
    """
    C = camera_position
    if C.dim() == 1:
        C = C[None]
    at = torch.as_tensor(at, dtype=C.dtype, device=C.device).expand_as(C)
    up = torch.as_tensor(up, dtype=C.dtype, device=C.device).expand_as(C)
    z = torch.nn.functional.normalize(at - C, eps=1e-5, dim=-1)
    x = torch.nn.functional.normalize(torch.cross(up, z, dim=-1), eps=1e-5, dim=-1)
    y = torch.nn.functional.normalize(torch.cross(z, x, dim=-1), eps=1e-5, dim=-1)
    degenerate = torch.isclose(x, torch.zeros_like(x), atol=5e-3).all(dim=-1, keepdim=True)
    if degenerate.any():
        x_alt = torch.nn.functional.normalize(torch.cross(y, z, dim=-1), eps=1e-5, dim=-1)
        x = torch.where(degenerate, x_alt, x)
    R = torch.stack([x, y, z], dim=1)  # rows x, y, z
    return R.transpose(1, 2)


def inplane_rotation(theta: TensorLike) -> torch.Tensor:
    """``Rz(theta) = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]`` -> ``(N, 3, 3)`` (closed form; equals
    ``roma.rotvec_to_rotmat([0, 0, theta])``, checked in the tests)."""
    (th,) = _as_batch(theta)
    c, s = torch.cos(th), torch.sin(th)
    z, o = torch.zeros_like(th), torch.ones_like(th)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(*th.shape, 3, 3)


def pose_to_rt(azimuth: TensorLike, elevation: TensorLike, theta: TensorLike,
               distance: TensorLike) -> Tuple[torch.Tensor, torch.Tensor]:
    """(a, e, theta, d) in radians -> ``R (N, 3, 3)``, ``T (N, 3)`` with ``X_view = X_world @ R + T``."""
    a, e, th, d = _as_batch(azimuth, elevation, theta, distance)
    C = camera_position(a, e, d)
    R = look_at_rotation(C) @ inplane_rotation(th)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T


def camera_center_from_rt(R: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """World position of the camera centre, ``C = -T @ R^T`` -> ``(N, 3)``."""
    _check_rt(R, T)
    return -(T[:, None, :] @ R.transpose(1, 2))[:, 0]


def rt_to_pose(R: torch.Tensor, T: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pose_to_rt` -> (azimuth, elevation, theta, distance), each ``(N,)``.

    Exact (to rounding) away from the poles ``e = +-pi/2``, where azimuth and theta are coupled.
    Azimuth and theta are returned in ``(-pi, pi]``.
    """
    C = camera_center_from_rt(R, T)
    d = C.norm(dim=-1)
    e = torch.asin(torch.clamp(C[:, 1] / d.clamp_min(1e-12), -1.0, 1.0))
    a = torch.atan2(C[:, 0], C[:, 2])
    Rz = look_at_rotation(C).transpose(1, 2) @ R
    th = torch.atan2(Rz[:, 1, 0], Rz[:, 0, 0])
    return a, e, th, d


def _check_rt(R: torch.Tensor, T: torch.Tensor) -> None:
    if R.dim() != 3 or R.shape[-2:] != (3, 3):
        raise ShapeError(f"R: expected shape (N, 3, 3), got {tuple(R.shape)}")
    if T.dim() != 2 or T.shape[-1] != 3 or T.shape[0] != R.shape[0]:
        raise ShapeError(f"T: expected shape ({R.shape[0]}, 3), got {tuple(T.shape)}")


def rotation_error(R_pred: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Geodesic angle ``arccos((tr(R_p^T R_gt) - 1) / 2)`` in radians, float64, clamped -> ``(N,)``.

    Accepts ``(3, 3)`` or ``(N, 3, 3)`` tensors or arrays; the result is float64 on R_pred's device.
    Identical rotations give exactly 0 up to float64 rounding (no pytorch3d ``cos_bound`` offset).
    """
    Rp = torch.as_tensor(R_pred)
    Rg = torch.as_tensor(R_gt).to(Rp.device)
    if Rp.dim() == 2:
        Rp = Rp[None]
    if Rg.dim() == 2:
        Rg = Rg[None]
    if Rp.shape[-2:] != (3, 3) or Rg.shape[-2:] != (3, 3):
        raise ShapeError(f"rotation_error: expected (N, 3, 3) rotations, got {tuple(Rp.shape)} and {tuple(Rg.shape)}")
    Rp, Rg = Rp.to(torch.float64), Rg.to(torch.float64)
    cos = _roma().rotmat_cosine_angle(Rp.transpose(-1, -2) @ Rg)
    return torch.arccos(torch.clamp(cos, -1.0, 1.0))


def pose_summary(errors_rad: TensorLike) -> Dict[str, float]:
    """Accuracy at pi/6 and pi/18 (fractions in [0, 1]) and median error in degrees.

    Non-finite errors count as failures (pi).
    """
    err = torch.as_tensor(np.asarray(errors_rad.detach().cpu() if isinstance(errors_rad, torch.Tensor)
                                     else errors_rad, dtype=np.float64)).reshape(-1)
    if err.numel() == 0:
        raise ShapeError("pose_summary: got an empty list of errors")
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.pi))
    return {
        "acc_pi6": float((err < math.pi / 6).double().mean()),
        "acc_pi18": float((err < math.pi / 18).double().mean()),
        "median_deg": float(np.degrees(np.median(err.numpy()))),
    }
