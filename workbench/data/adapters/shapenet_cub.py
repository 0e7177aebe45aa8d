"""Reconstruction sets: ShapeNet renders in the DVR/SoftRas (NMR) layout and CUB-200-2011 with the
CMR annotations.

ShapeNet NMR (DVR mirror ``NMR_Dataset``)::

    <root>/metadata.yaml                      {synset: {id: synset, name: "airplane,aeroplane,plane"}}
    <root>/<synset>/softras_{train,val,test}.lst   instance ids, one per line
    <root>/<synset>/<id>/image/0000.png ...   24 views (64 x 64)
    <root>/<synset>/<id>/mask/0000.png ...    (optional)
    <root>/<synset>/<id>/cameras.npz          world_mat_<i>, camera_mat_<i>
    <root>/<synset>/<id>/pointcloud.npz       points, normals (GT surface samples)

Every view is a sample (as UNICORN); the camera matrices are kept in the ``world_mat`` /
``camera_mat`` columns (row-major 4x4 / 3x4 flattened); the (a, e, theta, d) columns stay NaN
because DVR's camera convention differs from the workbench chain.

CUB-200-2011 + CMR cachedir (``akanazawa/cmr``)::

    <root>/CUB_200_2011/images/<class>/<name>.jpg
    <root>/cachedir/cub/data/{train,val,test,testval}_cub_cleaned.mat    'images' struct array: rel_path,
        bbox.{x1,y1,x2,y2}, mask (H x W), parts (3 x 15: x, y, visible), class_id  -- 1-based pixels
    (also accepted: <root>/cub/data/... and <root>/data/...)

Keypoints are converted to pixel coordinates with the DESIGN.md convention (centre of pixel
(row i, col j) at (j + 0.5, i + 0.5)): ``x = x_1based - 1 + 0.5``. Masks are written as PNG into
the adapter cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from ...core.errors import DataError
from ._common import cache_dir_for, load_mat, load_npz, make_index, mat_get, mat_list, need_dir, need_file, save_mask

__all__ = ["read_shapenet_nmr", "read_cub", "CUB_KEYPOINTS"]

CUB_KEYPOINTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left_eye", "left_leg", "left_wing", "nape",
                 "right_eye", "right_leg", "right_wing", "tail", "throat"]
CUB_FLIP_PAIRS = [["left_eye", "right_eye"], ["left_leg", "right_leg"], ["left_wing", "right_wing"]]


def read_shapenet_nmr(root: str | Path, load_cameras: bool = True) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, "the NMR_Dataset root (metadata.yaml and <synset>/ folders)")
    meta_f = need_file(root / "metadata.yaml", "a mapping {synset: {id, name}}")
    try:
        md = yaml.safe_load(meta_f.read_text()) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{meta_f}: invalid YAML ({e})") from None
    if not isinstance(md, dict) or not md:
        raise DataError(f"{meta_f}: expected a non-empty mapping {{synset: {{id, name}}}}")
    rows = []
    cats = []
    oid = 0
    for synset, info in md.items():
        name = str((info or {}).get("name", synset)).split(",")[0]
        sdir = root / str(synset)
        if not sdir.is_dir():
            raise DataError(f"{sdir}: synset folder listed in {meta_f} not found")
        cats.append(name)
        for split in ("train", "val", "test"):
            lst = sdir / f"softras_{split}.lst"
            if not lst.is_file():
                continue
            for inst in [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]:
                idir = sdir / inst
                imgs = sorted((idir / "image").glob("*.png")) if (idir / "image").is_dir() else []
                if not imgs:
                    raise DataError(f"{idir / 'image'}: no views found for instance listed in {lst}")
                cams = {}
                if load_cameras:
                    cams = load_npz(need_file(idir / "cameras.npz", "world_mat_<i> / camera_mat_<i> arrays"),
                                    "world_mat_<i> / camera_mat_<i> arrays")
                for p in imgs:
                    v = int(p.stem)
                    wm = cams.get(f"world_mat_{v}")
                    cm = cams.get(f"camera_mat_{v}")
                    if load_cameras and wm is None:
                        raise DataError(f"{idir / 'cameras.npz'}: missing world_mat_{v} for view {p.name}")
                    mask = idir / "mask" / p.name
                    rows.append({"image": str(p.relative_to(root)), "mask": str(mask.relative_to(root)) if mask.is_file() else "",
                                 "split": split, "category": name, "instance": f"{synset}/{inst}", "object_id": oid,
                                 "view": v, "shape": str((idir / "pointcloud.npz").relative_to(root)),
                                 "world_mat": None if wm is None else np.asarray(wm, np.float64).reshape(-1).tolist(),
                                 "camera_mat": None if cm is None else np.asarray(cm, np.float64).reshape(-1).tolist()})
                oid += 1
    return make_index("shapenet_nmr", root, rows, cats, source="ShapeNet NMR renders (DVR / SoftRas layout)",
                      licence="ShapeNet terms of use (non-commercial research)")


def _cub_dirs(root: Path):
    ann = next((d for d in (root / "cachedir" / "cub" / "data", root / "cub" / "data", root / "data") if d.is_dir()), None)
    img = next((d for d in (root / "CUB_200_2011" / "images", root / "cub" / "CUB_200_2011" / "images", root / "images")
                if d.is_dir()), None)
    if ann is None:
        raise DataError(f"{root / 'cachedir' / 'cub' / 'data'}: not found; expected the CMR annotations "
                        f"<split>_cub_cleaned.mat (also looked in cub/data and data)")
    if img is None:
        raise DataError(f"{root / 'CUB_200_2011' / 'images'}: not found; expected the CUB-200-2011 images")
    return ann, img


def read_cub(root: str | Path, splits=("train", "val", "test"), cache_dir: Optional[Path] = None) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, "the CUB root (CUB_200_2011/images and cachedir/cub/data/*_cub_cleaned.mat)")
    ann, imgdir = _cub_dirs(root)
    cache = cache_dir_for("cub", root, cache_dir)
    rows = []
    oid = 0
    found = False
    for split in splits:
        f = ann / f"{split}_cub_cleaned.mat"
        if not f.is_file():
            continue
        found = True
        mat = load_mat(f, "a CMR annotation file with an 'images' struct array")
        if "images" not in mat:
            raise DataError(f"{f}: no 'images' variable (expected the CMR struct array)")
        for k, rec in enumerate(mat_list(mat["images"])):
            rel = mat_get(rec, "rel_path")
            if rel is None:
                raise DataError(f"{f}: images({k + 1}) has no rel_path")
            img = imgdir / str(rel)
            if not img.is_file():
                raise DataError(f"{img}: image listed in {f} (images({k + 1}).rel_path) not found")
            bb = mat_get(rec, "bbox")
            try:
                bbox = [float(mat_get(bb, "x1")) - 1, float(mat_get(bb, "y1")) - 1, float(mat_get(bb, "x2")),
                        float(mat_get(bb, "y2"))]
            except (TypeError, ValueError):
                raise DataError(f"{f}: images({k + 1}).bbox must have x1, y1, x2, y2") from None
            parts = np.asarray(mat_get(rec, "parts"), np.float64)
            if parts.shape != (3, 15):
                raise DataError(f"{f}: images({k + 1}).parts has shape {parts.shape}, expected (3, 15)")
            vis = parts[2] > 0
            kp = np.where(vis[:, None], parts[:2].T - 1.0 + 0.5, np.nan)
            m = mat_get(rec, "mask")
            mask_path = ""
            H = W = 0
            if m is not None and np.asarray(m).ndim == 2:
                m = np.asarray(m)
                H, W = m.shape
                mask_path = save_mask(cache / "masks" / split / (str(rel).rsplit(".", 1)[0] + ".png"), m)
            rows.append({"image": str(img.relative_to(root)), "mask": mask_path, "split": split, "category": "bird",
                         "instance": str(rel), "object_id": oid, "bbox": bbox, "width": W, "height": H,
                         "keypoints_2d": kp.tolist(), "keypoints_visible": vis.tolist(),
                         "family": str(int(mat_get(rec, "class_id", 0) or 0))})
            oid += 1
    if not found:
        raise DataError(f"{ann}: none of {[s + '_cub_cleaned.mat' for s in splits]} found")
    return make_index("cub", root, rows, ["bird"], source="CUB-200-2011 with CMR annotations",
                      licence="CUB-200-2011: non-commercial research; CMR annotations: see akanazawa/cmr",
                      keypoint_names={"bird": CUB_KEYPOINTS}, extra_meta={"flip_pairs": {"bird": CUB_FLIP_PAIRS}})
