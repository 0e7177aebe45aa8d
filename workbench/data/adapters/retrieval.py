"""Image-based shape retrieval sets: Pix3D, and the CMIC car sets (Stanford Cars, CompCars).

Pix3D (official ``pix3d.zip``)::

    <root>/pix3d.json            list of {img, mask, category, model, img_size, bbox, rot_mat, trans_mat,
                                 focal_length, cam_position, inplane_rotation, truncated, occluded, ...}
    <root>/img/<cat>/<n>.{jpg,png}  <root>/mask/<cat>/<n>.png  <root>/model/<cat>/<inst>/model.obj
    <root>/pix3d_{train,test}.json  optional (CMIC's split); otherwise split 'all'

CMIC car sets (IGLICT/IBSR_jittor ``configs/{stanfordcars,compcars}.yaml``)::

    <root>/StanfordCars_{train,test}.json  (or CompCars_{train,test}.json): Pix3D-style records
                                           {img, mask, category, model: ".../<inst>/model.obj"}
    <root>/img/... <root>/mask/...         images and masks
    <root>/rendering_<name>.pkl            optional: dict[cat][inst] -> 12 grey views

Shapes get ids in order of first appearance; the index's ``shape`` column holds the model path and
``shape_id`` the id; ``DatasetIndex.shapes`` lists the repository.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd

from ...core.errors import DataError
from ._common import make_index, need_dir, need_file

__all__ = ["read_pix3d", "read_stanford_cars", "read_compcars", "read_cmic_json"]

_REQUIRED = ("img", "category", "model")


def _load_json(path: Path, what: str) -> list:
    need_file(path, what)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: invalid JSON ({e}); expected {what}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise DataError(f"{path}: record {i} is not an object")
        miss = [k for k in _REQUIRED if k not in r]
        if miss:
            raise DataError(f"{path}: record {i} misses {miss} (expected img, mask, category, model)")
    return data


def _rows_from_records(root: Path, records: List[dict], split: str, shapes: Dict[str, dict], src: str) -> List[dict]:
    rows = []
    for i, r in enumerate(records):
        img = root / r["img"]
        if not img.is_file():
            raise DataError(f"{img}: image listed in {src} record {i} not found")
        mask = r.get("mask", "")
        if mask and not (root / mask).is_file():
            raise DataError(f"{root / mask}: mask listed in {src} record {i} not found")
        model = str(r["model"])
        inst = model.split("/")[-2] if "/" in model else model
        if model not in shapes:
            shapes[model] = {"shape_id": len(shapes), "category": str(r["category"]), "instance": inst, "mesh": model,
                             "family": "", "variant": "", "split": "multi", "renders": ""}
        bb = r.get("bbox")
        size = r.get("img_size") or [0, 0]
        rows.append({"image": str(r["img"]), "mask": str(mask), "split": split, "category": str(r["category"]),
                     "instance": inst, "object_id": shapes[model]["shape_id"], "shape": model,
                     "shape_id": shapes[model]["shape_id"], "width": int(size[0]), "height": int(size[1]),
                     "bbox": [float(b) for b in bb] if bb is not None and len(bb) == 4 else None,
                     "focal": float(r["focal_length"]) if "focal_length" in r else math.nan,
                     "truncated": bool(r.get("truncated", False)), "occluded_flag": bool(r.get("occluded", False)),
                     "rot_mat": np.asarray(r["rot_mat"], np.float64).reshape(-1).tolist() if "rot_mat" in r else None,
                     "trans_mat": np.asarray(r["trans_mat"], np.float64).reshape(-1).tolist() if "trans_mat" in r else None})
    return rows


def read_pix3d(root: str | Path) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, "the Pix3D root with pix3d.json, img/, mask/, model/")
    shapes: Dict[str, dict] = {}
    rows: List[dict] = []
    tr, te = root / "pix3d_train.json", root / "pix3d_test.json"
    if tr.is_file() and te.is_file():
        for split, f in (("train", tr), ("test", te)):
            rows += _rows_from_records(root, _load_json(f, "CMIC's Pix3D split records"), split, shapes, f.name)
    else:
        f = root / "pix3d.json"
        rows = _rows_from_records(root, _load_json(f, "the Pix3D annotation list (pix3d.json)"), "all", shapes, f.name)
    cats = sorted({r["category"] for r in rows})
    return make_index("pix3d", root, rows, cats, source="Pix3D (Sun et al. CVPR 2018)",
                      licence="Pix3D: CC BY 4.0 annotations; images from their sources",
                      shapes=pd.DataFrame(list(shapes.values())))


def read_cmic_json(root: str | Path, name: str, prefix: str, licence: str, source: str) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, f"the {name} root with {prefix}_train.json, {prefix}_test.json, img/, mask/")
    shapes: Dict[str, dict] = {}
    rows: List[dict] = []
    for split in ("train", "test"):
        f = root / f"{prefix}_{split}.json"
        rows += _rows_from_records(root, _load_json(f, f"{name} {split} records (img, mask, category, model)"), split,
                                   shapes, f.name)
    cats = sorted({r["category"] for r in rows})
    pkl = root / f"rendering_{name.replace('_', '')}.pkl"
    extra = {"render_pickle": str(pkl)} if pkl.is_file() else {}
    return make_index(name, root, rows, cats, source=source, licence=licence, extra_meta=extra,
                      shapes=pd.DataFrame(list(shapes.values())))


def read_stanford_cars(root: str | Path) -> "DatasetIndex":  # noqa: F821
    return read_cmic_json(root, "stanford_cars", "StanfordCars", "Stanford Cars: non-commercial research use",
                          "Stanford Cars shape retrieval set (CMIC layout)")


def read_compcars(root: str | Path) -> "DatasetIndex":  # noqa: F821
    return read_cmic_json(root, "compcars", "CompCars", "CompCars: non-commercial research use (agreement)",
                          "CompCars shape retrieval set (CMIC layout)")
