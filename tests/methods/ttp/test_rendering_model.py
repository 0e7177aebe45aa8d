"""Screen-space rendering conventions, the template and the model's forward pass."""
from __future__ import annotations

import torch

from workbench.methods.ttp.config import ModelSection
from workbench.methods.ttp.model import SIDE_VIEW, TTPModel
from workbench.methods.ttp.rendering import (render_all, render_silhouette, render_texture,
                                             zbuffer_visibility)
from workbench.methods.ttp.template import build_template, mirror_permutation, sphere_template

QUAD_FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _quad(x0, y0, x1, y1, z):
    xy = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return xy, torch.full((4,), float(z))


def test_rendering_orientation_and_coverage_match_pixel_centres():
    S = 16
    # the right half, top quarter of the image (x right, y down)
    xy, z = _quad(0.0, -1.0, 1.0, -0.5, 1.0)
    r = render_all(xy[None], z[None], QUAD_FACES, S, sigma_px=0.5)
    cov = r.covered[0, 0]
    rows, cols = torch.nonzero(cov, as_tuple=True)
    assert rows.min() == 0 and rows.max() == 3 and cols.min() == 8 and cols.max() == 15
    assert int(cov.sum()) == 4 * 8
    sil = r.silhouette[0, 0]
    assert (sil[cov > 0] == 1).all() and sil[8:, :6].max() < 1e-3
    assert 0.05 < sil[4, 10] < 0.95            # the soft fringe just below the quad


def test_texture_resynthesis_is_the_identity_when_uv_equals_position():
    S = 12
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, S, S, generator=g)
    xy, z = _quad(-0.9, -0.8, 0.7, 0.9, 0.5)
    rgb, cov = render_texture(xy[None], z[None], QUAD_FACES, xy[None], img)
    inside = cov[0, 0] > 0
    assert inside.sum() > 50
    assert torch.allclose(rgb[0][:, inside], img[0][:, inside], atol=1e-5)
    assert (rgb[0][:, ~inside] == 0).all()


def test_zbuffer_visibility_hides_the_back_quad():
    S = 16
    # (off-grid coordinates: no pixel centre lies exactly on the quads' diagonals)
    front_xy, front_z = _quad(-0.47, -0.51, 0.53, 0.49, 1.0)
    back_xy, back_z = _quad(-0.23, -0.27, 0.21, 0.26, 2.0)      # fully behind the front one
    side_xy, side_z = _quad(0.6, 0.6, 0.9, 0.9, 3.0)            # far but unoccluded
    xy = torch.cat([front_xy, back_xy, side_xy])[None]
    z = torch.cat([front_z, back_z, side_z])[None]
    faces = torch.cat([QUAD_FACES, QUAD_FACES + 4, QUAD_FACES + 8])
    vis = zbuffer_visibility(xy, z, faces, S)
    assert vis[0, :4].tolist() == [1, 1, 1, 1]
    assert vis[0, 4:8].tolist() == [0, 0, 0, 0]
    assert vis[0, 8:].tolist() == [1, 1, 1, 1]
    assert torch.equal(render_all(xy, z, faces, S).visibility, vis)


def test_silhouette_gradients_move_the_boundary_towards_the_mask():
    S = 16
    xy, z = _quad(-0.5, -0.5, 0.5, 0.5, 1.0)
    xy = xy[None].clone().requires_grad_(True)
    target = torch.zeros(1, 1, S, S)
    target[..., 2:14, 2:14] = 1.0                                  # larger than the quad
    loss = (render_silhouette(xy, z[None], QUAD_FACES, S, 0.5, 8) - target).abs().mean()
    loss.backward()
    # descending the gradient grows the quad: corners move outwards
    step = -xy.grad[0]
    assert (step * xy.detach()[0].sign()).sum(-1).min() > 0


