"""Pose datasets: PASCAL3D+ (release 1.1), OccludedPASCAL3D+ and ImageNet3D.

PASCAL3D+ (``PASCAL3D+_release1.1``)::

    Annotations/<cat>_{imagenet,pascal}/<name>.mat   record.filename, record.size, record.objects(i) with
                                                     class, bbox [x1 y1 x2 y2] (1-based), viewpoint.{azimuth,
                                                     elevation, theta (degrees), distance, focal, px, py,
                                                     viewport}, cad_index, truncated, occluded, difficult,
                                                     anchors.<keypoint>.{location [x y], status (1 = visible)}
    Images/<cat>_imagenet/<name>.JPEG                 (ImageNet subset)
    PASCAL/VOCdevkit/VOC2012/JPEGImages/<name>.jpg    (PASCAL subset)
    Image_sets/<cat>_imagenet_{train,val}.txt         optional split lists

One row per annotated object with a viewpoint. Angles are converted to radians; the annotation
convention (C = d (cos e sin a, -cos e cos a, sin e) in the Z-up CAD frame, CAD (x, y, z) ->
workbench (x, z, -y)) equals the workbench chain, so (a, e, theta, d) are used as is;
``focal = focal * viewport`` pixels, principal point ``(px, py)``.

OccludedPASCAL3D+ (Angtian/OccludedPASCAL3D)::

    images/<cat>FGL<f>_BGL<b>/<name>.JPEG
    annotations/<cat>FGL<f>_BGL<b>/<name>.npz   source, mask, occluder_mask, box [y0 y1 x0 x1 h w], occluder_box
    lists/<cat>FGL<f>_BGL<b>.txt                optional

Masks are materialised as PNG in the adapter cache; ``occ_fg``/``occ_bg`` are measured from the
masks. Poses come from the PASCAL3D+ annotations when ``pascal3d_root`` is given.

ImageNet3D: the released layout ``<root>/<class>/<name>.{JPEG,jpg}`` with ``<name>.npz`` holding
``annotations`` (list of dicts: azimuth, elevation, theta (radians), distance, focal, viewport,
px, py, bbox, class, object_status, ...), or the NeMo-preprocessed layout
``<root>/<split>/{images,annotations,lists}/<cat>/`` (``lists/<cat>/mesh01.txt``; per-image npz
with azimuth, elevation, theta, distance, principal, ...). The NeMo layout of PASCAL3D+ is read by
:func:`read_nemo_layout` as well.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ...core.errors import DataError
from ._common import cache_dir_for, image_size, load_mat, load_npz, make_index, mat_get, mat_list, need_dir, save_mask

__all__ = ["read_pascal3d", "read_occluded_pascal3d", "read_imagenet3d", "read_nemo_layout", "PASCAL_CATEGORIES"]

PASCAL_CATEGORIES = ["aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable", "motorbike",
                     "sofa", "train", "tvmonitor"]
_PASCAL_LICENCE = "PASCAL3D+: research use; images under PASCAL VOC / ImageNet terms"


def _f(x, default=math.nan) -> float:
    try:
        v = float(np.asarray(x).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return default
    return v


def _objects_from_record(path: Path, record) -> List[dict]:
    out = []
    for k, obj in enumerate(mat_list(mat_get(record, "objects"))):
        vp = mat_get(obj, "viewpoint")
        if vp is None or (isinstance(vp, np.ndarray) and vp.size == 0):
            continue
        dist = _f(mat_get(vp, "distance"), 0.0)
        if not dist > 0:
            continue
        bbox = np.asarray(mat_get(obj, "bbox"), np.float64).reshape(-1)
        if bbox.size != 4:
            raise DataError(f"{path}: record.objects({k + 1}).bbox must have 4 numbers [x1 y1 x2 y2], got {bbox.size}")
        kp_names, kps, vis = [], [], []
        anchors = mat_get(obj, "anchors")
        names = getattr(anchors, "_fieldnames", None) or (list(anchors.dtype.names) if isinstance(anchors, np.ndarray)
                                                          and anchors.dtype.names else [])
        for n in names:
            a = mat_get(anchors, n)
            loc = np.asarray(mat_get(a, "location", []), np.float64).reshape(-1)
            st = _f(mat_get(a, "status", 0), 0.0)
            kp_names.append(n)
            if loc.size == 2:
                kps.append([loc[0] - 1.0 + 0.5, loc[1] - 1.0 + 0.5])
                vis.append(bool(st == 1))
            else:
                kps.append([math.nan, math.nan])
                vis.append(False)
        viewport = _f(mat_get(vp, "viewport"), 3000.0)
        out.append({
            "k": k, "category": str(mat_get(obj, "class")),
            "azimuth": math.radians(_f(mat_get(vp, "azimuth"))), "elevation": math.radians(_f(mat_get(vp, "elevation"))),
            "theta": math.radians(_f(mat_get(vp, "theta"), 0.0)), "distance": dist,
            "focal": _f(mat_get(vp, "focal"), 1.0) * viewport, "px": _f(mat_get(vp, "px")), "py": _f(mat_get(vp, "py")),
            "bbox": [bbox[0] - 1.0, bbox[1] - 1.0, bbox[2], bbox[3]],
            "keypoint_names": kp_names, "keypoints_2d": kps, "keypoints_visible": vis,
            "cad_index": int(_f(mat_get(obj, "cad_index"), -1)), "truncated": bool(_f(mat_get(obj, "truncated"), 0)),
            "occluded": bool(_f(mat_get(obj, "occluded"), 0)), "difficult": bool(_f(mat_get(obj, "difficult"), 0)),
        })
    return out


def _read_split_lists(root: Path) -> Dict[str, str]:
    out: Dict[str, str] = {}
    sets = root / "Image_sets"
    if sets.is_dir():
        for f in sorted(sets.glob("*_imagenet_*.txt")):
            m = re.match(r"^(.*)_imagenet_(train|val)\.txt$", f.name)
            if m:
                for ln in f.read_text().split():
                    out[f"{m.group(1)}_imagenet/{ln.strip()}"] = m.group(2)
    return out


def read_pascal3d(root: str | Path, categories: Optional[List[str]] = None) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    ann = need_dir(root / "Annotations", "PASCAL3D+ annotations Annotations/<cat>_{imagenet,pascal}/*.mat")
    if (root / "train").is_dir() and not ann.is_dir():  # pragma: no cover - handled by need_dir
        return read_nemo_layout(root, "pascal3d")
    splits = _read_split_lists(root)
    rows = []
    cats_seen: List[str] = []
    kp_names: Dict[str, List[str]] = {}
    dirs = sorted(p for p in ann.iterdir() if p.is_dir())
    if not dirs:
        raise DataError(f"{ann}: no <cat>_imagenet / <cat>_pascal folders found")
    oid = 0
    for d in dirs:
        m = re.match(r"^(.*)_(imagenet|pascal)$", d.name)
        if not m:
            continue
        cat, src = m.group(1), m.group(2)
        if categories and cat not in categories:
            continue
        for f in sorted(d.glob("*.mat")):
            mat = load_mat(f, "a PASCAL3D+ annotation with a 'record' struct")
            if "record" not in mat:
                raise DataError(f"{f}: no 'record' variable; expected a PASCAL3D+ annotation .mat")
            rec = mat["record"]
            fname = str(mat_get(rec, "filename", f.stem + (".JPEG" if src == "imagenet" else ".jpg")))
            cands = [root / "Images" / f"{cat}_{src}" / fname,
                     root / "PASCAL" / "VOCdevkit" / "VOC2012" / "JPEGImages" / fname]
            img = next((c for c in cands if c.is_file()), None)
            if img is None:
                raise DataError(f"{f}: image '{fname}' not found (looked in {cands[0].parent} and {cands[1].parent})")
            for o in _objects_from_record(f, rec):
                if o["category"] != cat:
                    continue
                if cat not in cats_seen:
                    cats_seen.append(cat)
                if o["keypoint_names"] and cat not in kp_names:
                    kp_names[cat] = o["keypoint_names"]
                w, h = image_size(img)
                split = splits.get(f"{cat}_{src}/{f.stem}", "all" if src == "imagenet" else "pascal")
                rows.append({"image": str(img.relative_to(root)), "split": split, "category": cat,
                             "instance": f"{f.stem}#{o['k']}", "object_id": oid, "variant": src,
                             "azimuth": o["azimuth"], "elevation": o["elevation"], "theta": o["theta"],
                             "distance": o["distance"], "focal": o["focal"], "px": o["px"], "py": o["py"],
                             "width": w, "height": h, "bbox": o["bbox"],
                             "keypoints_2d": o["keypoints_2d"], "keypoints_visible": o["keypoints_visible"],
                             "cad_index": o["cad_index"], "truncated": o["truncated"], "occluded": o["occluded"],
                             "difficult": o["difficult"]})
                oid += 1
    return make_index("pascal3d", root, rows, cats_seen or PASCAL_CATEGORIES, source="PASCAL3D+ release 1.1",
                      licence=_PASCAL_LICENCE, keypoint_names=kp_names)


_OCC_RE = re.compile(r"^(.*)FGL(\d)_BGL(\d)$")


def read_occluded_pascal3d(root: str | Path, pascal3d_root: Optional[str | Path] = None,
                           cache_dir: Optional[Path] = None) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    ann = need_dir(root / "annotations", "OccludedPASCAL3D+ annotations/<cat>FGL<f>_BGL<b>/*.npz")
    imgs = need_dir(root / "images", "OccludedPASCAL3D+ images/<cat>FGL<f>_BGL<b>/*.JPEG")
    cache = cache_dir_for("occluded_pascal3d", root, cache_dir)
    poses: Dict[str, dict] = {}
    rows = []
    cats: List[str] = []
    oid = 0
    for d in sorted(p for p in ann.iterdir() if p.is_dir()):
        m = _OCC_RE.match(d.name)
        if not m:
            raise DataError(f"{d}: unexpected folder name; expected <category>FGL<1-3>_BGL<1-3>")
        cat, fgl, bgl = m.group(1), int(m.group(2)), int(m.group(3))
        if cat not in cats:
            cats.append(cat)
        for f in sorted(d.glob("*.npz")):
            z = load_npz(f, "source, mask, occluder_mask, box")
            for key in ("mask", "occluder_mask", "box"):
                if key not in z:
                    raise DataError(f"{f}: missing field '{key}' (expected source, mask, occluder_mask, box)")
            img = next((imgs / d.name / (f.stem + e) for e in (".JPEG", ".jpg", ".jpeg", ".png")
                        if (imgs / d.name / (f.stem + e)).is_file()), None)
            if img is None:
                raise DataError(f"{f}: image {imgs / d.name / (f.stem + '.JPEG')} not found")
            mask = np.asarray(z["mask"]) > 0
            occ = np.asarray(z["occluder_mask"]) > 0
            if mask.shape != occ.shape:
                raise DataError(f"{f}: mask {mask.shape} and occluder_mask {occ.shape} differ in shape")
            box = np.asarray(z["box"], np.float64).reshape(-1)
            if box.size < 4:
                raise DataError(f"{f}: box must be [y0, y1, x0, x1, h, w], got {box.tolist()}")
            nf = max(int(mask.sum()), 1)
            nb = max(int((~mask).sum()), 1)
            amodal = save_mask(cache / "amodal" / d.name / f"{f.stem}.png", mask)
            visible = save_mask(cache / "mask" / d.name / f"{f.stem}.png", mask & ~occ)
            occp = save_mask(cache / "occluder" / d.name / f"{f.stem}.png", occ)
            row = {"image": str(img.relative_to(root)), "mask": visible, "amodal_mask": amodal, "occluder_mask": occp,
                   "split": f"FGL{fgl}_BGL{bgl}", "category": cat, "instance": f.stem, "object_id": oid,
                   "occlusion_level": fgl, "occ_fg": float((mask & occ).sum()) / nf,
                   "occ_bg": float((~mask & occ).sum()) / nb, "width": mask.shape[1], "height": mask.shape[0],
                   "bbox": [box[2], box[0], box[3], box[1]]}
            if pascal3d_root is not None:
                p = _pascal_pose(Path(pascal3d_root), cat, f.stem, poses)
                row.update(p)
            rows.append(row)
            oid += 1
    return make_index("occluded_pascal3d", root, rows, cats, source="OccludedPASCAL3D+ (Wang et al. CVPR 2020)",
                      licence=_PASCAL_LICENCE, extra_meta={"levels": "FGL1-3 (object 20-40/40-60/60-80%), "
                                                                     "BGL1-3 (background 0-20/20-40/40-60%)"})


def _pascal_pose(proot: Path, cat: str, name: str, cache: Dict[str, dict]) -> dict:
    key = f"{cat}/{name}"
    if key not in cache:
        f = proot / "Annotations" / f"{cat}_imagenet" / f"{name}.mat"
        mat = load_mat(f, "the PASCAL3D+ annotation of an OccludedPASCAL3D+ source image")
        objs = [o for o in _objects_from_record(f, mat["record"]) if o["category"] == cat]
        if not objs:
            raise DataError(f"{f}: no '{cat}' object with a viewpoint")
        o = objs[0]
        cache[key] = {k: o[k] for k in ("azimuth", "elevation", "theta", "distance", "focal", "px", "py",
                                         "keypoints_2d", "keypoints_visible")}
    return cache[key]


def read_nemo_layout(root: str | Path, name: str = "imagenet3d") -> "DatasetIndex":  # noqa: F821
    """NeMo-preprocessed layout: ``<root>/<split>/{images,annotations,lists}/<cat>/``."""
    root = Path(root)
    rows = []
    cats: List[str] = []
    oid = 0
    split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "annotations").is_dir())
    if not split_dirs:
        raise DataError(f"{root}: expected <split>/annotations/<cat>/*.npz (NeMo layout)")
    for sd in split_dirs:
        lists = sd / "lists"
        for cdir in sorted(p for p in (sd / "annotations").iterdir() if p.is_dir()):
            cat = cdir.name
            if cat not in cats:
                cats.append(cat)
            lf = lists / cat / "mesh01.txt"
            names = [ln.strip() for ln in lf.read_text().split()] if lf.is_file() else sorted(p.stem for p in cdir.glob("*.npz"))
            for n in names:
                z = load_npz(cdir / f"{n}.npz", "azimuth, elevation, theta, distance")
                for k in ("azimuth", "elevation", "theta", "distance"):
                    if k not in z:
                        raise DataError(f"{cdir / (n + '.npz')}: missing field '{k}'")
                img = next((sd / "images" / cat / (n + e) for e in (".JPEG", ".jpg", ".png")
                            if (sd / "images" / cat / (n + e)).is_file()), None)
                if img is None:
                    raise DataError(f"{sd / 'images' / cat / (n + '.JPEG')}: image not found")
                pr = np.asarray(z.get("principal", [math.nan, math.nan]), np.float64).reshape(-1)
                rows.append({"image": str(img.relative_to(root)), "split": sd.name, "category": cat, "instance": n,
                             "object_id": oid, "azimuth": _f(z["azimuth"]), "elevation": _f(z["elevation"]),
                             "theta": _f(z["theta"]), "distance": _f(z["distance"]),
                             "focal": _f(z.get("focal", 1.0)) * _f(z.get("viewport", 3000.0)),
                             "px": pr[0] if pr.size == 2 else math.nan, "py": pr[1] if pr.size == 2 else math.nan})
                oid += 1
    return make_index(name, root, rows, cats, source=f"{name} (NeMo-preprocessed layout)",
                      licence="see the dataset homepage")


def read_imagenet3d(root: str | Path) -> "DatasetIndex":  # noqa: F821
    root = Path(root)
    need_dir(root, "ImageNet3D: <class>/<name>.JPEG + <name>.npz, or the NeMo layout <split>/annotations/")
    if any((p / "annotations").is_dir() for p in root.iterdir() if p.is_dir()):
        return read_nemo_layout(root, "imagenet3d")
    rows = []
    cats: List[str] = []
    oid = 0
    split_of: Dict[str, str] = {}
    for s in ("train", "val", "test"):
        f = root / f"{s}.txt"
        if f.is_file():
            for ln in f.read_text().split():
                split_of[ln.strip()] = s
    for cdir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cdir.glob("*.npz")):
            z = load_npz(f, "an 'annotations' list of dicts (azimuth, elevation, theta, distance, ...)")
            if "annotations" not in z:
                raise DataError(f"{f}: missing 'annotations' (expected a list of per-object dicts)")
            img = next((cdir / (f.stem + e) for e in (".JPEG", ".jpg", ".jpeg", ".png") if (cdir / (f.stem + e)).is_file()), None)
            if img is None:
                raise DataError(f"{cdir / (f.stem + '.JPEG')}: image not found for annotation {f}")
            for k, a in enumerate(list(np.asarray(z["annotations"]).reshape(-1))):
                if not isinstance(a, dict):
                    raise DataError(f"{f}: annotations[{k}] is {type(a).__name__}, expected a dict")
                if a.get("ignore", False) or str(a.get("object_status", "good")) == "bad":
                    continue
                cat = str(a.get("class", cdir.name))
                if cat not in cats:
                    cats.append(cat)
                bb = np.asarray(a.get("bbox", [math.nan] * 4), np.float64).reshape(-1)
                rows.append({"image": str(img.relative_to(root)), "split": split_of.get(f"{cdir.name}/{f.stem}", "all"),
                             "category": cat, "instance": f"{f.stem}#{k}", "object_id": oid,
                             "azimuth": _f(a.get("azimuth")), "elevation": _f(a.get("elevation")),
                             "theta": _f(a.get("theta", 0.0)), "distance": _f(a.get("distance")),
                             "focal": _f(a.get("focal", 1.0)) * _f(a.get("viewport", 3000.0)),
                             "px": _f(a.get("px")), "py": _f(a.get("py")),
                             "bbox": bb.tolist() if bb.size == 4 else None,
                             "object_status": str(a.get("object_status", ""))})
                oid += 1
    return make_index("imagenet3d", root, rows, cats, source="ImageNet3D (Ma et al. 2024)",
                      licence="ImageNet3D: see homepage (ImageNet terms for images)")
