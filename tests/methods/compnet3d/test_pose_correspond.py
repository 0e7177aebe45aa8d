"""Render-and-compare recovers a known pose from rendered features; correspondences and visibility."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.geometry import cuboid_mesh, pose_to_rt, project_points_pinhole, rotation_error
from workbench.methods.compnet3d.correspond import compute_correspondences, rasterize
from workbench.methods.compnet3d.pose import (RenderAndCompare, fragment_loss, fragments_to_local, pixel_similarities,
                                              pose_grid)


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _mesh(size=(1.0, 0.6, 0.4), n=100):
    m = cuboid_mesh(size, n)
    return m.verts_packed().float(), m.faces_packed()


def _rendered_feature_map(v, f, C, bg, pose, size, focal, principal, g):
    """Feature map whose covered pixels are the interpolated vertex features of the mesh at ``pose``."""
    h, w = size
    R, T = pose_to_rt(*[torch.tensor([x]) for x in pose])
    fr = rasterize([v], [f], R, T, torch.tensor([focal]), torch.tensor([principal]), size)
    vidx, bary = fragments_to_local(fr, f, torch.tensor([0]), torch.tensor([0]))
    feat = (C[vidx.clamp_min(0)] * bary[..., None]).sum(-2)
    fg = vidx[..., 0] >= 0
    feat = torch.where(fg[..., None], feat, bg[torch.randint(0, bg.shape[0], (1, h * w), generator=g)])
    return F.normalize(feat, dim=-1).transpose(1, 2).reshape(1, -1, h, w), R, T


def test_pose_grid_is_nemo_grid():
    a, e, th = pose_grid()
    assert a.shape == e.shape == th.shape == (144,)
    assert torch.allclose(a.unique(), torch.arange(12) * (2 * math.pi / 12))
    assert torch.allclose(e.unique(), torch.linspace(-math.pi / 6, math.pi / 3, 4))
    assert torch.allclose(th.unique(), torch.tensor([-math.pi / 6, 0.0, math.pi / 6]))
    a1, e1, th1 = pose_grid(4, 1, 1)
    assert e1.unique().tolist() == pytest.approx([math.pi / 12]) and th1.unique().tolist() == [0.0]


def test_fragment_loss_matches_explicit_rendering():
    g = torch.Generator().manual_seed(0)
    v, f = _mesh(n=60)
    K, D, h, w = v.shape[0], 8, 12, 12
    C = F.normalize(torch.randn(K, D, generator=g), dim=-1)
    bg = F.normalize(torch.randn(4, D, generator=g), dim=-1)
    fmap = F.normalize(torch.randn(1, D, h, w, generator=g), dim=1)
    R, T = pose_to_rt(torch.tensor([0.4]), torch.tensor([0.3]), torch.tensor([0.1]), torch.tensor([3.0]))
    fr = rasterize([v], [f], R, T, torch.tensor([18.0]), torch.tensor([[6.0, 6.0]]), (h, w))
    vidx, bary = fragments_to_local(fr, f, torch.tensor([0]), torch.tensor([0]))
    G, bgmax = pixel_similarities(fmap, C[None], bg)
    loss = fragment_loss(G, bgmax, vidx[:, None], bary[:, None])[0, 0]
    # explicit: render interpolated vertex features, dot with the map on covered pixels, bg max elsewhere
    p2f = fr.pix_to_face[0, ..., 0]
    rendered = (C[f[p2f.clamp_min(0)]] * fr.bary_coords[0, :, :, 0, :, None]).sum(-2)     # (h, w, D)
    feats = fmap[0].permute(1, 2, 0)
    obj = (rendered * feats).sum(-1)
    bgm = (feats @ bg.T).amax(-1)
    ref = -torch.where(p2f >= 0, obj, bgm).mean()
    assert 20 < int((p2f >= 0).sum()) < h * w
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)


def test_render_and_compare_recovers_known_pose():
    g = torch.Generator().manual_seed(0)
    v, f = _mesh()
    K, D, size, focal, principal, dist = v.shape[0], 32, (24, 24), 36.0, (12.0, 12.0), 3.0
    C = F.normalize(torch.randn(K, D, generator=g), dim=-1)
    bg = F.normalize(torch.randn(8, D, generator=g), dim=-1)
    rc = RenderAndCompare(v[None], torch.tensor([K]), [f], pose_grid(), dist)
    for pose in [(0.7, 0.35, 0.08, dist), (3.9, -0.2, -0.3, dist)]:          # off-grid poses
        fmap, R, T = _rendered_feature_map(v, f, C, bg, pose, size, focal, principal, g)
        G, bgmax = pixel_similarities(fmap, C[None], bg)
        res = rc.estimate(G, bgmax, torch.tensor([0]), torch.tensor([focal]), torch.tensor([principal]), size,
                          steps=30)
        grid_only = rc.estimate(G, bgmax, torch.tensor([0]), torch.tensor([focal]), torch.tensor([principal]),
                                size, steps=0)
        err = math.degrees(float(rotation_error(res.R, R)))
        err0 = math.degrees(float(rotation_error(grid_only.R, R)))
        assert err0 < 25                      # the grid finds the right basin (spacing 30 deg)
        assert err < 6 and err < err0         # refinement moves towards the true pose
        assert res.loss.item() <= grid_only.loss.item() + 1e-6


def test_correspondences_visibility_agrees_with_convexity():
    """For a convex cuboid a vertex is visible iff one of its faces faces the camera."""
    v, f = _mesh((1.0, 0.7, 0.5), 200)
    K = v.shape[0]
    labels = torch.zeros(3, dtype=torch.long)
    a = torch.tensor([0.3, 2.0, 4.4]); e = torch.tensor([0.2, 0.6, -0.1]); th = torch.tensor([0.0, 0.2, -0.1])
    R, T = pose_to_rt(a, e, th, torch.full((3,), 3.0))
    focal = torch.full((3,), 120.0)
    principal = torch.full((3, 2), 64.0)
    corr = compute_correspondences(v[None], torch.tensor([K]), [f], labels, R, T, focal, principal,
                                   (128, 128), (16, 16))
    # projection and cells
    uv = project_points_pinhole(v[None] @ R + T[:, None], focal, principal)
    assert torch.allclose(corr.uv, uv)
    assert torch.equal(corr.cell, (torch.floor(uv[..., 1] / 8) * 16 + torch.floor(uv[..., 0] / 8)).long())
    # analytic visibility of a convex solid: a point is visible iff a face containing it faces the
    # camera (cos > 0). Grazing faces (|cos| small) project to a pixel or two and are ambiguous at
    # any raster resolution, so compare on the clear cases only.
    fv = v[f]
    n = F.normalize(torch.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1), dim=-1)
    cam = -(T[:, None] @ R.transpose(1, 2))[:, 0]                        # (3, 3) camera centres
    same = torch.cdist(v, v) < 1e-6                                      # duplicated box-edge vertices
    for b in range(3):
        cos = (F.normalize(cam[b] - fv[:, 0], dim=-1) * n).sum(-1)       # (F,)
        cmax = torch.full((K,), -2.0).scatter_reduce(0, f.reshape(-1), cos.repeat_interleave(3), "amax")
        cmax = torch.where(same, cmax[None], torch.full((K, K), -2.0)).amax(1)
        clear_vis, clear_hid = cmax > 0.25, cmax < -0.1
        assert clear_vis.sum() > 0.2 * K and clear_hid.sum() > 0.2 * K
        assert corr.visible[b][clear_vis].float().mean() > 0.97
        assert (~corr.visible[b][clear_hid]).float().mean() > 0.97
    assert corr.fg_cells.shape == (3, 256) and corr.fg_cells.any(1).all()
    ex = corr.exclusion(10.0)
    assert ex.shape == (3, K, K) and ex.diagonal(dim1=1, dim2=2).all()
    assert torch.equal(ex, torch.cdist(uv, uv) < 10.0)


def test_grid_search_shifted_principal_equals_direct_rendering():
    """A principal-point change translates the image: the cached centred grid, shifted by whole
    pixels, must score every pose exactly like rendering with the image's own principal point."""
    g = torch.Generator().manual_seed(3)
    v, f = _mesh(n=60)
    K, D, h, w = v.shape[0], 8, 12, 12
    C = F.normalize(torch.randn(K, D, generator=g), dim=-1)
    bg = F.normalize(torch.randn(4, D, generator=g), dim=-1)
    fmap = F.normalize(torch.randn(1, D, h, w, generator=g), dim=1)
    grid = pose_grid(4, 2, 1)
    rc = RenderAndCompare(v[None], torch.tensor([K]), [f], grid, 3.0)
    G, bgmax = pixel_similarities(fmap, C[None], bg)
    principal = torch.tensor([[8.0, 5.0]])                                 # shift (+2, -1) from the centre
    got = rc.grid_search(G, bgmax, torch.tensor([0]), torch.tensor([15.0]), principal, (h, w))[0]
    P = grid[0].shape[0]
    R, T = pose_to_rt(*grid, torch.full((P,), 3.0))
    fr = rasterize([v] * P, [f] * P, R, T, torch.full((P,), 15.0), principal.expand(P, 2), (h, w))
    faces_packed = torch.cat([f + i * K for i in range(P)])
    vidx, bary = fragments_to_local(fr, faces_packed, torch.arange(P) * K, torch.arange(P))
    ref = fragment_loss(G, bgmax, vidx[None], bary[None])[0]
    assert torch.allclose(got, ref, atol=1e-6)


