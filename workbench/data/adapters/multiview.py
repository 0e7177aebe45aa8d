"""Multi-view recognition sets in PiRO's layout: ModelNet40 (MVCNN 12-view renders), ObjectPI, FG3D.

Layout (PiRO ``data.zip``)::

    <root>/train/<objId 1..N>/<view>.<ext>      views 001..012 (.jpg ModelNet40, .png FG3D) or 1..8 (.jpg ObjectPI)
    <root>/train/train_o2c.npy                  (N,) 0-based object -> category index
    <root>/test/<objId>/... + test/test_o2c.npy
    <root>/classes.txt                          optional: one category name per line (else class_<k>)

ModelNet40 is also read in the original MVCNN layout
``<root>/<class>/<train|test>/<class>_<id>_<view>.<png|jpg>`` (12 views per shape).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List

import numpy as np

from ...core.errors import DataError
from ._common import make_index, need_dir, need_file

__all__ = ["read_piro_layout", "read_modelnet40", "read_objectpi", "read_fg3d"]

_VIEW_RE = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def _class_names(root: Path, n: int) -> List[str]:
    f = root / "classes.txt"
    if f.is_file():
        names = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
        if len(names) < n:
            raise DataError(f"{f}: lists {len(names)} classes but the o2c files use {n}")
        return names
    return [f"class_{k:03d}" for k in range(n)]


def read_piro_layout(root: str | Path, name: str, views: int, licence: str, source: str) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, f"the {name} root with train/ and test/ (PiRO layout)")
    rows = []
    o2c_all: Dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        sdir = need_dir(root / split, f"{name} split folder '{split}' with one folder per object (1..N)")
        f = need_file(sdir / f"{split}_o2c.npy", "a (N,) int array mapping object id - 1 to a category index")
        try:
            o2c = np.load(f, allow_pickle=False).astype(np.int64).reshape(-1)
        except (ValueError, OSError) as e:
            raise DataError(f"{f}: cannot read ({e}); expected a (N,) integer .npy array") from None
        o2c_all[split] = o2c
    n_cls = int(max(int(v.max()) if v.size else -1 for v in o2c_all.values())) + 1
    names = _class_names(root, n_cls)
    oid_base = 0
    for split in ("train", "test"):
        o2c = o2c_all[split]
        sdir = root / split
        for k in range(len(o2c)):
            odir = sdir / str(k + 1)
            if not odir.is_dir():
                raise DataError(f"{odir}: missing object folder (its {split}_o2c.npy lists {len(o2c)} objects)")
            files = sorted((p for p in odir.iterdir() if _VIEW_RE.match(p.name)), key=lambda p: int(_VIEW_RE.match(p.name).group(1)))
            if len(files) != views:
                raise DataError(f"{odir}: found {len(files)} view images, expected {views} named 1..{views} (.jpg/.png)")
            for v, p in enumerate(files):
                rows.append({"image": str(p.relative_to(root)), "split": split, "category": names[int(o2c[k])],
                             "instance": f"{split}/{k + 1}", "object_id": oid_base + k, "view": v,
                             "azimuth": 2 * math.pi * v / views if name != "objectpi" else math.nan, "variant": "coarse"})
        oid_base += len(o2c)
    return make_index(name, root, rows, names, source=source, licence=licence, extra_meta={"views": views})


def _read_mvcnn_original(root: Path) -> "DatasetIndex":  # noqa: F821
    pat = re.compile(r"^(.*)_(\d+)\.(png|jpg)$", re.IGNORECASE)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "train").is_dir())
    if not classes:
        raise DataError(f"{root}: expected <class>/train|test/<class>_<id>_<view>.png (MVCNN) or train/ + test/ (PiRO)")
    rows = []
    oid = 0
    for c in classes:
        for split in ("train", "test"):
            sdir = root / c / split
            if not sdir.is_dir():
                continue
            groups: Dict[str, List[Path]] = {}
            for p in sorted(sdir.iterdir()):
                m = pat.match(p.name)
                if m:
                    groups.setdefault(m.group(1), []).append(p)
            for shape, files in sorted(groups.items()):
                files.sort(key=lambda p: int(pat.match(p.name).group(2)))
                if len(files) != 12:
                    raise DataError(f"{sdir}: shape '{shape}' has {len(files)} views, expected 12")
                for v, p in enumerate(files):
                    rows.append({"image": str(p.relative_to(root)), "split": split, "category": c, "instance": shape,
                                 "object_id": oid, "view": v, "azimuth": 2 * math.pi * v / 12, "variant": "coarse"})
                oid += 1
    return make_index("modelnet40", root, rows, classes, source="MVCNN ModelNet40 12-view renders",
                      licence="ModelNet: academic use; see homepage", extra_meta={"views": 12})


def read_modelnet40(root: str | Path) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, "the ModelNet40 12-view renders (PiRO train/ test/ layout or MVCNN <class>/<split>/ layout)")
    if (root / "train").is_dir():
        return read_piro_layout(root, "modelnet40", 12, "ModelNet: academic use; see homepage",
                                "ModelNet40 MVCNN 12-view renders (PiRO layout)")
    return _read_mvcnn_original(root)


def read_objectpi(root: str | Path) -> "DatasetIndex":  # noqa: F821
    return read_piro_layout(root, "objectpi", 8, "see ObjectPI/OOWL homepage", "ObjectPI (OOWL) in-the-wild multi-view photos")


def read_fg3d(root: str | Path) -> "DatasetIndex":  # noqa: F821
    return read_piro_layout(root, "fg3d", 12, "see FG3D homepage (research use)", "FG3D fine-grained 12-view renders")
