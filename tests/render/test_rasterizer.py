"""Rasterizer semantics (pytorch3d's), analytic cases, binning vs brute force, open3d agreement."""
import math
import os
import sys

import pytest
import torch

from workbench.core.errors import RenderError
from workbench.geometry import (FoVOrthographicCameras, FoVPerspectiveCameras, Meshes, cuboid_mesh, ico_sphere,
                                pinhole_cameras, pixel_centers_ndc, pose_to_rt)
from workbench.render import (AmbientLights, HardFlatShader, MeshRasterizer, MeshRenderer, RasterizationSettings,
                              TexturesVertex, get_backend, pytorch3d_available, raycast_cameras, raycast_mesh,
                              rasterize_meshes, transform_to_ndc)
from workbench.render.rasterize_torch import rasterize_packed

sys.path.insert(0, os.path.dirname(__file__))
from reference import reference_rasterize  # noqa: E402

# generic coordinates: no pixel centre lies within 1e-4 of an edge in the tests below
TRI = torch.tensor([[-0.53, -0.47, 1.0], [0.61, -0.52, 1.0], [0.05, 0.58, 1.0]])


def _ndc_mesh(verts, faces=((0, 1, 2),)):
    return Meshes([verts.float()], [torch.tensor(faces)])


def _pixel_grid(H, W):
    xs, ys = pixel_centers_ndc((H, W), dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xx, yy


def _bary64(p, tri):
    """Barycentrics of 2D points ``p (..., 2)`` in float64 by solving the 2x2 system."""
    a, b, c = (torch.as_tensor(t, dtype=torch.float64) for t in tri)
    T = torch.stack([a - c, b - c], 1)  # columns
    sol = torch.linalg.solve(T.expand(*p.shape[:-1], 2, 2), (p - c)[..., None])[..., 0]
    return torch.stack([sol[..., 0], sol[..., 1], 1 - sol[..., 0] - sol[..., 1]], -1)


def _seg_dist2_64(p, a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    e = b - a
    t = (((p - a) * e).sum(-1) / (e * e).sum()).clamp(0, 1)
    q = a + t[..., None] * e
    return ((p - q) ** 2).sum(-1)


def test_single_triangle_coverage_depth_bary_dists():
    H, W = 10, 12
    fr = rasterize_meshes(_ndc_mesh(TRI), image_size=(H, W), faces_per_pixel=1)
    xx, yy = _pixel_grid(H, W)
    p = torch.stack([xx, yy], -1)
    b = _bary64(p, TRI[:, :2].double())
    inside = (b > 0).all(-1)
    assert b.abs().min() > 1e-4
    assert fr.pix_to_face.shape == (1, H, W, 1) and fr.bary_coords.shape == (1, H, W, 1, 3)
    assert torch.equal(fr.pix_to_face[0, ..., 0] == 0, inside)
    assert inside.sum() > 10
    assert (fr.pix_to_face[0, ~inside] == -1).all() and (fr.zbuf[0, ~inside] == -1).all()
    assert (fr.bary_coords[0, ~inside] == -1).all() and (fr.dists[0, ~inside] == -1).all()
    assert torch.allclose(fr.zbuf[0, inside, 0], torch.ones(int(inside.sum())))
    assert torch.allclose(fr.bary_coords[0, inside, 0].double(), b[inside], atol=1e-5)
    d_true = torch.stack([_seg_dist2_64(p, TRI[i, :2], TRI[(i + 1) % 3, :2]) for i in range(3)], -1).min(-1).values
    assert torch.allclose(fr.dists[0, inside, 0].double(), -d_true[inside], atol=1e-6)  # negative inside


def test_blur_radius_is_a_squared_ndc_distance():
    H = W = 16
    xx, yy = _pixel_grid(H, W)
    p = torch.stack([xx, yy], -1)
    b = _bary64(p, TRI[:, :2].double())
    d2 = torch.stack([_seg_dist2_64(p, TRI[i, :2], TRI[(i + 1) % 3, :2]) for i in range(3)], -1).min(-1).values
    outside = ~(b > 0).all(-1)
    for blur in (0.005, 0.02):
        fr = rasterize_meshes(_ndc_mesh(TRI), image_size=H, blur_radius=blur, faces_per_pixel=1)
        expect = ~outside | (d2 < blur)
        assert torch.equal(fr.pix_to_face[0, ..., 0] == 0, expect)
        sel = outside & (d2 < blur)
        assert sel.any()
        assert torch.allclose(fr.dists[0, sel, 0].double(), d2[sel], atol=1e-6)  # positive outside
    # clipped barycentrics of blurred pixels are convex weights; unclipped ones have a negative entry
    fr_c = rasterize_meshes(_ndc_mesh(TRI), image_size=H, blur_radius=0.02, clip_barycentric_coords=True)
    fr_n = rasterize_meshes(_ndc_mesh(TRI), image_size=H, blur_radius=0.02, clip_barycentric_coords=False)
    sel = outside & (d2 < 0.02)
    bc, bn = fr_c.bary_coords[0, sel, 0], fr_n.bary_coords[0, sel, 0]
    assert (bc >= 0).all() and torch.allclose(bc.sum(-1), torch.ones(len(bc)))
    assert (bn.min(-1).values < 0).all()


def test_faces_behind_the_camera_are_skipped():
    behind = TRI.clone()
    behind[0, 2] = -0.5
    fr = rasterize_meshes(_ndc_mesh(behind), image_size=8, faces_per_pixel=1)
    assert (fr.pix_to_face == -1).all()
    fr = rasterize_meshes(_ndc_mesh(TRI * torch.tensor([1.0, 1.0, -1.0])), image_size=8)
    assert (fr.pix_to_face == -1).all()


def test_back_face_culling():
    # (v0, v1, v2) of TRI is clockwise in pytorch3d's screen sense: a back face
    back = rasterize_meshes(_ndc_mesh(TRI), image_size=8, cull_backfaces=True)
    assert (back.pix_to_face == -1).all()
    front = rasterize_meshes(_ndc_mesh(TRI, ((0, 2, 1),)), image_size=8, cull_backfaces=True)
    assert (front.pix_to_face == 0).sum() > 5
    # on a closed sphere, culling keeps exactly the faces facing the camera
    R, T = pose_to_rt(0.4, 0.3, 0.0, 3.0)
    cams = FoVPerspectiveCameras(R=R, T=T, fov=40)
    m = ico_sphere(2)
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=32, cull_backfaces=True))(m)
    faces = fr.pix_to_face[fr.pix_to_face >= 0].unique()
    to_cam = cams.get_camera_center() - m.faces_verts_packed()[faces].mean(1)
    assert ((m.faces_normals_packed()[faces] * to_cam).sum(-1) > 0).all()


