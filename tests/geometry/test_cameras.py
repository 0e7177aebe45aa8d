"""Cameras: pytorch3d conventions, NDC <-> screen, pixel-unit helpers."""
import math

import pytest
import torch

from workbench.core.errors import RenderError
from workbench.geometry import (FoVOrthographicCameras, FoVPerspectiveCameras, OrthographicCameras,
                                PerspectiveCameras, cameras_from_pose, pinhole_cameras, pixel_centers_ndc,
                                pose_to_rt, project_points_pinhole, weak_perspective_project)


def _pose(n=3):
    return pose_to_rt(torch.linspace(-2.0, 2.5, n), torch.linspace(-0.4, 0.5, n), torch.linspace(-0.3, 0.6, n),
                      torch.full((n,), 4.0))


def _points(n=3, p=7):
    return torch.randn(n, p, 3, generator=torch.Generator().manual_seed(0)) * 0.5


def test_pixel_centres_in_ndc():
    x, y = pixel_centers_ndc((4, 4))
    assert torch.allclose(x, torch.tensor([0.75, 0.25, -0.25, -0.75]))  # x = 1 - (2j + 1)/W
    assert torch.allclose(y, torch.tensor([0.75, 0.25, -0.25, -0.75]))
    x, y = pixel_centers_ndc((2, 4))  # wide image: x spans +-W/H
    assert torch.allclose(x, torch.tensor([1.5, 0.5, -0.5, -1.5]))
    assert torch.allclose(y, torch.tensor([0.5, -0.5]))


def test_screen_space_perspective_is_the_pixel_pinhole():
    R, T = _pose()
    f, c, (H, W) = torch.tensor([90.0, 120.0, 60.0]), torch.tensor([[40.0, 21.0], [33.5, 30.0], [10.0, 40.0]]), (48, 64)
    cams = PerspectiveCameras(focal_length=f, principal_point=c, R=R, T=T, in_ndc=False, image_size=((H, W),))
    X = _points()
    Xv = cams.get_world_to_view_transform().transform_points(X)
    uv = project_points_pinhole(Xv, f, c)
    assert torch.allclose(cams.transform_points_screen(X)[..., :2], uv, atol=1e-3)
    # pytorch3d's transform_points returns f X / Z + c (not image coordinates)
    raw = cams.transform_points(X)
    assert torch.allclose(raw[..., :2], f[:, None, None] * Xv[..., :2] / Xv[..., 2:] + c[:, None], atol=1e-3)
    assert torch.allclose(raw[..., 2], 1.0 / Xv[..., 2], atol=1e-6)
    assert torch.allclose(2 * c[:, None] - raw[..., :2], uv, atol=1e-3)  # NeMo's conversion


def test_fov_camera_equals_pinhole_and_ndc_z():
    R, T = _pose()
    cams = FoVPerspectiveCameras(fov=30.0, R=R, T=T, znear=0.5, zfar=20.0)
    X = _points()
    Xv = cams.get_world_to_view_transform().transform_points(X)
    ndc = cams.transform_points(X)
    t = math.tan(math.radians(15.0))
    assert torch.allclose(ndc[..., 0], Xv[..., 0] / (Xv[..., 2] * t), atol=1e-5)
    assert torch.allclose(ndc[..., 2], 20.0 * (Xv[..., 2] - 0.5) / (19.5 * Xv[..., 2]), atol=1e-5)
    f = cams.focal_length_px((64, 64))
    assert torch.allclose(f, torch.full((3,), 32.0 / t))
    scr = cams.transform_points_screen(X, image_size=((64, 64),))
    assert torch.allclose(scr[..., :2], project_points_pinhole(Xv, f, torch.full((3, 2), 32.0)), atol=1e-3)
    # fov 30 deg == PerspectiveCameras(focal_length=1/tan(15 deg)) in NDC (UNICORN's 3.732)
    p = PerspectiveCameras(focal_length=1.0 / t, R=R, T=T)
    assert torch.allclose(p.transform_points(X)[..., :2], ndc[..., :2], atol=1e-5)
    assert abs(1.0 / t - 3.732) < 1e-3


def test_orthographic_cameras():
    R, T = _pose()
    X = _points()
    Xv = X @ R + T[:, None]
    o = OrthographicCameras(focal_length=2.0, principal_point=((0.1, -0.2),), R=R, T=T)
    out = o.transform_points(X)
    assert torch.allclose(out[..., 0], 2.0 * Xv[..., 0] + 0.1, atol=1e-5)
    assert torch.allclose(out[..., 2], Xv[..., 2], atol=1e-5)
    fo = FoVOrthographicCameras(R=R, T=T, max_y=2.0, min_y=-2.0, max_x=2.0, min_x=-2.0)
    assert torch.allclose(fo.transform_points(X)[..., :2], Xv[..., :2] / 2.0, atol=1e-5)
    assert not o.is_perspective() and not fo.is_perspective()


def test_camera_center_batching_and_errors():
    R, T = _pose(4)
    cams = cameras_from_pose(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.arange(1.0, 5.0), 50.0,
                             (16.0, 16.0), (32, 32))
    assert torch.allclose(cams.get_camera_center(), torch.stack([torch.zeros(4), torch.zeros(4),
                                                                torch.arange(1.0, 5.0)], -1), atol=1e-6)
    sub = cams[[1, 3]]
    assert len(sub) == 2 and torch.allclose(sub.get_camera_center()[:, 2], torch.tensor([2.0, 4.0]))
    single = pinhole_cameras(R[:1], T[:1], 50.0, (16.0, 16.0), (32, 32))
    assert single.get_focal_length().shape == (1, 2)
    with pytest.raises(RenderError):
        PerspectiveCameras(focal_length=10.0, in_ndc=False)  # screen space needs image_size


def test_weak_perspective_projection():
    R = torch.eye(3)[None].repeat(2, 1, 1)
    R[1] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    pts = torch.tensor([[1.0, 2.0, 3.0]])
    out = weak_perspective_project(pts, R, torch.tensor([2.0, 3.0]), torch.tensor([[0.5, -0.5], [0.0, 1.0]]))
    # row vectors: [1, 2, 3] @ R[1] = [2, -1, 3]
    assert torch.allclose(out, torch.tensor([[[2.5, 3.5]], [[6.0, -2.0]]]))
