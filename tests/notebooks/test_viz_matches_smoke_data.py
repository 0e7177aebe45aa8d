"""The pose explorer's renderer agrees with the generated data the notebooks show.

Re-rendering each instance's mesh through ``workbench.viz.posed`` (workbench rasterizer, pose chain)
at the pose and intrinsics stored in the index must reproduce the dataset's object mask (rendered
by the data generator with open3d ray casting): a convention mismatch anywhere in the chain
(azimuth sign, in-plane theta, principal point, image y axis) drops the IoU towards 0.
"""
from __future__ import annotations

import numpy as np


def test_rendered_silhouettes_match_dataset_masks(smoke_data_dir):
    from workbench.data import DatasetIndex
    from workbench.viz.datasets import instance_mesh
    from workbench.viz.posed import mesh_pose_renderer

    views = DatasetIndex(next(smoke_data_dir.glob("views-smoke-*")))
    df = views.df[views.df["split"].isin(["train", "test"])]
    rows = df.groupby("category").head(2)            # every category, two views each
    ious = []
    for i, r in rows.iterrows():
        render = mesh_pose_renderer(instance_mesh(views, r["instance"]), image_size=(int(r["height"]), int(r["width"])),
                                    focal_px=float(r["focal"]), principal_px=(float(r["px"]), float(r["py"])))
        img = render(r["azimuth"], r["elevation"], r["theta"], r["distance"])
        ours = np.abs(img - 1.0).sum(-1) > 1e-6      # white background
        which = "amodal_mask" if r["amodal_mask"] else "mask"
        theirs = views.load_mask(i, which)[0].numpy() > 0.5
        ious.append((ours & theirs).sum() / max((ours | theirs).sum(), 1))
    ious = np.array(ious)
    assert len(ious) >= 4
    assert ious.min() > 0.7 and ious.mean() > 0.82, ious.round(3)
