"""Generated datasets: schema, determinism, keypoints, occlusion levels, splits, atomicity, caching."""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.core.errors import DataError
from workbench.data.datasets import (CollectionDataset, MultiViewDataset, ObjectPairDataset, RetrievalDataset,
                                     ShapeRepository, ViewsDataset)
from workbench.data.effects import OCCLUSION_LEVELS
from workbench.data.generate import generate
from workbench.data.schema import META_KEYS, DatasetIndex, read_mask_file

TINY = ["categories=[chair,mug]", "unknown_categories=[bus]", "train_instances=2", "train_views=2",
        "val_instances=1", "val_views=1", "test_instances=1", "test_views=1", "unknown_instances=1",
        "unknown_views=1", "corruptions=[fog]", "occlusion_levels=[2]", "render.occluder_bank=6"]


def _dilate(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1)
    out = np.zeros_like(m)
    for dy in range(3):
        for dx in range(3):
            out |= p[dy:dy + m.shape[0], dx:dx + m.shape[1]]
    return out


@pytest.mark.parametrize("preset", ["views", "multiview", "collection", "retrieval"])
def test_schema_meta_and_files(preset, request):
    root = request.getfixturevalue(f"{preset}_root")
    ds = DatasetIndex(root)
    rep = ds.validate(check_files=True)
    assert rep["rows"] == len(ds) > 20
    for k in META_KEYS:
        assert k in ds.meta, k
    assert {s: n for s, n in ds.meta["splits"].items() if n} == rep["splits"]
    assert ds.meta["image_size"] == [64, 64] and ds.meta["camera"]["model"] == "pinhole"
    for c in ds.meta["categories"]:
        size = ds.meta["cuboids"][c]
        assert len(size) == 3 and all(0.05 < s <= 1.0 + 1e-6 for s in size) and max(size) > 0.7
        assert len(ds.meta["keypoint_names"][c]) >= 8
    objs = pd.read_parquet(root / "objects.parquet")
    assert len(objs) == ds.df["object_id"].nunique()
    for rel in objs["mesh"]:
        assert (root / rel).is_file()
    assert not list(root.parent.glob(f".{root.name}.partial-*"))


def test_keypoints_follow_the_pose_chain(views_root):
    """Stored 2D keypoints = 3D keypoints projected with pose_to_rt + project_points_pinhole."""
    from workbench.geometry.cameras import project_points_pinhole
    from workbench.geometry.pose import pose_to_rt

    ds = DatasetIndex(views_root)
    objs = pd.read_parquet(views_root / "objects.parquet").set_index("object_id")
    df = ds.df[ds.df["split"].isin(["train", "test"])]
    R, T = pose_to_rt(*[torch.tensor(df[c].to_numpy()) for c in ("azimuth", "elevation", "theta", "distance")])
    for k, (i, r) in enumerate(df.iterrows()):
        X = torch.tensor(np.stack(objs.loc[r["object_id"], "keypoints_3d"]))
        Xv = X[None] @ R[k:k + 1] + T[k:k + 1, None]
        uv = project_points_pinhole(Xv, torch.tensor([r["focal"]]), torch.tensor([[r["px"], r["py"]]]))[0]
        kp, _ = ds.keypoints(i)
        np.testing.assert_allclose(kp, uv.numpy(), atol=1e-3)


def test_visible_keypoints_fall_inside_the_mask(views_root, collection_root):
    n_vis = n_all = 0
    for root in (views_root, collection_root):
        ds = DatasetIndex(root)
        for i in range(len(ds)):
            kp, vis = ds.keypoints(i)
            if not len(kp):
                continue
            mask = read_mask_file(ds.path(ds.df.at[i, "mask"]))
            near = _dilate(mask)
            H, W = mask.shape
            ix, iy = np.floor(kp[:, 0]).astype(int), np.floor(kp[:, 1]).astype(int)
            assert ((ix[vis] >= 0) & (ix[vis] < W) & (iy[vis] >= 0) & (iy[vis] < H)).all()
            assert near[iy[vis], ix[vis]].all(), f"visible keypoint outside the mask in {ds.df.at[i, 'image']}"
            if ds.df.at[i, "occluder_mask"]:
                occ = read_mask_file(ds.path(ds.df.at[i, "occluder_mask"]))
                assert not occ[iy[vis], ix[vis]].any()
            n_vis += int(vis.sum())
            n_all += len(vis)
    assert 0.3 < n_vis / n_all < 0.95, (n_vis, n_all)  # visibility is informative, not all-or-nothing


