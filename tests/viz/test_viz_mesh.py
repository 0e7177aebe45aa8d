"""Mesh viewer: traces carry the mesh exactly, colours map as specified, wireframe toggles."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from workbench.core.errors import ShapeError
from workbench.viz.mesh import as_mesh_list, mesh_figure, set_wireframe, uv_to_vertex_colors


def _traces(fig, role):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == role]


def test_single_mesh_geometry_and_vertex_colors(cube):
    v, f = cube
    vc = (v + 0.5)  # colour = position in [0, 1]
    fig = mesh_figure((v, f), vertex_colors=vc)
    (m,) = _traces(fig, "mesh")
    assert isinstance(m, go.Mesh3d)
    np.testing.assert_allclose(np.c_[m.x, m.y, m.z], v)
    np.testing.assert_array_equal(np.c_[m.i, m.j, m.k], f)
    # vertex (0.5, 0.5, 0.5) is white, (-0.5, -0.5, -0.5) black
    assert m.vertexcolor[7] == "rgb(255,255,255)" and m.vertexcolor[0] == "rgb(0,0,0)"
    assert fig.layout.scene.aspectmode == "data"
    assert fig.layout.scene.camera.up.y == 1  # canonical frame: +Y up


def test_face_colors_and_scalar_map_with_shared_range(cube):
    v, f = cube
    fc = np.zeros((len(f), 3))
    fc[:, 0] = 1.0
    fig = mesh_figure((v, f), face_colors=fc)
    assert set(_traces(fig, "mesh")[0].facecolor) == {"rgb(255,0,0)"}

    s1, s2 = v[:, 0], 3 * v[:, 1]
    fig = mesh_figure([(v, f), (v, f)], scalars=[s1, s2], scalar_name="activation")
    m1, m2 = _traces(fig, "mesh")
    np.testing.assert_allclose(m1.intensity, s1)
    assert (m1.cmin, m1.cmax) == (m2.cmin, m2.cmax) == (-1.5, 1.5)   # one range over both meshes
    assert m1.showscale and not m2.showscale                      # a single colour bar
    assert m1.colorbar.title.text == "activation"
    assert fig.layout.scene2 is not None                          # "row" layout: one scene each


def test_wireframe_has_unique_edges_and_toggles(cube):
    v, f = cube
    fig = mesh_figure((v, f), wireframe=False)
    (w,) = _traces(fig, "wireframe")
    assert w.visible is False
    xs = np.asarray(w.x, dtype=float)
    assert len(xs) == 3 * 18                      # 18 unique edges of a triangulated cube
    assert np.isnan(xs[2::3]).all()               # gaps between segments
    seg = np.c_[w.x, w.y, w.z].astype(float).reshape(18, 3, 3)[:, :2]
    lengths = np.linalg.norm(seg[:, 0] - seg[:, 1], axis=1)
    assert np.isclose(lengths, 1.0).sum() == 12 and np.isclose(lengths, np.sqrt(2)).sum() == 6
    # the buttons restyle the wireframe trace only
    off, on = fig.layout.updatemenus[0].buttons
    wi = list(fig.data).index(w)
    assert on.args[0]["visible"][wi] is True and off.args[0]["visible"][wi] is False
    mi = list(fig.data).index(_traces(fig, "mesh")[0])
    assert on.args[0]["visible"][mi] is True and off.args[0]["visible"][mi] is True
    set_wireframe(fig, True)
    assert w.visible is True


def test_keypoints_visible_and_hidden(cube):
    v, f = cube
    fig = mesh_figure((v, f), keypoints=v[:3], keypoint_names=["a", "b", "c"], keypoints_visible=[1, 0, 1])
    (k,) = _traces(fig, "keypoints")
    assert list(k.text) == ["a", "b", "c"]
    assert list(k.marker.symbol) == ["circle", "circle-open", "circle"]


def test_uv_texture_sampling_matches_linear_gradient():
    # texture colour = (u, v, 0) with v measured upwards: row 0 is v = 1 (pytorch3d convention)
    h, w = 33, 65
    u = np.linspace(0, 1, w)[None, :].repeat(h, 0)
    vv = np.linspace(1, 0, h)[:, None].repeat(w, 1)
    tex = np.stack([u, vv, np.zeros_like(u)], -1)
    verts_uvs = np.array([[0.1, 0.2], [0.7, 0.9], [0.33, 0.5], [1.0, 0.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    vc = uv_to_vertex_colors(verts_uvs, faces, faces, tex)
    np.testing.assert_allclose(vc[:, :2], verts_uvs, atol=1e-9)   # bilinear is exact on a linear ramp


def test_uv_seam_vertices_average_their_corners():
    tex = np.zeros((2, 2, 3))
    tex[:, 0] = [1, 0, 0]   # left column red
    tex[:, 1] = [0, 0, 1]   # right column blue
    verts_uvs = np.array([[0.0, 0.5], [1.0, 0.5]])
    faces = np.array([[0, 1, 2], [0, 2, 1]])
    faces_uvs = np.array([[0, 0, 0], [1, 1, 1]])      # vertex 0 is red in face 0, blue in face 1
    vc = uv_to_vertex_colors(verts_uvs, faces_uvs, faces, tex, num_verts=4)
    np.testing.assert_allclose(vc[0], [0.5, 0, 0.5])
    np.testing.assert_allclose(vc[3], [0.6, 0.6, 0.6])    # unused vertex: grey


def test_meshes_input_with_textures(box_mesh):
    import torch

    class TexturesVertex:   # pytorch3d's interface
        def __init__(self, feats):
            self._f = feats

        def verts_features_list(self):
            return self._f

    colours = torch.rand(8, 3)
    box_mesh.textures = TexturesVertex([colours])
    (md,) = as_mesh_list(box_mesh)
    np.testing.assert_allclose(md.vertex_colors, colours.numpy(), atol=1e-6)
    fig = mesh_figure(box_mesh)
    assert len(_traces(fig, "mesh")[0].vertexcolor) == 8


def test_bad_inputs_raise(cube):
    v, f = cube
    with pytest.raises(ShapeError, match="out of range"):
        mesh_figure((v, f + 5))
    with pytest.raises(ShapeError, match="one value per vertex"):
        mesh_figure((v, f), scalars=np.zeros(3))
    with pytest.raises(ShapeError, match="one entry per mesh"):
        mesh_figure([(v, f), (v, f)], scalars=np.zeros(8))
