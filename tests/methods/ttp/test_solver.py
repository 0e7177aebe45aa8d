"""TTP's pose/deformation solver: implicit gradients, closed form, recovery, guards.

All checks run in float64 on tiny problems (a second or two in total).
"""
from __future__ import annotations

import pytest
import roma
import torch

from workbench.core.errors import ShapeError, WorkbenchError
from workbench.methods.ttp.solver import (PoseSolverOptions, SolverInputError, affine_pose_init,
                                          camera_from_points, deform, project_weak_perspective,
                                          reprojection_energy, solve_deformation, solve_pose,
                                          solve_pose_and_shape, solve_pose_lbfgs_reference)

D = torch.float64
TIGHT = PoseSolverOptions(tol_step=1e-13, max_iters=100)


def _problem(B=3, N=20, noise=0.05, seed=0, K=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, 3, generator=g, dtype=D)
    R = roma.rotvec_to_rotmat(torch.randn(B, 3, generator=g, dtype=D))
    t = 0.1 * torch.randn(B, 2, generator=g, dtype=D)
    s = 0.5 + torch.rand(B, generator=g, dtype=D)
    c = 0.1 * torch.randn(B, 2, generator=g, dtype=D)
    u = project_weak_perspective(X, R, t, s, c) + noise * torch.randn(B, N, 2, generator=g, dtype=D)
    w = 0.1 + torch.rand(B, N, generator=g, dtype=D)
    return X, u, w, s, c, R, t


def _pose_out(X, u, w, s, c):
    sol = solve_pose(X, u, w, s, c, options=TIGHT)
    return torch.cat([sol.R.flatten(1), sol.t], 1)


def test_camera_from_points_is_weighted_mean_and_pooled_std():
    u = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]], dtype=D)
    s, c = camera_from_points(u)
    assert torch.allclose(c, torch.tensor([[1.0, 1.0]], dtype=D))
    assert torch.allclose(s, torch.tensor([1.0], dtype=D), atol=1e-9)   # every |u - c|^2 = 2
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=D)
    s, c = camera_from_points(u, w)
    assert torch.allclose(c, u[:, 0]) and s.item() < 1e-5


def test_projection_matches_explicit_formula():
    X, u, w, s, c, R, t = _problem(B=2, N=5, noise=0.0)
    ref = torch.stack([torch.stack([s[b] * ((R[b] @ X[b, i])[:2] + t[b]) + c[b]
                                    for i in range(5)]) for b in range(2)])
    assert torch.allclose(project_weak_perspective(X, R, t, s, c), ref)


def test_recovers_exact_pose_from_exact_correspondences():
    X, u, w, s, c, R, t = _problem(B=5, N=15, noise=0.0, seed=1)
    # from the identity (far from the truth) ...
    sol = solve_pose(X, u, w, s, c, torch.eye(3, dtype=D).expand(5, 3, 3), torch.zeros(5, 2, dtype=D),
                     options=TIGHT)
    err = roma.rotmat_geodesic_distance(sol.R, R)
    # ... some samples may land in the weak-perspective mirror minimum; the affine start does not
    sol2 = solve_pose(X, u, w, s, c, options=TIGHT)
    assert roma.rotmat_geodesic_distance(sol2.R, R).max() < 1e-9
    assert (sol2.t - t).abs().max() < 1e-9
    assert sol2.energy.max() < 1e-16 and bool(sol2.converged.all())
    assert (err < 1e-9).sum() >= 3
    assert torch.allclose(roma.rotvec_to_rotmat(sol2.rotvec), sol2.R, atol=1e-12)


def test_affine_init_is_exact_for_exact_correspondences():
    X, u, w, s, c, R, t = _problem(B=4, N=12, noise=0.0, seed=2)
    R0, t0 = affine_pose_init(X, u, w, s, c)
    assert roma.rotmat_geodesic_distance(R0, R).max() < 1e-6
    assert (t0 - t).abs().max() < 1e-6