def test_k_nearest_ordering_and_ties():
    depths = [3.0, 1.0, 2.0]
    verts = torch.cat([TRI * torch.tensor([1.0, 1.0, z]) for z in depths])
    faces = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
    fr = rasterize_meshes(_ndc_mesh(verts, faces), image_size=8, faces_per_pixel=4)
    hit = fr.pix_to_face[0, ..., 0] >= 0
    assert hit.sum() > 5
    assert (fr.pix_to_face[0, hit] == torch.tensor([1, 2, 0, -1])).all()
    assert torch.allclose(fr.zbuf[0, hit], torch.tensor([1.0, 2.0, 3.0, -1.0]))
    # exact ties are ordered by face index (pytorch3d's reference implementation)
    verts = torch.cat([TRI * torch.tensor([1.0, 1.0, 2.0]), TRI, TRI * torch.tensor([1.0, 1.0, 2.0])])
    fr = rasterize_meshes(_ndc_mesh(verts, ((0, 1, 2), (3, 4, 5), (6, 7, 8))), image_size=8, faces_per_pixel=3)
    assert (fr.pix_to_face[0, hit] == torch.tensor([1, 0, 2])).all()
    fr = rasterize_meshes(_ndc_mesh(verts, ((0, 1, 2), (3, 4, 5), (6, 7, 8))), image_size=8, faces_per_pixel=2)
    assert (fr.pix_to_face[0, hit] == torch.tensor([1, 0])).all()


def test_perspective_correct_barycentrics_match_ray_plane_intersection():
    tri = torch.tensor([[-1.2, -1.0, 2.0], [1.4, -0.8, 4.0], [0.0, 1.2, 3.0]], dtype=torch.float64)
    cams = FoVPerspectiveCameras(fov=60.0)
    H = W = 16
    m = Meshes([tri.float()], [torch.tensor([[0, 1, 2]])])
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=H))(m)  # perspective_correct defaults to True
    fr_affine = MeshRasterizer(cams, RasterizationSettings(image_size=H, perspective_correct=False))(m)
    xx, yy = _pixel_grid(H, W)
    t = math.tan(math.radians(30.0))
    d = torch.stack([xx * t, yy * t, torch.ones_like(xx)], -1)  # view rays with z = 1
    n = torch.linalg.cross(tri[1] - tri[0], tri[2] - tri[0])
    s = (tri[0] @ n) / (d @ n)
    X = d * s[..., None]
    hit = fr.pix_to_face[0, ..., 0] >= 0
    assert hit.sum() > 30
    bary3 = _bary64(X[..., :2], tri[:, :2])
    got = fr.bary_coords[0, hit, 0].double()
    assert torch.allclose(got, bary3[hit], atol=1e-4)
    assert torch.allclose(fr.zbuf[0, hit, 0].double(), X[hit][:, 2], atol=1e-4)
    assert (fr_affine.bary_coords[0, hit, 0].double() - bary3[hit]).abs().max() > 1e-2


