"""Each real-dataset adapter on a tiny fixture written in the official layout, plus error cases."""
from __future__ import annotations

import json
import math

import pytest
import torch

from workbench.core.errors import DataError
from workbench.data.adapters import ADAPTERS, read_dataset
from workbench.data.datasets import MultiViewDataset, RetrievalDataset, ShapeRepository, ViewsDataset

import wbdata_fixtures as fx


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path / "wbdata"))


def test_every_adapter_rejects_a_missing_root_naming_it(tmp_path):
    missing = tmp_path / "does-not-exist"
    for name in ADAPTERS:
        with pytest.raises(DataError) as e:
            read_dataset(name, missing)
        assert "does-not-exist" in str(e.value), (name, str(e.value))
    with pytest.raises(DataError, match="did you mean 'pix3d'"):
        read_dataset("pix3dd", tmp_path)


@pytest.mark.parametrize("name,views,ext", [("modelnet40", 12, "jpg"), ("fg3d", 12, "png"), ("objectpi", 8, "jpg")])
def test_piro_layout(tmp_path, name, views, ext):
    fx.write_piro_layout(tmp_path / name, views, ext)
    ds = read_dataset(name, tmp_path / name)
    assert ds.meta["categories"] == ["mug", "lamp"]
    assert len(ds) == (3 + 2) * views
    assert ds.validate(check_files=True)["splits"] == {"test": 2 * views, "train": 3 * views}
    mv = MultiViewDataset(ds, "train")
    assert len(mv) == 3 and mv.num_views == views
    item = mv[2]
    assert item["images"].shape == (views, 3, 24, 32)
    assert item["category"] == 1  # third train object is a lamp
    if name != "objectpi":
        assert torch.allclose(item["azimuth"][1] - item["azimuth"][0], torch.tensor(2 * math.pi / views))
    # malformed: a view missing -> the object folder is named
    (tmp_path / name / "test" / "1" / (f"001.{ext}" if views == 12 else f"1.{ext}")).unlink()
    with pytest.raises(DataError, match=r"test/1: found"):
        read_dataset(name, tmp_path / name)


def test_piro_layout_missing_o2c_names_file(tmp_path):
    fx.write_piro_layout(tmp_path / "m", 12, "jpg")
    (tmp_path / "m" / "train" / "train_o2c.npy").unlink()
    with pytest.raises(DataError, match="train_o2c.npy"):
        read_dataset("modelnet40", tmp_path / "m")


def test_shapenet_nmr(tmp_path):
    root = tmp_path / "NMR"
    fx.write_shapenet_nmr(root)
    ds = read_dataset("shapenet_nmr", root)
    assert ds.meta["categories"] == ["car"]
    assert ds.validate(check_files=True)["splits"] == {"test": 3, "train": 6}
    assert ds.df["world_mat"].iloc[0] is not None and len(ds.df["world_mat"].iloc[0]) == 12
    assert ds.load_mask(0).shape == (1, 16, 16)
    (root / "02958343" / "bbb" / "cameras.npz").unlink()
    with pytest.raises(DataError, match="bbb/cameras.npz"):
        read_dataset("shapenet_nmr", root)


