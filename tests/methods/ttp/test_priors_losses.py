"""Shape priors (cotangent weights, Laplacians, ARAP) and the point/mask losses on analytic cases."""
from __future__ import annotations

import math

import roma
import torch

from workbench.methods.ttp.augment import transform_points
from workbench.methods.ttp.losses import (TextureLoss, chamfer_coverage, chamfer_inside, cycle_loss,
                                          edge_length_loss, equivariance_loss, keypoint_loss, mask_l1,
                                          mask_points, mesh_edges, mirror_consistency, rotation_angle)
from workbench.methods.ttp.priors import (arap_energy, cot_laplacian_loss, cot_weights,
                                          uniform_laplacian_loss)
from workbench.methods.ttp.template import sphere_template


def _grid(n=4):
    """A planar n x n vertex grid in z = 0, squares split along one diagonal."""
    ys, xs = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
    v = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(n * n)], -1)
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            f += [[a, b, d], [a, d, c]]
    return v, torch.tensor(f)


def test_cot_weights_of_right_isoceles_triangles():
    v, f = _grid(3)
    edges, w = cot_weights(v, f)
    lengths = (v[edges[:, 0]] - v[edges[:, 1]]).norm(dim=-1)
    diag = (lengths - math.sqrt(2)).abs() < 1e-6
    assert torch.allclose(w[diag], torch.zeros(int(diag.sum())), atol=1e-6)     # cot 90 = 0
    interior_axis = (~diag) & (w > 0.75)
    assert torch.allclose(w[interior_axis], torch.ones(int(interior_axis.sum())), atol=1e-6)  # 2 x cot 45 / 2
    assert torch.allclose(w[(~diag) & (w <= 0.75)], torch.full((int(((~diag) & (w <= 0.75)).sum()),), 0.5))


def test_laplacians_vanish_on_a_plane_interior_and_not_on_a_bump():
    v, f = _grid(5)
    interior = torch.tensor([6, 7, 8, 11, 12, 13, 16, 17, 18])
    bumped = v.clone()
    bumped[12, 2] = 1.0
    # uniform Laplacian of the flat grid interior is zero; the bump makes the mean positive
    from workbench.methods.ttp.priors import _edges, _neighbour_average
    acc, tot = _neighbour_average(v[None], _edges(f), torch.ones(1, _edges(f).shape[0]))
    lap = acc / tot[..., None] - v[None]
    assert lap[0, interior].abs().max() < 1e-6
    assert uniform_laplacian_loss(bumped[None], f) > uniform_laplacian_loss(v[None], f)
    assert cot_laplacian_loss(bumped[None], f) > cot_laplacian_loss(v[None], f)


def test_arap_is_zero_for_rigid_motions_and_grows_with_stretch():
    T = sphere_template(2)
    v, f = T.verts.double(), T.faces
    g = torch.Generator().manual_seed(0)
    R = roma.rotvec_to_rotmat(torch.randn(4, 3, generator=g, dtype=torch.float64))
    moved = v[None] @ R.transpose(1, 2) + torch.randn(4, 1, 3, generator=g, dtype=torch.float64)
    assert arap_energy(moved, v, f) < 1e-12
    e1 = arap_energy((v * torch.tensor([1.2, 1.0, 1.0], dtype=torch.float64))[None], v, f)
    e2 = arap_energy((v * torch.tensor([1.5, 1.0, 1.0], dtype=torch.float64))[None], v, f)
    assert 0 < e1 < e2


def test_arap_gradient_matches_finite_differences():
    T = sphere_template(1)
    v, f = T.verts.double(), T.faces
    g = torch.Generator().manual_seed(1)
    X = (v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64))[None].requires_grad_(True)
    grad = torch.autograd.grad(arap_energy(X, v, f), X)[0]
    for _ in range(3):
        d = 1e-6 * torch.randn(X.shape, generator=g, dtype=torch.float64)
        fd = (arap_energy(X + d, v, f) - arap_energy(X - d, v, f)) / 2
        assert torch.allclose(fd, (grad * d).sum(), rtol=1e-4, atol=1e-14)


def _square_mask(S=16, lo=4, hi=12):
    m = torch.zeros(1, 1, S, S)
    m[..., lo:hi, lo:hi] = 1.0
    return m


