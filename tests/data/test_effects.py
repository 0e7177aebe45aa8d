"""Rendering of world objects, backgrounds, occluders and corruptions."""
from __future__ import annotations


import numpy as np
import pytest

from workbench.core.errors import DataError
from workbench.data.corruptions import CORRUPTIONS, corrupt, plasma_fractal
from workbench.data.effects import OCCLUSION_LEVELS, OccluderBank, make_background, occlude
from workbench.data.shading import keypoint_self_visibility, project_keypoints, render_views
from workbench.data.world import make_object, sample_params


@pytest.fixture(scope="module")
def bank():
    return OccluderBank(seed=0, n=10, size=64)


def _cube_model():
    """A unit cube as an ObjectModel-like object (via the table of a flat material)."""
    from workbench.data import primitives as P
    from workbench.data.materials import flat_material
    from workbench.data.world import ObjectModel, corner_normals

    v, f = P.box([0, 0, 0], [1, 1, 1])
    return ObjectModel("cube", {}, v.astype(np.float32), f.astype(np.int32), np.zeros(len(f), np.int16),
                       np.zeros(len(f), np.int16), ("cube",), ("s",), [flat_material(0.8)],
                       v.astype(np.float32), tuple(f"c{i}" for i in range(8)),
                       corner_normals(v, f, np.zeros(len(f), bool)))


def test_silhouette_of_a_cube_matches_the_pinhole_projection():
    """Front view of a unit cube at distance 4: the front face spans f * 1 / (4 - 0.5) pixels."""
    m = _cube_model()
    S, f = 64, 100.0
    out = render_views(m, [0.0], [0.0], [0.0], [4.0], f, (S / 2, S / 2), S, supersample=1)
    mask = out["alpha"][0] > 0.5
    xs = np.nonzero(mask.any(0))[0]
    width = xs.max() - xs.min() + 1
    assert width == pytest.approx(f / 3.5, abs=1.0)
    # z-depth at the centre pixel is the distance to the front face
    assert out["depth"][0, S // 2, S // 2] == pytest.approx(3.5, abs=1e-4)
    # projected corners land on the silhouette's corners (x right, y down, pixel centres at +0.5)
    uv, z = project_keypoints(m.keypoints, out["R"], out["T"], f, (S / 2, S / 2))
    front = z[0] < 3.6
    assert uv[0, front, 0].min() == pytest.approx(xs.min(), abs=1.0)
    assert uv[0, front, 0].max() == pytest.approx(xs.max() + 1, abs=1.0)
    # front corners visible, back corners hidden by the cube itself
    vis = keypoint_self_visibility(m, out["R"], out["T"])[0]
    assert vis[front].all() and not vis[~front].any()


def test_supersampling_gives_fractional_coverage_and_same_area():
    m = make_object("mug", sample_params("mug", np.random.default_rng(0)), 0)
    a1 = render_views(m, [0.7], [0.3], [0.0], [3.0], 128, (32, 32), 64, supersample=1)["alpha"][0]
    a2 = render_views(m, [0.7], [0.3], [0.0], [3.0], 128, (32, 32), 64, supersample=2)["alpha"][0]
    assert set(np.unique(a1)) <= {0.0, 1.0} and ((a2 > 0) & (a2 < 1)).sum() > 20
    assert abs(a1.sum() - a2.sum()) / a1.sum() < 0.05


def test_styles_and_lighting():
    m = make_object("chair", sample_params("chair", np.random.default_rng(1)), 1)
    args = ([0.5], [0.3], [0.0], [3.2], 128, (32, 32), 64)
    shaded = render_views(*((m,) + args), supersample=1)
    cad = render_views(*((m,) + args), supersample=1, style="cad")
    grey = render_views(*((m,) + args), supersample=1, style="grey")
    mask = shaded["alpha"][0] > 0
    assert np.array_equal(mask, cad["alpha"][0] > 0)
    c = cad["rgb"][0][mask]
    assert np.allclose(c[:, 0], c[:, 1]) and np.allclose(c[:, 1], c[:, 2])  # untextured grey
    assert grey["rgb"][0][mask].max() < 0.95  # never white on the white background
    with pytest.raises(ValueError, match="unknown style"):
        render_views(*((m,) + args), style="toon")


@pytest.mark.parametrize("kind", ["white", "texture", "clutter"])
def test_backgrounds(kind, bank):
    rng = np.random.default_rng(0)
    bg = make_background(kind, 48, 64, rng, bank)
    assert bg.shape == (48, 64, 3) and bg.dtype == np.float32 and 0 <= bg.min() and bg.max() <= 1
    if kind == "white":
        assert (bg == 1).all()
    else:
        assert bg.std() > 0.02
    again = make_background(kind, 48, 64, np.random.default_rng(0), bank)
    assert np.array_equal(bg, again)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_occlusion_levels_on_a_disc(level, bank):
    H = W = 64
    yy, xx = np.mgrid[0:H, 0:W]
    obj = (yy - 32) ** 2 + (xx - 30) ** 2 < 18 ** 2
    img = np.full((H, W, 3), 0.5, np.float32)
    lo, hi, bg = OCCLUSION_LEVELS[level]
    for seed in range(4):
        o = occlude(img, obj, level, np.random.default_rng(seed), bank)
        assert o.ok and lo <= o.fg_fraction <= hi and abs(o.bg_fraction - bg) <= 0.1
        occ = o.occluder_mask
        assert o.fg_fraction == pytest.approx((occ & obj).sum() / obj.sum())
        changed = np.abs(o.image - img).sum(-1) > 1e-6
        assert changed[occ].mean() > 0.9  # the occluders are painted where the mask says


def test_corruptions_are_deterministic_and_change_the_image():
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 120 + 60).astype(np.uint8)
    for name in CORRUPTIONS:
        a = corrupt(img, name, 4, seed=1)
        b = corrupt(img, name, 4, seed=1)
        assert a.dtype == np.uint8 and a.shape == img.shape and np.array_equal(a, b), name
        assert np.abs(a.astype(float) - img).mean() > 5, name
    assert not np.array_equal(corrupt(img, "snow", 4, 1), corrupt(img, "snow", 4, 2))
    # brightness +0.4 on HSV value at severity 4: every pixel gets brighter
    assert (corrupt(img, "brightness", 4, 0).astype(int).max(-1) >= img.max(-1)).mean() > 0.99
    # the global numpy RNG is left untouched
    np.random.seed(123)
    x = np.random.rand()
    np.random.seed(123)
    corrupt(img, "frost", 4, 5)
    assert np.random.rand() == x
    with pytest.raises(DataError, match="unknown corruption"):
        corrupt(img, "rain", 4)
    with pytest.raises(DataError, match="at least 32x32"):
        corrupt(img[:16, :16], "fog", 4)


def test_plasma_fractal_range():
    p = plasma_fractal(64, 1.5, np.random.default_rng(0))
    assert p.shape == (64, 64) and p.min() == 0 and p.max() == 1 and p.std() > 0.05


def test_lazy_occluder_bank_matches_eager_in_any_order():
    """Items are rendered on first use, each from its own seed: draw order does not matter."""
    eager = OccluderBank(seed=1, n=4, size=48, lazy=False)
    lazy = OccluderBank(seed=1, n=4, size=48)
    assert len(lazy) == 4 and not lazy._items
    for i in (3, 0, 2, 1):
        np.testing.assert_array_equal(lazy.get(i), eager.items[i])
    assert all(it.shape[-1] == 4 and it[..., 3].max() > 0.5 for it in eager.items)
