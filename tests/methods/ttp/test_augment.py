"""Equivariance bookkeeping: kornia's affine matrices in TTP's coordinates, and the flip identities."""
from __future__ import annotations

import roma
import torch

from workbench.methods.ttp.augment import (EquivarianceAugment, affine_norm_matrix, flip_images,
                                           flip_keypoints, flip_points, flip_pose, norm_to_pixel,
                                           pixel_to_norm, transform_points)
from workbench.methods.ttp.solver import camera_from_points, project_weak_perspective
from workbench.methods.ttp.template import sphere_template


def _blobs(B, S, g, sigma=1.5):
    """Gaussian blobs at random sub-pixel positions; returns images and their normalised centres."""
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    c = torch.rand(B, 2, generator=g) * (S / 3) + S / 3                   # kornia pixel coords (x, y)
    img = torch.exp(-((xs - c[:, 0, None, None]) ** 2 + (ys - c[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    return img[:, None].expand(B, 3, S, S).contiguous(), ((2 * c + 1) / S - 1)[:, None]


def _centroid(img):
    S = img.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    g = img[:, 0]
    cx, cy = (g * xs).sum((1, 2)) / g.sum((1, 2)), (g * ys).sum((1, 2)) / g.sum((1, 2))
    return torch.stack([(2 * cx + 1) / S - 1, (2 * cy + 1) / S - 1], -1)


def test_pixel_norm_maps_are_inverse_and_match_pixel_centres():
    S = 16
    P, Q = norm_to_pixel(S), pixel_to_norm(S)
    assert torch.allclose(P @ Q, torch.eye(3), atol=1e-6)
    # the centre of column j is u = (2j + 1)/W - 1 (grid_sample align_corners=False)
    u = torch.tensor([[[(2 * 3 + 1) / S - 1, (2 * 10 + 1) / S - 1]]])
    assert torch.allclose(transform_points(P[None], u), torch.tensor([[[3.0, 10.0]]]), atol=1e-6)


def test_affine_matrix_moves_image_content_where_it_moves_the_points():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    S = 48
    img, u = _blobs(16, S, g)
    warped, _, M = EquivarianceAugment(40.0, 0.15, (0.7, 1.2))(img)
    predicted = transform_points(M, u)[:, 0]
    err_px = (predicted - _centroid(warped)).abs().max() * S / 2
    assert err_px < 0.1
    # control: the usual mistake (pixel centres at half-integers, i.e. no -1/2 shift) is visible
    Pw = torch.tensor([[S / 2, 0, S / 2], [0, S / 2, S / 2], [0, 0, 1.0]])
    M_wrong = torch.linalg.inv(Pw) @ (norm_to_pixel(S) @ M @ pixel_to_norm(S)) @ Pw
    wrong = transform_points(M_wrong, u)[:, 0]
    assert (wrong - _centroid(warped)).abs().max() * S / 2 > 3 * err_px


def test_masks_are_warped_with_the_same_parameters():
    torch.manual_seed(3)
    img = torch.rand(4, 3, 32, 32)
    mask = img[:, :1].clone()
    w_img, w_mask, _ = EquivarianceAugment()(img, mask)
    assert torch.allclose(w_img[:, :1], w_mask, atol=1e-5)


def test_horizontal_flip_of_a_pixel_negates_its_x():
    S = 20
    img = torch.zeros(1, 1, S, S)
    img[0, 0, 7, 4] = 1.0
    u = torch.tensor([(2 * 4 + 1) / S - 1, (2 * 7 + 1) / S - 1])
    f = flip_images(img)
    r, c = (f[0, 0] == 1).nonzero()[0].tolist()
    assert torch.allclose(torch.tensor([(2 * c + 1) / S - 1, (2 * r + 1) / S - 1]), u * torch.tensor([-1.0, 1.0]))


def test_flip_identities_for_a_symmetric_template():
    T = sphere_template(2)
    X = T.verts * torch.tensor([1.0, 1.3, 0.7]) + torch.tensor([0.0, 0.2, 0.1])   # still x-symmetric
    g = torch.Generator().manual_seed(5)
    B = 6
    R = roma.rotvec_to_rotmat(torch.randn(B, 3, generator=g))
    t = 0.2 * torch.randn(B, 2, generator=g)
    s = 0.3 + torch.rand(B, generator=g)
    c = 0.1 * torch.randn(B, 2, generator=g)
    u = project_weak_perspective(X, R, t, s, c)
    Rf, tf = flip_pose(R, t)
    cf = c * torch.tensor([-1.0, 1.0])
    u_flip = project_weak_perspective(X, Rf, tf, s, cf)
    assert torch.allclose(flip_points(u, T.symmetry), u_flip, atol=1e-5)
    assert torch.allclose(torch.det(Rf), torch.ones(B), atol=1e-5)           # still a rotation
    s1, c1 = camera_from_points(u)
    s2, c2 = camera_from_points(flip_points(u, T.symmetry))
    assert torch.allclose(s1, s2, atol=1e-6) and torch.allclose(c2, c1 * torch.tensor([-1.0, 1.0]), atol=1e-6)
    # flipping twice is the identity
    assert torch.allclose(flip_points(flip_points(u, T.symmetry), T.symmetry), u)


def test_flip_keypoints_swaps_left_and_right():
    names = ("beak", "left_eye", "right_eye", "tail")
    kp = torch.tensor([[[0.1, 0.2], [0.3, -0.1], [-0.2, -0.1], [0.5, 0.5]]])
    vis = torch.tensor([[True, True, False, True]])
    kf, vf = flip_keypoints(kp, vis, names, [("left_eye", "right_eye")])
    assert torch.allclose(kf[0, 0], torch.tensor([-0.1, 0.2]))
    assert torch.allclose(kf[0, 1], torch.tensor([0.2, -0.1])) and not bool(vf[0, 1])
    assert torch.allclose(kf[0, 2], torch.tensor([-0.3, -0.1])) and bool(vf[0, 2])
    k2, v2 = flip_keypoints(kf, vf, names, [("left_eye", "right_eye")])
    assert torch.allclose(k2, kp) and torch.equal(v2, vis)


def test_affine_norm_matrix_of_a_pure_pixel_translation():
    S = 32
    M_pix = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0], [0.0, 0.0, 1.0]]])
    M = affine_norm_matrix(M_pix, S)
    u = torch.tensor([[[0.1, -0.3]]])
    assert torch.allclose(transform_points(M, u), u + torch.tensor([3.0, -2.0]) * 2 / S, atol=1e-6)
