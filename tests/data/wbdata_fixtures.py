"""Tiny fixtures written in the official layouts of the real datasets (for the adapter tests)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import scipy.io
import yaml
from PIL import Image


def _img(path: Path, w: int = 32, h: int = 24, seed: int = 0, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(arr)
    if mode == "L":
        im = im.convert("L")
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    im.save(path, format=fmt)


def _mask(path: Path, w: int = 32, h: int = 24) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path)
    return m > 0


def write_piro_layout(root: Path, views: int, ext: str, n_train=(2, 1), n_test=(1, 1)) -> None:
    """PiRO layout: <split>/<objId>/<view>.<ext> + <split>_o2c.npy; classes.txt."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("mug\nlamp\n")
    for split, counts in (("train", n_train), ("test", n_test)):
        o2c = []
        k = 0
        for cls, n in enumerate(counts):
            for _ in range(n):
                k += 1
                for v in range(1, views + 1):
                    name = f"{v:03d}.{ext}" if views == 12 else f"{v}.{ext}"
                    _img(root / split / str(k) / name, seed=k * 100 + v)
                o2c.append(cls)
        np.save(root / split / f"{split}_o2c.npy", np.array(o2c, np.int64))


def write_shapenet_nmr(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata.yaml").write_text(yaml.safe_dump({"02958343": {"id": "02958343", "name": "car,auto"}}))
    syn = root / "02958343"
    for split, insts in (("train", ["aaa", "bbb"]), ("test", ["ccc"])):
        syn.mkdir(parents=True, exist_ok=True)
        (syn / f"softras_{split}.lst").write_text("\n".join(insts) + "\n")
        for inst in insts:
            cams = {}
            for v in range(3):
                _img(syn / inst / "image" / f"{v:04d}.png", 16, 16, seed=v)
                _mask(syn / inst / "mask" / f"{v:04d}.png", 16, 16)
                cams[f"world_mat_{v}"] = np.eye(4)[:3]
                cams[f"camera_mat_{v}"] = np.eye(4)
            np.savez(syn / inst / "cameras.npz", **cams)
            np.savez(syn / inst / "pointcloud.npz", points=np.zeros((10, 3)), normals=np.zeros((10, 3)))


def _pascal_object(cls: str, bbox, az=30.0, el=10.0, th=5.0, dist=5.0, px=16.0, py=12.0, with_kp=True):
    anchors = {"left_front_wheel": {"location": np.array([10.0, 20.0]), "status": 1.0},
               "right_front_wheel": {"location": np.zeros((0,)), "status": 0.0}} if with_kp else {}
    return {"class": cls, "bbox": np.array(bbox, np.float64), "cad_index": 1.0, "truncated": 0.0, "occluded": 1.0,
            "difficult": 0.0, "anchors": anchors,
            "viewpoint": {"azimuth": az, "elevation": el, "theta": th, "distance": dist, "focal": 1.0, "px": px,
                          "py": py, "viewport": 3000.0}}


def _struct_array(dicts):
    keys = list(dicts[0])
    arr = np.zeros((1, len(dicts)), dtype=[(k, "O") for k in keys])
    for i, d in enumerate(dicts):
        for k in keys:
            arr[0, i][k] = d[k]
    return arr


def write_pascal3d(root: Path) -> None:
    for name, objs in (("n001", [_pascal_object("car", [3, 4, 20, 18])]),
                       ("n002", [_pascal_object("car", [1, 1, 30, 20], az=200.0),
                                 _pascal_object("car", [2, 2, 10, 10], dist=0.0)])):  # 2nd: no viewpoint -> skipped
        _img(root / "Images" / "car_imagenet" / f"{name}.JPEG", seed=len(name))
        rec = {"filename": f"{name}.JPEG", "size": {"width": 32.0, "height": 24.0, "depth": 3.0},
               "objects": _struct_array(objs)}
        d = root / "Annotations" / "car_imagenet"
        d.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(d / f"{name}.mat", {"record": rec})
    (root / "Image_sets").mkdir(parents=True, exist_ok=True)
    (root / "Image_sets" / "car_imagenet_train.txt").write_text("n001\n")
    (root / "Image_sets" / "car_imagenet_val.txt").write_text("n002\n")


def write_occluded_pascal3d(root: Path) -> None:
    for lvl in (1, 3):
        folder = f"carFGL{lvl}_BGL{lvl}"
        _img(root / "images" / folder / "n001.JPEG", seed=lvl)
        mask = np.zeros((24, 32), bool)
        mask[4:20, 4:28] = True
        occ = np.zeros((24, 32), bool)
        occ[:, : 4 + 6 * lvl] = True
        d = root / "annotations" / folder
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "n001.npz", source="n001", mask=mask, occluder_mask=occ, box=np.array([4, 20, 4, 28, 24, 32]),
                 occluder_box=np.array([[0, 24, 0, 10, 24, 32]]), category="car", occluder_level=str(lvl))


