"""Pose chain: (azimuth, elevation, theta, distance) <-> (R, T), rotation error, summary."""
import math

import pytest
import roma
import torch

from workbench.core.errors import ShapeError
from workbench.geometry import (camera_center_from_rt, camera_position, look_at_view_transform, pose_summary,
                                pose_to_rt, project_points_pinhole, rotation_error, rt_to_pose)


def _random_poses(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * math.pi * 0.999
    e = (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * 1.4  # away from the poles
    th = (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * math.pi * 0.999
    d = 1.0 + 9.0 * torch.rand(n, generator=g, dtype=dtype)
    return a, e, th, d


def test_camera_position_formula():
    C = camera_position(torch.tensor([0.0, math.pi / 2, 0.0]), torch.tensor([0.0, 0.0, math.pi / 2]),
                        torch.tensor([2.0, 3.0, 4.0]))
    expected = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    assert torch.allclose(C, expected, atol=1e-6)


def test_round_trip_exact_away_from_poles():
    a, e, th, d = _random_poses(200)
    R, T = pose_to_rt(a, e, th, d)
    assert R.dtype == torch.float64
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(200, dtype=R.dtype), atol=1e-12)
    a2, e2, th2, d2 = rt_to_pose(R, T)
    for x, y in ((a, a2), (e, e2), (th, th2), (d, d2)):
        assert torch.allclose(x, y, atol=1e-9)


def test_view_geometry_of_look_at():
    a, e, th, d = _random_poses(50, seed=1)
    R, T = pose_to_rt(a, e, th, d)
    C = camera_position(a, e, d)
    # camera centre maps to the view origin, the world origin lies on the optical axis at depth d
    assert torch.allclose((C[:, None] @ R)[:, 0] + T, torch.zeros_like(T), atol=1e-10)
    assert torch.allclose(T, torch.stack([torch.zeros_like(d), torch.zeros_like(d), d], -1), atol=1e-10)
    assert torch.allclose(camera_center_from_rt(R, T), C, atol=1e-10)
    # with theta = 0 the world up vector projects to view +Y (up on screen)
    R0, _ = pose_to_rt(a, e, torch.zeros_like(th), d)
    up_view = torch.tensor([0.0, 1.0, 0.0], dtype=R0.dtype) @ R0
    assert (up_view[:, 1] > 0).all() and torch.allclose(up_view[:, 0], torch.zeros_like(d), atol=1e-12)


def test_matches_pytorch3d_look_at_view_transform_in_degrees():
    R1, T1 = look_at_view_transform(dist=2.5, elev=20.0, azim=-35.0)
    R2, T2 = pose_to_rt(math.radians(-35.0), math.radians(20.0), 0.0, 2.5)
    assert torch.allclose(R1, R2.float(), atol=1e-6) and torch.allclose(T1, T2.float(), atol=1e-6)


def _pascal_project(P, a, e, th, d, focal=1.0, viewport=3000.0, principal=(320.0, 240.0)):
    """PASCAL3D+ ``project_3d`` (Z-up object frame) written from its published formula."""
    C = torch.tensor([d * math.cos(e) * math.sin(a), -d * math.cos(e) * math.cos(a), d * math.sin(e)])
    a_, e_ = -a, -(math.pi / 2 - e)
    Rz = torch.tensor([[math.cos(a_), -math.sin(a_), 0.0], [math.sin(a_), math.cos(a_), 0.0], [0.0, 0.0, 1.0]])
    Rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(e_), -math.sin(e_)], [0.0, math.sin(e_), math.cos(e_)]])
    R = Rx @ Rz
    M = torch.diag(torch.tensor([viewport * focal, viewport * focal, -1.0])) @ torch.cat([R, (-R @ C)[:, None]], 1)
    x = M @ torch.cat([P, torch.ones(len(P), 1)], 1).T
    x = x[:2] / x[2:3]
    R2 = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    x = (R2 @ x).T
    x[:, 1] = -x[:, 1]
    return x + torch.tensor(principal)


@pytest.mark.parametrize("pose", [(0.3, 0.2, 0.0, 5.0), (0.3, 0.2, 0.4, 5.0), (-2.0, -0.3, -1.0, 4.0),
                                  (2.9, 0.6, 2.5, 7.0)])
def test_in_plane_sign_matches_pascal3d_projection(pose):
    torch.set_default_dtype(torch.float64)
    try:
        a, e, th, d = pose
        P_ours = torch.randn(12, 3, generator=torch.Generator().manual_seed(3)) * 0.3  # Y-up
        P_pascal = torch.stack([P_ours[:, 0], -P_ours[:, 2], P_ours[:, 1]], 1)  # inverse of (x,z,-y)
        ref = _pascal_project(P_pascal, a, e, th, d)
        R, T = pose_to_rt(a, e, th, d)
        uv = project_points_pinhole(P_ours[None] @ R + T[:, None], torch.tensor([3000.0]),
                                    torch.tensor([[320.0, 240.0]]))[0]
        assert torch.allclose(uv, ref, atol=1e-8)
    finally:
        torch.set_default_dtype(torch.float32)


def test_positive_theta_turns_the_image_counter_clockwise():
    R, T = pose_to_rt(0.0, 0.0, 0.3, 5.0)
    top = torch.tensor([[[0.0, 1.0, 0.0]]])  # above the object centre
    uv = project_points_pinhole(top @ R + T[:, None], torch.tensor([100.0]), torch.tensor([[50.0, 50.0]]))[0, 0]
    assert uv[1] < 50.0 and uv[0] < 50.0  # still above the centre, moved left = counter-clockwise


def test_rotation_error_known_angles():
    I = torch.eye(3)
    angles = torch.tensor([0.0, 1e-4, math.pi / 6, math.pi / 2, 3.0, math.pi])
    for axis in (torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.6, 0.8])):
        Rs = roma.rotvec_to_rotmat(angles[:, None].double() * axis.double())
        err = rotation_error(Rs, I.double().expand(len(angles), 3, 3))
        assert err.dtype == torch.float64
        assert torch.allclose(err, angles.double(), atol=1e-7)
    assert rotation_error(I, I).item() == 0.0  # no cos_bound offset (pytorch3d gives 0.0071)
    A = roma.random_rotmat(5, generator=torch.Generator().manual_seed(0))
    B = roma.random_rotmat(5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(rotation_error(A, B), rotation_error(B, A), atol=1e-12)
    with pytest.raises(ShapeError):
        rotation_error(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))


def test_pose_summary_values():
    errs = torch.tensor([math.radians(x) for x in (1.0, 5.0, 20.0, 40.0, 100.0)])
    s = pose_summary(errs)
    assert s == pytest.approx({"acc_pi6": 0.6, "acc_pi18": 0.4, "median_deg": 20.0})
    assert pose_summary([float("nan"), 0.0])["acc_pi6"] == pytest.approx(0.5)
    with pytest.raises(ShapeError):
        pose_summary([])


def test_inplane_rotation_closed_form_matches_roma():
    import roma

    from workbench.geometry.pose import inplane_rotation

    th = torch.linspace(-3.5, 3.5, 11, dtype=torch.float64)
    rv = torch.stack([torch.zeros_like(th), torch.zeros_like(th), th], dim=-1)
    torch.testing.assert_close(inplane_rotation(th), roma.rotvec_to_rotmat(rv), rtol=0, atol=1e-12)
    # a column vector along x rotates by +theta in the image plane
    R = inplane_rotation(torch.tensor([torch.pi / 2], dtype=torch.float64))[0]
    torch.testing.assert_close(R @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64), rtol=0, atol=1e-12)
