"""Figures straight from a dataset in the workbench schema (``workbench.data.DatasetIndex``):
image grids with masks/keypoints, an instance's mesh, its camera poses, retrieval renders.

These keep notebook cells to one line: ``dataset_grid(index, index.df.query("split == 'occ_l2'"))``.
``index`` is anything with the DatasetIndex interface: ``.df`` (one row per image, columns of
DESIGN.md), ``.root``/``.path(rel)``, ``.load_image(i)``, ``.load_mask(i)``, ``.meta``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..core.errors import DataError
from ._util import palette_color, to_hwc_image, to_mask
from .cameras import camera_figure
from .images import image_grid
from .mesh import MeshData, mesh_figure

TitleSpec = Sequence[str] | Callable[[pd.Series], str] | None


def _rows(index: Any, rows: Any) -> pd.DataFrame:
    df = index.df
    if rows is None:
        return df
    if isinstance(rows, pd.DataFrame):
        return rows
    return df.loc[list(rows)]


def _title(row: pd.Series, spec: TitleSpec) -> str:
    if spec is None:
        return ""
    if callable(spec):
        return str(spec(row))
    parts = []
    for c in spec:
        v = row.get(c)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            continue
        if c in ("azimuth", "elevation", "theta"):
            parts.append(f"{c[0]}={math.degrees(float(v)):.0f}°")
        else:
            parts.append(str(v))
    return " ".join(parts)


def _path(index: Any, rel: str) -> Path:
    if hasattr(index, "path"):
        return Path(index.path(rel))
    return Path(index.root) / rel


def dataset_grid(index: Any, rows: Any = None, *, masks: bool = False, mask_mode: str = "contour",
                 keypoints: bool = True, titles: TitleSpec = ("category", "split"), ncols: int = 6,
                 cell_size: int = 120, title: str | None = None, max_images: int = 36) -> go.Figure:
    """Images of ``rows`` (a DataFrame slice of ``index.df`` or row labels) as a grid.

    Args:
        masks: overlay the object masks (``mask_mode`` ``"contour"`` or ``"fill"``).
        keypoints: draw the ``keypoints_2d`` column (hollow markers for invisible keypoints).
        titles: columns joined into each cell title (angles shown in degrees), or a function of the row.
        max_images: the first this many rows are shown.
    """
    sel = _rows(index, rows).head(max_images)
    if sel.empty:
        raise DataError("dataset_grid: no rows selected")
    imgs = [to_hwc_image(index.load_image(i)) for i in sel.index]
    mks = [to_mask(index.load_mask(i))[None] for i in sel.index] if masks else None
    kps = vis = names = None
    if keypoints and "keypoints_2d" in sel.columns and sel["keypoints_2d"].notna().all():
        kps = [np.asarray([np.asarray(p, np.float64) for p in r], np.float64).reshape(-1, 2) for r in sel["keypoints_2d"]]
        vis = ([np.asarray(v, bool).reshape(-1) for v in sel["keypoints_visible"]]
               if "keypoints_visible" in sel.columns else None)
        cats = sel["category"].unique() if "category" in sel.columns else []
        kn = getattr(index, "meta", {}).get("keypoint_names", {}) if hasattr(index, "meta") else {}
        if len(cats) == 1 and cats[0] in kn:
            names = kn[cats[0]]
    return image_grid(imgs, titles=[_title(r, titles) for _, r in sel.iterrows()], ncols=ncols, masks=mks,
                      mask_mode=mask_mode, keypoints=kps, keypoints_visible=vis, keypoint_names=names,
                      cell_size=cell_size, title=title)


def mesh_from_ply(path: str | Path, color_by: str = "vertex", name: str | None = None,
                  part_labels: Sequence[str] | None = None) -> MeshData:
    """A PLY written by the data generator as a :class:`MeshData`.

    ``color_by``: ``"vertex"`` (the stored vertex colours), ``"part"`` (one palette colour per
    face label, i.e. semantic part) or ``"none"``.
    """
    from ..geometry.mesh_io import read_ply

    d = read_ply(path)
    v, f = d["verts"].numpy(), d["faces"].numpy()
    vc = fc = None
    if color_by == "vertex" and d.get("vert_colors") is not None:
        vc = d["vert_colors"].numpy().astype(np.float64)
        vc = vc / 255.0 if vc.max() > 1.0 else vc
    elif color_by == "part" and d.get("face_labels") is not None:
        from ._util import hex_to_rgb

        lab = d["face_labels"].numpy().astype(int)
        fc = np.array([hex_to_rgb(palette_color(k)) for k in lab], np.float64) / 255.0
    elif color_by not in ("vertex", "part", "none"):
        raise ValueError(f"color_by must be vertex, part or none, got '{color_by}'")
    return MeshData(v, f, vertex_colors=vc, face_colors=fc, name=name or Path(path).stem)


def instance_mesh(index: Any, instance: str, color_by: str = "vertex") -> MeshData:
    """The mesh of ``instance`` (its ``shape`` column path) coloured by ``color_by``."""
    df = index.df
    rows = df[df["instance"] == instance]
    if rows.empty:
        raise DataError(f"instance '{instance}' not in {getattr(index, 'name', 'the dataset')}")
    rel = rows["shape"].iloc[0]
    if not rel:
        raise DataError(f"instance '{instance}' has no mesh path in the 'shape' column")
    return mesh_from_ply(_path(index, rel), color_by=color_by, name=instance)


def category_meshes_figure(index: Any, categories: Sequence[str] | None = None, *, color_by: str = "vertex",
                           max_categories: int = 4, height: int = 360) -> go.Figure:
    """The first instance of each category side by side (``color_by`` vertex or part)."""
    df = index.df
    cats = list(categories) if categories is not None else list(dict.fromkeys(df["category"]))[:max_categories]
    meshes = [instance_mesh(index, df[df["category"] == c]["instance"].iloc[0], color_by) for c in cats]
    for c, m in zip(cats, meshes):
        m.name = f"{c} ({m.name})"
    return mesh_figure(meshes, layout="row", height=height)


def row_poses(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{azimuth, elevation, theta, distance}`` arrays (radians) of index rows."""
    return {k: rows[k].to_numpy(np.float64) for k in ("azimuth", "elevation", "theta", "distance")}


