"""Dataset figures on a tiny dataset written in the workbench schema; the environment report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.data.schema import DatasetIndex
from workbench.geometry import camera_position, save_ply
from workbench.viz._util import decode_data_uri
from workbench.viz.datasets import (dataset_grid, instance_mesh, instance_pose_figure, mesh_from_ply,
                                    retrieval_renders, row_poses)
from workbench.viz.environment import environment_report


@pytest.fixture
def tiny_dataset(tmp_path, cube):
    v, f = cube
    save_ply(tmp_path / "shapes/box/box_0.ply", torch.tensor(v, dtype=torch.float32), torch.tensor(f),
             vert_colors=torch.tensor((v + 0.5) * 255, dtype=torch.uint8),
             face_labels=torch.tensor([0] * 6 + [1] * 6))
    rows = []
    for k in range(3):
        img = np.full((16, 20, 3), 40 * k, np.uint8)
        mask = np.zeros((16, 20), np.uint8)
        mask[4:12, 5:15] = 255
        for sub, arr in (("images", img), ("masks", mask)):
            p = tmp_path / sub / f"box_0_{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(p)
        rows.append(dict(image=f"images/box_0_{k}.png", mask=f"masks/box_0_{k}.png", split="train", category="box",
                         instance="box_0", shape="shapes/box/box_0.ply", view=k, azimuth=k * 0.8, elevation=0.3,
                         theta=0.0, distance=3.0, focal=30.0, px=10.0, py=8.0, width=20, height=16,
                         keypoints_2d=[[2.0, 3.0], [10.5, 8.5]], keypoints_visible=[True, False]))
    for k in range(3):
        p = tmp_path / "renders" / "box_0" / f"{k:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 50 * (k + 1), np.uint8)).save(p)
    meta = {"name": "tiny", "categories": ["box"], "splits": {"train": 3}, "image_size": [16, 20],
            "keypoint_names": {"box": ["corner", "centre"]}}
    return DatasetIndex(tmp_path, meta=meta, df=pd.DataFrame(rows))


def test_dataset_grid_shows_images_masks_and_named_keypoints(tiny_dataset):
    fig = dataset_grid(tiny_dataset, masks=True, titles=("category", "azimuth"))
    imgs = [t for t in fig.data if t.type == "image"]
    assert len(imgs) == 3
    px = decode_data_uri(imgs[2].source)
    assert tuple(px[0, 0]) == (80, 80, 80)                   # third image, outside the mask
    assert tuple(px[4, 7]) != (80, 80, 80)                   # on the mask contour
    assert tuple(px[8, 10]) == (80, 80, 80)                  # inside the mask (contour mode)
    kp = [t for t in fig.data if t.type == "scatter"][0]
    assert list(kp.text) == ["corner", "centre"] and list(kp.marker.symbol) == ["circle", "circle-open"]
    assert fig.layout.annotations[1].text == "box a=46°"


def test_instance_mesh_pose_figure_and_renders(tiny_dataset):
    m = instance_mesh(tiny_dataset, "box_0")
    np.testing.assert_allclose(m.vertex_colors, (m.verts + 0.5), atol=1 / 255)
    parts = mesh_from_ply(tiny_dataset.root / "shapes/box/box_0.ply", color_by="part")
    assert len({tuple(c) for c in parts.face_colors}) == 2
    fig = instance_pose_figure(tiny_dataset, "box_0")
    gts = [t for t in fig.data if t.legendgroup == "gt"]
    assert len(gts) == 3
    p = row_poses(tiny_dataset.df)
    C = camera_position(torch.tensor(p["azimuth"]), torch.tensor(p["elevation"]), torch.tensor(p["distance"]))
    np.testing.assert_allclose([[t.x[0], t.y[0], t.z[0]] for t in gts], C.numpy(), atol=1e-5)  # apexes
    renders = retrieval_renders(tiny_dataset, "box_0")
    assert [float(r[0, 0, 0]) for r in renders] == pytest.approx([50 / 255, 100 / 255, 150 / 255])
    from workbench.core.errors import DataError

    with pytest.raises(DataError, match="not in"):
        instance_mesh(tiny_dataset, "nope")


def test_environment_report_names_versions_device_and_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WB_PROFILE", "smoke")
    df = environment_report()
    assert {"system", "device", "packages", "rendering", "figures", "paths"} <= set(df["section"])
    val = dict(zip(df["item"], df["value"]))
    assert val["torch"] == torch.__version__.split("+")[0]
    assert val["render backend"] in ("torch", "pytorch3d")
    assert val["WB_PROFILE"] == "smoke -> smoke"
    assert val["data dir"].startswith(str(tmp_path)) and "set" in val["data dir"]
