"""Evaluation pieces: voxel IoU, keypoint transfer, camera conventions against the ground truth."""
from __future__ import annotations

import numpy as np
import torch

from workbench.methods.ttp.evaluate import (chamfer_meshes, gt_rotation_ttp, surface_samples,
                                            transfer_keypoints, voxel_iou_meshes, voxelize)


def _box(lo, hi):
    """A closed axis-aligned box mesh (8 vertices, 12 outward triangles)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


def test_voxelize_boxes_and_unions_of_parts():
    v, f = _box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5])
    occ = voxelize(v, f, res=8)
    assert occ.all()
    half = voxelize(*_box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.0]), res=8, normalise=False)
    assert half.sum() == 8 * 8 * 4
    # two overlapping parts: the union (ray parity over the merged mesh would carve the overlap)
    a, fa = _box([-0.5, -0.25, -0.25], [0.25, 0.25, 0.25])
    b, fb = _box([-0.25, -0.25, -0.25], [0.5, 0.25, 0.25])
    v2, f2 = np.concatenate([a, b]), np.concatenate([fa, fb + 8])
    union = voxelize(v2, f2, res=16, normalise=False)
    whole = voxelize(*_box([-0.5, -0.25, -0.25], [0.5, 0.25, 0.25]), res=16, normalise=False)
    assert np.array_equal(union, whole)
    assert voxel_iou_meshes((v, f), (v * 2.0 + 0.3, f), res=8) == 1.0        # normalised first
    iou = voxel_iou_meshes(_box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]),
                           _box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5 / 3]), res=12)
    assert abs(iou - 2 / 3) < 1e-9           # largest side normalised: a 1 x 1 x 2/3 box stays flat


def test_surface_samples_and_chamfer():
    v, f = _box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5])
    p = surface_samples(v, f, 2000)
    assert np.allclose(np.abs(p).max(1), 0.5)                          # every sample on a face
    assert np.allclose(p.mean(0), 0, atol=0.03)                        # area-uniform
    same = chamfer_meshes((v, f), (v * 3.0 + 1.0, f))                 # same shape after normalisation
    assert same < 0.03                                                 # (the sampling noise floor)
    flat = _box([-0.5, -0.5, -0.5], [0.5, 0.5, 0.0])
    assert chamfer_meshes((v, f), flat) > 2 * same


def test_keypoint_transfer_through_vertices():
    # source points: 4 vertices at known places; the target moves every vertex by +0.1 in x
    u_src = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]])
    vis = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    kp = torch.tensor([[[-0.45, -0.5], [0.49, 0.52]]])
    tgt = u_src + torch.tensor([0.1, 0.0])
    out = transfer_keypoints(u_src, vis, kp, tgt)
    assert torch.allclose(out[0, 0], torch.tensor([-0.4, -0.5]))
    # the nearest vertex (2) is predicted invisible: the nearest visible one is used instead
    assert torch.allclose(out[0, 1], torch.tensor([0.6, -0.5])) or torch.allclose(out[0, 1], torch.tensor([-0.4, 0.5]))


def test_ground_truth_cameras_in_ttp_convention(collection_smoke):
    """Projecting the ground-truth mesh with TTP's weak-perspective convention reproduces the
    dataset's pixel projection up to perspective effects (x right, y down, z away)."""
    from workbench.geometry import load_ply
    from workbench.methods.ttp.data import TTPDataset

    ds = TTPDataset(collection_smoke, "train", "white", 64, max_images=3)
    for k in range(3):
        row = ds.df.iloc[k]
        v, _ = load_ply(ds.mesh_path(k))
        Xv = v @ ds.R[k] + ds.T[k]
        px = torch.stack([row.px - row.focal * Xv[:, 0] / Xv[:, 2], row.py - row.focal * Xv[:, 1] / Xv[:, 2]], -1)
        u = 2 * px / 64 - 1                                        # normalised image coordinates
        P = v @ gt_rotation_ttp(ds.R[k:k + 1])[0].T                # TTP camera frame
        for axis in range(2):
            c = np.corrcoef(P[:, axis].numpy(), u[:, axis].numpy())[0, 1]
            assert c > 0.99
        # keypoints in the dataset agree with the same pixel convention
        assert (ds.keypoints[k].abs() <= 1.2).all()
