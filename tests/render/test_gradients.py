"""Gradients of the rasterizer and the blends w.r.t. vertex positions (finite differences, gradcheck)
and equality of the packed (sparse) and dense blending paths."""
import math

import pytest
import torch

from workbench.geometry import FoVPerspectiveCameras, Meshes, ico_sphere, pose_to_rt
from workbench.render import (BlendParams, LayeredShader, MeshRasterizer, MeshRenderer, RasterizationSettings,
                              SoftSilhouetteShader, TexturesVertex, hard_rgb_blend, layered_rgb_blend,
                              rasterize_meshes, sigmoid_alpha_blend, softmax_rgb_blend)
from workbench.render.fragments import Fragments

SIGMA = 1e-3
BP = BlendParams(sigma=SIGMA, gamma=1e-2, background_color=(0.2, 0.3, 0.4))


def _scene():
    B = 2
    s = ico_sphere(1)
    verts = (s.verts_padded().expand(B, -1, -1) * 0.6).clone().double()
    faces = s.faces_padded().expand(B, -1, -1)
    R, T = pose_to_rt(torch.tensor([0.3, 1.2]).double(), torch.tensor([0.2, -0.1]).double(), torch.zeros(2).double(),
                      torch.full((B,), 2.732).double())
    cams = FoVPerspectiveCameras(R=R, T=T, fov=30)
    rs = RasterizationSettings(image_size=(24, 20), blur_radius=math.log(1 / 1e-4 - 1) * SIGMA, faces_per_pixel=12,
                               perspective_correct=False)
    col = torch.rand(B, verts.shape[1], 3, generator=torch.Generator().manual_seed(0)).double()
    w = torch.randn(B, 24, 20, 4, generator=torch.Generator().manual_seed(1)).double()
    return verts, faces, cams, rs, col, w


def _render(verts, faces, cams, rs, col, mode, dense_only):
    m = Meshes(verts, faces, textures=TexturesVertex(col))
    fr = MeshRasterizer(cams, rs)(m)
    if dense_only:
        fr = Fragments(*fr)  # drop the packed view: forces the dense implementation
    texels = m.sample_textures(fr)
    fn = {"layered": layered_rgb_blend, "softmax": softmax_rgb_blend, "silhouette": sigmoid_alpha_blend,
          "hard": hard_rgb_blend}[mode]
    return fn(texels, fr, BP)


@pytest.mark.parametrize("mode", ["layered", "softmax", "silhouette", "hard"])
def test_packed_and_dense_blending_agree_in_value_and_gradient(mode):
    verts, faces, cams, rs, col, w = _scene()
    outs, grads = [], []
    for dense_only in (True, False):
        v = verts.clone().requires_grad_(True)
        out = _render(v, faces, cams, rs, col, mode, dense_only)
        (out * w).sum().backward()
        outs.append(out.detach())
        grads.append(v.grad)
    assert torch.allclose(outs[0], outs[1], atol=1e-10)
    assert torch.allclose(grads[0], grads[1], atol=1e-8)
    if mode != "hard":
        assert grads[0].abs().max() > 1.0  # soft blends do move the vertices


def _fd_check(loss_fn, verts, coords, eps=1e-6, rtol=1e-4):
    v = verts.clone().requires_grad_(True)
    loss_fn(v).backward()
    for (b, i, c) in coords:
        e = torch.zeros_like(verts)
        e[b, i, c] = eps
        fd = (loss_fn(verts + e) - loss_fn(verts - e)) / (2 * eps)
        assert torch.allclose(v.grad[b, i, c], fd, rtol=rtol, atol=1e-6), (b, i, c, float(v.grad[b, i, c]), float(fd))
    return v.grad


def test_finite_differences_soft_silhouette_loss():
    verts, faces, cams, rs, _, _ = _scene()
    target = torch.rand(2, 24, 20, generator=torch.Generator().manual_seed(2)).double()
    renderer = MeshRenderer(MeshRasterizer(cams, rs), SoftSilhouetteShader(BP))

    def loss(v):
        return ((renderer(Meshes(v, faces))[..., 3] - target) ** 2).sum()

    g = _fd_check(loss, verts, [(0, 3, 0), (0, 10, 1), (1, 20, 2), (1, 5, 0), (0, 30, 2)])
    assert (g.abs() > 1e-3).sum() > 20


def test_finite_differences_textured_layered_loss():
    verts, faces, cams, rs, col, w = _scene()
    renderer = MeshRenderer(MeshRasterizer(cams, rs), LayeredShader(BP))

    def loss(v):
        return (renderer(Meshes(v, faces, textures=TexturesVertex(col))) * w).sum()

    _fd_check(loss, verts, [(0, 3, 0), (0, 10, 1), (1, 20, 2), (1, 5, 0), (1, 33, 1)])


def test_finite_differences_textured_softmax_loss():
    verts, faces, cams, rs, col, w = _scene()

    def loss(v):
        return (_render(v, faces, cams, rs, col, "softmax", False) * w).sum()

    _fd_check(loss, verts, [(0, 7, 0), (1, 12, 2), (1, 40, 1)])


@pytest.mark.parametrize("cfg", [dict(blur_radius=0.0, faces_per_pixel=1, perspective_correct=True),
                                 dict(blur_radius=0.03, faces_per_pixel=2, perspective_correct=True,
                                      clip_barycentric_coords=True),
                                 dict(blur_radius=0.03, faces_per_pixel=2, perspective_correct=False)])
def test_gradcheck_fragments_wrt_vertices(cfg):
    # two intersecting triangles whose edges stay >= 0.024 NDC away from every pixel centre, so the
    # finite differences never cross a coverage discontinuity
    tri = torch.tensor([[-0.45, -0.48, 1.3], [0.5, -0.49, 1.7], [0.0, 0.51, 1.1],
                        [-0.18, 0.14, 1.5], [0.66, 0.28, 1.2], [0.07, -0.59, 1.4]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])

    def f(v):
        fr = rasterize_meshes(Meshes([v], [faces]), image_size=(7, 6), **cfg)
        return fr.zbuf, fr.bary_coords, fr.dists

    assert torch.autograd.gradcheck(f, (tri.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_layered_renderer_skipping_hidden_slots_matches_full_fragments():
    # MeshRenderer + LayeredShader rasterizes with until_opaque=True (hidden slots never sorted)
    verts, faces, cams, rs, col, w = _scene()
    outs, grads = [], []
    for full in (True, False):
        v = verts.clone().requires_grad_(True)
        m = Meshes(v, faces, textures=TexturesVertex(col))
        if full:
            fr = MeshRasterizer(cams, rs)(m)
            out = layered_rgb_blend(m.sample_textures(fr), fr, BP)
        else:
            out = MeshRenderer(MeshRasterizer(cams, rs), LayeredShader(BP))(m)
        (out * w).sum().backward()
        outs.append(out.detach())
        grads.append(v.grad)
    assert torch.allclose(outs[0], outs[1], atol=1e-10)
    assert torch.allclose(grads[0], grads[1], atol=1e-8)
    part = MeshRasterizer(cams, rs)(Meshes(verts, faces), dense=False, until_opaque=True)
    fullp = MeshRasterizer(cams, rs)(Meshes(verts, faces), dense=False)
    assert 0 < len(part) < 0.8 * len(fullp)