def test_augmentation_keeps_projections_on_the_object():
    """Zoom + shift the image; the cuboid rendered with the adjusted intrinsics covers the warped mask."""
    from workbench.methods.compnet3d.train import augment_batch

    v, f = _mesh((1.0, 0.7, 0.5), 100)
    B, H, W = 4, 64, 64
    R, T = pose_to_rt(torch.tensor([0.3, 1.2, 2.5, 4.0]), torch.tensor([0.2, 0.4, 0.1, 0.6]),
                      torch.tensor([0.0, 0.1, -0.1, 0.05]), torch.full((B,), 3.5))
    focal = torch.full((B,), 140.0)
    principal = torch.tensor([[31.0, 33.0], [34.0, 30.0], [32.0, 32.0], [30.0, 35.0]])
    mask = (rasterize([v] * B, [f] * B, R, T, focal, principal, (H, W)).pix_to_face[..., 0] >= 0).float()[:, None]
    batch = {"image": mask.expand(B, 3, H, W).clone(), "mask": mask, "focal": focal, "principal": principal}
    torch.manual_seed(0)
    out = augment_batch(batch, shift=0.15, scale=(0.8, 1.2))
    assert not torch.allclose(out["principal"], principal) and not torch.allclose(out["focal"], focal)
    again = (rasterize([v] * B, [f] * B, R, T, out["focal"], out["principal"], (H, W)).pix_to_face[..., 0] >= 0)
    warped = out["mask"][:, 0] > 0.5
    inter = (again & warped).sum((1, 2)).float()
    union = (again | warped).sum((1, 2)).float()
    assert (inter / union).min() > 0.9
    assert torch.allclose(out["image"][:, 0], out["image"][:, 1])


