"""UNICORN building blocks against hand computations (no dataset needed)."""
from __future__ import annotations

import math

import pytest
import torch

from workbench.core.errors import ConfigError
from workbench.methods.unicorn.bank import MemoryBank, relative_angle
from workbench.methods.unicorn.config import UnicornConfig
from workbench.methods.unicorn.losses import MeshRegularizer, face_adjacency, mean_texture, uniformity_prior
from workbench.methods.unicorn.model import (UnicornModel, ellipsoid_template, progressive_mask, render_layered,
                                             spherical_uvs)
from workbench.methods.unicorn.shape_metrics import chamfer_scores, normalize_unit_cube, surface_points
from workbench.methods.unicorn.train import UnicornObjective, build_bank


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _roty(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


# ------------------------------------------------------------------------- layered compositing
def _square(x0, x1, y0, y1, z):
    v = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_layered_compositing_matches_hand_computation():
    """Front square (red) over a larger back square (blue) over a background image, fov 30.

    Inside the front square: red. Between the squares: blue. Outside both: the background.
    One pixel column left of the front square's left edge, at squared NDC distance d2:
    occupancy o = exp(-d2 / sigma), colour o red + (1 - o) blue (front-to-back compositing).
    """
    S, sigma, tan = 32, 1e-3, math.tan(math.radians(15.0))
    # view space: +X left, +Y up, +Z forward; front square at z=2 spans ndc x in [-0.4, 0.4]
    z1, z2 = 2.0, 3.0
    v1, f1 = _square(-0.4 * z1 * tan, 0.4 * z1 * tan, -0.4 * z1 * tan, 0.4 * z1 * tan, z1)
    v2, f2 = _square(-0.8 * z2 * tan, 0.8 * z2 * tan, -0.8 * z2 * tan, 0.8 * z2 * tan, z2)
    verts = torch.cat([v1, v2])[None]
    faces = torch.cat([f1, f2 + 4])
    uvs = torch.tensor([[0.25, 0.5]] * 4 + [[0.75, 0.5]] * 4)
    tex = torch.zeros(1, 3, 4, 4)
    tex[:, 0, :, :2] = 1.0          # u < 0.5: red
    tex[:, 2, :, 2:] = 1.0          # u > 0.5: blue
    bg = torch.rand(1, 3, S, S)
    rgb, alpha = render_layered(verts, faces, uvs, tex, torch.eye(3)[None], torch.zeros(1, 3), S, bg, sigma=sigma,
                                faces_per_pixel=4, fov=30.0)
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    c = S // 2
    assert torch.allclose(rgb[0, :, c, c], red, atol=1e-5)
    assert torch.allclose(rgb[0, :, 1, 1], bg[0, :, 1, 1], atol=1e-6)      # outside both (ndc ~0.94)
    assert float(alpha[0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-6)
    # pixel column j has ndc x = 1 - (2 j + 1) / S (pytorch3d: +X left); the front square's edge
    # at ndc x = +0.4 lies between columns; take the first column outside it (x > 0.4)
    xs = 1 - (2 * torch.arange(S) + 1) / S
    j = int(torch.nonzero(xs > 0.4).flatten().max())
    d2 = float(xs[j] - 0.4) ** 2
    o = math.exp(-d2 / sigma)
    assert 0.01 < o < 0.99                                                   # a genuinely soft pixel
    expected = o * red + (1 - o) * blue
    assert torch.allclose(rgb[0, :, c, j], expected, atol=2e-3)
    j_blue = int(torch.nonzero(xs > 0.6).flatten().max())                    # only the back square
    assert torch.allclose(rgb[0, :, c, j_blue], blue, atol=1e-5)


# --------------------------------------------------------------------------- progressive masking
def test_progressive_mask_and_stage_sizes():
    z = torch.randn(3, 8)
    m = progressive_mask(z, 3)
    assert torch.equal(m[:, :3], z[:, :3]) and torch.count_nonzero(m[:, 3:]) == 0
    assert torch.count_nonzero(progressive_mask(z, 0)) == 0
    cfg = UnicornConfig.for_profile("smoke")
    model = UnicornModel(cfg)
    ms = cfg.train.milestones_stage                                          # [2, 4, 6]
    for step, stage in ((0, 0), (ms[0] - 1, 0), (ms[0], 1), (ms[1], 2), (ms[2], 3), (10 ** 6, 3)):
        assert cfg.stage_at(step) == stage
        assert model.sizes_at(step) == (cfg.model.shape_sizes[stage], cfg.model.texture_sizes[stage],
                                         cfg.model.background_sizes[stage])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        # make the (zero-initialised) code heads non-trivial so the masking is visible
        for head in (model.shape_head, model.texture_head):
            torch.nn.init.normal_(head[-1].weight)
            torch.nn.init.normal_(head[-1].bias)
        out = model(x, step=ms[0])                                           # stage 1: sizes 2 / 4
        ns, nt, _ = model.sizes_at(ms[0])
        assert torch.count_nonzero(out.z_sh[:, ns:]) == 0 and torch.count_nonzero(out.z_sh[:, :ns]) > 0
        assert torch.count_nonzero(out.z_tx[:, nt:]) == 0 and torch.count_nonzero(out.z_tx[:, :nt]) > 0
        out0 = model(x, step=0)
        assert torch.count_nonzero(out0.z_sh) == 0                           # shape size 0 in stage 0
    flat = UnicornModel(UnicornConfig.for_profile("smoke", ["model.progressive=false"]))
    assert flat.sizes_at(0) == (cfg.model.shape_sizes[-1], cfg.model.texture_sizes[-1],
                                cfg.model.background_sizes[-1])


def test_curriculum_switches_and_candidates():
    cfg = UnicornConfig.for_profile("smoke", ["train.translation_from=5", "train.deformation_from=6",
                                              "train.scale_from=7"])
    model = UnicornModel(cfg)
    with torch.no_grad():
        for mod in (model.scale_head, model.field.mlp, *model.pose.trans):
            torch.nn.init.normal_(list(mod.parameters())[-2], std=0.5)
        x = torch.rand(2, 3, 32, 32)
        early = model(x, step=4)
        late = model(x, step=8)
    assert torch.count_nonzero(early.trans) == 0 and torch.count_nonzero(late.trans) > 0
    assert torch.all(early.scale == 1) and not torch.all(late.scale == 1)
    assert torch.allclose(early.verts, model.template.expand_as(early.verts))
    assert (late.trans.abs() <= torch.tensor(cfg.model.translation_range) + 1e-6).all()
    K = cfg.model.n_candidates
    # zero-initialised rotation heads: candidate k sits at azimuth 2 pi k / K, mid elevation, roll 0
    assert torch.allclose(early.angles[0, :, 0], torch.arange(K) * 2 * math.pi / K, atol=1e-6)
    assert torch.allclose(early.proba.sum(1), torch.ones(2))
    R, T = early.best_rt()
    assert R.shape == (2, 3, 3) and torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(T[:, 2], torch.full((2,), cfg.model.distance), atol=1e-5)


# -------------------------------------------------------------------------------- memory bank
def test_memory_bank_selects_nearest_code_within_viewpoint_bin():
    bank = MemoryBank(8, shape_dim=2, texture_dim=2, image_shape=(3, 4, 4), bins=4, angle_range=(20.0, 180.0))
    angles = [0.0, 30.0, 50.0, 70.0, 100.0, 150.0]                         # bins of 40 deg: [20,60) [60,100) ...
    R = torch.stack([_roty(a) for a in angles])
    z_tx = torch.tensor([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0], [0.0, 9.0], [0.0, 0.1], [3.0, 3.0]])
    z_sh = torch.tensor([[0.0, 0.0], [0.2, 0.0], [4.0, 0.0], [0.0, 9.0], [0.0, 0.1], [3.0, 3.0]])
    imgs = torch.arange(6.0)[:, None, None, None].expand(6, 3, 4, 4) / 10
    bank.push(imgs, z_sh, z_tx, R)
    assert len(bank) == 6
    ang = relative_angle(torch.eye(3)[None], R)[0]
    assert torch.allclose(torch.rad2deg(ang), torch.tensor(angles), atol=1e-3)
    q = torch.zeros(1, 2)
    # bin 0 = [20, 60): items 1 (30 deg) and 2 (50 deg); nearest texture code: item 2, nearest shape: item 1
    i_tx, i_sh, valid = bank.select(torch.eye(3)[None], q, q, torch.tensor([0]))
    assert valid.tolist() == [True] and i_tx.tolist() == [2] and i_sh.tolist() == [1]
    # item 0 (the query itself, 0 deg) and item 4 (code nearest overall) are never picked for bin 0
    # bin 1 = [60, 100): item 3 only (100 deg belongs to bin 2)
    i_tx, i_sh, valid = bank.select(torch.eye(3)[None], q, q, torch.tensor([1]))
    assert valid.tolist() == [True] and i_tx.tolist() == [3] and i_sh.tolist() == [3]
    # bin 3 = [140, 180]: item 5; a query rotated by 150 deg finds item 0 (150 deg away) instead
    _, _, valid = bank.select(_roty(150.0)[None], q, q, torch.tensor([3]))
    assert valid.tolist() == [True]
    assert bank.select(_roty(150.0)[None], q, q, torch.tensor([3]))[0].tolist() == [0]
    # an empty bin is invalid (the swap loss is skipped for that query)
    bank2 = MemoryBank(4, 2, 2, (3, 4, 4), bins=4)
    bank2.push(imgs[:1], z_sh[:1], z_tx[:1], R[:1])
    assert bank2.select(torch.eye(3)[None], q, q, torch.tensor([2]))[2].tolist() == [False]
    # FIFO: 4 more items overwrite the oldest; images stored as uint8 and restored
    bank.push(imgs[:4], z_sh[:4], z_tx[:4], R[:4])
    assert len(bank) == 8 and bank.ptr == 2
    assert torch.allclose(bank.get_images(torch.tensor([0]))[0, 0, 0, 0], torch.tensor(0.2), atol=3e-3)  # imgs[2]
    clone = MemoryBank(8, 2, 2, (3, 4, 4), bins=4)
    clone.load_state_dict(bank.state_dict())
    assert torch.equal(clone.images, bank.images) and clone.ptr == bank.ptr and len(clone) == 8


# ----------------------------------------------------------------------------- losses, metrics
def test_regularisers_and_priors():
    verts, faces, uvs = ellipsoid_template(2, 1.0)
    assert verts.shape == (162, 3) and faces.shape == (320, 3)
    assert uvs.min() >= 0 and uvs.max() <= 1
    assert torch.allclose(spherical_uvs(torch.tensor([[0.0, 1.0, 0.0]])), torch.tensor([[0.5, 0.0]]))
    assert face_adjacency(faces).shape[0] == 480                           # closed mesh: E = 3F/2
    reg = MeshRegularizer(faces, verts.shape[0])
    plane = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]])
    flat = MeshRegularizer(torch.tensor([[0, 1, 2], [0, 2, 3]]), 4)
    assert float(flat.normal_consistency(plane)) == pytest.approx(0.0, abs=1e-6)
    bent = plane.clone()
    bent[0, 3, 2] = 1.0                                  # second face normal (1, -1, 1) / sqrt(3) vs (0, 0, 1)
    assert float(flat.normal_consistency(bent)) == pytest.approx(1 - 1 / math.sqrt(3), abs=1e-5)
    # uniform Laplacian of a sphere: |mean(neighbours) - v| > 0 and invariant to translation
    v = verts[None]
    assert float(reg.laplacian(v)) > 0
    assert float(reg.laplacian(v + 3.0)) == pytest.approx(float(reg.laplacian(v)), rel=1e-5)
    assert float(uniformity_prior(torch.full((4, 6), 1 / 6))) == pytest.approx(0.0, abs=1e-7)
    assert float(uniformity_prior(torch.eye(2))) == pytest.approx(0.0, abs=1e-7)
    assert float(uniformity_prior(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))) == pytest.approx(1.0)
    tex = torch.rand(2, 3, 8, 8)
    mt = mean_texture(tex, 1.0)
    assert torch.allclose(mt, tex.mean((2, 3), keepdim=True).expand_as(tex), atol=1e-6)


