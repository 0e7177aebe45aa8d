"""The compiled CPU kernels (numba) against the vectorised torch path they replace on CPU.

Selection must be bit-identical (same slots, ranks, faces and inside flags, same dense fragments);
differentiable values identical in the forward pass and equal up to rounding in the backward pass.
"""
import math
import multiprocessing as mp

import pytest
import torch

from workbench.geometry import FoVPerspectiveCameras, Meshes, ico_sphere, pose_to_rt
from workbench.render import (BlendParams, LayeredShader, MeshRasterizer, MeshRenderer, RasterizationSettings,
                              TexturesVertex)
from workbench.render import cpu_kernels
from workbench.render.rasterize_torch import rasterize_packed

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not importable")


@pytest.fixture
def kernels():
    """Run a callable under both kernel settings; restores 'auto' afterwards."""
    def both(fn):
        out = {}
        for mode in ("torch", "auto"):
            cpu_kernels.set_cpu_kernels(mode)
            out[mode] = fn()
        return out["torch"], out["auto"]
    yield both
    cpu_kernels.set_cpu_kernels("auto")


def _scene(N: int, seed: int = 0):
    """N perturbed, partly holed spheres of different face counts in NDC x, y and view z."""
    g = torch.Generator().manual_seed(seed)
    s = ico_sphere(3)
    V, Fc = s.verts_packed(), s.faces_packed()
    vs, fs, f2m, off = [], [], [], 0
    for n in range(N):
        v = V * (0.5 + 0.3 * torch.rand(1, generator=g)) + 0.2 * torch.randn(1, 3, generator=g) * torch.tensor([1, 1, 0.])
        v = v + 0.05 * torch.randn(v.shape, generator=g)
        v[:, 2] += 2.5
        v = torch.cat([v[:, :2] / v[:, 2:] * 2.0, v[:, 2:]], 1)
        f = Fc[torch.rand(Fc.shape[0], generator=g) < 0.9]
        vs.append(v)
        fs.append(f + off)
        f2m.append(torch.full((f.shape[0],), n))
        off += v.shape[0]
    return torch.cat(vs), torch.cat(fs), torch.cat(f2m)


CASES = [  # N, (H, W), K, blur, perspective_correct, clip, cull, until_opaque
    (3, (48, 64), 25, 9.2e-4, False, False, False, True),
    (2, (64, 40), 10, 1e-3, True, True, False, False),
    (2, (32, 32), 4, 0.0, True, False, True, False),
    (4, (64, 64), 25, 9.2e-4, False, False, False, False),
    (2, (64, 64), 50, 2e-3, False, True, False, True),
]


@pytest.mark.parametrize("case", CASES)
def test_selection_and_terms_match_the_torch_path(kernels, case):
    N, hw, K, blur, persp, clip, cull, uo = case
    v, f, f2m = _scene(N)

    def run():
        vv = v.clone().requires_grad_(True)
        p = rasterize_packed(vv, f, f2m, N, hw, blur, K, persp, clip, cull, dense=False, until_opaque=uo)
        bary, pz, sd = p.terms()
        loss = (bary * torch.arange(1.0, 4.0)).sum() + (pz ** 2).sum() + 100 * sd.sum()
        return p, bary.detach(), pz.detach(), sd.detach(), torch.autograd.grad(loss, vv)[0]

    (pt, *rt), (pc, *rc) = kernels(run)
    assert pt.pix.numel() > 500
    for name in ("pix", "rank", "face", "inside"):
        assert torch.equal(getattr(pt, name), getattr(pc, name)), name
    for a, b in zip(rt[:3], rc[:3]):  # forward values: same float32 operations
        assert torch.equal(a, b)
    g_t, g_c = rt[3], rc[3]
    assert torch.allclose(g_t, g_c, rtol=1e-4, atol=1e-6 * float(g_t.abs().max()))


