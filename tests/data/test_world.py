"""The synthetic world: categories, parts, keypoints, parameter spaces, families, procedural scaling."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.core.errors import DataError
from workbench.data import primitives as P
from workbench.data.procedural import procedural_categories, procedural_name, resolve_procedural
from workbench.data.world import (NAMED_CATEGORIES, Builder, family_instance, get_category, make_object,
                                  reference_cuboid, sample_family, sample_params, stable_seed)


def _point_mesh_distance(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Exact point-to-triangle distances (brute force), (K,)."""
    a, b, c = (verts[faces[:, i]].astype(np.float64) for i in range(3))
    out = []
    for p in points.astype(np.float64):
        # project onto each triangle's plane, clamp through barycentric regions via edge checks
        ab, ac, ap = b - a, c - a, p - a
        d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
        bp = p - b
        d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
        cp = p - c
        d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
        va = d3 * d6 - d5 * d4
        vb = d5 * d2 - d1 * d6
        vc = d1 * d4 - d3 * d2
        denom = np.where(np.abs(va + vb + vc) < 1e-30, 1e-30, va + vb + vc)
        v = vb / denom
        w = vc / denom
        q = a + ab * v[:, None] + ac * w[:, None]
        inside = (va >= 0) & (vb >= 0) & (vc >= 0)
        dist = np.where(inside, np.linalg.norm(p - q, axis=1), np.inf)
        for s, e in ((a, b), (b, c), (c, a)):  # edges
            t = np.clip(((p - s) * (e - s)).sum(1) / np.maximum(((e - s) ** 2).sum(1), 1e-30), 0, 1)
            dist = np.minimum(dist, np.linalg.norm(p - (s + (e - s) * t[:, None]), axis=1))
        out.append(dist.min())
    return np.array(out)


def test_primitives_are_watertight_and_outward():
    meshes = [P.box([0, 0, 0], [1, 2, 3]), P.cylinder([0, 0, 0], [1, 1, 0], 0.2), P.frustum([0, 0, 0], [0, 0, 1], 0.3, 0),
              P.ellipsoid([0, 0, 0], [1, 2, 3]), P.capsule([0, 0, 0], [0, 1, 1], 0.2),
              P.tube(np.array([[0, 0, 0], [0, 1, 0], [1, 2, 0]]), 0.1), P.torus([0, 0, 0], 1, 0.2)]
    for v, f in meshes:
        assert P.is_watertight(v, f) and P.signed_volume(v, f) > 0
    v, f = P.box([0, 0, 0], [1, 2, 3])
    assert P.signed_volume(v, f) == pytest.approx(6.0)
    v, f = P.ellipsoid([0, 0, 0], [1, 1, 1], 32, 16)
    assert P.signed_volume(v, f) == pytest.approx(4 / 3 * math.pi, rel=0.03)
    assert not P.is_watertight(v, f[:-1])


def test_named_categories_cover_the_spec():
    assert len(NAMED_CATEGORIES) >= 12
    for needed in ("chair", "stool", "bench", "table", "desk", "sofa", "bed", "car", "airplane", "bottle", "mug",
                   "lamp", "bird"):
        assert needed in NAMED_CATEGORIES
    for name in NAMED_CATEGORIES:
        cat = get_category(name)
        kinds = {p.kind for p in cat.params}
        assert len(cat.params) >= 6 and "float" in kinds and kinds & {"choice", "bool", "int"}, name
        assert len(cat.keypoint_names) >= 8 and len(set(cat.keypoint_names)) == len(cat.keypoint_names)
        assert len(cat.part_labels) >= 2
        for a, b in cat.flip_pairs:
            assert a in cat.keypoint_names and b in cat.keypoint_names
    assert get_category("bird").articulated
    with pytest.raises(DataError, match="did you mean 'chair'"):
        get_category("chiar")


@pytest.mark.parametrize("name", NAMED_CATEGORIES)
def test_instances_are_canonical_watertight_parts_with_surface_keypoints(name):
    cat = get_category(name)
    for i in range(3):
        params = sample_params(cat, np.random.default_rng(stable_seed("t", name, i)))
        b = Builder(cat)
        cat.build(params, b)
        for part in b.parts:
            assert P.is_watertight(part.verts, part.faces), (name, part.label)
            assert P.signed_volume(part.verts, part.faces) > 0, (name, part.label)
        m = make_object(cat, params, material_seed=i)
        lo, hi = m.verts.min(0), m.verts.max(0)
        np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-5)          # centred
        assert (hi - lo).max() == pytest.approx(1.0, abs=1e-5)            # unit scale
        assert m.keypoints.shape == (len(cat.keypoint_names), 3)
        d = _point_mesh_distance(m.keypoints, m.verts, m.faces)
        assert d.max() < 0.012, (name, dict(zip(cat.keypoint_names, d.round(4))))  # on the surface
        assert set(np.unique(m.face_part)) <= set(range(len(cat.part_labels)))
        assert m.corner_normals.shape == (m.faces.shape[0], 3, 3)
        np.testing.assert_allclose(np.linalg.norm(m.corner_normals, axis=-1), 1, atol=1e-4)


def test_canonical_orientation_front_and_up():
    """Front faces +Z and up is +Y (checked on categories with an unambiguous front/top)."""
    rng = np.random.default_rng(0)
    car = make_object("car", sample_params("car", rng))
    k = {n: i for i, n in enumerate(car.keypoint_names)}
    assert car.keypoints[k["bumper_front_left"], 2] > car.keypoints[k["bumper_back_left"], 2]
    assert car.keypoints[k["roof_front_left"], 1] > car.keypoints[k["wheel_front_left"], 1]
    assert car.keypoints[k["wheel_front_left"], 0] > car.keypoints[k["wheel_front_right"], 0]  # object's left = +X
    bird = make_object("bird", sample_params("bird", rng))
    kb = {n: i for i, n in enumerate(bird.keypoint_names)}
    assert bird.keypoints[kb["beak"], 2] > bird.keypoints[kb["tail"], 2]
    assert bird.keypoints[kb["crown"], 1] > bird.keypoints[kb["left_leg"], 1]


