"""Camera frusta follow the pose chain; image overlays land on the right pixels."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.core.errors import ShapeError
from workbench.geometry.cameras import project_points_pinhole
from workbench.geometry.pose import camera_position, pose_to_rt
from workbench.viz._util import decode_data_uri
from workbench.viz.cameras import camera_centers, camera_figure, frustum_points
from workbench.viz.images import correspondence_figure, image_grid, overlay_mask, render_comparison

POSES = dict(azimuth=torch.tensor([0.3, 2.0, -1.0]), elevation=torch.tensor([0.2, -0.4, 0.9]),
             theta=torch.tensor([0.0, 0.5, -0.3]), distance=torch.tensor([3.0, 2.5, 4.0]))


def test_frustum_apex_and_axis_follow_the_pose_chain():
    R, T = pose_to_rt(**POSES)
    depth, f, size = 0.7, 100.0, (96, 128)
    pts = frustum_points(R.numpy(), T.numpy(), f, (64.0, 48.0), size, depth)
    C = camera_position(POSES["azimuth"], POSES["elevation"], POSES["distance"]).numpy()
    np.testing.assert_allclose(pts[:, 0], C, atol=1e-5)                     # apex = camera centre
    np.testing.assert_allclose(camera_centers(R.numpy(), T.numpy()), C, atol=1e-5)
    # centred principal point: the image rectangle's centre lies on the ray to the origin (look-at)
    centre = pts[:, 1:5].mean(axis=1)
    expect = C - depth * C / np.linalg.norm(C, axis=1, keepdims=True)
    np.testing.assert_allclose(centre, expect, atol=1e-5)


def test_frustum_corners_project_to_image_corners_and_up_marker_above():
    R, T = pose_to_rt(**POSES)
    h, w, f = 96, 128, 110.0
    pts = torch.tensor(frustum_points(R.numpy(), T.numpy(), f, (w / 2, h / 2), (h, w), 0.5), dtype=R.dtype)
    view = pts @ R + T[:, None]                                               # X_view = X_world R + T
    uv = project_points_pinhole(view[:, 1:], torch.full((3,), f), torch.tensor([[w / 2, h / 2]] * 3))
    corners = torch.tensor([[0, 0], [w, 0], [w, h], [0, h]], dtype=uv.dtype)
    torch.testing.assert_close(uv[:, :4], corners.expand(3, 4, 2), atol=1e-3, rtol=0)
    assert (uv[:, 6, 1] < 0).all()          # the "up" triangle's apex is above the top edge (y down)


def test_camera_figure_colours_by_rotation_error(cube):
    R, T = pose_to_rt(**POSES)
    # prediction = ground truth rotated in-plane by 0, 30 and 90 degrees
    d_theta = torch.tensor([0.0, math.pi / 6, math.pi / 2])
    Rp, Tp = pose_to_rt(POSES["azimuth"], POSES["elevation"], POSES["theta"] + d_theta, POSES["distance"])
    fig = camera_figure(cube, gt=(R, T), pred=dict(POSES, theta=POSES["theta"] + d_theta), error_max_deg=90)
    np.testing.assert_allclose(fig.layout.meta["errors_deg"], [0.0, 30.0, 90.0], atol=0.02)  # float32 poses
    preds = [t for t in fig.data if t.legendgroup == "pred"]
    gts = [t for t in fig.data if t.legendgroup == "gt"]
    assert len(preds) == 3 and len(gts) == 3
    assert preds[0].line.color == "rgb(0,104,55)" and preds[2].line.color == "rgb(165,0,38)"  # green .. red
    assert "30.0 deg" in preds[1].hovertext
    with pytest.raises(ShapeError, match="needs gt and/or pred"):
        camera_figure(cube)


def test_overlay_mask_fill_and_contour():
    img = np.zeros((8, 8, 3), np.float32)
    m = np.zeros((1, 8, 8), np.float32)
    m[0, 2:6, 2:6] = 1
    out = overlay_mask(img, m, color="#FF0000", alpha=0.5)
    np.testing.assert_allclose(out[3, 3], [0.5, 0, 0])
    np.testing.assert_allclose(out[0, 0], [0, 0, 0])
    edge = overlay_mask(img, m, color="#00FF00", mode="contour")
    assert (edge[..., 1] == 1).sum() == 12          # the 4x4 square's one-pixel boundary
    assert edge[3, 3, 1] == 0 and edge[2, 3, 1] == 1
    with pytest.raises(ShapeError):
        overlay_mask(img, np.ones((4, 4)))


def test_image_grid_round_trips_pixels_and_places_keypoints():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 3, 12, 16)).astype(np.uint8)
    kps = rng.random((5, 4, 2)) * [16, 12]
    fig = image_grid(imgs, ncols=3, titles=list("abcde"), keypoints=kps, keypoints_visible=np.ones((5, 4)))
    ims = [t for t in fig.data if t.type == "image"]
    assert len(ims) == 5
    np.testing.assert_array_equal(decode_data_uri(ims[4].source), imgs[4].transpose(1, 2, 0))
    assert ims[0].x0 == 0.5 and ims[0].y0 == 0.5     # pixel (0, 0) centred at (0.5, 0.5)
    sc = [t for t in fig.data if t.type == "scatter"]
    np.testing.assert_allclose(np.c_[sc[2].x, sc[2].y], kps[2])
    assert sc[2].xaxis == ims[2].xaxis                 # on the same subplot as its image
    assert [a.text for a in fig.layout.annotations][:5] == list("abcde")


def test_image_grid_mask_sets_make_a_legend():
    img = np.zeros((2, 3, 6, 6))
    gt = np.zeros((2, 1, 6, 6))
    gt[:, :, :3] = 1
    fig = image_grid(img, masks={"gt": gt, "pred": 1 - gt}, mask_colors=["#FF0000", "#0000FF"], mask_alpha=1.0)
    px = decode_data_uri(fig.data[0].source)
    assert tuple(px[0, 0]) == (255, 0, 0) and tuple(px[5, 0]) == (0, 0, 255)
    assert {t.name for t in fig.data if t.type == "scatter"} == {"gt", "pred"}


def test_correspondence_lines_connect_the_right_points():
    a = np.zeros((3, 10, 20))
    b = np.ones((3, 10, 30))
    pa = np.array([[1.0, 2.0], [5.0, 5.0], [19.0, 9.0]])
    pb = np.array([[0.5, 0.5], [10.0, 3.0], [29.0, 1.0]])
    fig = correspondence_figure(a, b, pa, pb, inliers=[True, False, True], gap=4)
    inl = [t for t in fig.data if t.name == "inlier"][0]
    xy = np.c_[inl.x, inl.y].astype(float)
    np.testing.assert_allclose(xy[0], pa[0])
    np.testing.assert_allclose(xy[1], pb[0] + [24, 0])         # offset = width of a + gap
    np.testing.assert_allclose(xy[4], pb[2] + [24, 0])
    assert len([t for t in fig.data if t.name == "outlier"][0].x) == 3
    canvas = decode_data_uri(fig.data[0].source)
    assert canvas.shape == (10, 54, 3)
    many = correspondence_figure(a, b, np.zeros((500, 2)), np.zeros((500, 2)), max_lines=50)
    assert many.layout.meta == {"n_matches": 500, "n_drawn": 50}


def test_render_comparison_error_row():
    x = np.zeros((2, 3, 8, 8))
    y = np.zeros((2, 3, 8, 8))
    y[1, :, :4] = 0.5
    fig = render_comparison(x, y)
    assert fig.layout.meta["max_abs_error"] == pytest.approx(0.5)
    assert len([t for t in fig.data if t.type == "image"]) == 8           # 4 rows x 2 samples
    over = decode_data_uri(fig.data[5].source)                            # overlay of sample 1
    assert over[0, 0, 0] in (63, 64) and over[7, 0, 0] == 0              # 50/50 blend, rows 0-3 differ
    with pytest.raises(ShapeError):
        render_comparison(x, y[:1])