@pytest.mark.parametrize("blur", [0.0, 1e-3])
def test_hard_fragments_are_identical(kernels, blur):
    v, f, f2m = _scene(3, seed=1)
    ft, fc = kernels(lambda: rasterize_packed(v, f, f2m, 3, (50, 70), blur, 1))
    assert int((ft.pix_to_face >= 0).sum()) > 1000
    for name in ("pix_to_face", "zbuf", "bary_coords", "dists"):
        assert torch.equal(getattr(ft, name), getattr(fc, name)), name


def test_chunks_and_threads_do_not_change_the_result(kernels):
    v, f, f2m = _scene(5, seed=2)
    kw = dict(blur_radius=1e-3, faces_per_pixel=8, dense=False)
    ref = rasterize_packed(v, f, f2m, 5, (40, 40), **kw)
    small = rasterize_packed(v, f, f2m, 5, (40, 40), max_pairs=40 * 40 * 8, **kw)  # one mesh per chunk
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = rasterize_packed(v, f, f2m, 5, (40, 40), **kw)
    finally:
        torch.set_num_threads(n)
    for other in (small, serial):
        for name in ("pix", "rank", "face", "inside"):
            assert torch.equal(getattr(ref, name), getattr(other, name)), name


def _layered_step(B=4, S=32, sigma=1e-4, background=None):
    s = ico_sphere(2)
    g = torch.Generator().manual_seed(0)
    verts = (s.verts_padded().expand(B, -1, -1) * 0.6).clone().requires_grad_(True)
    col = torch.rand(B, verts.shape[1], 3, generator=g).requires_grad_(True)
    R, T = pose_to_rt(torch.rand(B, generator=g) * 6.28, torch.rand(B, generator=g) * 0.6 - 0.3, torch.zeros(B),
                      torch.full((B,), 2.732))
    rs = RasterizationSettings(image_size=S, blur_radius=math.log(1 / 1e-4 - 1) * max(sigma, 1e-4),
                               faces_per_pixel=25)
    bg = background if background is not None else (1.0, 1.0, 1.0)
    renderer = MeshRenderer(MeshRasterizer(FoVPerspectiveCameras(R=R, T=T, fov=30), rs),
                            LayeredShader(BlendParams(sigma=sigma, background_color=bg)))
    target = torch.rand(B, S, S, 4, generator=g)

    def step():
        img = renderer(Meshes(verts, s.faces_padded().expand(B, -1, -1), textures=TexturesVertex(col)))
        inputs = [verts, col] + ([background] if isinstance(background, torch.Tensor) else [])
        grads = torch.autograd.grad(((img - target) ** 2).mean(), inputs)
        return (img.detach(),) + grads
    return step


@pytest.mark.parametrize("sigma", [1e-4, 0.0])
def test_layered_rendering_matches_the_torch_path(kernels, sigma):
    (img_t, *g_t), (img_c, *g_c) = kernels(_layered_step(sigma=sigma))
    assert float(img_t[..., 3].mean()) > 0.1
    assert torch.allclose(img_t, img_c, atol=1e-6)
    for a, b in zip(g_t, g_c):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()))


def test_layered_background_image_gradient_matches(kernels):
    bg = torch.rand(4, 32, 32, 3, requires_grad=True)
    (img_t, *g_t), (img_c, *g_c) = kernels(_layered_step(background=bg))
    assert torch.allclose(img_t, img_c, atol=1e-6)
    for a, b in zip(g_t, g_c):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()))