def test_batched_solve_equals_per_sample_solves():
    X, u, w, s, c, R, t = _problem(B=4, N=10, seed=3)
    sol = solve_pose(X, u, w, s, c, options=TIGHT)
    for b in range(4):
        one = solve_pose(X[b:b + 1], u[b:b + 1], w[b:b + 1], s[b:b + 1], c[b:b + 1], options=TIGHT)
        assert torch.allclose(one.R[0], sol.R[b], atol=1e-10)
        assert torch.allclose(one.t[0], sol.t[b], atol=1e-10)


def test_solution_is_a_stationary_point_and_beats_perturbations():
    X, u, w, s, c, _, _ = _problem(B=3, N=25, noise=0.1, seed=4)
    sol = solve_pose(X, u, w, s, c, options=TIGHT)
    E0 = reprojection_energy(X, u, w, sol.R, sol.t, s, c)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        dR = roma.rotvec_to_rotmat(1e-3 * torch.randn(3, 3, generator=g, dtype=D))
        dt = 1e-3 * torch.randn(3, 2, generator=g, dtype=D)
        assert (reprojection_energy(X, u, w, dR @ sol.R, sol.t + dt, s, c) >= E0 - 1e-12).all()


def test_implicit_gradients_match_finite_differences():
    X, u, w, s, c, _, _ = _problem(B=2, N=6, noise=0.05, seed=5)
    ins = [x.clone().requires_grad_(True) for x in (X, u, w, s, c)]
    # every input at once along random directions (gradcheck's fast mode: v^T J e vs central FD)
    assert torch.autograd.gradcheck(_pose_out, ins, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)
    # and the full Jacobian with respect to the regressed points
    assert torch.autograd.gradcheck(lambda uu: _pose_out(X, uu, w, s, c), (ins[1],), eps=1e-6,
                                    atol=1e-6, rtol=1e-5)


def _unrolled_newton(X, u, w, s, c, theta0, steps=12):
    """Independent reference: Newton's method on the global (rotvec, t) chart, unrolled."""
    theta = theta0
    for _ in range(steps):
        def energy(th):
            R = roma.rotvec_to_rotmat(th[:, :3])
            return reprojection_energy(X, u, w, R, th[:, 3:], s, c).sum()
        g = torch.autograd.grad(energy(theta), theta, create_graph=True)[0]
        H = torch.stack([torch.autograd.grad(g[:, k].sum(), theta, create_graph=True)[0]
                         for k in range(5)], 1)
        theta = theta - torch.linalg.solve(H, g[..., None])[..., 0]
    return theta


def test_implicit_gradients_match_unrolled_solver():
    X, u, w, s, c, R, t = _problem(B=3, N=12, noise=0.05, seed=6)
    gu = torch.randn(3, 3, 3, dtype=D, generator=torch.Generator().manual_seed(1))
    gt = torch.randn(3, 2, dtype=D, generator=torch.Generator().manual_seed(2))
    ins = [x.clone().requires_grad_(True) for x in (X, u, w, s, c)]
    sol = solve_pose(*ins, options=TIGHT)
    ift = torch.autograd.grad((sol.R * gu).sum() + (sol.t * gt).sum(), ins)
    ins2 = [x.clone().requires_grad_(True) for x in (X, u, w, s, c)]
    theta0 = torch.cat([sol.rotvec, sol.t.detach()], 1) + 1e-2       # start near, not at, the optimum
    theta = _unrolled_newton(*ins2, theta0.detach().requires_grad_(True))
    Ru = roma.rotvec_to_rotmat(theta[:, :3])
    assert torch.allclose(Ru, sol.R, atol=1e-10)
    unrolled = torch.autograd.grad((Ru * gu).sum() + (theta[:, 3:] * gt).sum(), ins2)
    for a, b in zip(ift, unrolled):
        assert torch.allclose(a, b, atol=1e-8, rtol=1e-6)


