"""TTP's differentiable pose-and-deformation solver (pure tensor math, reusable on its own).

Given N regressed 2D points ``u`` (the image positions of the N template vertices), their
weights ``w`` (visibility, raised to ``vis_power`` by the caller) and the 3D vertices ``X``, the
pose layer solves, for every sample of the batch *in parallel*,

    R*, t* = argmin_{R in SO(3), t in R^2}  E = sum_i w_i || s (R X_i + [t, 0])_xy + c - u_i ||^2

(weak perspective: ``s`` the scale and ``c`` the 2D centre, both given -- TTP takes them from the
regressed points, see :func:`camera_from_points`). The shape layer then solves the low-rank
deformation ``V = T + sum_k c_k B_k`` in closed form (paper eq. 7)

    c* = (Omega^T W Omega + gamma I)^{-1} Omega^T W Upsilon,
    Omega_i = s (R B_{.,i})_xy  (2 x K),   Upsilon_i = u_i - s (R T_i + [t, 0])_xy - c,

and :func:`solve_pose_and_shape` alternates the two for ``iterations`` rounds, warm-starting
each pose solve from the previous one.

Conventions
-----------
* Column-vector rotations, as in the paper: a 3D point ``X`` goes to ``R X``; in the project's
  row-vector (pytorch3d) convention ``X_view = X @ R_row`` the same rotation is ``R_row = R^T``.
* 2D points are in whatever units ``u`` is given in (TTP uses normalised crop coordinates in
  [-1, 1], x right, y down); ``s`` and ``c`` are in the same units.
* The pose is an axis-angle vector. The solver works with *local* axis-angle increments
  ``R <- exp([delta]_x) R`` (Levenberg-Marquardt on SO(3)); the returned ``rotvec`` is the
  axis-angle of ``R`` with norm <= pi. The stationarity condition dE/d(delta) = 0 is equivalent to
  dE/d(rotvec) = 0 wherever the exponential map is regular (|rotvec| < 2 pi), so the implicit
  gradients are those of the axis-angle minimiser; the local chart avoids the global chart's
  singular second derivatives at rotvec = 0 (where ``roma.rotvec_to_rotmat`` gives NaN Hessians).

Gradients
---------
The forward solve runs without a graph (batched Levenberg-Marquardt with an analytic Jacobian).
The backward pass uses the implicit function theorem, as a declarative layer: with
``g(theta, x) = dE/dtheta = 0`` at the solution, ``dtheta*/dx = -H^{-1} d^2E/(dtheta dx)`` with
``H = d^2E/dtheta^2`` (the exact Hessian, not Gauss-Newton), so the vector-Jacobian product is
``x_bar = -(d g / d x)^T H^{-1} theta_bar`` -- one 5x5 solve per sample and one autograd pass
through ``g``, independent of the number of solver iterations (``g`` and ``H`` in closed form, see
:func:`_local_gradient_hessian`; autograd's double backward gave the same values ~2x slower). Gradients reach ``u``, ``w``, ``s``,
``c`` and (unless ``points_grad=False``, the official code's behaviour) the 3D points.

Guards: singular or indefinite Hessians fall back to a damped solve then a pseudo-inverse;
non-finite gradient entries are zeroed; an optional per-sample gradient-norm clip (the official
code clips at 100); samples whose weights are all zero keep their initial pose; non-finite
inputs raise :class:`SolverInputError`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import roma
import torch
from torch import Tensor

from ...core.errors import ShapeError, WorkbenchError

log = logging.getLogger(__name__)

__all__ = [
    "SolverInputError", "PoseSolverOptions", "PoseSolution", "SolverIterate", "SolverOutput",
    "hat", "so3_exp", "camera_from_points", "project_weak_perspective", "reprojection_energy",
    "affine_pose_init", "solve_pose", "solve_deformation", "deform", "solve_pose_and_shape",
    "solve_pose_lbfgs_reference", "solve_pose_and_shape_reference", "trace_solver",
]


class SolverInputError(WorkbenchError, ValueError):
    """A tensor given to the TTP solver is non-finite or has the wrong shape."""


# ----------------------------------------------------------------------------------- helpers
def hat(v: Tensor) -> Tensor:
    """Skew-symmetric matrices: ``hat(v) @ x == cross(v, x)``. ``v`` (..., 3) -> (..., 3, 3)."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v.unbind(-1)
    return torch.stack([torch.stack([z, -w, y], -1),
                        torch.stack([w, z, -x], -1),
                        torch.stack([-y, x, z], -1)], -2)