def test_chamfer_and_icp_recover_a_known_rotation():
    """The evaluation protocol on workbench.geometry's Chamfer-L1 x10 and rigid ICP (analytic cases)."""
    g = torch.Generator().manual_seed(0)
    verts, faces, _ = ellipsoid_template(2, 0.5)
    pts = surface_points(verts[None], faces, 800, g)                      # (1, 800, 3)
    assert pts.shape == (1, 800, 3)
    # every sample lies on the surface: inside the ellipsoid's bounding box
    assert (pts[0].abs().amax(0) <= torch.tensor([0.5, 0.35, 0.35]) + 1e-5).all()
    cd, cd_icp = chamfer_scores(pts, pts, icp_iters=5)
    assert float(cd[0]) == pytest.approx(0.0, abs=1e-6) and float(cd_icp[0]) == pytest.approx(0.0, abs=1e-5)
    flat = torch.cat([torch.rand(300, 2, generator=g), torch.zeros(300, 1)], 1)
    lifted = flat + torch.tensor([0.0, 0.0, 0.1])          # every nearest neighbour exactly 0.1 away
    cd, _ = chamfer_scores(flat[None], lifted[None], icp_iters=0)
    assert float(cd[0]) == pytest.approx(1.0, abs=1e-5)
    moved = pts @ _roty(12.0)
    cd, cd_icp = chamfer_scores(moved, pts, icp_iters=40)
    assert float(cd_icp[0]) < 0.05 < float(cd[0])
    # batched: two clouds scored independently
    both = chamfer_scores(torch.cat([pts, moved]), torch.cat([pts, pts]), icp_iters=40)
    assert torch.allclose(both[0], torch.stack([torch.tensor(0.0), cd[0]]), atol=1e-5)
    # unit-cube normalisation: centred bounding box, largest side 1, per cloud
    n = normalize_unit_cube(torch.stack([pts[0] * 3 + 1, pts[0] * 0.2]))
    assert torch.allclose(n.amax(1) - n.amin(1), torch.tensor([[1.0, 0.7, 0.7]]).expand(2, 3), atol=0.05)
    assert torch.allclose(n.amax(1) + n.amin(1), torch.zeros(2, 3), atol=1e-6)