def test_pascal3d(tmp_path):
    root = tmp_path / "PASCAL3D+_release1.1"
    fx.write_pascal3d(root)
    ds = read_dataset("pascal3d", root)
    assert len(ds) == 2  # the object without a viewpoint is dropped
    r = ds.df.iloc[0]
    assert r["split"] == "train" and ds.df.iloc[1]["split"] == "val"
    assert r["azimuth"] == pytest.approx(math.radians(30)) and r["theta"] == pytest.approx(math.radians(5))
    assert r["focal"] == pytest.approx(3000.0) and (r["px"], r["py"]) == (16.0, 12.0)
    assert list(r["bbox"]) == [2.0, 3.0, 20.0, 18.0]  # 1-based [x1 y1 x2 y2] -> 0-based, exclusive end
    assert ds.meta["keypoint_names"]["car"] == ["left_front_wheel", "right_front_wheel"]
    views = ViewsDataset(ds, "train")
    item = views[0]
    assert item["keypoints_2d"][0].tolist() == [9.5, 19.5] and item["keypoints_visible"].tolist() == [True, False]
    from workbench.geometry.pose import pose_to_rt

    R, T = pose_to_rt(r["azimuth"], r["elevation"], r["theta"], r["distance"])
    assert torch.allclose(item["R"], R[0].float(), atol=1e-6)
    # a corrupt annotation is named
    (root / "Annotations" / "car_imagenet" / "n002.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="n002.mat"):
        read_dataset("pascal3d", root)


def test_occluded_pascal3d(tmp_path):
    root = tmp_path / "OccludedPASCAL3D"
    fx.write_occluded_pascal3d(root)
    ds = read_dataset("occluded_pascal3d", root, cache_dir=tmp_path / "cache")
    assert sorted(ds.df["split"]) == ["FGL1_BGL1", "FGL3_BGL3"]
    r1 = ds.df[ds.df["occlusion_level"] == 1].iloc[0]
    # object rows 4..19, cols 4..27 (24 cols); occluder covers cols < 10 (L1) -> 6/24 of the object
    assert r1["occ_fg"] == pytest.approx(6 / 24)
    assert list(r1["bbox"]) == [4.0, 4.0, 28.0, 20.0]
    vis = ds.load_mask(int(r1.name))[0].numpy().astype(bool)
    amodal = ds.load_mask(int(r1.name), "amodal_mask")[0].numpy().astype(bool)
    assert amodal.sum() == 16 * 24 and vis.sum() == 16 * 18
    (root / "annotations" / "carFGL1_BGL1" / "bad.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="bad.npz"):
        read_dataset("occluded_pascal3d", root, cache_dir=tmp_path / "cache")


def test_imagenet3d(tmp_path):
    root = tmp_path / "imagenet3d"
    fx.write_imagenet3d(root)
    ds = read_dataset("imagenet3d", root)
    assert len(ds) == 3  # the 'bad' object is filtered
    assert sorted(ds.meta["categories"]) == ["chair", "mug"]
    assert ds.validate()["splits"] == {"train": 2, "val": 1}
    assert ds.df["azimuth"].tolist() == pytest.approx([0.5, 0.5, 1.5])
    (root / "mug" / "mug_1.JPEG").unlink()
    with pytest.raises(DataError, match="mug_1.JPEG"):
        read_dataset("imagenet3d", root)


def test_pix3d(tmp_path):
    root = tmp_path / "pix3d"
    fx.write_pix3d(root)
    ds = read_dataset("pix3d", root)
    assert ds.meta["categories"] == ["chair", "sofa"] and len(ds) == 6
    assert len(ds.shapes) == 4  # 2 shapes per category
    q = RetrievalDataset(ds, "all")
    item = q[0]
    assert item["image"].shape == (3, 24, 32) and item["mask"].shape == (1, 24, 32)
    assert item["shape"] == 0 and q[1]["shape"] == 1 and q[2]["shape"] == 0
    recs = json.loads((root / "pix3d.json").read_text())
    del recs[1]["model"]
    (root / "pix3d.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"pix3d.json: record 1 misses \['model'\]"):
        read_dataset("pix3d", root)


@pytest.mark.parametrize("name,prefix,pkl", [("stanford_cars", "StanfordCars", "rendering_stanfordcars.pkl"),
                                             ("compcars", "CompCars", "rendering_compcars.pkl")])
def test_cmic_car_sets(tmp_path, name, prefix, pkl):
    root = tmp_path / name
    fx.write_cmic_cars(root, prefix, pkl)
    ds = read_dataset(name, root)
    assert ds.validate(check_files=True)["splits"] == {"test": 2, "train": 3}
    repo = ShapeRepository(ds, "train")
    assert repo.renders.shape == (2, 12, 1, 8, 8)
    assert torch.allclose(repo.renders[1], torch.full((12, 1, 8, 8), 101 / 255))
    q = RetrievalDataset(ds, "test", with_renders=True)
    assert q[0]["renders"].shape == (12, 1, 8, 8)
    (root / f"{prefix}_test.json").write_text("{not json")
    with pytest.raises(DataError, match=f"{prefix}_test.json: invalid JSON"):
        read_dataset(name, root)


def test_cub_cmr(tmp_path):
    root = tmp_path / "cub"
    fx.write_cub(root)
    ds = read_dataset("cub", root, cache_dir=tmp_path / "cache")
    assert ds.validate(check_files=True)["splits"] == {"test": 1, "train": 2}
    assert ds.meta["keypoint_names"]["bird"][:2] == ["back", "beak"]
    kp, vis = ds.keypoints(0)
    assert kp.shape == (15, 2) and vis.sum() == 2
    assert kp[0].tolist() == [10.5, 7.5]
    assert list(ds.df.iloc[0]["bbox"]) == [6.0, 5.0, 26.0, 20.0]
    m = ds.load_mask(0)[0].numpy()
    assert m.sum() == 15 * 20
    # flip pairs travel with the index: a flipped item swaps left/right keypoints
    v = ViewsDataset(ds, "train")
    flip = v.flip_transform(p=1.0)
    it = v[0]
    f = flip(dict(it))
    names = ds.meta["keypoint_names"]["bird"]
    le, re_ = names.index("left_eye"), names.index("right_eye")
    assert f["keypoints_visible"][le] == it["keypoints_visible"][re_]
    assert f["keypoints_2d"][0, 0].item() == pytest.approx(32 - 10.5)
    (root / "cachedir" / "cub" / "data" / "test_cub_cleaned.mat").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="test_cub_cleaned.mat"):
        read_dataset("cub", root, cache_dir=tmp_path / "cache")