def so3_exp(rotvec: Tensor) -> Tensor:
    """Rotation matrices ``exp([rotvec]_x)`` (Rodrigues), (..., 3) -> (..., 3, 3).

    ``I + a K + b K^2`` with ``a = sin(th)/th``, ``b = (1 - cos th)/th^2`` (Taylor series below
    th^2 = 1e-6, where the closed forms lose precision). Same values as
    ``roma.rotvec_to_rotmat`` with fewer operations (it runs in the solver's inner loop).
    """
    th2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]                  # (..., 1, 1)
    small = th2 < 1e-6
    th = th2.clamp_min(1e-6).sqrt()
    a = torch.where(small, 1 - th2 / 6, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - torch.cos(th)) / th2.clamp_min(1e-6))
    K = hat(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * K + b * (K @ K)


def _orthonormalise(R: Tensor) -> Tensor:
    """Nearest-enough rotation by Gram-Schmidt on the first two rows (removes round-off drift)."""
    r1 = R[:, 0] / R[:, 0].norm(dim=-1, keepdim=True)
    r2 = R[:, 1] - (r1 * R[:, 1]).sum(-1, keepdim=True) * r1
    r2 = r2 / r2.norm(dim=-1, keepdim=True)
    return torch.stack([r1, r2, torch.linalg.cross(r1, r2, dim=-1)], 1)


def _check_finite(name: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).nonzero()
        first = tuple(bad[0].tolist()) if len(bad) else ()
        raise SolverInputError(f"TTP solver: '{name}' has {len(bad)} non-finite entries "
                               f"(first at index {first}); expected finite values")


def _check(name: str, t: Tensor, shape: tuple) -> None:
    sh = tuple(t.shape)
    if len(sh) != len(shape) or any(e is not None and e != s for s, e in zip(sh, shape)):
        exp = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ShapeError(f"TTP solver: '{name}' expected shape {exp}, got {sh}")


def camera_from_points(u: Tensor, weights: Tensor | None = None, eps: float = 1e-6
                       ) -> tuple[Tensor, Tensor]:
    """TTP's weak-perspective intrinsics taken from the regressed points.

    Args:
        u: (B, N, 2) 2D points.
        weights: optional (B, N) non-negative weights (None = uniform, as the official code).
    Returns:
        scale (B,): the standard deviation of the points pooled over x and y,
        ``sqrt(sum_i w_i ||u_i - c||^2 / (2 sum_i w_i))``; centre (B, 2): their (weighted) mean.
    """
    _check("u", u, (None, None, 2))
    if weights is None:
        weights = torch.ones_like(u[..., 0])
    wsum = weights.sum(-1, keepdim=True).clamp_min(eps)
    centre = (weights[..., None] * u).sum(1) / wsum
    var = (weights * (u - centre[:, None]).pow(2).sum(-1)).sum(-1, keepdim=True) / (2 * wsum)
    return (var + eps * eps).sqrt().squeeze(-1), centre


def project_weak_perspective(points: Tensor, R: Tensor, t: Tensor, scale: Tensor,
                             centre: Tensor) -> Tensor:
    """``s (R X + [t, 0])_xy + c``.

    Args:
        points: (B, N, 3) or (N, 3) 3D points; R: (B, 3, 3) column-vector rotations;
        t: (B, 2) translation (in 3D units); scale: (B,); centre: (B, 2) (2D units).
    Returns:
        (B, N, 2) projected points.
    """
    if points.dim() == 2:
        points = points.expand(R.shape[0], -1, -1)
    y = points @ R[:, :2].transpose(1, 2)  # (B, N, 2) = first two rows of R X
    return scale[:, None, None] * (y + t[:, None, :]) + centre[:, None, :]


def reprojection_energy(points: Tensor, u: Tensor, w: Tensor, R: Tensor, t: Tensor,
                        scale: Tensor, centre: Tensor) -> Tensor:
    """Per-sample ``sum_i w_i ||pi(X_i) - u_i||^2`` -> (B,)."""
    r = project_weak_perspective(points, R, t, scale, centre) - u
    return (w * r.pow(2).sum(-1)).sum(-1)


def affine_pose_init(points: Tensor, u: Tensor, w: Tensor, scale: Tensor, centre: Tensor,
                     ridge: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Closed-form initial pose: weighted least-squares affine camera, projected onto SO(3).

    Fits ``M (2x3), p (2)`` minimising ``sum_i w_i ||M X_i + p - (u_i - c)/s||^2`` then takes the
    nearest matrix with orthonormal rows (SVD), completes it to a rotation with the cross product
    and solves the translation for that rotation. Exact for exact correspondences up to the
    affine camera's scale; a good start for Levenberg-Marquardt otherwise.

    Returns: R (B, 3, 3), t (B, 2).
    """
    B, N, _ = points.shape
    y = (u - centre[:, None]) / scale[:, None, None]                          # (B, N, 2)
    D = torch.cat([points, torch.ones_like(points[..., :1])], -1)              # (B, N, 4)
    Dw = D * w[..., None]
    A = D.transpose(1, 2) @ Dw                                                # (B, 4, 4)
    tr = A.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-12)
    A = A + (ridge * tr)[:, None, None] * torch.eye(4, dtype=A.dtype, device=A.device)
    P = torch.linalg.lstsq(A, Dw.transpose(1, 2) @ y).solution                 # (B, 4, 2)
    M = P[:, :3].transpose(1, 2)                                              # (B, 2, 3)
    M = torch.nan_to_num(M)
    Uu, _, Vh = torch.linalg.svd(M, full_matrices=False)                      # (B,2,2), (B,2,3)
    Q = Uu @ Vh
    r3 = torch.linalg.cross(Q[:, 0], Q[:, 1], dim=-1)
    R = torch.cat([Q, r3[:, None]], 1)
    bad = ~torch.isfinite(R).all(-1).all(-1) | (M.abs().sum((-1, -2)) < 1e-12)
    if bad.any():
        R = torch.where(bad[:, None, None], torch.eye(3, dtype=R.dtype, device=R.device), R)
    t = _optimal_translation(points, y, w, R)
    return R, t


def _optimal_translation(points: Tensor, y: Tensor, w: Tensor, R: Tensor) -> Tensor:
    """argmin_t sum_i w_i ||(R X_i)_xy + t - y_i||^2 with ``y = (u - c)/s``."""
    proj = points @ R[:, :2].transpose(1, 2)
    wsum = w.sum(-1, keepdim=True).clamp_min(1e-12)
    return (w[..., None] * (y - proj)).sum(1) / wsum


# ------------------------------------------------------------------------- pose solver (LM)
@dataclass
class PoseSolverOptions:
    """Levenberg-Marquardt settings and backward-pass guards of the pose layer.

    Attributes:
        max_iters: cap on LM iterations (the loop stops as soon as every sample converged).
        tol_step: a sample has converged when an accepted update is shorter than
            ``tol_step * (1 + max_i |R X_i|)`` (None: sqrt(eps) of the dtype, 3e-4 for float32,
            1.5e-8 for float64); samples that stop improving (damping at its cap) also stop.
        lam0: initial damping (Marquardt scaling ``lam * diag(A)``).
        points_grad: let gradients reach the 3D points (the official code stops them).
        grad_clip: per-sample clip of the input-gradient norm in backward (None = off; official: 100).
        hessian_eps: relative damping added to a Hessian that fails to factorise.
        callback: ``callback(iteration, R, t, energy)`` after every LM iteration (detached tensors;
            for visualising the solver, see :func:`trace_solver`). Excluded from comparisons.
    """

    max_iters: int = 50
    tol_step: float | None = None
    lam0: float = 1e-3
    points_grad: bool = True
    grad_clip: float | None = None
    hessian_eps: float = 1e-6
    callback: object = field(default=None, compare=False, repr=False)


@dataclass
class PoseSolution:
    """Output of :func:`solve_pose`.

    Attributes:
        R: (B, 3, 3) rotations (column convention, differentiable through the IFT layer).
        t: (B, 2) translations (differentiable).
        rotvec: (B, 3) axis-angle of ``R`` (|rotvec| <= pi).
        energy: (B,) final weighted reprojection energy (detached).
        iterations: LM iterations run (max over the batch).
        converged: (B,) bool.
    """

    R: Tensor
    t: Tensor
    rotvec: Tensor
    energy: Tensor
    iterations: int
    converged: Tensor


def _lm_solve(X: Tensor, u: Tensor, w: Tensor, s: Tensor, c: Tensor, R: Tensor, t: Tensor,
              opts: PoseSolverOptions):
    """Batched Levenberg-Marquardt on (SO(3) x R^2). No graph. Returns R, t, E, iters, converged."""
    B = X.shape[0]
    dtype, dev = X.dtype, X.device
    eps = torch.finfo(dtype).eps
    tol_step = opts.tol_step if opts.tol_step is not None else math.sqrt(eps)
    eye5 = torch.eye(5, dtype=dtype, device=dev)
    y = (u - c[:, None]) / s[:, None, None]            # work in 3D units: r = (R X)_xy + t - y
    s2w = w * (s * s)[:, None]                          # energy = sum s^2 w ||r||^2

    def energy(R_, t_):
        r = X @ R_[:, :2].transpose(1, 2) + t_[:, None] - y
        return (s2w * r.pow(2).sum(-1)).sum(-1)

    E = energy(R, t)
    lam = torch.full((B,), opts.lam0, dtype=dtype, device=dev)
    active = w.sum(-1) > 0                               # all-zero weights: keep the initial pose
    converged = ~active
    it = 0
    for it in range(1, opts.max_iters + 1):
        Y = X @ R.transpose(1, 2)                        # (B, N, 3) = R X
        r = Y[..., :2] + t[:, None] - y                  # (B, N, 2)
        Yx, Yy, Yz = Y.unbind(-1)
        # Jacobian of r wrt (delta, t): row x = [0, Yz, -Yy, 1, 0], row y = [-Yz, 0, Yx, 0, 1]
        zero, one = torch.zeros_like(Yx), torch.ones_like(Yx)
        Jx = torch.stack([zero, Yz, -Yy, one, zero], -1)
        Jy = torch.stack([-Yz, zero, Yx, zero, one], -1)
        Jxw, Jyw = Jx * s2w[..., None], Jy * s2w[..., None]
        A = Jxw.transpose(1, 2) @ Jx + Jyw.transpose(1, 2) @ Jy                     # (B, 5, 5)
        g = (Jxw * r[..., :1]).sum(1) + (Jyw * r[..., 1:]).sum(1)                    # (B, 5)
        dA = A.diagonal(dim1=1, dim2=2)
        floor = (eps * dA.sum(-1, keepdim=True)).clamp_min(1e-30)
        # one batched Cholesky for both the damped (LM) and the undamped (Gauss-Newton) system
        damp = torch.cat([lam[:, None] * dA + floor, floor.expand(B, 5)])
        L, info = torch.linalg.cholesky_ex(torch.cat([A, A]) + torch.diag_embed(damp))
        steps = -torch.cholesky_solve(torch.cat([g, g])[..., None], L)[..., 0]
        ok_all = (info == 0) & torch.isfinite(steps).all(-1)
        delta, gn = steps[:B], steps[B:]
        # converged: the Gauss-Newton step (computed from the gradient, which has no cancellation
        # problem near the minimum, unlike energy differences) is below tolerance; take it and stop
        small = ok_all[B:] & (gn.norm(dim=-1) < tol_step * (1 + Y.abs().amax((1, 2))))
        delta = torch.where(small[:, None], gn, delta)
        ok = ok_all[:B] | small
        delta = torch.where(ok[:, None] & active[:, None], delta, torch.zeros_like(delta))
        R_new = so3_exp(delta[:, :3]) @ R
        t_new = t + delta[:, 3:]
        E_new = energy(R_new, t_new)
        # a relative slack of a few eps: near the minimum energy differences are pure rounding
        # and the (gradient-based) step is the reliable signal
        accept = active & ok & torch.isfinite(E_new) & ((E_new <= E * (1 + 16 * eps)) | small)
        R = torch.where(accept[:, None, None], R_new, R)
        t = torch.where(accept[:, None], t_new, t)
        E = torch.where(accept, E_new, E)
        lam = torch.where(accept, (lam * 0.2).clamp_min(1e-12), (lam * 10).clamp_max(1e12))
        done = active & ((accept & small) | (E <= eps * eps) | (lam >= 1e12))
        if opts.callback is not None:
            opts.callback(it, R, t, E)
        converged = converged | done
        active = active & ~done
        if not bool(active.any()):
            break
    # re-orthonormalise (products of exact rotations drift by ~eps per step)
    R = _orthonormalise(R)
    return R, t, E, it, converged


def _local_energy(delta: Tensor, t: Tensor, R0: Tensor, X: Tensor, u: Tensor, w: Tensor,
                  s: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Energy as a function of a local rotation increment around ``R0`` (second-order exact).

    ``exp([d]_x) = I + [d]_x + [d]_x^2 / 2 + O(|d|^3)``: the truncation has the exact first and
    second derivatives at d = 0, which is all the implicit backward needs. Returns (E (B,), R(d)).
    """
    K = hat(delta)
    I = torch.eye(3, dtype=delta.dtype, device=delta.device)
    Rd = (I + K + 0.5 * K @ K) @ R0
    r = project_weak_perspective(X, Rd, t, s, c) - u
    return (w * r.pow(2).sum(-1)).sum(-1), Rd


def _local_gradient_hessian(R: Tensor, t: Tensor, X: Tensor, u: Tensor, w: Tensor, s: Tensor, c: Tensor
                            ) -> tuple[Tensor, Tensor]:
    """Gradient (B, 5) and exact Hessian (B, 5, 5) of the energy in the local chart at ``(d, t) = (0, t)``.

    Closed form of what autograd gives through :func:`_local_energy` (its second-order truncation of
    the exponential has the exact first and second derivatives at d = 0). With ``Y_i = R X_i``,
    ``r_i = s ((Y_i)_xy + t) + c - u_i`` and ``J_i = s P [Y_i]_x^T`` (``P`` keeps x and y; ``dY/dd``
    is ``-[Y]_x``):

        g_d = 2 sum_i w_i J_i^T r_i,      g_t = 2 s sum_i w_i r_i,
        H   = 2 sum_i w_i [J_i, s I]^T [J_i, s I]
              + s sum_i w_i (rho_i Y_i^T + Y_i rho_i^T - 2 (rho_i . Y_i) I)   (d-d block only),

    ``rho_i = (r_ix, r_iy, 0)``, the curvature of ``exp([d]_x)``. ``g`` keeps its graph to the
    inputs (for the implicit backward's mixed derivatives); ``H`` is detached.
    """
    Y = X @ R.transpose(1, 2)                                                  # (B, N, 3)
    r = s[:, None, None] * (Y[..., :2] + t[:, None]) + c[:, None] - u           # (B, N, 2)
    Yx, Yy, Yz = Y.unbind(-1)
    zero = torch.zeros_like(Yx)
    # rows of J / s: d r_x / dd = (0, Yz, -Yy), d r_y / dd = (-Yz, 0, Yx)
    Jx = torch.stack([zero, Yz, -Yy], -1)
    Jy = torch.stack([-Yz, zero, Yx], -1)
    wr = w[..., None] * r                                                      # (B, N, 2)
    sb = s[:, None]
    g_d = 2 * sb * ((wr[..., :1] * Jx) + (wr[..., 1:] * Jy)).sum(1)
    g_t = 2 * sb * wr.sum(1)
    g = torch.cat([g_d, g_t], -1)
    with torch.no_grad():
        Yd, wd, rd, sd = Y.detach(), w.detach(), r.detach(), s.detach()
        Jxd, Jyd = Jx.detach(), Jy.detach()
        B = Y.shape[0]
        s2 = (sd * sd)[:, None, None]
        Jw_x, Jw_y = Jxd * wd[..., None], Jyd * wd[..., None]
        Hdd = 2 * s2 * (Jw_x.transpose(1, 2) @ Jxd + Jw_y.transpose(1, 2) @ Jyd)
        rho = torch.cat([rd, torch.zeros_like(rd[..., :1])], -1)                 # (B, N, 3)
        wrho = rho * wd[..., None]
        M = wrho.transpose(1, 2) @ Yd                                          # sum w rho Y^T (B, 3, 3)
        tr = (wrho * Yd).sum((1, 2))
        eye3 = torch.eye(3, dtype=Y.dtype, device=Y.device)
        Hdd = Hdd + sd[:, None, None] * (M + M.transpose(1, 2) - 2 * tr[:, None, None] * eye3)
        Hdt = 2 * s2 * torch.stack([(Jw_x.sum(1)), (Jw_y.sum(1))], -1)          # (B, 3, 2)
        Htt = 2 * s2 * wd.sum(1)[:, None, None] * torch.eye(2, dtype=Y.dtype, device=Y.device)
        H = torch.cat([torch.cat([Hdd, Hdt], 2), torch.cat([Hdt.transpose(1, 2), Htt], 2)], 1)
        H = H.reshape(B, 5, 5)
    return g, H


def _local_upstream(gR: Tensor, gt: Tensor, R: Tensor) -> Tensor:
    """Upstream gradient in the local chart (B, 5): ``dL/dd_k = <gR, [e_k]_x R>`` and ``dL/dt``."""
    M = gR @ R.transpose(1, 2)
    gd = torch.stack([M[:, 2, 1] - M[:, 1, 2], M[:, 0, 2] - M[:, 2, 0], M[:, 1, 0] - M[:, 0, 1]], -1)
    return torch.cat([gd, gt], -1).detach()


def _robust_solve(H: Tensor, b: Tensor, rel_eps: float) -> Tensor:
    """Solve H x = b per sample, with damping then a pseudo-inverse for singular systems."""
    H = 0.5 * (H + H.transpose(1, 2))
    x, info = torch.linalg.solve_ex(H, b[..., None])
    x = x[..., 0]
    bad = (info != 0) | ~torch.isfinite(x).all(-1)
    if bad.any():
        n = H.shape[-1]
        eye = torch.eye(n, dtype=H.dtype, device=H.device)
        scale = H.diagonal(dim1=1, dim2=2).abs().sum(-1).clamp_min(1e-12) / n
        Hd = H + (rel_eps * scale)[:, None, None] * eye
        xd, info2 = torch.linalg.solve_ex(Hd, b[..., None])
        xd = xd[..., 0]
        bad2 = bad & ((info2 != 0) | ~torch.isfinite(xd).all(-1))
        x = torch.where(bad[:, None], xd, x)
        if bad2.any():
            xp = (torch.linalg.pinv(torch.nan_to_num(H), hermitian=True) @ b[..., None])[..., 0]
            x = torch.where(bad2[:, None], xp, x)
        log.debug("TTP pose backward: %d singular Hessian(s) handled", int(bad.sum()))
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


class _PoseLayer(torch.autograd.Function):
    """LM forward, implicit-function-theorem backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, X, u, w, s, c, R0, t0, opts):  # noqa: D102
        with torch.no_grad():
            R, t, E, iters, conv = _lm_solve(X.detach(), u.detach(), w.detach(), s.detach(),
                                             c.detach(), R0.detach(), t0.detach(), opts)
        ctx.save_for_backward(X, u, w, s, c, R, t)
        ctx.opts = opts
        its = torch.tensor(iters)
        ctx.mark_non_differentiable(E, conv, its)
        return R, t, E, conv, its

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gR, gt, _gE, _gc, _gi):  # noqa: D102
        X, u, w, s, c, R, t = ctx.saved_tensors
        opts: PoseSolverOptions = ctx.opts
        B = R.shape[0]
        if gR is None:
            gR = torch.zeros_like(R)
        if gt is None:
            gt = torch.zeros_like(t)
        needs = list(ctx.needs_input_grad[:5])
        if not opts.points_grad:
            needs[0] = False
        ins = [x.detach().requires_grad_(n) for x, n in zip((X, u, w, s, c), needs)]
        with torch.enable_grad():
            g, H = _local_gradient_hessian(R.detach(), t.detach(), *ins)
            lam = _robust_solve(H.detach(), _local_upstream(gR, gt, R.detach()), opts.hessian_eps)
            wanted = [x for x, n in zip(ins, needs) if n]
            grads = torch.autograd.grad(g, wanted, grad_outputs=-lam, allow_unused=True) if wanted else ()
        out, it = [], iter(grads)
        for x, n in zip(ins, needs):
            gx = next(it) if n else None
            if gx is not None:
                gx = torch.nan_to_num(gx, nan=0.0, posinf=0.0, neginf=0.0)
            out.append(gx)
        if opts.grad_clip is not None:
            norms = torch.zeros(B, dtype=R.dtype, device=R.device)
            for gx in out:
                if gx is not None:
                    norms = norms + gx.reshape(B, -1).pow(2).sum(-1) if gx.shape[:1] == (B,) else norms
            factor = (opts.grad_clip / norms.sqrt().clamp_min(1e-12)).clamp_max(1.0)
            out = [None if gx is None else gx * factor.view(B, *([1] * (gx.dim() - 1)))
                   for gx in out]
        return (*out, None, None, None)


def solve_pose(points: Tensor, u: Tensor, w: Tensor, scale: Tensor, centre: Tensor,
               R_init: Tensor | None = None, t_init: Tensor | None = None,
               options: PoseSolverOptions | None = None) -> PoseSolution:
    """Solve the weak-perspective pose of every sample in parallel; differentiable (IFT).

    Args:
        points: (B, N, 3) or (N, 3) 3D points (template or deformed mesh vertices).
        u: (B, N, 2) target 2D points.  w: (B, N) non-negative weights.
        scale: (B,) weak-perspective scale.  centre: (B, 2) image centre (same units as ``u``).
        R_init, t_init: (B, 3, 3), (B, 2) warm start; None = :func:`affine_pose_init`.
        options: :class:`PoseSolverOptions`.
    Returns:
        :class:`PoseSolution`; gradients flow from ``R`` and ``t`` to every input tensor
        (the initial pose gets none: the minimiser does not depend on it locally).
    """
    opts = options or PoseSolverOptions()
    B = u.shape[0]
    _check("u", u, (None, None, 2))
    N = u.shape[1]
    if points.dim() == 2:
        points = points.expand(B, -1, -1)
    _check("points", points, (B, N, 3))
    _check("w", w, (B, N))
    _check("scale", scale, (B,))
    _check("centre", centre, (B, 2))
    for name, x in (("points", points), ("u", u), ("w", w), ("scale", scale), ("centre", centre)):
        _check_finite(name, x)
    if (w < 0).any():
        raise SolverInputError("TTP solver: weights 'w' must be non-negative")
    if R_init is None or t_init is None:
        with torch.no_grad():
            R0, t0 = affine_pose_init(points.detach(), u.detach(), w.detach(), scale.detach(),
                                      centre.detach())
        R_init = R0 if R_init is None else R_init
        t_init = t0 if t_init is None else t_init
    _check("R_init", R_init, (B, 3, 3))
    _check("t_init", t_init, (B, 2))
    R, t, E, conv, its = _PoseLayer.apply(points, u, w, scale, centre, R_init.detach(),
                                          t_init.detach(), opts)
    return PoseSolution(R=R, t=t, rotvec=roma.rotmat_to_rotvec(R.detach()), energy=E,
                        iterations=int(its), converged=conv)


# --------------------------------------------------------------------- deformation (eq. 7)
def deform(template: Tensor, basis: Tensor, coeffs: Tensor) -> Tensor:
    """``V = T + sum_k c_k B_k``: template (N, 3) or (B, N, 3), basis (K, N, 3), coeffs (B, K)
    -> (B, N, 3)."""
    return template + torch.einsum("bk,knd->bnd", coeffs, basis)


def solve_deformation(template: Tensor, basis: Tensor, u: Tensor, w: Tensor, R: Tensor,
                      t: Tensor, scale: Tensor, centre: Tensor, gamma: Tensor | float
                      ) -> Tensor:
    """Closed-form ridge solve of the deformation coefficients for a fixed pose (paper eq. 7).

    ``c = (Omega^T W Omega + gamma I)^{-1} Omega^T W Upsilon``, differentiable (through a
    Cholesky solve) with respect to every argument.

    Args:
        template: (N, 3) or (B, N, 3).  basis: (K, N, 3).  u: (B, N, 2).  w: (B, N).
        R: (B, 3, 3).  t: (B, 2).  scale: (B,).  centre: (B, 2).
        gamma: scalar ridge weight (> 0; clamped to 1e-8).
    Returns:
        coeffs (B, K).
    """
    B, N, _ = u.shape
    K = basis.shape[0]
    _check("basis", basis, (K, N, 3))
    resid = u - project_weak_perspective(template, R, t, scale, centre)            # (B, N, 2)
    # Omega (B, K, 2N): rows of the first two rotation rows applied to every basis vector, times s
    Om = torch.matmul(basis.reshape(1, K * N, 3), R[:, :2].transpose(1, 2))        # (B, K*N, 2)
    Om = (Om * scale[:, None, None]).reshape(B, K, 2 * N)
    W = w[..., None].expand(B, N, 2).reshape(B, 2 * N)                              # x, y pairs
    OmW = Om * W[:, None]
    gamma = torch.as_tensor(gamma, dtype=u.dtype, device=u.device).clamp_min(1e-8)
    A = OmW @ Om.transpose(1, 2) + gamma * torch.eye(K, dtype=u.dtype, device=u.device)
    b = OmW @ resid.reshape(B, 2 * N, 1)
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):   # only possible with non-finite inputs; solve_ex handles it
        c = torch.linalg.solve_ex(A, b)[0]
    else:
        c = torch.cholesky_solve(b, L)
    return torch.nan_to_num(c[..., 0])


# ----------------------------------------------------------------------------- alternation
@dataclass
class SolverIterate:
    """One round of the alternation: pose solved for the current shape, then the shape."""

    R: Tensor
    t: Tensor
    coeffs: Tensor
    verts: Tensor
    pose_energy: Tensor       # (B,) energy after the pose step (detached)
    energy: Tensor            # (B,) reprojection energy of the round's final pose + shape (detached)
    lm_iterations: int


@dataclass
class SolverOutput:
    """Output of :func:`solve_pose_and_shape` (the last round) plus every round's iterate."""

    R: Tensor
    t: Tensor
    rotvec: Tensor
    coeffs: Tensor
    verts: Tensor
    scale: Tensor
    centre: Tensor
    history: list[SolverIterate] = field(default_factory=list)


def solve_pose_and_shape(u: Tensor, w: Tensor, template: Tensor, basis: Tensor | None,
                         gamma: Tensor | float, scale: Tensor | None = None,
                         centre: Tensor | None = None, iterations: int = 4,
                         R_init: Tensor | None = None, t_init: Tensor | None = None,
                         options: PoseSolverOptions | None = None,
                         rigid: bool = False) -> SolverOutput:
    """TTP's alternation: ``iterations`` rounds of (pose by the IFT layer, shape in closed form).

    Args:
        u: (B, N, 2) regressed points.  w: (B, N) solver weights (visibility ** vis_power).
        template: (N, 3).  basis: (K, N, 3) or None (rigid).  gamma: ridge weight.
        scale, centre: (B,), (B, 2); None = :func:`camera_from_points` of ``u`` (as TTP).
        iterations: rounds (paper: 4). A rigid solve needs one round (later ones repeat it).
        R_init, t_init: warm start of the first pose solve (None = affine closed form).
        rigid: skip the deformation (the warm-up phase and the "rigid" baseline).
    Returns:
        :class:`SolverOutput` (history[k] is round k+1, for Table 2 and the notebook slider).
    """
    if iterations < 1:
        raise SolverInputError(f"TTP solver: iterations must be >= 1, got {iterations}")
    B, N, _ = u.shape
    if scale is None or centre is None:
        s, c = camera_from_points(u)
        scale = s if scale is None else scale
        centre = c if centre is None else centre
    rigid = rigid or basis is None or basis.shape[0] == 0
    K = 0 if basis is None else basis.shape[0]
    coeffs = u.new_zeros(B, K)
    verts = template.expand(B, N, 3)
    history: list[SolverIterate] = []
    R0, t0 = R_init, t_init
    sol = None
    for _ in range(iterations if not rigid else 1):
        sol = solve_pose(verts, u, w, scale, centre, R0, t0, options)
        pose_E = sol.energy
        if not rigid:
            coeffs = solve_deformation(template, basis, u, w, sol.R, sol.t, scale, centre, gamma)
            verts = deform(template, basis, coeffs)
        with torch.no_grad():
            E = reprojection_energy(verts, u, w, sol.R, sol.t, scale, centre)
        history.append(SolverIterate(R=sol.R, t=sol.t, coeffs=coeffs, verts=verts,
                                     pose_energy=pose_E, energy=E,
                                     lm_iterations=sol.iterations))
        R0, t0 = sol.R.detach(), sol.t.detach()
    if rigid and iterations > 1:     # keep one entry per requested round for tables/sliders
        history = history + [history[-1]] * (iterations - 1)
    return SolverOutput(R=sol.R, t=sol.t, rotvec=sol.rotvec, coeffs=coeffs, verts=verts,
                        scale=scale, centre=centre, history=history)


# ------------------------------------------------------------------- reference (official-like)
def solve_pose_lbfgs_reference(points: Tensor, u: Tensor, w: Tensor, scale: Tensor,
                               centre: Tensor, rotvec_init: Tensor, t_init: Tensor,
                               max_iter: int = 100, tolerance_grad: float = 1e-7,
                               tolerance_change: float = 1e-9) -> tuple[Tensor, Tensor]:
    """The official code's pose solve, one sample at a time with ``torch.optim.LBFGS``.

    Minimises the *mean* over points of ``w_i ||pi(X_i) - u_i||^2`` over (rotvec, t) with
    lr 1, strong-Wolfe line search and the official tolerances. A Python loop over samples:
    this is the speed reference for ``benchmarks/ttp_solver.py``, not a training path.

    Returns: rotvec (B, 3), t (B, 2), detached.
    """
    B = u.shape[0]
    if points.dim() == 2:
        points = points.expand(B, -1, -1)
    out_r, out_t = [], []
    for b in range(B):
        X, ub, wb = points[b:b + 1].detach(), u[b:b + 1].detach(), w[b:b + 1].detach()
        sb, cb = scale[b:b + 1].detach(), centre[b:b + 1].detach()
        theta = torch.cat([rotvec_init[b], t_init[b]]).detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)

        def closure():
            opt.zero_grad()
            R = roma.rotvec_to_rotmat(theta[:3])[None]
            r = project_weak_perspective(X, R, theta[None, 3:], sb, cb) - ub
            loss = (wb * r.pow(2).sum(-1)).mean()
            loss.backward()
            return loss

        opt.step(closure)
        out_r.append(theta.detach()[:3])
        out_t.append(theta.detach()[3:])
    return torch.stack(out_r), torch.stack(out_t)


def solve_pose_and_shape_reference(u: Tensor, w: Tensor, template: Tensor, basis: Tensor | None,
                                   gamma: float, scale: Tensor, centre: Tensor, iterations: int,
                                   rotvec_init: Tensor, t_init: Tensor) -> SolverOutput:
    """Per-sample reference of :func:`solve_pose_and_shape` (L-BFGS pose + closed-form shape)."""
    B, N, _ = u.shape
    K = 0 if basis is None else basis.shape[0]
    coeffs = u.new_zeros(B, K)
    verts = template.expand(B, N, 3)
    r0, t0 = rotvec_init, t_init
    with torch.no_grad():
        for _ in range(iterations):
            r0, t0 = solve_pose_lbfgs_reference(verts, u, w, scale, centre, r0, t0)
            R = roma.rotvec_to_rotmat(r0)
            if K:
                coeffs = torch.cat([solve_deformation(template, basis, u[b:b + 1], w[b:b + 1],
                                                      R[b:b + 1], t0[b:b + 1], scale[b:b + 1],
                                                      centre[b:b + 1], gamma)
                                    for b in range(B)])
                verts = deform(template, basis, coeffs)
    return SolverOutput(R=R, t=t0, rotvec=r0, coeffs=coeffs, verts=verts, scale=scale,
                        centre=centre)


@torch.no_grad()
def trace_solver(u: Tensor, w: Tensor, template: Tensor, basis: Tensor | None, gamma: Tensor | float,
                 scale: Tensor | None = None, centre: Tensor | None = None, iterations: int = 4,
                 options: PoseSolverOptions | None = None, rigid: bool = False) -> list[dict]:
    """Every intermediate state of :func:`solve_pose_and_shape` (for the notebook's slider).

    Returns a list of stages, each ``{"round", "step", "kind" ("init" | "pose" | "shape"), "R", "t",
    "coeffs", "verts", "energy"}`` (batched, detached): the initial pose, every Levenberg-Marquardt
    iteration of every pose solve, and every closed-form shape update.
    """
    from dataclasses import replace

    B, N, _ = u.shape
    if scale is None or centre is None:
        scale, centre = camera_from_points(u)
    rigid = rigid or basis is None or basis.shape[0] == 0
    K = 0 if basis is None else basis.shape[0]
    coeffs = u.new_zeros(B, K)
    verts = template.expand(B, N, 3)
    stages: list[dict] = []
    R0, t0 = affine_pose_init(verts, u, w, scale, centre)
    stages.append({"round": 0, "step": 0, "kind": "init", "R": R0, "t": t0, "coeffs": coeffs, "verts": verts,
                   "energy": reprojection_energy(verts, u, w, R0, t0, scale, centre)})
    state = {"round": 1}

    def cb(it, R, t, E):
        stages.append({"round": state["round"], "step": int(it), "kind": "pose", "R": R.clone(), "t": t.clone(),
                       "coeffs": coeffs, "verts": verts, "energy": E.clone()})

    opts = replace(options or PoseSolverOptions(), callback=cb)
    for k in range(1, (1 if rigid else iterations) + 1):
        state["round"] = k
        sol = solve_pose(verts, u, w, scale, centre, R0, t0, opts)
        if not rigid:
            coeffs = solve_deformation(template, basis, u, w, sol.R, sol.t, scale, centre, gamma)
            verts = deform(template, basis, coeffs)
            stages.append({"round": k, "step": 0, "kind": "shape", "R": sol.R, "t": sol.t, "coeffs": coeffs,
                           "verts": verts, "energy": reprojection_energy(verts, u, w, sol.R, sol.t, scale, centre)})
        R0, t0 = sol.R, sol.t
    return stages
