"""Vertical-axis symmetries of shapes and the rotation error modulo them."""
import math

import pytest
import torch

from workbench.geometry import cuboid_mesh, pose_to_rt, rotation_error
from workbench.geometry.mesh import Meshes
from workbench.geometry.symmetry import (mesh_vertical_symmetries, rotation_y, symmetric_rotation_error,
                                         vertical_symmetries)


def _deg(phis):
    return sorted(int(round(math.degrees(float(p)))) for p in phis)


def _box(sx, sy, sz, offset=(0.0, 0.0, 0.0)):
    m = cuboid_mesh((sx, sy, sz), n_verts=200, merge_duplicates=True)
    return m.verts_list()[0] + torch.tensor(offset), m.faces_list()[0]


def _join(*parts):
    verts, faces, n = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + n)
        n += v.shape[0]
    return torch.cat(verts), torch.cat(faces)


def test_rotation_y_is_a_turn_about_up():
    R = rotation_y(torch.tensor([0.0, math.pi / 2], dtype=torch.float64))
    assert R.shape == (2, 3, 3)
    assert torch.allclose(R[0], torch.eye(3, dtype=torch.float64))
    x = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    assert torch.allclose(x @ R[1], torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(R[1] @ R[1].T, torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_boxes_have_the_symmetries_of_their_footprint():
    square = mesh_vertical_symmetries(*_box(0.6, 1.0, 0.6))           # square footprint: 4-fold
    oblong = mesh_vertical_symmetries(*_box(1.0, 0.5, 0.4))           # rectangle: a half turn only
    assert _deg(square) == [90, 180, 270]
    assert _deg(oblong) == [180]


def test_an_asymmetric_part_breaks_the_symmetry_and_a_cylinder_keeps_every_turn():
    seat = _box(1.0, 0.2, 0.4)
    back = _box(1.0, 0.8, 0.1, offset=(0.0, 0.5, -0.15))              # a chair-like back: no symmetry
    assert len(mesh_vertical_symmetries(*_join(seat, back))) == 0
    # a 64-gon prism (a bottle body): every turn tried is a symmetry
    n = 64
    a = torch.arange(n) * 2 * math.pi / n
    ring = torch.stack([0.3 * torch.cos(a), torch.zeros(n), 0.3 * torch.sin(a)], 1)
    verts = torch.cat([ring, ring + torch.tensor([0.0, 1.0, 0.0]), torch.tensor([[0.0, 0, 0], [0.0, 1, 0]])])
    i = torch.arange(n)
    j = (i + 1) % n
    faces = torch.cat([torch.stack([i, j, i + n], 1), torch.stack([j, j + n, i + n], 1),
                       torch.stack([torch.full_like(i, 2 * n), j, i], 1),
                       torch.stack([torch.full_like(i, 2 * n + 1), i + n, j + n], 1)])
    got = _deg(mesh_vertical_symmetries(verts, faces))
    assert got == list(range(30, 331, 10))


def test_vertical_symmetries_checks_shapes():
    with pytest.raises(Exception, match=r"\(P, 3\)"):
        vertical_symmetries(torch.zeros(10, 2), torch.zeros(10, 3))


def test_equivalent_ground_truths_give_the_same_view():
    """With row vectors (``X_view = X @ R + T``) a symmetric shape seen through ``Ry(phi) @ R`` is the
    same point set as through ``R``; ``R @ Ry(phi)`` is not (the side the turn multiplies on matters)."""
    v, _ = _box(0.6, 1.0, 0.6)
    v = v.double()
    R, T = pose_to_rt(torch.tensor([0.7]), torch.tensor([0.4]), torch.tensor([0.2]), torch.tensor([3.0]))
    R, T = R[0].double(), T[0].double()
    S = rotation_y(math.pi / 2)

    def cham(a, b):
        d = torch.cdist(a, b)
        return float(d.min(0).values.max().maximum(d.min(1).values.max()))

    assert cham(v @ R + T, v @ (S @ R) + T) < 1e-6
    assert cham(v @ R + T, v @ (R @ S) + T) > 0.05


def test_symmetric_rotation_error():
    g = torch.Generator().manual_seed(0)
    R_gt, _ = pose_to_rt(torch.rand(4, generator=g) * 6, torch.rand(4, generator=g), torch.zeros(4), torch.ones(4))
    R_gt = R_gt.double()
    S90, S180 = rotation_y(math.pi / 2), rotation_y(math.pi)
    R_pred = torch.stack([S90 @ R_gt[0], S180 @ R_gt[1], S90 @ R_gt[2], R_gt[3]])
    sym = [torch.tensor([math.pi / 2, math.pi, 3 * math.pi / 2]), torch.tensor([math.pi]), None, torch.zeros(0)]
    plain = rotation_error(R_pred, R_gt)
    err = symmetric_rotation_error(R_pred, R_gt, sym)
    assert torch.allclose(plain[:3], torch.tensor([math.pi / 2, math.pi, math.pi / 2], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(err, torch.tensor([0.0, 0.0, math.pi / 2, 0.0], dtype=torch.float64), atol=1e-6)
    assert (err <= plain + 1e-12).all()
    with pytest.raises(Exception, match="symmetry sets"):
        symmetric_rotation_error(R_pred, R_gt, sym[:2])