def test_layered_blend_gradient_by_finite_differences():
    """The compiled compositing alone (float64 inputs, so central differences are exact enough)."""
    g = torch.Generator().manual_seed(3)
    pix = torch.tensor([0, 0, 0, 2, 2, 3])
    d = torch.tensor([3e-5, 1e-4, -2e-5, 5e-5, 2e-4, 1e-5], dtype=torch.float64)
    colors = torch.rand(6, 2, generator=g, dtype=torch.float64)
    w_rgb, w_t = torch.rand(4, 2, generator=g, dtype=torch.float64), torch.rand(4, generator=g, dtype=torch.float64)

    def loss(d_, c_):
        rgb, t = cpu_kernels.LayeredBlendCPUFn.apply(pix, d_, c_, 1e-4, 4)
        return (rgb * w_rgb).sum() + (t * w_t).sum()

    dd, cc = d.clone().requires_grad_(True), colors.clone().requires_grad_(True)
    gd, gc = torch.autograd.grad(loss(dd, cc), (dd, cc))
    for i in range(6):
        if d[i] <= 0:
            assert gd[i] == 0
            continue
        h = 1e-9
        e = torch.zeros(6, dtype=torch.float64)
        e[i] = h
        num = (loss(d + e, colors) - loss(d - e, colors)) / (2 * h)
        assert abs(float(num) - float(gd[i])) <= 1e-5 * abs(float(gd[i])) + 1e-6, i
    for i in range(6):
        e = torch.zeros(6, 2, dtype=torch.float64)
        e[i, 1] = 1e-2
        num = (loss(d, colors + e) - loss(d, colors - e)) / 2e-2
        assert abs(float(num) - float(gc[i, 1])) < 1e-9
    # the pixel with a slot inside its face (d <= 0) leaves nothing for the background
    assert float(cpu_kernels.LayeredBlendCPUFn.apply(pix, d, colors, 1e-4, 4)[1][0]) == 0.0


def test_mode_switch_and_errors():
    cpu_kernels.set_cpu_kernels("torch")
    try:
        assert not cpu_kernels.use_cpu_kernels(torch.zeros(1))
    finally:
        cpu_kernels.set_cpu_kernels("auto")
    assert cpu_kernels.use_cpu_kernels(torch.zeros(1))
    assert not cpu_kernels.use_cpu_kernels(torch.zeros(1, dtype=torch.float64))  # float64 stays on torch
    with pytest.raises(ValueError, match="auto"):
        cpu_kernels.set_cpu_kernels("fast")


def _child_render(q):
    torch.set_num_threads(1)  # as data-loader workers do (torch's own OpenMP pool does not survive a fork)
    v, f, f2m = _scene(2, seed=4)
    n = int(rasterize_packed(v, f, f2m, 2, (32, 32), 1e-3, 4, dense=False).pix.numel())
    seen = []
    cpu_kernels._parallel(seen.append, [(1,), (2,)])  # the kernels' pool was reset at the fork
    q.put((n, sorted(seen)))


def test_forked_child_can_render_after_the_parent_used_the_thread_pool():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        v, f, f2m = _scene(2, seed=4)
        expected = int(rasterize_packed(v, f, f2m, 2, (32, 32), 1e-3, 4, dense=False).pix.numel())
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        proc = ctx.Process(target=_child_render, args=(q,))
        proc.start()
        got = q.get(timeout=120)
        proc.join(timeout=60)
    finally:
        torch.set_num_threads(n)
    assert got == (expected, [1, 2]) and proc.exitcode == 0


def test_vertex_feature_interpolation_matches_the_torch_path(kernels):
    from workbench.render.interp import interpolate_vertex_attributes

    v, f, f2m = _scene(2, seed=5)
    g = torch.Generator().manual_seed(5)
    feats0 = torch.randn(v.shape[0], 16, generator=g)

    def run():
        vv, feats = v.clone().requires_grad_(True), feats0.clone().requires_grad_(True)
        fr = rasterize_packed(vv, f, f2m, 2, (40, 48), 0.0, 1)
        out = interpolate_vertex_attributes(fr.pix_to_face, fr.bary_coords, f, feats)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(6))
        return (out.detach(),) + torch.autograd.grad((out * w).sum(), (vv, feats))

    (o_t, gv_t, gf_t), (o_c, gv_c, gf_c) = kernels(run)
    assert float(o_t.abs().sum()) > 0
    assert torch.equal(o_t, o_c)
    assert torch.allclose(gf_t, gf_c, atol=1e-5)
    assert torch.allclose(gv_t, gv_c, rtol=1e-4, atol=1e-5 * float(gv_t.abs().max()))
