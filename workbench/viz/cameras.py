"""Camera/pose viewer: an object with predicted and ground-truth camera frusta, coloured by error.

Cameras follow the project's one pose chain (``workbench.geometry.pose``): row vectors,
``X_view = X_world @ R + T``, view space +X left, +Y up, +Z forward, pinhole intrinsics in pixels
(``u = cx - f X / Z``, ``v = cy - f Y / Z``). The camera centre in world coordinates is
``C = -T @ R^T`` and a view-space point ``P`` is at ``(P - T) @ R^T`` in the world.

Each frustum is drawn as the pyramid from the camera centre to the image rectangle at depth
``depth`` (world units), plus a small triangle on the image's top edge so the in-plane rotation
(``theta``) is visible.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..core.errors import ShapeError
from ._util import sample_colorscale, to_numpy
from .mesh import as_mesh_list, mesh_trace, scene_layout, wireframe_trace

PoseLike = Any  # (R (N,3,3), T (N,3)) or a mapping with azimuth/elevation/theta/distance (radians)


def poses_to_rt(poses: PoseLike) -> tuple[np.ndarray, np.ndarray]:
    """``(R, T)`` arrays ``(N,3,3), (N,3)`` from ``(R, T)`` or a pose mapping (through the pose chain)."""
    if isinstance(poses, Mapping):
        import torch

        from ..geometry.pose import pose_to_rt

        vals = [torch.as_tensor(to_numpy(poses[k], np.float64)).reshape(-1)
                for k in ("azimuth", "elevation", "theta", "distance")]
        R, T = pose_to_rt(*vals)
        return to_numpy(R, np.float64), to_numpy(T, np.float64)
    if isinstance(poses, (tuple, list)) and len(poses) == 2:
        R = to_numpy(poses[0], np.float64)
        T = to_numpy(poses[1], np.float64)
        if R.ndim == 2:
            R, T = R[None], T.reshape(1, 3)
        if R.ndim != 3 or R.shape[1:] != (3, 3) or T.shape != (R.shape[0], 3):
            raise ShapeError(f"poses: expected R (N,3,3) and T (N,3), got {R.shape} and {T.shape}")
        return R, T
    raise ShapeError("poses: expected (R, T) or a mapping with azimuth, elevation, theta, distance")


def camera_centers(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``(N, 3)`` camera centres ``C = -T R^T``."""
    return -np.einsum("nj,nij->ni", T, R)


def view_to_world(P: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """View-space points ``(N, P, 3)`` -> world ``(P - T) @ R^T``."""
    return np.einsum("npj,nij->npi", P - T[:, None, :], R)


def frustum_points(R: Any, T: Any, focal_px: float | Sequence[float], principal_px: Any,
                   image_size: tuple[int, int], depth: float) -> np.ndarray:
    """World coordinates of each camera's frustum: ``(N, 8, 3)``.

    Points: centre, the four image corners (top-left, top-right, bottom-right, bottom-left) at
    view depth ``depth``, and the three points of the "up" triangle above the top edge.
    """
    R = to_numpy(R, np.float64).reshape(-1, 3, 3)
    T = to_numpy(T, np.float64).reshape(-1, 3)
    n = R.shape[0]
    h, w = image_size
    f = np.broadcast_to(to_numpy(focal_px, np.float64).reshape(-1), (n,))
    pp = np.broadcast_to(to_numpy(principal_px, np.float64).reshape(-1, 2), (n, 2))
    uv = np.array([[0, 0], [w, 0], [w, h], [0, h], [0.35 * w, 0], [0.65 * w, 0], [0.5 * w, -0.22 * h]], np.float64)
    z = float(depth)
    X = (pp[:, None, 0] - uv[None, :, 0]) * z / f[:, None]
    Y = (pp[:, None, 1] - uv[None, :, 1]) * z / f[:, None]
    P = np.stack([X, Y, np.full_like(X, z)], axis=-1)                    # (N, 7, 3) view space
    P = np.concatenate([np.zeros((n, 1, 3)), P], axis=1)                  # centre first
    return view_to_world(P, R, T)


_EDGES = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1), (5, 7), (7, 6)]


def frustum_trace(points: np.ndarray, color: str, name: str, width: float = 3.0, dash: str | None = None,
                  hover: str = "", legendgroup: str | None = None, showlegend: bool = True) -> go.Scatter3d:
    """One frustum ``(8, 3)`` (from :func:`frustum_points`) as a line trace."""
    seg = []
    for a, b in _EDGES:
        seg += [points[a], points[b], [np.nan] * 3]
    s = np.asarray(seg)
    return go.Scatter3d(x=s[:, 0], y=s[:, 1], z=s[:, 2], mode="lines", name=name,
                        line=dict(color=color, width=width, dash=dash), hovertext=hover, hoverinfo="text",
                        legendgroup=legendgroup, showlegend=showlegend, connectgaps=False)