def instance_pose_figure(index: Any, instance: str, *, pred: Any = None, title: str | None = None,
                         color_by: str = "vertex", **kwargs: Any) -> go.Figure:
    """The instance's mesh with the camera of every image of it (ground truth from the index);
    ``pred`` (poses in the same order) adds predicted frusta coloured by rotation error."""
    df = index.df
    rows = df[df["instance"] == instance]
    if rows.empty:
        raise DataError(f"instance '{instance}' not in the dataset")
    h = int(rows["height"].iloc[0]) if "height" in rows and rows["height"].iloc[0] else index.meta["image_size"][0]
    w = int(rows["width"].iloc[0]) if "width" in rows and rows["width"].iloc[0] else index.meta["image_size"][1]
    labels = [f"{r.split} view {r.view}" for r in rows.itertuples()]
    return camera_figure(instance_mesh(index, instance, color_by), gt=row_poses(rows), pred=pred,
                         focal_px=rows["focal"].to_numpy(np.float64),
                         principal_px=rows[["px", "py"]].to_numpy(np.float64), image_size=(h, w),
                         labels=labels, title=title or f"{instance}: {len(rows)} camera poses", **kwargs)


def retrieval_renders(index: Any, instance: str) -> list[np.ndarray]:
    """The grey multi-view renders of a shape (``renders/<instance>/<view>.png``), sorted by view."""
    d = _path(index, f"renders/{instance}")
    files = sorted(d.glob("*.png"))
    if not files:
        raise DataError(f"{d}: no renders (is this a 'retrieval' dataset?)")
    from PIL import Image

    return [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0 for p in files]


__all__ = ["dataset_grid", "mesh_from_ply", "instance_mesh", "category_meshes_figure", "row_poses",
           "instance_pose_figure", "retrieval_renders"]