def test_templates_are_normalised_symmetric_and_carry_keypoints():
    T = build_template("bird", level=1, n_instances=3)
    v = T.verts
    assert v.shape == (42, 3) and T.faces.shape == (80, 3)
    assert torch.allclose(v.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(v.pow(2).sum(1).mean() / 3, torch.tensor(1.0), atol=1e-4)
    assert torch.allclose(v[T.symmetry] * torch.tensor([-1.0, 1.0, 1.0]), v, atol=1e-4)
    assert torch.equal(T.symmetry[T.symmetry], torch.arange(42))
    assert len(T.keypoint_names) == 15 and T.keypoint_ids.shape == (15,)
    assert int(T.keypoint_ids.max()) < 42
    # the beak is in front (+Z) and the tail behind
    names = list(T.keypoint_names)
    assert v[T.keypoint_ids[names.index("beak")], 2] > v[T.keypoint_ids[names.index("tail")], 2]
    canon = T.to_canonical(v)
    assert (canon.max(0).values - canon.min(0).values).max() <= 1.0 + 1e-4   # inside the unit box
    assert torch.equal(mirror_permutation(sphere_template(1).verts), sphere_template(1).symmetry)


def _small_model(K=3, **kw):
    cfg = ModelSection(backbone="small_cnn", num_basis=K, feat_channels=8, feat_grid=2, solver_iterations=3,
                       **kw)
    torch.manual_seed(0)
    return TTPModel(sphere_template(1), cfg)


def test_model_forward_shapes_iterations_and_initial_layout():
    m = _small_model()
    x = torch.rand(2, 3, 32, 32)
    out = m(x, rigid=False)
    N = 42
    assert out.u.shape == (2, N, 2) and out.vis.shape == (2, N) and out.verts.shape == (2, N, 3)
    assert out.R.shape == (2, 3, 3) and out.coeffs.shape == (2, 3) and len(out.history) == 3
    assert (out.u.abs() < 1).all() and ((out.vis > 0) & (out.vis < 1)).all()
    # initial layout: the template seen from the side, scaled into the image
    side = m.shape.template @ SIDE_VIEW.T
    expect = 0.6 * side[:, :2] / side[:, :2].abs().max()
    assert torch.allclose(out.u[0], expect, atol=0.05)
    k1 = out.at_iteration(1)
    assert torch.equal(k1.verts, out.history[0].verts) and len(k1.history) == 1
    rigid = m(x, rigid=True)
    assert rigid.coeffs.abs().max() == 0 and torch.allclose(rigid.verts[0], m.shape.template)
    texture = TTPModel.sample_texture(x, out.u)
    assert texture.shape == (2, N, 3)


def test_gradients_reach_every_learned_part():
    m = _small_model()
    x = torch.rand(2, 3, 32, 32)
    out = m(x, rigid=False)
    (out.proj.pow(2).sum() + out.verts.pow(2).sum() + out.vis.sum()).backward()
    named = dict(m.named_parameters())
    for name in ("shape.basis", "log_gamma", "head.fc.weight", "encoder.reduce.0.weight"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    assert all(p.grad is not None for n, p in named.items() if n.startswith("encoder.trunk"))


def test_occupancy_mean_shape_template_is_inside_the_hull_mean():
    hull = build_template("bird", level=1, n_instances=2)
    occ = build_template("bird", level=1, n_instances=2, method="occupancy")
    assert occ.verts.shape == hull.verts.shape
    assert torch.allclose(occ.verts[occ.symmetry] * torch.tensor([-1.0, 1.0, 1.0]), occ.verts, atol=1e-4)
    # in canonical units every occupancy radius is at most the hull's (the hull is outermost)
    r_occ = occ.to_canonical(occ.verts).norm(dim=1)
    r_hull = hull.to_canonical(hull.verts).norm(dim=1)
    assert (r_occ <= r_hull + 0.05).float().mean() > 0.9


def test_grouped_batch_norm_pass_equals_one_pass_per_batch():
    """regress_groups: outputs, gradients and BN running statistics of one regress call per batch."""
    import copy

    tmpl = sphere_template(level=1)
    torch.manual_seed(0)
    m1 = TTPModel(tmpl, ModelSection(backbone="small_cnn", feat_channels=8, feat_grid=2, num_basis=2)).double()
    m2 = copy.deepcopy(m1)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64)
    b = 0.5 * torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    ua, va = m1.regress(a)
    ub, vb = m1.regress(b)
    (ua2, va2), (ub2, vb2) = m2.regress_groups([a, b])
    for x, y in ((ua, ua2), (va, va2), (ub, ub2), (vb, vb2)):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    loss1 = ua.sum() + (vb * ub[..., 0]).sum()
    loss2 = ua2.sum() + (vb2 * ub2[..., 0]).sum()
    loss1.backward()
    loss2.backward()
    for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        if p1.grad is not None:
            torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-8, atol=1e-12, msg=n)
    for (n, b1), b2 in zip(m1.named_buffers(), m2.buffers()):
        torch.testing.assert_close(b1, b2, rtol=1e-10, atol=1e-12, msg=n)
    # a single pooled pass would mix the statistics: the grouping must matter here
    m3 = copy.deepcopy(m1)
    u3, _ = m3.regress(torch.cat([a, b]))
    assert (u3[:4] - m1.regress(a)[0]).abs().max() > 1e-6