def test_occlusion_fractions_match_their_level(views_root):
    ds = DatasetIndex(views_root)
    occ_rows = ds.df[ds.df["occlusion_level"] > 0]
    assert sorted(occ_rows["split"].unique()) == ["occ_l1", "occ_l2", "occ_l3"]
    for i, r in occ_rows.iterrows():
        lo, hi, bg = OCCLUSION_LEVELS[int(r["occlusion_level"])]
        amodal = read_mask_file(ds.path(r["amodal_mask"]))
        occ = read_mask_file(ds.path(r["occluder_mask"]))
        visible = read_mask_file(ds.path(r["mask"]))
        fg = (amodal & occ).sum() / amodal.sum()
        bgf = (~amodal & occ).sum() / (~amodal).sum()
        assert fg == pytest.approx(r["occ_fg"]) and bgf == pytest.approx(r["occ_bg"])
        assert lo <= fg <= hi, (r["image"], fg)
        assert abs(bgf - bg) <= 0.1 + 1e-9, (r["image"], bgf)
        assert (visible == (amodal & ~occ)).all()
    # the occluded images are the test scenes: same pose and object as their L0 image
    test = ds.df[ds.df["split"] == "test"].set_index("mask")
    for _, r in occ_rows.iterrows():
        base = test.loc[r["amodal_mask"]]
        assert base["azimuth"] == r["azimuth"] and base["instance"] == r["instance"]


def test_corruption_style_and_unknown_splits(views_root):
    ds = DatasetIndex(views_root)
    df = ds.df
    test = df[df["split"] == "test"].reset_index()
    for name in ("brightness", "frost", "snow", "fog"):
        sub = df[df["split"] == f"corrupt_{name}"].reset_index()
        assert len(sub) == len(test) and (sub["corruption"] == name).all() and (sub["severity"] == 4).all()
        for k in range(len(sub)):
            a = ds.load_image(int(sub.at[k, "index"]))
            b = ds.load_image(int(test.at[k, "index"]))
            assert a.shape == b.shape and (a - b).abs().mean() > 0.03, name
            assert sub.at[k, "mask"] == test.at[k, "mask"]
    cad = df[df["split"] == "style_cad"]
    for i in cad.index:
        img = ds.load_image(int(i))
        m = ds.load_mask(int(i))[0].bool()
        assert (img[:, ~m] > 0.99).float().mean() > 0.98          # white background
        assert (img.std(0)[m] < 0.02).float().mean() > 0.95        # grey, untextured
    unk = ViewsDataset(views_root, "unknown")
    assert len(unk) > 0
    assert all(unk[k]["category"] == -1 and not unk[k]["known"] for k in range(len(unk)))
    assert set(df[df["split"] == "unknown"]["category"]).isdisjoint(ds.meta["categories"])