# ----------------------------------------------------------------------------- alternate steps
@pytest.mark.parametrize("appearance", ["shared", "separate"])
def test_alternate_steps_update_only_their_parameter_group(appearance):
    cfg = UnicornConfig.for_profile("smoke", ["loss.mean_texture_p=0.0", "loss.perceptual_kind=none",
                                              f"model.appearance_encoder={appearance}"])
    torch.manual_seed(0)
    model = UnicornModel(cfg)
    bank = build_bank(cfg)
    obj = UnicornObjective(cfg, model, bank)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(4, 3, 32, 32)
    groups = {"pose": model.pose_parameters(), "3d": model.shape_parameters()}

    def snapshot():
        return {k: [p.detach().clone() for p in ps] for k, ps in groups.items()}

    def changed(a, b, k):
        return sum(int(not torch.equal(x0, x1)) for x0, x1 in zip(a[k], b[k]))

    step = 10                                                                # after every curriculum switch
    assert obj.step_kind(step) == "3d" and obj.step_kind(step + 1) == "pose"
    for s in (step, step + 1, step + 2, step + 3):
        before = snapshot()
        out = obj(model, {"image": x}, s)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        after = snapshot()
        if obj.step_kind(s) == "3d":
            assert changed(before, after, "pose") == 0
            assert changed(before, after, "3d") > 0
            assert "rec" in out and "rec_pose" not in out
        else:
            assert changed(before, after, "3d") == 0
            assert changed(before, after, "pose") > 0
            assert "rec_pose" in out and "uniform" in out