def _random_scene(n=3, level=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = [ico_sphere(level).verts_packed() * (0.4 + 0.4 * torch.rand(1, 3, generator=g))
             + 0.2 * torch.randn(1, 3, generator=g) for _ in range(n)]
    faces = [ico_sphere(level).faces_packed() for _ in range(n)]
    verts.append(cuboid_mesh((0.9, 0.5, 0.7), 60).verts_packed())  # heterogeneous batch
    faces.append(cuboid_mesh((0.9, 0.5, 0.7), 60).faces_packed())
    N = len(verts)
    R, T = pose_to_rt(torch.rand(N, generator=g) * 6.28, torch.rand(N, generator=g) - 0.5,
                      torch.rand(N, generator=g) - 0.5, torch.full((N,), 2.5))
    return Meshes(verts, faces), FoVPerspectiveCameras(R=R, T=T, fov=45)


@pytest.mark.parametrize("cfg", [
    dict(blur_radius=0.0, K=1, perspective_correct=True, clip=False, cull=False),
    dict(blur_radius=0.0, K=3, perspective_correct=False, clip=False, cull=True),
    dict(blur_radius=3e-3, K=8, perspective_correct=False, clip=True, cull=False),
    dict(blur_radius=3e-3, K=5, perspective_correct=True, clip=False, cull=False),
])
def test_binned_rasterizer_equals_brute_force(cfg):
    m, cams = _random_scene()
    v = transform_to_ndc(m, cams)
    f, f2m = m.faces_packed(), m.faces_packed_to_mesh_idx()
    args = (cfg["blur_radius"], cfg["K"], cfg["perspective_correct"], cfg["clip"])
    ref = reference_rasterize(v, f, f2m, len(m), (16, 22), *args, cull_backfaces=cfg["cull"])
    for max_pairs in (1 << 22, 300):  # 300 forces many blocks and intermediate top-K reductions
        fr = rasterize_packed(v, f, f2m, len(m), (16, 22), *args, cull_backfaces=cfg["cull"], max_pairs=max_pairs)
        assert torch.equal(fr.pix_to_face, ref[0])
        assert torch.allclose(fr.zbuf, ref[1], atol=1e-6)
        assert torch.allclose(fr.bary_coords, ref[2], atol=1e-6)
        assert torch.allclose(fr.dists, ref[3], atol=1e-7)
    assert (ref[0] >= 0).sum() > 150


def test_pix_to_face_indexes_packed_faces_of_each_mesh():
    m, cams = _random_scene()
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=24))(m)
    first = m.mesh_to_faces_packed_first_idx()
    nf = m.num_faces_per_mesh()
    for n in range(len(m)):
        ids = fr.pix_to_face[n][fr.pix_to_face[n] >= 0]
        assert ids.numel() > 0 and (ids >= first[n]).all() and (ids < first[n] + nf[n]).all()


def test_raster_masks_match_open3d_ray_casting_over_random_poses():
    g = torch.Generator().manual_seed(7)
    mesh = cuboid_mesh((0.8, 0.5, 1.0), 200, merge_duplicates=True)
    v, f = mesh.verts_list()[0], mesh.faces_list()[0]
    N, H, W = 12, 48, 64
    R, T = pose_to_rt(torch.rand(N, generator=g) * 6.28, (torch.rand(N, generator=g) - 0.5) * 2.4,
                      torch.rand(N, generator=g) - 0.5, 2.0 + torch.rand(N, generator=g))
    focal = 40.0 + 30 * torch.rand(N, generator=g)
    cp = torch.stack([W / 2 + 4 * torch.randn(N, generator=g), H / 2 + 4 * torch.randn(N, generator=g)], -1)
    cams = pinhole_cameras(R, T, focal, cp, (H, W))
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=(H, W)))(mesh.extend(N))
    rc = raycast_mesh(v, f, R, T, focal, cp, (H, W))
    mask = fr.pix_to_face[..., 0] >= 0
    for n in range(N):
        inter = (mask[n] & rc["mask"][n]).sum().item()
        union = (mask[n] | rc["mask"][n]).sum().item()
        assert union > 50 and inter / union >= 0.99
    both = mask & rc["mask"]
    assert torch.allclose(fr.zbuf[..., 0][both], rc["depth"][both], atol=1e-4)
    local = fr.pix_to_face[..., 0] - mesh.extend(N).mesh_to_faces_packed_first_idx().view(N, 1, 1)
    assert (local[both] == rc["face_ids"][both]).float().mean() > 0.99
    # the same camera objects drive the ray caster
    rc2 = raycast_cameras(v, f, cams, (H, W))
    assert torch.equal(rc2["mask"], rc["mask"])


