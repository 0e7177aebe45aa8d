"""Meshes structure, primitives, subdivision order and mesh IO."""
import math

import numpy as np
import pytest
import torch

from workbench.core.errors import DataError, ShapeError
from workbench.geometry import (Meshes, cuboid_mesh, ico_sphere, load_obj, load_ply, loop_subdivide, read_obj,
                                read_ply, save_obj, save_ply, subdivide)


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_ico_sphere_counts_and_shape(level):
    m = ico_sphere(level)
    V, F = m.verts_packed().shape[0], m.faces_packed().shape[0]
    assert (V, F) == (10 * 4 ** level + 2, 20 * 4 ** level)
    assert m.edges_packed().shape[0] == 30 * 4 ** level
    assert torch.allclose(m.verts_packed().norm(dim=1), torch.ones(V), atol=1e-6)
    centroids = m.faces_verts_packed().mean(1)
    assert ((m.faces_normals_packed() * centroids).sum(1) > 0).all()  # outward, counter-clockwise


def test_icosahedron_order_and_subdivision_order():
    m0 = ico_sphere(0)
    v0 = m0.verts_packed()
    assert torch.allclose(v0[0], torch.tensor([-0.5257, 0.8507, 0.0]), atol=1e-4)
    assert m0.faces_packed()[0].tolist() == [0, 11, 5]
    s = subdivide(m0)
    e = m0.edges_packed()
    # edges sorted by V * min + max; new vertices are their midpoints after the old ones
    h = 12 * e[:, 0] + e[:, 1]
    assert (h[1:] > h[:-1]).all()
    assert torch.allclose(s.verts_packed()[12:], v0[e].mean(1))
    f2e = m0.faces_packed_to_edges_packed()[0] + 12  # e12, e20, e01 of face 0
    faces = s.faces_packed()
    assert faces[0].tolist() == [0, int(f2e[2]), int(f2e[1])]  # [v0, e01, e20]
    assert faces[20].tolist() == [11, int(f2e[0]), int(f2e[2])]  # [v1, e12, e01]
    assert faces[40].tolist() == [5, int(f2e[1]), int(f2e[0])]  # [v2, e20, e12]
    assert faces[60].tolist() == f2e.tolist()  # centre [e12, e20, e01]


def test_heterogeneous_packed_padded_views_and_gradients():
    a = ico_sphere(0).verts_packed().clone().requires_grad_(True)
    b = cuboid_mesh((1.0, 2.0, 3.0), 30)
    vb, fb = b.verts_list()[0], b.faces_list()[0]
    m = Meshes([a, vb], [ico_sphere(0).faces_packed(), fb])
    assert m.num_verts_per_mesh().tolist() == [12, vb.shape[0]]
    assert m.mesh_to_faces_packed_first_idx().tolist() == [0, 20]
    assert (m.faces_packed()[20:] == fb + 12).all()
    fp = m.faces_padded()
    assert fp.shape == (2, max(20, fb.shape[0]), 3) and (fp[0, 20:] == -1).all()
    assert torch.equal(m.verts_padded()[1, :vb.shape[0]], vb)
    m.verts_packed().sum().backward()
    assert torch.equal(a.grad, torch.ones_like(a))
    m2 = m.offset_verts(torch.ones_like(m.verts_packed()))
    assert torch.allclose(m2.verts_list()[1], vb + 1)
    assert len(m.extend(3)) == 6 and m.extend(3)[4].num_verts_per_mesh().item() == vb.shape[0]
    sub = m[1]
    assert len(sub) == 1 and torch.equal(sub.faces_packed(), fb)
    with pytest.raises(ShapeError):
        Meshes([a], [torch.tensor([[0, 1, 12]])])


def test_normals_and_areas_of_a_fine_sphere():
    m = ico_sphere(4)
    v = m.verts_packed()
    assert (m.verts_normals_packed() - v).norm(dim=1).max() < 1e-2  # < 0.6 degree
    assert abs(float(m.faces_areas_packed().sum()) - 4 * math.pi) < 0.02


@pytest.mark.parametrize("merge", [False, True])
def test_cuboid_mesh(merge):
    size = (0.6, 0.4, 1.2)
    m = cuboid_mesh(size, 500, merge_duplicates=merge)
    v = m.verts_packed()
    assert torch.allclose(v.abs().max(0).values, torch.tensor(size) / 2)
    area = 2 * (0.6 * 0.4 + 0.4 * 1.2 + 0.6 * 1.2)
    assert abs(float(m.faces_areas_packed().sum()) - area) < 1e-5
    c = m.faces_verts_packed().mean(1)
    assert ((m.faces_normals_packed() * c).sum(1) > 0).all()
    n = v.shape[0]
    if merge:
        E, F = m.edges_packed().shape[0], m.faces_packed().shape[0]
        assert n - E + F == 2  # closed genus-0 surface
        assert 400 <= n <= 600
    else:
        assert 450 <= n <= 700  # ~500 plus vertices duplicated on the box edges (NOVUM layout)