def test_chamfer_inside_is_zero_in_the_mask_and_the_distance_outside():
    from workbench.methods.ttp.data import distance_transform

    S = 16
    m = _square_mask(S)
    dt = torch.from_numpy(distance_transform(m[0, 0].numpy()))[None, None] * (2.0 / S)
    inside = torch.tensor([[[0.0, 0.0], [-0.3, 0.3]]])
    assert chamfer_inside(inside, dt) == 0
    # the centre of column 14 is 2.5 px right of the centre of column 11 (the last mask column)... 3 px
    u = torch.tensor([[[(2 * 14 + 1) / S - 1, 0.0]]])
    assert torch.allclose(chamfer_inside(u, dt), torch.tensor(3 * 2.0 / S), atol=1e-5)


def test_coverage_is_zero_when_every_mask_pixel_has_a_point():
    S = 16
    m = _square_mask(S)
    pts, valid = mask_points(m, 200, torch.Generator().manual_seed(0))
    assert valid.all() and (pts.abs() <= 1).all()
    assert (m[0, 0, ((pts[0, :, 1] + 1) * S / 2 - 0.5).round().long(),
              ((pts[0, :, 0] + 1) * S / 2 - 0.5).round().long()] == 1).all()
    ys, xs = torch.nonzero(m[0, 0], as_tuple=True)
    all_px = torch.stack([(2 * xs + 1) / S - 1, (2 * ys + 1) / S - 1], -1).float()[None]
    assert chamfer_coverage(all_px, pts) < 1e-10
    assert chamfer_coverage(all_px[:, :5], pts) > 0.01


def test_point_losses_on_exact_cases():
    g = torch.Generator().manual_seed(2)
    u = torch.rand(3, 10, 2, generator=g) - 0.5
    assert cycle_loss(u, u) == 0 and edge_length_loss(u, u + 0.3, mesh_edges(torch.tensor([[0, 1, 2]]))) < 1e-12
    assert torch.allclose(cycle_loss(u, u + torch.tensor([0.3, 0.4])), torch.tensor(0.25))
    M = torch.eye(3).repeat(3, 1, 1)
    M[:, 0, 2] = 0.1
    M[:, :2, :2] *= 0.8
    assert equivariance_loss(transform_points(M, u), u, M) < 1e-12
    assert equivariance_loss(u, u, M) > 1e-3
    kp = torch.rand(2, 4, 2, generator=g)
    vis = torch.tensor([[True, False, True, True], [False, False, True, False]])
    off = kp.clone()
    off[~vis] += 5.0                                           # invisible keypoints are ignored
    assert keypoint_loss(off, kp, vis) == 0
    assert torch.allclose(mask_l1(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)), torch.tensor(1.0))


def test_mirror_consistency_is_zero_for_an_exact_flip_pair():
    from types import SimpleNamespace

    from workbench.methods.ttp.augment import flip_pose

    g = torch.Generator().manual_seed(3)
    R = roma.rotvec_to_rotmat(torch.randn(4, 3, generator=g))
    t, c, s = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g), torch.rand(4, generator=g)
    a = SimpleNamespace(R=R, t=t, scale=s, centre=c)
    Rf, tf = flip_pose(R, t)
    b = SimpleNamespace(R=Rf, t=tf, scale=s, centre=c * torch.tensor([-1.0, 1.0]))
    assert mirror_consistency(a, b) < 1e-2          # the angle term is clamped at 1 - 1e-6 (~1.4e-3 rad)
    assert mirror_consistency(a, a) > 0.1
    assert torch.allclose(rotation_angle(R, R @ roma.rotvec_to_rotmat(torch.tensor([[0.0, 0.5, 0.0]]))),
                          torch.full((4,), 0.5), atol=1e-4)


def test_texture_loss_ssim_fallback():
    loss = TextureLoss("ssim")
    a = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    assert loss.kind == "ssim"
    assert loss(a, a) < 1e-6 and loss(a, torch.zeros_like(a)) > 0.1
    assert TextureLoss("l1")(a, a + 0.1) > 0.09


def test_coverage_value_and_gradient_equal_the_distance_matrix_form():
    g = torch.Generator().manual_seed(3)
    u = torch.rand(2, 30, 2, generator=g, dtype=torch.float64).mul(2).sub(1).requires_grad_()
    pts = torch.rand(2, 50, 2, generator=g, dtype=torch.float64).mul(2).sub(1)
    valid = torch.tensor([True, False])
    ref = (torch.cdist(pts, u).pow(2).amin(-1) * valid[:, None]).mean()
    val = chamfer_coverage(u, pts, valid)
    torch.testing.assert_close(val, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.autograd.grad(val, u)[0], torch.autograd.grad(ref, u)[0], rtol=1e-10, atol=1e-12)