def test_determinism_and_parameter_effects():
    a = make_object("chair", sample_params("chair", np.random.default_rng(5)), 3)
    b = make_object("chair", sample_params("chair", np.random.default_rng(5)), 3)
    assert np.array_equal(a.verts, b.verts) and a.materials[0].color == b.materials[0].color
    p = sample_params("chair", np.random.default_rng(5))
    p2 = dict(p, arms=not p["arms"])
    assert make_object("chair", p2).faces.shape != a.faces.shape  # arms add parts


def test_bird_articulation_moves_wings_not_beak():
    cat = get_category("bird")
    p = sample_params(cat, np.random.default_rng(1))
    folded = make_object(cat, dict(p, wing_spread=0.0, wing_raise=0.0))
    spread = make_object(cat, dict(p, wing_spread=1.0, wing_raise=0.5))
    k = {n: i for i, n in enumerate(cat.keypoint_names)}
    # normalisation rescales each instance: compare wing separation relative to the beak-tail length
    def rel(m):
        wings = abs(m.keypoints[k["left_wing"], 0] - m.keypoints[k["right_wing"], 0])
        return wings / np.linalg.norm(m.keypoints[k["beak"]] - m.keypoints[k["tail"]])

    assert rel(spread) > 2 * rel(folded)
    body = [k[n] for n in ("beak", "crown", "tail", "breast")]
    np.testing.assert_allclose(folded.keypoints[body] / folded.scale, spread.keypoints[body] / spread.scale,
                               atol=0.02 * folded.extent.max() / folded.scale)  # the body does not move
    # jitter never touches articulation parameters of a family
    fam = sample_family(cat, np.random.default_rng(2))
    inst = family_instance(cat, fam, np.random.default_rng(3), 0.05)
    assert all(inst[a] == fam[a] for a in cat.articulated)


def test_fine_grained_families_are_tight():
    cat = get_category("car")
    floats = [p for p in cat.params if p.kind == "float"]

    def vec(d):
        return np.array([(d[p.name] - p.low) / (p.high - p.low) for p in floats])

    fams = [sample_family(cat, np.random.default_rng(100 + f)) for f in range(6)]
    members = [[vec(family_instance(cat, fam, np.random.default_rng(1000 * f + i), 0.04)) for i in range(5)]
               for f, fam in enumerate(fams)]
    within = np.mean([np.linalg.norm(a - b) for m in members for a in m for b in m if a is not b])
    between = np.mean([np.linalg.norm(members[f][0] - members[g][0]) for f in range(6) for g in range(6) if f != g])
    assert within < 0.35 * between
    for m, fam in zip(members, fams):  # discrete choices are shared inside a family
        pass
    inst = family_instance(cat, fams[0], np.random.default_rng(9), 0.04)
    assert inst["style"] == fams[0]["style"]


def test_confusable_pairs_share_structure():
    """chair/stool/bench have seats at similar heights; table/desk share top keypoints."""
    assert {"seat_front_left", "seat_back_left"} <= set(get_category("bench").keypoint_names)
    assert {"seat_front_left", "seat_back_left"} <= set(get_category("chair").keypoint_names)
    assert {"top_front_left", "top_back_right"} <= set(get_category("table").keypoint_names) & set(
        get_category("desk").keypoint_names)


def test_procedural_families_scale_and_names_are_stable():
    cats = procedural_categories(200, seed=0)
    names = [c.name for c in cats]
    assert len(set(names)) == 200 and not set(names) & set(NAMED_CATEGORIES)
    assert names[:5] == [procedural_name(0, i) for i in range(5)]  # recomputed from (seed, index) alone
    assert procedural_categories(3, seed=7)[0].name.startswith("s7-")
    assert resolve_procedural(names[42]).name == names[42] and get_category(names[42]) is cats[42]
    assert resolve_procedural("zzz999") is None
    # structures differ between categories: descriptions are not all equal
    assert len({c.description for c in cats}) > 100
    for c in cats[:10]:
        params = sample_params(c, np.random.default_rng(0))
        assert len(c.params) >= 6
        b = Builder(c)
        c.build(params, b)
        assert all(P.is_watertight(p.verts, p.faces) for p in b.parts)
        m = make_object(c, params)
        assert len(m.keypoints) >= 8 and m.extent.max() == pytest.approx(1.0, abs=1e-5)


def test_reference_cuboid_and_ply_roundtrip(tmp_path):
    from workbench.geometry.mesh_io import read_ply, save_ply

    size, centre = reference_cuboid("table")
    assert len(size) == 3 and max(size) <= 1.0 + 1e-6 and all(s > 0.05 for s in size)
    m = make_object("mug", sample_params("mug", np.random.default_rng(0)))
    save_ply(tmp_path / "mug.ply", m.verts, m.faces, vert_colors=m.vertex_colors() / 255.0, face_labels=m.face_part)
    d = read_ply(tmp_path / "mug.ply")
    np.testing.assert_allclose(d["verts"].numpy(), m.verts, atol=1e-6)
    assert np.array_equal(d["faces"].numpy(), m.faces) and np.array_equal(d["face_labels"].numpy(), m.face_part)