def test_separate_appearance_encoder_feeds_only_texture_and_background():
    cfg = UnicornConfig.for_profile("smoke", ["model.appearance_encoder=separate", "data.variant=textured"])
    torch.manual_seed(0)
    model = UnicornModel(cfg).eval()
    for head in (model.texture_head, model.background_head):            # zero-init last layers: make them live
        torch.nn.init.normal_([m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1].weight)
    x = torch.rand(2, 3, 32, 32)
    a = model(x)
    with torch.no_grad():                                                 # perturb only the appearance encoder
        for p in model.appearance_encoder.parameters():
            p.add_(0.5 * torch.randn_like(p))
    b = model(x)
    assert torch.equal(a.angles, b.angles) and torch.equal(a.verts, b.verts) and torch.equal(a.scale, b.scale)
    assert not torch.allclose(a.z_tx, b.z_tx) and not torch.allclose(a.z_bg, b.z_bg)
    ids = {id(p) for p in model.shape_parameters()}
    assert all(id(p) in ids for p in model.appearance_encoder.parameters())
    assert not any(id(p) in ids for p in model.encoder.parameters())


@pytest.mark.parametrize("init", ["zero", "kaiming"])
def test_appearance_head_init_decides_whether_textures_start_alike(init):
    cfg = UnicornConfig.for_profile("smoke", [f"model.appearance_head_init={init}", "data.variant=textured"])
    torch.manual_seed(0)
    model = UnicornModel(cfg).eval()
    x = torch.rand(3, 3, 32, 32)
    out = model(x)
    alike = torch.allclose(out.texture[0], out.texture[1]) and torch.allclose(out.background[0], out.background[2])
    assert alike == (init == "zero")
    # the shape head keeps the official zero init either way: every image starts from the template
    assert torch.equal(out.z_sh, torch.zeros_like(out.z_sh))
    out.texture.sum().backward()
    enc_grad = sum(float(p.grad.abs().sum()) for p in model.encoder.parameters() if p.grad is not None)
    assert (enc_grad > 0) == (init == "kaiming")     # zero last layer: no texture gradient reaches the encoder