def write_imagenet3d(root: Path) -> None:
    for cls, n in (("mug", 2), ("chair", 1)):
        for k in range(n):
            _img(root / cls / f"{cls}_{k}.JPEG", seed=k)
            anns = [{"azimuth": 0.5 + k, "elevation": 0.1, "theta": 0.0, "distance": 4.0, "focal": 1.0,
                     "viewport": 3000.0, "px": 16.0, "py": 12.0, "bbox": [1, 2, 20, 22], "class": cls,
                     "object_status": "good", "ignore": False}]
            if k == 0:
                anns.append(dict(anns[0], object_status="bad"))  # filtered out
            np.savez(root / cls / f"{cls}_{k}.npz", annotations=np.array(anns, dtype=object))
    (root / "train.txt").write_text("mug/mug_0\nchair/chair_0\n")
    (root / "val.txt").write_text("mug/mug_1\n")


def _pix3d_records(root: Path, cats, n_per: int, prefix: str = "") -> list:
    recs = []
    for cat in cats:
        for k in range(n_per):
            img = f"img/{cat}/{prefix}{k:04d}.png"
            mask = f"mask/{cat}/{prefix}{k:04d}.png"
            _img(root / img, seed=k)
            _mask(root / mask)
            recs.append({"img": img, "mask": mask, "category": cat, "model": f"model/{cat}/SHAPE_{k % 2}/model.obj",
                         "img_size": [32, 24], "bbox": [8, 6, 24, 18], "focal_length": 35.0,
                         "rot_mat": np.eye(3).tolist(), "trans_mat": [0, 0, 2.0], "truncated": False, "occluded": False})
    return recs


def write_pix3d(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    recs = _pix3d_records(root, ["chair", "sofa"], 3)
    (root / "pix3d.json").write_text(json.dumps(recs))


def write_cmic_cars(root: Path, prefix: str, pkl_name: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tr = _pix3d_records(root, ["car"], 3, "tr")
    te = _pix3d_records(root, ["car"], 2, "te")
    (root / f"{prefix}_train.json").write_text(json.dumps(tr))
    (root / f"{prefix}_test.json").write_text(json.dumps(te))
    table = {"car": {f"SHAPE_{k}": (np.full((12, 8, 8), 100 + k, np.uint8)) for k in range(2)}}
    with open(root / pkl_name, "wb") as f:
        pickle.dump(table, f)


def write_cub(root: Path) -> None:
    imgs = root / "CUB_200_2011" / "images"
    ann = root / "cachedir" / "cub" / "data"
    ann.mkdir(parents=True, exist_ok=True)
    for split, names in (("train", ["001.Albatross/a_1.jpg", "002.Gull/g_1.jpg"]), ("test", ["001.Albatross/a_2.jpg"])):
        recs = []
        for k, rel in enumerate(names):
            _img(imgs / rel, 32, 24, seed=k)
            mask = np.zeros((24, 32), np.uint8)
            mask[5:20, 6:26] = 1
            parts = np.zeros((3, 15))
            parts[:, 0] = [11, 8, 1]   # back, 1-based pixel (11, 8) -> 0-based centre (10.5, 7.5)
            parts[:, 1] = [20, 6, 1]   # beak
            recs.append({"id": float(k + 1), "rel_path": rel, "train": 1.0, "test": 0.0,
                         "bbox": {"x1": 7.0, "y1": 6.0, "x2": 26.0, "y2": 20.0}, "width": 32.0, "height": 24.0,
                         "parts": parts, "mask": mask, "class_id": float(k + 1)})
        scipy.io.savemat(ann / f"{split}_cub_cleaned.mat", {"images": _struct_array(recs)})