def test_backface_culling_gives_the_same_fragments_on_cuboids():
    """The category cuboids are closed and convex: culling back faces (used by the correspondences
    and render-and-compare for speed) keeps the nearest face of every pixel, hence the same fragments."""
    g = torch.Generator().manual_seed(3)
    v, f = _mesh(size=(1.0, 0.5, 0.7), n=80)
    N = 24
    a = torch.rand(N, generator=g) * 2 * math.pi
    e = (torch.rand(N, generator=g) - 0.5) * 2.6
    th = (torch.rand(N, generator=g) - 0.5) * 1.0
    R, T = pose_to_rt(a, e, th, 2.0 + 2 * torch.rand(N, generator=g))
    focal = 40 + 30 * torch.rand(N, generator=g)
    principal = 12 + 8 * torch.rand(N, 2, generator=g)
    ref = rasterize([v] * N, [f] * N, R, T, focal, principal, (32, 32))
    cull = rasterize([v] * N, [f] * N, R, T, focal, principal, (32, 32), cull_backfaces=True)
    assert (ref.pix_to_face >= 0).float().mean() > 0.1
    assert torch.equal(ref.pix_to_face, cull.pix_to_face)
    assert torch.equal(ref.zbuf, cull.zbuf) and torch.equal(ref.bary_coords, cull.bary_coords)


def test_training_augmentation_combines_geometry_and_photometry():
    """``augment`` applies the zoom/shift only when enabled and the photometric jitter only when a
    strength is set; the jitter leaves the cameras alone."""
    from workbench.methods.compnet3d.config import AugmentSection
    from workbench.methods.compnet3d.train import augment

    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 16, 16, generator=g), "focal": torch.full((4,), 30.0),
             "principal": torch.full((4, 2), 8.0)}
    off = augment(batch, AugmentSection(enabled=False))
    assert off["image"] is batch["image"]
    colour = augment(batch, AugmentSection(enabled=False, channel_shuffle=1.0))
    assert torch.allclose(colour["image"].sort(1).values, batch["image"].sort(1).values)
    assert not torch.equal(colour["image"], batch["image"]) and colour["focal"] is batch["focal"]
    torch.manual_seed(1)
    both = augment(batch, AugmentSection(grayscale=1.0))
    assert not torch.allclose(both["principal"], batch["principal"])
    assert torch.allclose(both["image"][:, 0], both["image"][:, 2])