def test_swap_loss_starts_at_swap_from():
    for swap_from, expect in ((0, True), (100, False)):
        cfg = UnicornConfig.for_profile("smoke", ["loss.perceptual_kind=none", f"train.swap_from={swap_from}",
                                                  "swap.bins=1"])
        torch.manual_seed(0)
        model = UnicornModel(cfg)
        obj = UnicornObjective(cfg, model, build_bank(cfg))
        x = torch.rand(4, 3, 32, 32)
        obj(model, {"image": x}, 4)                          # a 3D-step fills the bank
        out = obj(model, {"image": x.flip(0)}, 6)            # stage 4: both latents non-empty
        assert ("swap" in out) == expect


def test_config_is_strict_and_validated():
    with pytest.raises(ConfigError):
        UnicornConfig.for_profile("smoke", ["model.n_candidatez=3"])
    with pytest.raises(ConfigError):
        UnicornConfig.for_profile("smoke", ["train.milestones_stage=[5,3,8]"])
    q = UnicornConfig.for_profile("quick")
    assert q.data.image_size == 64 and q.model.backbone == "resnet18"


def test_constant_texture_until_first_milestone():
    """``train.constant_texture_until`` (official ``constant_txt``): every rendered texture map is one
    flat colour before that iteration, and the generator's map afterwards (mean-texture trick off)."""
    cfg = UnicornConfig.for_profile("smoke", ["train.constant_texture_until=4", "loss.mean_texture_p=0.0",
                                              "loss.perceptual_kind=none"])
    torch.manual_seed(0)
    model = UnicornModel(cfg)
    obj = UnicornObjective(cfg, model, None)
    seen = []
    render = model.render

    def spy(verts, texture, *args, **kwargs):
        seen.append(texture.detach())
        return render(verts, texture, *args, **kwargs)

    model.render = spy
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for step in (2, 6):                                                  # both 3D-steps
            seen.clear()
            obj(model, {"image": x}, step)
            tex = seen[0]
            spread = float((tex - tex.mean((2, 3), keepdim=True)).abs().amax())
            assert (spread < 1e-6) == (step < 4), (step, spread)