def test_orthographic_raster_matches_ray_casting():
    m = ico_sphere(2)
    R, T = pose_to_rt(torch.tensor([0.3, 2.0]), torch.tensor([0.2, -0.4]), torch.zeros(2), torch.full((2,), 3.0))
    cams = FoVOrthographicCameras(R=R, T=T, max_y=1.2, min_y=-1.2, max_x=1.2, min_x=-1.2)
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=32))(m.extend(2))
    rc = raycast_cameras(m.verts_packed(), m.faces_packed(), cams, (32, 32))
    mask = fr.pix_to_face[..., 0] >= 0
    assert (mask == rc["mask"]).float().mean() > 0.995
    both = mask & rc["mask"]
    assert torch.allclose(fr.zbuf[..., 0][both], rc["depth"][both], atol=1e-3)


@pytest.mark.parametrize("azim_deg,elev_deg,axis", [(0, 0, (0, 0, 1)), (90, 0, (1, 0, 0)), (180, 0, (0, 0, -1)),
                                                   (-90, 0, (-1, 0, 0)), (0, 89, (0, 1, 0)), (0, -89, (0, -1, 0))])
def test_coloured_cube_known_views(azim_deg, elev_deg, axis):
    cube = cuboid_mesh((1.0, 1.0, 1.0), 8)  # separate vertices per box face
    v, f = cube.verts_list()[0], cube.faces_list()[0]
    fn = cube.faces_normals_packed()
    colors = torch.zeros_like(v)
    for k in range(f.shape[0]):  # colour = |normal| + 0.5 * (normal < 0): six distinct colours
        colors[f[k]] = fn[k].abs() * torch.where(fn[k] < 0, 0.5, 1.0)
    mesh = Meshes([v], [f], textures=TexturesVertex([colors]))
    R, T = pose_to_rt(math.radians(azim_deg), math.radians(elev_deg), 0.0, 4.0)
    cams = pinhole_cameras(R, T, 40.0, (16.3, 15.8), (32, 32))  # pixel (16, 16) off the face diagonals
    renderer = MeshRenderer(MeshRasterizer(cams, RasterizationSettings(image_size=32)),
                            HardFlatShader(cameras=cams, lights=AmbientLights()))
    img = renderer(mesh)
    a = torch.tensor(axis, dtype=torch.float32)
    expected = a.abs() * torch.where(a < 0, 0.5, 1.0)
    assert torch.allclose(img[0, 16, 16, :3], expected, atol=1e-5)
    assert img[0, 16, 16, 3] == 1 and img[0, 0, 0, 3] == 0


def test_backend_selection(monkeypatch):
    monkeypatch.delenv("WORKBENCH_RENDER_BACKEND", raising=False)
    assert get_backend("torch") == "torch"
    assert get_backend("auto") == ("pytorch3d" if pytorch3d_available() else "torch")
    monkeypatch.setenv("WORKBENCH_RENDER_BACKEND", "torch")
    assert get_backend("auto") == "torch"
    monkeypatch.setenv("WORKBENCH_RENDER_BACKEND", "opengl")
    with pytest.raises(RenderError, match="WORKBENCH_RENDER_BACKEND"):
        get_backend("auto")
    with pytest.raises(RenderError, match="unknown render backend"):
        get_backend("vulkan")
    if not pytorch3d_available():
        with pytest.raises(RenderError, match="pytorch3d"):
            get_backend("pytorch3d")


@pytest.mark.skipif(not pytorch3d_available(), reason="pytorch3d (with its compiled extension) is not importable")
@pytest.mark.parametrize("cfg", [dict(blur_radius=0.0, faces_per_pixel=1, cull_backfaces=False),
                                 dict(blur_radius=2e-3, faces_per_pixel=6, cull_backfaces=False),
                                 dict(blur_radius=0.0, faces_per_pixel=3, cull_backfaces=True)])
