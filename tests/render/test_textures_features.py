"""Textures, interpolation, analytic blending, feature rendering, visibility and ray casting."""
import math

import torch

from workbench.geometry import FoVPerspectiveCameras, Meshes, cuboid_mesh, ico_sphere, pinhole_cameras, pose_to_rt
from workbench.render import (BlendParams, MeshRasterizer, RasterizationSettings, TexturesUV,
                              interpolate_face_attributes, layered_rgb_blend, raycast_mesh, rasterize_meshes,
                              render_features, render_mask_depth, sample_image_at_points, softmax_rgb_blend,
                              vertex_visibility)
from workbench.render.fragments import Fragments


def _quad_ndc():
    """A screen-filling quad in NDC: vertex 0 at the image's top-left (NDC x = +1 is the left)."""
    verts = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]]) * 1.001
    verts[:, 2] = 1.0
    faces = torch.tensor([[0, 2, 1], [1, 2, 3]])
    return verts, faces


def test_textures_uv_conventions_and_packed_sampling():
    verts, faces = _quad_ndc()
    # uv origin at the bottom-left of the map: top-left vertex has uv (0, 1)
    uvs = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    tex_map = torch.zeros(1, 8, 8, 3)
    tex_map[0, :4, :4] = colors[0]  # map top-left
    tex_map[0, :4, 4:] = colors[1]  # map top-right
    tex_map[0, 4:, :4] = colors[2]  # map bottom-left
    tex_map[0, 4:, 4:] = colors[3]
    tex = TexturesUV(tex_map, [faces], [uvs])
    mesh = Meshes([verts], [faces], textures=tex)
    fr = rasterize_meshes(mesh, image_size=16, faces_per_pixel=1)
    texels = mesh.sample_textures(fr)[0, ..., 0, :]
    for (r, c), col in zip([(2, 2), (3, 11), (11, 3), (13, 13)], colors):  # off the quad diagonal
        assert torch.allclose(texels[r, c], col, atol=1e-5)
    p = fr.packed
    packed = tex.sample_textures_packed(p, mesh.faces_packed())
    dense_at_slots = mesh.sample_textures(fr).reshape(-1, 3)[p.slot]
    assert torch.allclose(packed, dense_at_slots, atol=1e-6)


def test_sample_image_at_points_pixel_centres_are_exact():
    img = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    pts = torch.tensor([[[0.5, 0.5], [6.5, 4.5], [3.5, 2.5]], [[1.5, 3.5], [2.0, 2.5], [0.5, 4.5]]])
    out = sample_image_at_points(img, pts)
    assert torch.allclose(out[0, 0], img[0, :, 0, 0]) and torch.allclose(out[0, 1], img[0, :, 4, 6])
    assert torch.allclose(out[1, 0], img[1, :, 3, 1])
    assert torch.allclose(out[1, 1], 0.5 * (img[1, :, 2, 1] + img[1, :, 2, 2]))  # halfway between columns


def test_interpolating_view_depth_reproduces_zbuf():
    m = ico_sphere(2)
    R, T = pose_to_rt(0.5, 0.3, 0.2, 3.0)
    cams = FoVPerspectiveCameras(R=R, T=T, fov=40)
    fr = MeshRasterizer(cams, RasterizationSettings(image_size=24))(m)
    zv = (m.verts_packed() @ R[0] + T[0])[:, 2:]
    z = interpolate_face_attributes(fr.pix_to_face, fr.bary_coords, zv[m.faces_packed()])
    hit = fr.pix_to_face >= 0
    assert hit.sum() > 100
    assert torch.allclose(z[..., 0][hit], fr.zbuf[hit], atol=1e-5)
    assert (z[~hit] == 0).all()


def _two_layer_fragments(d0, d1, z0=1.0, z1=2.0):
    p2f = torch.tensor([[[[0, 1]]]])
    return Fragments(p2f, torch.tensor([[[[z0, z1]]]]), torch.full((1, 1, 1, 2, 3), 1 / 3), torch.tensor([[[[d0, d1]]]]))


def test_layered_blend_analytic():
    sigma = 0.01
    c = torch.tensor([[[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]]])
    bg = (0.0, 0.0, 1.0)
    fr = _two_layer_fragments(0.02, -0.001)  # front slot outside (occupancy e^-2), back slot inside
    out = layered_rgb_blend(c, fr, BlendParams(sigma=sigma, background_color=bg))[0, 0, 0]
    o0 = math.exp(-2.0)
    assert torch.allclose(out, torch.tensor([o0, 1 - o0, 0.0, 1.0]), atol=1e-6)
    fr = _two_layer_fragments(0.02, 0.01)  # both outside: background shows through
    out = layered_rgb_blend(c, fr, BlendParams(sigma=sigma, background_color=bg))[0, 0, 0]
    o1 = math.exp(-1.0)
    t = (1 - o0) * (1 - o1)
    assert torch.allclose(out, torch.tensor([o0, (1 - o0) * o1, t, 1 - t]), atol=1e-6)


def test_softmax_blend_analytic_single_face():
    sigma, gamma = 1e-4, 1e-4
    p2f = torch.tensor([[[[0]]]])
    fr = Fragments(p2f, torch.tensor([[[[3.0]]]]), torch.full((1, 1, 1, 1, 3), 1 / 3), torch.tensor([[[[-1e-4]]]]))
    c = torch.tensor([[[[[0.2, 0.4, 0.6]]]]])
    out = softmax_rgb_blend(c, fr, BlendParams(sigma, gamma, (1.0, 1.0, 1.0)))[0, 0, 0]
    p = 1 / (1 + math.exp(-1.0))
    zi = (100 - 3.0) / 99.0
    delta = max(math.exp((1e-10 - zi) / gamma), 1e-10)
    expect = (p * torch.tensor([0.2, 0.4, 0.6]) + delta) / (p + delta)
    assert torch.allclose(out[:3], expect.float(), atol=1e-6) and abs(float(out[3]) - p) < 1e-6