def test_generator_active_input_init_and_texture_lr_groups():
    """``model.generator_input_init=active``: the generator's 1 x 1 input conv is initialised for the
    fan-in of the first stage's code size (the only non-zero dimensions then), so its response to
    those dimensions is ~sqrt(128 / 2) = 8x the default's; ``train.texture_lr_scale`` puts the texture
    branch (code head + generator) in its own Adam group at ``lr x scale``."""
    from workbench.methods.unicorn.model import Generator
    from workbench.methods.unicorn.train import _optimizer

    torch.manual_seed(0)
    default, active = Generator(128, 16, 16, 8), Generator(128, 16, 16, 8, input_fan_in=2)
    b_def, b_act = 1 / math.sqrt(128), 1 / math.sqrt(2)
    assert float(default.inp.weight.abs().max()) <= b_def + 1e-6
    assert b_def * 2 < float(active.inp.weight.abs().max()) <= b_act + 1e-6
    with pytest.raises(ValueError):
        Generator(8, 16, 16, 8, input_fan_in=0)

    cfg = UnicornConfig.for_profile("smoke", ["train.texture_lr_scale=10", "model.generator_input_init=active"])
    model = UnicornModel(cfg)
    opt = _optimizer(model, cfg)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lrs) == sum(1 for p in model.parameters() if p.requires_grad)
    lr = cfg.train.lr
    assert all(lrs[id(p)] == pytest.approx(10 * lr) for p in model.tex_gen.parameters())
    assert all(lrs[id(p)] == pytest.approx(10 * lr) for p in model.texture_head.parameters())
    assert all(lrs[id(p)] == pytest.approx(lr) for p in model.field.parameters())
    bound = 1 / math.sqrt(cfg.model.texture_sizes[0])
    assert float(model.tex_gen.inp.weight.abs().max()) > 1 / math.sqrt(model.dims[1])
    assert float(model.tex_gen.inp.weight.abs().max()) <= bound + 1e-6
    with pytest.raises(ConfigError):
        _optimizer(model, UnicornConfig.for_profile("smoke", ["train.texture_lr_scale=0"]))


def test_colour_errors_compare_object_colours_not_backgrounds():
    from workbench.methods.unicorn.evaluate import colour_errors, object_colours

    imgs = torch.ones(3, 3, 4, 4)  # white backgrounds; objects in the top half
    for k, c in enumerate(([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0])):
        imgs[k, :, :2] = torch.tensor(c)[:, None, None]
    gt = torch.zeros(3, 4, 4)
    gt[:, :2] = 1.0
    assert torch.allclose(object_colours(imgs, gt)[:2], torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    alpha = torch.ones(3, 1, 4, 4)  # silhouettes twice the object: the lower half overshoots
    rec = imgs.clone()  # the texture paints the background where the silhouette overshoots
    m = colour_errors(rec, alpha, imgs, gt)
    assert m["colour_l1"].tolist() == [0.0, 0.0, 0.0]  # compared where object and silhouette overlap
    assert m["colour_l1_mean_baseline"].tolist() == pytest.approx([4 / 9] * 3)  # |(1/3,)*3 - one-hot| / 3
    assert m["silhouette_overshoot"].tolist() == pytest.approx([0.5] * 3)
    assert m["colour_corr"] == pytest.approx(1.0) and m["chroma_corr"] == pytest.approx(1.0)
    # a render that gets the brightness but not the hue: the red object rendered green, and so on
    hue_swap = imgs[[2, 0, 1]].clone()
    hue_swap[:, :, 2:] = 1.0
    wrong = colour_errors(hue_swap, alpha, imgs, gt)
    assert wrong["chroma_corr"] == pytest.approx(-0.5)        # per channel: one-hot chroma cycled
    grey = torch.full_like(imgs, 0.5)  # a render that ignores the input's colours
    assert colour_errors(grey, alpha, imgs, gt)["colour_l1"].tolist() == pytest.approx([0.5] * 3)
    assert object_colours(imgs, torch.zeros(3, 4, 4))[0].tolist() == pytest.approx(imgs[0].mean((1, 2)).tolist())