def test_torch_backend_equals_pytorch3d(cfg):
    m, cams = _random_scene()
    rs = RasterizationSettings(image_size=(24, 30), bin_size=0, **cfg)
    a = MeshRasterizer(cams, rs, backend="torch")(m)
    b = MeshRasterizer(cams, rs, backend="pytorch3d")(m)
    assert torch.equal(a.pix_to_face, b.pix_to_face)
    for x, y in zip(a[1:], b[1:]):
        assert torch.allclose(x, y, atol=1e-5)


def _coverage_counts(verts, faces, H, W, blur_radius, K=4):
    """(hard raster coverage count (H, W), packed 'inside' slot count (H, W))."""
    m = _ndc_mesh(verts, faces)
    hard = rasterize_meshes(m, image_size=(H, W), faces_per_pixel=K)
    soft = rasterize_meshes(m, image_size=(H, W), faces_per_pixel=K, blur_radius=blur_radius, dense=False)
    n_inside = torch.zeros(H * W, dtype=torch.int64).index_add_(0, soft.pix, soft.inside.long())
    return (hard.pix_to_face[0] >= 0).sum(-1), n_inside.view(H, W), soft


@pytest.mark.parametrize("diag", ["main", "anti"])
@pytest.mark.parametrize("flip", [False, True])
def test_shared_edge_through_pixel_centres_is_covered_exactly_once(diag, flip):
    # a square with corners on pixel boundaries (NDC +-0.75 at 16 px), split along a diagonal that
    # passes exactly through 12 pixel centres; both windings (front and back facing)
    H = W = 16
    c = [[-0.75, -0.75, 1.0], [0.75, -0.75, 1.0], [0.75, 0.75, 1.0], [-0.75, 0.75, 1.0]]
    faces = ((0, 1, 2), (0, 2, 3)) if diag == "main" else ((0, 1, 3), (1, 2, 3))
    if flip:
        faces = tuple((a, cc, b) for a, b, cc in faces)
    xx, yy = _pixel_grid(H, W)
    in_square = (xx.abs() < 0.75) & (yy.abs() < 0.75)
    on_diag = (xx == yy) if diag == "main" else (xx == -yy)
    assert (in_square & on_diag).sum() == 12
    hard, n_inside, soft = _coverage_counts(torch.tensor(c), faces, H, W, blur_radius=1e-3)
    assert (hard[in_square] == 1).all() and (hard[~in_square] == 0).all()
    assert (n_inside[in_square] == 1).all() and (n_inside[~in_square] == 0).all()
    # on the diagonal the soft raster still sees both faces (distance 0), exactly one of them inside
    both = torch.zeros(H * W, dtype=torch.int64).index_add_(0, soft.pix, torch.ones_like(soft.pix)).view(H, W)
    assert (both[in_square & on_diag] == 2).all()
    assert (soft.dists[~soft.inside] >= 0).all() and (soft.dists[soft.inside] <= 0).all()


def test_fan_around_a_pixel_centre_is_watertight():
    # 7 triangles around a vertex placed exactly on a pixel centre; the spokes cross many pixel
    # centres at inexact positions: every centre inside the polygon is covered exactly once
    H = W = 24
    xs, ys = pixel_centers_ndc((H, W))
    centre = torch.tensor([float(xs[11]), float(ys[9]), 1.0])
    g = torch.Generator().manual_seed(3)
    ang = torch.sort(torch.rand(7, generator=g) * 2 * math.pi).values
    rad = 0.55 + 0.25 * torch.rand(7, generator=g)
    ring = torch.stack([centre[0] + rad * torch.cos(ang), centre[1] + rad * torch.sin(ang), torch.ones(7)], 1)
    verts = torch.cat([centre[None], ring])
    faces = tuple((0, 1 + i, 1 + (i + 1) % 7) for i in range(7))
    xx, yy = _pixel_grid(H, W)
    p = torch.stack([xx, yy], -1)
    # strictly inside the outer polygon by > 1e-4 (the outer boundary itself is not shared)
    inner = torch.ones(H, W, dtype=torch.bool)
    for i in range(7):
        a, b = ring[i, :2].double(), ring[(i + 1) % 7, :2].double()
        e = b - a
        side = (e[0] * (p[..., 1] - a[1]) - e[1] * (p[..., 0] - a[0])) / e.norm()
        inner &= side > 1e-4
    assert inner.sum() > 100
    hard, n_inside, _ = _coverage_counts(verts, faces, H, W, blur_radius=2e-3, K=8)  # 7 faces meet at the vertex
    assert hard[9, 11] == 1 and n_inside[9, 11] == 1  # the shared vertex itself
    assert (hard[inner] == 1).all()
    assert (n_inside[inner] == 1).all()