def test_render_features_match_ray_cast_points_and_visibility():
    m = cuboid_mesh((0.9, 0.6, 0.7), 300, merge_duplicates=True)
    v, f = m.verts_list()[0], m.faces_list()[0]
    N, H, W = 3, 20, 25
    R, T = pose_to_rt(torch.tensor([0.4, 2.0, -1.0]), torch.tensor([0.3, -0.2, 0.5]), torch.zeros(3),
                      torch.full((3,), 3.0))
    focal, cp = torch.full((N,), 30.0), torch.tensor([[12.3, 9.7]] * N)
    cams = pinhole_cameras(R, T, focal, cp, (H, W))
    feats = torch.cat([v, torch.ones(len(v), 1), torch.randn(len(v), 124)], 1)  # C = 128
    fmap, fr = render_features(m, feats, cams, (H, W), return_fragments=True)
    assert fmap.shape == (N, 128, H, W)
    rc = raycast_mesh(v, f, R, T, focal, cp, (H, W))
    both = rc["mask"] & (fmap[:, 3] > 0.5)
    assert (rc["mask"] == (fmap[:, 3] > 0.5)).float().mean() > 0.99
    hit_points = (v[f[rc["face_ids"].clamp_min(0)]] * rc["bary"][..., None]).sum(-2)
    assert torch.allclose(fmap[:, :3].permute(0, 2, 3, 1)[both], hit_points[both], atol=1e-4)
    assert (fmap[:, :, ~(fmap[:, 3] > 0.5).any(0)] == 0).all()
    # padded (N, V, C) features give the same maps
    assert torch.allclose(render_features(m, feats[None].expand(N, -1, -1), cams, (H, W)), fmap)
    # sphere visibility: the hemisphere facing the camera is visible, the far one is not
    s = ico_sphere(3)
    Rs, Ts = pose_to_rt(torch.tensor([0.0]), torch.tensor([0.0]), torch.zeros(1), torch.tensor([4.0]))
    cs = pinhole_cameras(Rs, Ts, 60.0, (32.0, 32.0), (64, 64))
    frs = MeshRasterizer(cs, RasterizationSettings(image_size=64))(s)
    z = s.verts_packed()[:, 2]
    for cams_arg, frac in ((None, 0.85), (cs, 0.97)):  # faces smaller than a pixel: face-only under-reports
        vis = vertex_visibility(frs, s, cameras=cams_arg)[0]
        assert vis[z > 0.35].float().mean() > frac and not vis[z < 0.1].any()


def test_render_mask_depth_and_raycast_depth_is_z_depth():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    R, T = pose_to_rt(0.0, 0.0, 0.0, 3.0)  # camera on +Z looking at the plane z = 0
    rc = raycast_mesh(verts, faces, R, T, 20.0, (16.3, 15.8), (32, 32))  # no pixel centre on the diagonal
    assert not rc["mask"].all() and rc["mask"].sum() > 150
    assert torch.allclose(rc["depth"][rc["mask"]], torch.full_like(rc["depth"][rc["mask"]], 3.0), atol=1e-5)
    assert torch.isinf(rc["depth"][~rc["mask"]]).all() and (rc["face_ids"][~rc["mask"]] == -1).all()
    assert torch.allclose(rc["normals"][rc["mask"]], torch.tensor([0.0, 0.0, 1.0]).expand(int(rc["mask"].sum()), 3))
    cams = pinhole_cameras(R, T, 20.0, (16.3, 15.8), (32, 32))
    mask, depth = render_mask_depth(Meshes([verts], [faces]), cams, (32, 32))
    assert mask.shape == (1, 1, 32, 32) and torch.equal(mask[0, 0] > 0, rc["mask"][0])
    assert torch.allclose(depth[0, 0][rc["mask"][0]], rc["depth"][0][rc["mask"][0]], atol=1e-5)


def test_layered_packed_accepts_background_image():
    """A background image (N, H, W, 3) composites as C + (1 - alpha) * bg on the packed path."""
    from workbench.geometry import FoVPerspectiveCameras
    from workbench.render import LayeredShader, MeshRenderer

    mesh = ico_sphere(2)
    mesh = Meshes(verts=[mesh.verts_list()[0] * 0.6], faces=[mesh.faces_list()[0]])
    R, T = pose_to_rt(torch.tensor([0.3]), torch.tensor([0.2]), torch.zeros(1), torch.tensor([2.732]))
    cams = FoVPerspectiveCameras(R=R, T=T, fov=30.0)
    sigma = 1e-4
    settings = RasterizationSettings(image_size=24, blur_radius=math.log(1 / 1e-4 - 1) * sigma, faces_per_pixel=10,
                                     perspective_correct=False)
    bg = torch.rand(1, 24, 24, 3, generator=torch.Generator().manual_seed(0))

    def render(background):
        shader = LayeredShader(BlendParams(sigma=sigma, background_color=background))
        return MeshRenderer(MeshRasterizer(cameras=cams, raster_settings=settings), shader)(mesh)

    black = render((0.0, 0.0, 0.0))
    with_img = render(bg)
    alpha = black[..., 3:]
    assert 0.05 < float(alpha.mean()) < 0.95
    assert torch.allclose(with_img[..., :3], black[..., :3] + (1 - alpha) * bg, atol=1e-5)
    assert torch.allclose(with_img[..., 3], black[..., 3])