def camera_figure(mesh: Any = None, *, gt: PoseLike = None, pred: PoseLike = None,
                  errors_deg: Any = None, focal_px: float | Sequence[float] | None = None,
                  principal_px: Any = None, image_size: tuple[int, int] = (128, 128),
                  depth: float | None = None, labels: Sequence[str] | None = None,
                  error_max_deg: float = 90.0, colorscale: str = "RdYlGn_r", gt_color: str = "#111111",
                  title: str | None = None, height: int = 520, width: int | None = None,
                  wireframe: bool = False) -> go.Figure:
    """The object with ground-truth and predicted camera frusta.

    Args:
        mesh: optional object mesh (any form accepted by :func:`workbench.viz.mesh.as_mesh_list`).
        gt, pred: ``(R (N,3,3), T (N,3))`` or a mapping of ``azimuth, elevation, theta, distance``
            (radians, ``(N,)``); either may be omitted. With both, camera ``i`` of ``pred`` is the
            prediction for camera ``i`` of ``gt``.
        errors_deg: ``(N,)`` per-prediction error in degrees used for the colour; by default the
            geodesic rotation error (``workbench.geometry.pose.rotation_error``) when ``gt`` is given.
        focal_px, principal_px, image_size: pinhole intrinsics (default: 30 degree field of view,
            centred principal point).
        depth: frustum depth in world units (default 0.3 x the smallest camera distance).
        error_max_deg: error mapped to the end of ``colorscale`` (green = 0, red = max).
    """
    h, w = image_size
    if focal_px is None:
        focal_px = 0.5 * min(h, w) / math.tan(math.radians(15.0))
    if principal_px is None:
        principal_px = (w / 2.0, h / 2.0)
    fig = go.Figure()
    if mesh is not None:
        for m in as_mesh_list(mesh):
            fig.add_trace(mesh_trace(m, opacity=0.9))
            if wireframe:
                fig.add_trace(wireframe_trace(m))
    Rg = Tg = Rp = Tp = None
    if gt is not None:
        Rg, Tg = poses_to_rt(gt)
    if pred is not None:
        Rp, Tp = poses_to_rt(pred)
    if Rg is None and Rp is None:
        raise ShapeError("camera_figure needs gt and/or pred poses")
    all_T = [t for t in (Tg, Tp) if t is not None]
    dists = np.concatenate([np.linalg.norm(t, axis=1) for t in all_T])
    if depth is None:
        depth = 0.3 * float(dists.min()) if dists.size else 0.5
    n = (Rg if Rg is not None else Rp).shape[0]
    names = list(labels) if labels is not None else [f"cam {i}" for i in range(n)]

    if Rp is not None and errors_deg is None and Rg is not None:
        if Rp.shape[0] != Rg.shape[0]:
            raise ShapeError(f"pred has {Rp.shape[0]} cameras but gt has {Rg.shape[0]}")
        import torch

        from ..geometry.pose import rotation_error

        errors_deg = np.degrees(to_numpy(rotation_error(torch.as_tensor(Rp), torch.as_tensor(Rg)), np.float64))
    if errors_deg is not None:
        errors_deg = to_numpy(errors_deg, np.float64).reshape(-1)

    if Rg is not None:
        pts = frustum_points(Rg, Tg, focal_px, principal_px, image_size, depth)
        for i in range(Rg.shape[0]):
            fig.add_trace(frustum_trace(pts[i], gt_color, "ground truth", width=4, hover=f"GT {names[i]}",
                                        legendgroup="gt", showlegend=(i == 0)))
    if Rp is not None:
        pts = frustum_points(Rp, Tp, focal_px, principal_px, image_size, depth)
        cols = (sample_colorscale(errors_deg, 0.0, error_max_deg, colorscale) if errors_deg is not None
                else ["#1f77b4"] * Rp.shape[0])
        for i in range(Rp.shape[0]):
            err = f", error {errors_deg[i]:.1f} deg" if errors_deg is not None else ""
            fig.add_trace(frustum_trace(pts[i], cols[i], "prediction", width=3, dash="dash",
                                        hover=f"pred {names[i] if i < len(names) else i}{err}",
                                        legendgroup="pred", showlegend=(i == 0)))
        if Rg is not None:
            cg, cp = camera_centers(Rg, Tg), camera_centers(Rp, Tp)
            seg = np.full((3 * len(cg), 3), np.nan)
            seg[0::3], seg[1::3] = cg, cp
            fig.add_trace(go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines",
                                       line=dict(color="#888", width=1), hoverinfo="skip",
                                       name="gt-pred pairs", showlegend=False))
        if errors_deg is not None:
            c = camera_centers(Rp, Tp)
            fig.add_trace(go.Scatter3d(
                x=c[:, 0], y=c[:, 1], z=c[:, 2], mode="markers", name="rotation error",
                marker=dict(size=4, color=errors_deg, cmin=0.0, cmax=error_max_deg, colorscale=colorscale,
                            showscale=True, colorbar=dict(title=dict(text="error (deg)"), len=0.6)),
                text=[f"{names[i] if i < len(names) else i}: {e:.1f} deg" for i, e in enumerate(errors_deg)],
                hoverinfo="text", showlegend=False))
    fig.update_layout(scene=scene_layout(), title=title, height=height, width=width,
                      margin=dict(l=0, r=0, t=40 if title else 10, b=0),
                      legend=dict(orientation="h", yanchor="bottom", y=0.0, x=0.0))
    # look from further away so that every camera is in view
    r = float(dists.max()) if dists.size else 2.0
    fig.update_layout(scene_camera=dict(up=dict(x=0, y=1, z=0),
                                        eye=dict(x=1.35, y=1.1, z=1.85)))
    fig.layout.meta = {"errors_deg": None if errors_deg is None else [float(e) for e in errors_deg],
                       "max_distance": r}
    return fig