def test_generation_is_deterministic_and_parallel(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    a = generate("views", "smoke", seed=3, out=tmp_path / "a", workers=0, overrides=TINY, progress=False)
    b = generate("views", "smoke", seed=3, out=tmp_path / "b", workers=2, overrides=TINY, progress=False)
    c = generate("views", "smoke", seed=4, out=tmp_path / "c", workers=0, overrides=TINY, progress=False)
    assert (a / "index.parquet").read_bytes() == (b / "index.parquet").read_bytes()
    assert (a / "index.parquet").read_bytes() != (c / "index.parquet").read_bytes()
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png")) and len(files) > 20
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_interrupted_generation_leaves_no_valid_dataset(tmp_path, monkeypatch):
    out = tmp_path / "views-killed"
    code = ("import sys; from workbench.data.generate import generate; "
            f"generate('views', 'smoke', 0, out={str(out)!r}, workers=0, progress=False)")
    env = dict(os.environ, WB_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            parts = list(tmp_path.glob(f".{out.name}.partial-*"))
            if parts and len(list(parts[0].rglob("*.png"))) >= 6:
                partial = parts[0]
                break
            time.sleep(0.05)
        assert partial is not None, f"generation finished or failed before it could be killed: {proc.stderr.read()!r}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    with pytest.raises(DataError, match="meta.yaml: missing"):
        DatasetIndex(partial)
    # the next run replaces the stale partial directory and completes
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    root = generate("views", "smoke", 0, out=out, workers=0, overrides=TINY, progress=False)
    assert DatasetIndex(root).validate()["rows"] > 0
    assert not partial.exists()


def test_concurrent_generations_of_one_dataset_both_succeed(tmp_path):
    """Two processes asking for the same dataset (parallel `workbench run` workers): one generates,
    the other waits on the lock and reuses it, instead of failing on the final rename."""
    import multiprocessing as mp

    out = tmp_path / "views-shared"
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        roots = pool.starmap(_generate_tiny, [(str(out),), (str(out),)])
    assert roots == [str(out), str(out)]
    assert DatasetIndex(out).validate()["rows"] > 0
    assert not list(tmp_path.glob(".views-shared.partial-*"))


def _generate_tiny(out: str) -> str:
    torch.set_num_threads(1)
    return str(generate("views", "smoke", 0, out=out, workers=0, overrides=TINY, progress=False))


def test_cache_hit_and_mismatch(views_root):
    mtime = (views_root / "index.parquet").stat().st_mtime_ns
    t = time.time()
    again = generate("views", "smoke", seed=0, workers=0, progress=False)
    assert again == views_root and time.time() - t < 5
    assert (views_root / "index.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="not a complete 'views' dataset"):
        generate("views", "smoke", seed=1, out=views_root, workers=0, progress=False)


def test_corrupt_or_missing_files_raise_naming_the_file(views_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(views_root, root)
    ds = ViewsDataset(root, "train")
    rel0 = ds.ds.df.at[int(ds.rows[0]), "image"]
    (root / rel0).write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=f"corrupt image file .*{Path(rel0).name}"):
        ds[0]
    rel1 = ds.ds.df.at[int(ds.rows[1]), "mask"]
    (root / rel1).unlink()
    with pytest.raises(DataError, match=f"mask file not found: .*{Path(rel1).name}"):
        ds[1]
    (root / "meta.yaml").write_text("name: [unclosed")
    with pytest.raises(DataError, match="meta.yaml: invalid YAML"):
        DatasetIndex(root)
    (root / "meta.yaml").unlink()
    with pytest.raises(DataError, match="meta.yaml: missing"):
        DatasetIndex(root)
    with pytest.raises(DataError, match="dataset directory not found"):
        DatasetIndex(tmp_path / "nope")
    with pytest.raises(DataError, match="unknown split"):
        ViewsDataset(views_root, "tran")


def test_views_dataset_items_and_flip(views_root):
    from torch.utils.data import DataLoader

    from workbench.geometry.pose import pose_to_rt

    ds = ViewsDataset(views_root, "train")
    batch = next(iter(DataLoader(ds, batch_size=6, shuffle=False)))
    assert batch["image"].shape == (6, 3, 64, 64) and batch["mask"].shape == (6, 1, 64, 64)
    K = max(len(v) for v in ds.meta["keypoint_names"].values())
    assert batch["keypoints_2d"].shape == (6, K, 2) and batch["keypoints_visible"].dtype == torch.bool
    R, T = pose_to_rt(batch["azimuth"].double(), batch["elevation"].double(), batch["theta"].double(),
                      batch["distance"].double())
    assert torch.allclose(batch["R"], R.float(), atol=1e-5) and torch.allclose(batch["T"], T.float(), atol=1e-5)
    assert set(batch["category"].tolist()) <= set(range(len(ds.categories)))
    flip = ds.flip_transform(p=1.0)
    it = ds[0]
    twice = flip(flip(dict(it)))
    for key in ("image", "mask", "keypoints_2d", "keypoints_visible", "bbox", "R", "T"):
        assert torch.allclose(twice[key].float(), it[key].float(), atol=1e-5), key
    once = flip(dict(it))
    assert torch.equal(once["image"], it["image"].flip(-1))
    assert once["azimuth"] == -it["azimuth"]


def test_multiview_rings_and_pairs(multiview_root):
    ds = DatasetIndex(multiview_root)
    V = ds.meta["views"]
    assert V == 12
    for oid, g in ds.df.groupby("object_id"):
        g = g.sort_values("view")
        assert len(g) == V
        steps = np.diff(np.unwrap(g["azimuth"].to_numpy()))
        np.testing.assert_allclose(steps, 2 * math.pi / V, atol=1e-9)
        assert g["elevation"].nunique() == 1 and g["distance"].nunique() == 1
    mv = MultiViewDataset(multiview_root, "train")
    item = mv[0]
    assert item["images"].shape == (12, 3, 64, 64) and mv.label == "category"
    fine = MultiViewDataset(multiview_root, "fine_train")
    assert fine.label == "family" and set(fine.labels) <= set(range(len(ds.meta["families"])))
    assert set(fine.coarse) == {ds.meta["categories"].index("car")}
    pairs = ObjectPairDataset(multiview_root, "train", ncomp=3, seed=0)
    assert len(pairs) == 3 * len(mv)
    for k in range(len(pairs)):
        p = pairs[k]
        a, b = p["object_a"], p["object_b"]
        la = mv.labels[mv.object_ids.index(a)]
        assert mv.labels[mv.object_ids.index(b)] == la and a != b
        assert p["images_a"].shape == p["images_b"].shape == (12, 3, 64, 64)


def test_grey_renders_exist_for_every_shape(retrieval_root):
    ds = DatasetIndex(retrieval_root)
    shapes = pd.read_parquet(retrieval_root / "shapes.parquet")
    assert len(shapes) == ds.meta["shapes"] == ds.df["shape_id"].nunique()
    for rd in shapes["renders"]:
        files = sorted((retrieval_root / rd).glob("*.png"))
        assert [f.name for f in files] == [f"{v:03d}.png" for v in range(12)]
        from PIL import Image

        im = np.asarray(Image.open(files[0]))
        assert im.ndim == 2 and (im < 200).mean() > 0.02 and (im > 250).mean() > 0.2
    repo = ShapeRepository(retrieval_root, "train")
    assert repo.renders.shape[1:3] == (12, 1) and len(repo) == (shapes["split"] == "multi").sum()
    fine = ShapeRepository(retrieval_root, "fine_test")
    assert set(fine.families) == set(ds.meta["families"])
    q = RetrievalDataset(retrieval_root, "test", with_renders=True)
    item = q[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["renders"].shape == (12, 1, 64, 64) and int(item["shape"]) in repo.shape_ids.tolist()


def test_collection_crops_meshes_and_depth(collection_root):
    from workbench.geometry.mesh_io import load_ply

    ds = CollectionDataset(collection_root, "train", load_depth=True)
    assert ds.meta["categories"] == ["bird"] and len(ds.meta["keypoint_names"]["bird"]) == 15
    for k in range(len(ds)):
        it = ds[k]
        m = it["mask"][0].bool()
        ys, xs = torch.nonzero(m, as_tuple=True)
        side = max(int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
        assert 64 / 1.1 - 4 <= side <= 64, side  # square crop with 5% padding
        assert torch.isfinite(it["depth"][0][m]).all()
    v, f = load_ply(it["mesh_path"])
    ext = v.max(0).values - v.min(0).values
    assert ext.max() == pytest.approx(1.0, abs=1e-4)
    tex = DatasetIndex(collection_root).df
    tr, tt = tex[tex["split"] == "train"].reset_index(), tex[tex["split"] == "train_textured"].reset_index()
    assert (tr["mask"] == tt["mask"]).all() and (tt["background"] != "white").all()


RETRIEVAL_TINY = ["categories=[chair,sofa]", "shapes_per_category=2", "train_images_per_shape=3",
                  "test_images_per_shape=1", "fine_shapes=2", "fine_families=2", "fine_train_images_per_shape=2",
                  "fine_test_images_per_shape=1", "render_views=2"]


def test_retrieval_materials_per_photo(tmp_path, monkeypatch):
    """``materials_per_photo``: the photos of one shape differ in colour; geometry, poses and masks
    are those of the default (per-shape materials) dataset of the same seed."""
    from workbench.data.schema import read_image_file
    from workbench.data.world import make_object, resample_materials, sample_params

    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    a = DatasetIndex(generate("retrieval", "smoke", 0, out=tmp_path / "a", workers=0, overrides=RETRIEVAL_TINY,
                              progress=False))
    b = DatasetIndex(generate("retrieval", "smoke", 0, out=tmp_path / "b", workers=0, progress=False,
                              overrides=RETRIEVAL_TINY + ["materials_per_photo=true"]))
    assert "material_seed" not in a.df.columns and len(a.df) == len(b.df) == 22
    pose = ["image", "shape_id", "azimuth", "elevation", "theta", "distance", "px", "py", "bbox"]
    pd.testing.assert_frame_equal(a.df[pose], b.df[pose])
    for rel in b.df["mask"]:  # same geometry and pose -> byte-identical masks
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel

    def colour_spread(ds):
        """Mean over shapes of the mean distance of a photo's object colour to the shape's mean."""
        out = []
        for _, g in ds.df.groupby("shape_id"):
            cols = np.array([read_image_file(ds.path(r.image)).astype(float)[read_mask_file(ds.path(r.mask))].mean(0)
                             for r in g.itertuples()])
            out.append(np.linalg.norm(cols - cols.mean(0), axis=1).mean())
        return float(np.mean(out))

    per_shape, per_photo = colour_spread(a), colour_spread(b)
    assert per_photo > 1.4 * per_shape, (per_shape, per_photo)  # measured about 2x
    # every photo of a shape has its own materials, drawn from the category's palettes
    for _, g in b.df.groupby("shape_id"):
        assert g["material_seed"].nunique() == len(g)
    # only the test photos get new materials: the training photos are those of the per-shape dataset
    c = DatasetIndex(generate("retrieval", "smoke", 0, out=tmp_path / "c", workers=0, progress=False,
                              overrides=RETRIEVAL_TINY + ["materials_per_photo=true",
                                                          "materials_per_photo_splits=[test, fine_test]"]))
    pd.testing.assert_frame_equal(a.df[pose], c.df[pose])
    for ra, rc in zip(a.df.itertuples(), c.df.itertuples()):
        same = (a.root / ra.image).read_bytes() == (c.root / rc.image).read_bytes()
        assert same == (ra.split not in ("test", "fine_test")), (ra.image, ra.split)
    for _, g in c.df.groupby("shape_id"):
        train, test = g[~g.split.str.endswith("test")], g[g.split.str.endswith("test")]
        assert train["material_seed"].nunique() == 1 and test["material_seed"].nunique() == len(test)
        assert not set(test["material_seed"]) & set(train["material_seed"])
    m = make_object("chair", sample_params("chair", np.random.default_rng(0)), 1)
    m2 = resample_materials(m, 2)
    assert m2.verts is m.verts and m2.faces is m.faces
    assert [x.color for x in m2.materials] != [x.color for x in m.materials]


def test_multiview_quick_has_eight_fine_test_objects_per_family():
    from workbench.data.presets import plan, preset_config

    cfg = preset_config("multiview", "quick")
    jobs, extra = plan("multiview", cfg, 0)
    per_family = pd.Series([j.family for j in jobs if j.views[0].split == "fine_test"]).value_counts()
    assert len(per_family) == len(extra["families"]) == 18 and per_family.min() >= 8


def test_fields_added_at_their_neutral_default_keep_existing_dataset_hashes():
    import hashlib
    import json

    from workbench.data.generate import _config_hash
    from workbench.data.presets import preset_config

    cfg = preset_config("retrieval", "smoke")
    before = {k: v for k, v in cfg.to_dict().items() if k != "materials_per_photo_splits"}  # generator 1.1's keys
    assert _config_hash(cfg) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:10]
    assert _config_hash(preset_config("retrieval", "smoke", ["materials_per_photo_splits=[test]"])) != _config_hash(cfg)


def test_collection_without_crop_keeps_the_camera(tmp_path, monkeypatch):
    """``crop_padding=null``: every view keeps the camera's focal length and centred principal point,
    so the object's image size follows its pose (a crop would scale every silhouette to fill the image)."""
    from workbench.data.generate import _config_hash
    from workbench.data.presets import preset_config

    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    over = ["category=car", "train_instances=8", "test_instances=1", "textured_variant=false", "crop_padding=null",
            "camera.distance=[2.732,2.732]", "camera.focal_factor=1.866"]
    root = generate("collection", "smoke", 0, out=tmp_path / "nocrop", workers=0, overrides=over, progress=False)
    df = DatasetIndex(root).df
    df = df[df["split"] == "train"]
    assert np.allclose(df["focal"], 1.866 * 64) and np.allclose(df["px"], 32) and np.allclose(df["py"], 32)
    sides = []
    for k in df.index:
        m = read_mask_file(root / df.at[k, "mask"]) > 0.5
        ys, xs = np.nonzero(m)
        sides.append(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
    assert max(sides) < 64 and max(sides) / min(sides) > 1.3, sides   # cropped: all ~58 px
    # the default (cropped) preset's hash is unchanged by the field accepting None
    assert _config_hash(preset_config("collection", "smoke")) == _config_hash(
        preset_config("collection", "smoke", ["crop_padding=0.05"]))