def test_ply_round_trip_binary_and_ascii(tmp_path):
    m = ico_sphere(1)
    v, f = m.verts_list()[0], m.faces_list()[0]
    cols = torch.rand(v.shape[0], 3)
    labels = torch.arange(f.shape[0]) % 5
    for binary in (True, False):
        p = tmp_path / f"m_{binary}.ply"
        save_ply(p, v, f, vert_colors=cols, face_labels=labels, binary=binary)
        d = read_ply(p)
        assert torch.allclose(d["verts"], v, atol=1e-6) and torch.equal(d["faces"], f)
        assert torch.equal(d["face_labels"], labels)
        assert torch.allclose(d["vert_colors"], torch.round(cols * 255) / 255, atol=1e-6)
    import open3d as o3d

    o = o3d.io.read_triangle_mesh(str(tmp_path / "m_True.ply"))
    assert np.allclose(np.asarray(o.vertices), v.numpy(), atol=1e-6)
    assert (np.asarray(o.triangles) == f.numpy()).all()
    vv, ff = load_ply(tmp_path / "m_False.ply")
    assert torch.equal(ff, f)


def test_obj_round_trip_with_uvs_and_quads(tmp_path):
    m = cuboid_mesh((1, 1, 1), 8)
    v, f = m.verts_list()[0], m.faces_list()[0]
    uv = torch.rand(v.shape[0], 2)
    save_obj(tmp_path / "c.obj", v, f, verts_uvs=uv, faces_uvs=f)
    d = read_obj(tmp_path / "c.obj")
    assert torch.allclose(d["verts"], v, atol=1e-6) and torch.equal(d["faces"], f)
    assert torch.allclose(d["verts_uvs"], uv, atol=1e-6) and torch.equal(d["faces_uvs"], f)
    (tmp_path / "q.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    vq, fq = load_obj(tmp_path / "q.obj")
    assert fq.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_io_errors_name_the_file_and_leave_nothing_behind(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
                    b"property float y\nproperty float z\nend_header\n\x00\x01")
    with pytest.raises(DataError, match="bad.ply"):
        read_ply(bad)
    with pytest.raises(DataError, match="missing.obj"):
        read_obj(tmp_path / "missing.obj")
    (tmp_path / "oob.obj").write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(DataError, match="oob.obj"):
        read_obj(tmp_path / "oob.obj")
    with pytest.raises(ShapeError):
        save_ply(tmp_path / "out.ply", torch.zeros(3, 3), torch.tensor([[0, 1, 5]]))
    assert not (tmp_path / "out.ply").exists() and not list(tmp_path.glob(".out.ply*"))


def test_loop_subdivision_weights_and_invariances():
    ico = ico_sphere(0)
    out = loop_subdivide(ico)
    mid = subdivide(ico)
    assert torch.equal(out.faces_packed(), mid.faces_packed())
    v = ico.verts_packed()
    e = ico.edges_packed()
    # valence-5 vertex rule (Loop's beta) and interior edge rule 3/8, 3/8, 1/8, 1/8
    beta = (5 / 8 - (3 / 8 + math.cos(2 * math.pi / 5) / 4) ** 2) / 5
    nbrs = torch.cat([e[e[:, 0] == 0, 1], e[e[:, 1] == 0, 0]])
    assert torch.allclose(out.verts_packed()[0], (1 - 5 * beta) * v[0] + beta * v[nbrs].sum(0), atol=1e-6)
    f = ico.faces_packed()
    e0 = e[0]
    opp = [int(fc[(fc != e0[0]) & (fc != e0[1])]) for fc in f if (fc == e0[0]).any() and (fc == e0[1]).any()]
    expect = 0.375 * (v[e0[0]] + v[e0[1]]) + 0.125 * (v[opp[0]] + v[opp[1]])
    assert torch.allclose(out.verts_packed()[12], expect, atol=1e-6)
    assert (out.verts_packed().norm(dim=1) < 1.0).all()  # smoothing shrinks a convex polyhedron
    # affine invariance, and a planar patch (with boundary rules) stays planar
    A = torch.tensor([[1.2, 0.1, 0.0], [0.0, 0.9, 0.3], [0.2, 0.0, 1.1]])
    t = torch.tensor([0.3, -0.2, 0.5])
    moved = loop_subdivide(Meshes([v @ A.T + t], [f]))
    assert torch.allclose(moved.verts_packed(), out.verts_packed() @ A.T + t, atol=1e-5)
    quad = Meshes([torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])], [torch.tensor([[0, 1, 2], [1, 3, 2]])])
    q1 = loop_subdivide(quad).verts_packed()
    assert torch.allclose(q1[0], torch.tensor([0.125, 0.125, 0.0]))  # boundary rule 3/4 v + 1/8 (b0 + b1)
    q = loop_subdivide(loop_subdivide(quad)).verts_packed()
    assert torch.allclose(q[:, 2], torch.zeros(len(q)))