def test_points_grad_flag_and_gradient_clip():
    X, u, w, s, c, _, _ = _problem(B=2, N=10, seed=7)
    Xr, ur = X.clone().requires_grad_(True), u.clone().requires_grad_(True)
    sol = solve_pose(Xr, ur, w, s, c, options=PoseSolverOptions(points_grad=False))
    gX, gu = torch.autograd.grad(sol.R.sum() + sol.t.sum(), (Xr, ur), allow_unused=True)
    assert gX is None and gu.abs().sum() > 0
    sol = solve_pose(Xr, ur, w, s, c, options=PoseSolverOptions(grad_clip=1e-3))
    gX, gu = torch.autograd.grad(1e3 * (sol.R.sum() + sol.t.sum()), (Xr, ur))
    norms = (gX.flatten(1).pow(2).sum(1) + gu.flatten(1).pow(2).sum(1)).sqrt()
    assert torch.allclose(norms, torch.full_like(norms, 1e-3), rtol=1e-6)


def test_guards_zero_weights_degenerate_points_and_nan():
    X, u, w, s, c, _, _ = _problem(B=3, N=10, seed=8)
    w = w.clone()
    w[1] = 0.0                                    # sample 1: nothing visible
    X = X.clone()
    X[2] = X[2, :1]                               # sample 2: all points coincide (rotation free)
    R0 = torch.eye(3, dtype=D).expand(3, 3, 3)
    t0 = torch.zeros(3, 2, dtype=D)
    ins = [x.clone().requires_grad_(True) for x in (X, u, w, s, c)]
    sol = solve_pose(*ins, R0, t0)
    assert torch.isfinite(sol.R).all() and torch.isfinite(sol.t).all()
    assert torch.allclose(sol.R[1], R0[1])        # kept its initial pose
    grads = torch.autograd.grad(sol.R.sum() + sol.t.sum(), ins)
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[1][1].abs().max() == 0           # no signal from an all-invisible sample
    bad = u.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(SolverInputError, match="'u'.*non-finite"):
        solve_pose(X, bad, w, s, c)
    with pytest.raises(ShapeError, match="'w'"):
        solve_pose(X, u, w[:, :5], s, c)
    with pytest.raises(WorkbenchError, match="non-negative"):
        solve_pose(X, u, -w, s, c)


def test_closed_form_deformation_matches_least_squares():
    B, N, K = 3, 30, 5
    X, u, w, s, c, R, t = _problem(B=B, N=N, noise=0.05, seed=9)
    g = torch.Generator().manual_seed(3)
    T = X[0]
    basis = 0.1 * torch.randn(K, N, 3, generator=g, dtype=D)
    gamma = 0.37
    coeffs = solve_deformation(T, basis, u, w, R, t, s, c, gamma)
    for b in range(B):
        # stacked least squares: [sqrt(w) Omega; sqrt(gamma) I] c = [sqrt(w) Upsilon; 0]
        cols = [(s[b] * (basis[k] @ R[b].T)[:, :2]).reshape(-1) for k in range(K)]
        Om = torch.stack(cols, 1)                                         # (2N, K)
        ups = (u[b] - s[b] * ((T @ R[b].T)[:, :2] + t[b]) - c[b]).reshape(-1)
        sw = w[b].repeat_interleave(2).sqrt()
        A = torch.cat([sw[:, None] * Om, gamma ** 0.5 * torch.eye(K, dtype=D)])
        rhs = torch.cat([sw * ups, torch.zeros(K, dtype=D)])
        ref = torch.linalg.lstsq(A, rhs[:, None]).solution[:, 0]
        assert torch.allclose(coeffs[b], ref, atol=1e-10)
    # and it is differentiable in every argument (incl. the basis and gamma)
    ins = [x.clone().requires_grad_(True) for x in (basis, u, w, R, t, s, c)]
    gam = torch.tensor(gamma, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda bs, uu, ww, RR, tt, ss, cc, gg: solve_deformation(T, bs, uu, ww, RR, tt, ss, cc, gg),
        (*ins, gam), eps=1e-6, atol=1e-6)


def test_alternation_recovers_known_pose_and_deformation():
    B, N, K = 4, 60, 4
    g = torch.Generator().manual_seed(11)
    T = torch.randn(N, 3, generator=g, dtype=D)
    basis = 0.1 * torch.randn(K, N, 3, generator=g, dtype=D)
    c_true = torch.randn(B, K, generator=g, dtype=D)
    R = roma.rotvec_to_rotmat(torch.randn(B, 3, generator=g, dtype=D))
    t = 0.1 * torch.randn(B, 2, generator=g, dtype=D)
    s = 0.5 + torch.rand(B, generator=g, dtype=D)
    cen = 0.1 * torch.randn(B, 2, generator=g, dtype=D)
    u = project_weak_perspective(deform(T, basis, c_true), R, t, s, cen)
    w = 0.2 + torch.rand(B, N, generator=g, dtype=D)
    out = solve_pose_and_shape(u, w, T, basis, 1e-10, s, cen, iterations=40, options=TIGHT)
    assert roma.rotmat_geodesic_distance(out.R, R).max() < 1e-6
    assert (out.coeffs - c_true).abs().max() < 1e-5
    assert (out.t - t).abs().max() < 1e-6
    # block-coordinate descent: the objective E + gamma |c|^2 never goes up, and 4 rounds beat 1
    gamma = 0.5
    out = solve_pose_and_shape(u, w, T, basis, gamma, s, cen, iterations=6, options=TIGHT)
    J = torch.stack([h.energy + gamma * h.coeffs.pow(2).sum(-1) for h in out.history])
    assert (J[1:] <= J[:-1] + 1e-12).all()
    assert (J[3] < J[0]).all()
    # the rigid variant never deforms
    rig = solve_pose_and_shape(u, w, T, basis, gamma, s, cen, iterations=4, rigid=True)
    assert rig.coeffs.abs().max() == 0 and len(rig.history) == 4


def test_alternation_is_differentiable_end_to_end():
    B, N, K = 2, 12, 3
    g = torch.Generator().manual_seed(12)
    T = torch.randn(N, 3, generator=g, dtype=D)
    X, u, w, s, c, R, t = _problem(B=B, N=N, seed=13)
    basis = (0.1 * torch.randn(K, N, 3, generator=g, dtype=D)).requires_grad_(True)
    log_gamma = torch.zeros((), dtype=D, requires_grad=True)
    uu = u.clone().requires_grad_(True)
    ww = w.clone().requires_grad_(True)

    def f(uu, ww, basis, log_gamma):
        out = solve_pose_and_shape(uu, ww, T, basis, log_gamma.exp(), iterations=2, options=TIGHT)
        return torch.cat([out.R.flatten(1), out.t, out.verts.flatten(1)], 1)

    assert torch.autograd.gradcheck(f, (uu, ww, basis, log_gamma), eps=1e-6, atol=1e-5, rtol=1e-4,
                                    fast_mode=True)


def test_lbfgs_reference_reaches_the_same_minimum():
    X, u, w, s, c, R, t = _problem(B=3, N=20, noise=0.02, seed=14)
    sol = solve_pose(X, u, w, s, c, options=TIGHT)
    rv, tv = solve_pose_lbfgs_reference(X, u, w, s, c, sol.rotvec + 0.05, sol.t.detach())
    E_ref = reprojection_energy(X, u, w, roma.rotvec_to_rotmat(rv), tv, s, c)
    assert (sol.energy <= E_ref + 1e-9).all()
    assert torch.allclose(E_ref, sol.energy, rtol=1e-4)


def test_closed_form_local_hessian_matches_autograd():
    """The implicit backward's gradient and Hessian in the local chart (closed form) equal autograd's
    derivatives of the second-order local energy at d = 0, away from the minimum too."""
    from workbench.methods.ttp.solver import _local_energy, _local_gradient_hessian

    X, u, w, s, c, R, t = _problem(B=3, N=15, noise=0.3, seed=4)
    g, H = _local_gradient_hessian(R, t, X, u, w, s, c)
    for b in range(3):
        def E(theta):
            return _local_energy(theta[None, :3], theta[None, 3:], R[b:b + 1], X[b:b + 1], u[b:b + 1],
                                 w[b:b + 1], s[b:b + 1], c[b:b + 1])[0].sum()

        theta0 = torch.cat([torch.zeros(3, dtype=D), t[b]])
        gr = torch.autograd.functional.jacobian(E, theta0)
        Hr = torch.autograd.functional.hessian(E, theta0)
        torch.testing.assert_close(g[b], gr, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(H[b], Hr, rtol=1e-10, atol=1e-10)
