"""The on-disk dataset schema (DESIGN.md) and :class:`DatasetIndex`, its validating reader.

Layout::

    <root>/meta.yaml        name, generator version + seed, categories, keypoint names, cuboids,
                            image size, camera model, splits, licence/source (see META_KEYS)
    <root>/index.parquet    one row per image (see COLUMNS)
    <root>/images/ masks/ occluders/ depth/ shapes/<category>/<instance>.ply renders/<instance>/<view>.png
    <root>/objects.parquet  one row per object instance: object_id, category, instance, family, mesh,
                            keypoints_3d (K, 3) canonical frame, params (json), materials (json)
    <root>/shapes.parquet   (retrieval) one row per shape: shape_id, category, instance, family, mesh, renders

Paths in the index are relative to ``<root>`` (or to ``meta["image_root"]`` when an adapter indexes
an official dataset in place). Real-dataset adapters produce the same records, with missing fields
set to NaN / empty.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

from ..core.errors import DataError
from ..core.io import atomic_path, write_yaml

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "META_KEYS", "DatasetIndex", "normalise_frame", "write_index",
           "read_image_file", "read_mask_file"]

# column -> (kind, default) ; kinds: str, float, int, bool, list
COLUMNS: Dict[str, tuple] = {
    "image": ("str", ""),
    "mask": ("str", ""),
    "depth": ("str", ""),
    "amodal_mask": ("str", ""),
    "occluder_mask": ("str", ""),
    "split": ("str", ""),
    "variant": ("str", ""),
    "category": ("str", ""),
    "instance": ("str", ""),
    "family": ("str", ""),
    "object_id": ("int", -1),
    "view": ("int", 0),
    "azimuth": ("float", math.nan),
    "elevation": ("float", math.nan),
    "theta": ("float", math.nan),
    "distance": ("float", math.nan),
    "focal": ("float", math.nan),
    "px": ("float", math.nan),
    "py": ("float", math.nan),
    "width": ("int", 0),
    "height": ("int", 0),
    "bbox": ("list", None),               # [x0, y0, x1, y1] pixels (x1, y1 exclusive)
    "keypoints_2d": ("list", None),       # [[x, y], ...] pixels, K per category
    "keypoints_visible": ("list", None),  # [bool, ...]
    "occlusion_level": ("int", 0),
    "occ_fg": ("float", 0.0),
    "occ_bg": ("float", 0.0),
    "corruption": ("str", ""),
    "severity": ("int", 0),
    "background": ("str", ""),
    "style": ("str", ""),
    "shape": ("str", ""),
    "shape_id": ("int", -1),
    "known": ("bool", True),
}
REQUIRED_COLUMNS = ("image", "split", "category")
META_KEYS = ("name", "generator_version", "seed", "preset", "profile", "categories", "keypoint_names",
             "cuboids", "image_size", "camera", "splits", "source", "licence")


def normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add every schema column missing from ``df`` (with its default) and order the columns."""
    df = df.copy()
    for col, (kind, default) in COLUMNS.items():
        if col not in df.columns:
            df[col] = [default] * len(df) if kind == "list" else default
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    for col, (kind, default) in COLUMNS.items():
        if kind in ("int", "bool") or (kind == "float" and not (isinstance(default, float) and math.isnan(default))):
            df[col] = df[col].fillna(default)
        if kind == "str":
            df[col] = df[col].fillna("").astype(str)
        elif kind == "int":
            df[col] = df[col].astype(np.int64)
        elif kind == "float":
            df[col] = df[col].astype(np.float64)
        elif kind == "bool":
            df[col] = df[col].astype(bool)
    return df.reset_index(drop=True)


def write_index(root: Path, meta: Dict[str, Any], df: pd.DataFrame) -> None:
    """Write ``meta.yaml`` and ``index.parquet`` atomically (deterministic bytes for equal input)."""
    root = Path(root)
    df = normalise_frame(df)
    with atomic_path(root / "index.parquet") as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    write_yaml(root / "meta.yaml", meta)


def read_image_file(path: Path, what: str = "image") -> np.ndarray:
    """Read an image as a uint8 array; missing/corrupt files raise :class:`DataError` naming them."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise DataError(f"{what} file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB") if what == "image" else im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"corrupt {what} file {path}: {e} (expected a readable PNG/JPEG)") from None
    return arr


def read_mask_file(path: Path) -> np.ndarray:
    arr = read_image_file(path, "mask")
    if arr.ndim == 3:
        arr = arr[..., :3].max(-1) if arr.shape[2] >= 3 else arr[..., 0]
    return arr > 127 if arr.dtype == np.uint8 else arr > 0


class DatasetIndex:
    """A dataset on disk (or an adapter's in-memory index) in the workbench schema.

    ``DatasetIndex(root)`` validates ``meta.yaml`` and ``index.parquet``; errors name the file and
    what was expected. ``.meta`` (dict), ``.df`` (DataFrame), ``.root``, ``.image_root``.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, meta: Optional[Dict[str, Any]] = None,
                 df: Optional[pd.DataFrame] = None):
        if root is None and (meta is None or df is None):
            raise DataError("DatasetIndex needs a root directory, or meta and df")
        self.root = Path(root).resolve() if root is not None else Path(meta.get("image_root", ".")).resolve()
        if meta is None or df is None:
            meta, df = self._read(self.root)
        self.meta = meta
        self.df = normalise_frame(df)
        self.image_root = Path(meta.get("image_root") or self.root)
        if not self.image_root.is_absolute():
            self.image_root = (self.root / self.image_root).resolve()
        self._check()
        sp = self.root / "shapes.parquet"
        self.shapes: Optional[pd.DataFrame] = pd.read_parquet(sp) if sp.is_file() else None

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read(root: Path):
        if not root.is_dir():
            raise DataError(f"dataset directory not found: {root}")
        meta_path = root / "meta.yaml"
        index_path = root / "index.parquet"
        if not meta_path.is_file():
            partial = " (it looks like an interrupted generation)" if root.name.startswith(".") else ""
            raise DataError(f"{meta_path}: missing; expected the dataset's meta.yaml{partial}")
        try:
            meta = yaml.safe_load(meta_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{meta_path}: invalid YAML: {e}") from None
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path}: expected a mapping at the top level")
        if not index_path.is_file():
            raise DataError(f"{index_path}: missing; expected one row per image (parquet)")
        try:
            df = pd.read_parquet(index_path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types
            raise DataError(f"{index_path}: cannot read parquet: {e}") from None
        return meta, df

    def _check(self) -> None:
        where = self.root / "meta.yaml"
        for k in ("name", "categories", "splits"):
            if k not in self.meta:
                raise DataError(f"{where}: missing key '{k}' (expected keys: {', '.join(META_KEYS)})")
        missing = [c for c in REQUIRED_COLUMNS if c not in self.df.columns]
        if missing:
            raise DataError(f"{self.root / 'index.parquet'}: missing columns {missing}")
        if len(self.df) and (self.df["image"] == "").any():
            i = int(np.flatnonzero((self.df["image"] == "").to_numpy())[0])
            raise DataError(f"{self.root / 'index.parquet'}: row {i} has an empty 'image' path")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.df)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.root.name))

    @property
    def splits(self) -> List[str]:
        return sorted(self.df["split"].unique().tolist())

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.image_root / p

    def split(self, name: str | Sequence[str]) -> pd.DataFrame:
        names = [name] if isinstance(name, str) else list(name)
        bad = [n for n in names if n not in set(self.df["split"])]
        if bad:
            raise DataError(f"{self.name}: unknown split(s) {bad} (available: {', '.join(self.splits)})")
        return self.df[self.df["split"].isin(names)]

    def load_image(self, i: int) -> "torch.Tensor":  # noqa: F821
        """Row ``i`` -> ``(3, H, W)`` float tensor in [0, 1]."""
        import torch

        arr = read_image_file(self.path(self.df.at[i, "image"]), "image")
        return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)

    def load_mask(self, i: int, which: str = "mask") -> "torch.Tensor":  # noqa: F821
        """Row ``i`` -> ``(1, H, W)`` float tensor in {0, 1} (``which`` = mask | amodal_mask | occluder_mask)."""
        import torch

        rel = self.df.at[i, which]
        if not rel:
            if which == "amodal_mask" and self.df.at[i, "mask"]:
                rel = self.df.at[i, "mask"]
            else:
                raise DataError(f"{self.name}: row {i} ({self.df.at[i, 'image']}) has no {which}")
        m = read_mask_file(self.path(rel))
        return torch.from_numpy(m.astype(np.float32))[None]

    def load_depth(self, i: int) -> "torch.Tensor":  # noqa: F821
        """Row ``i`` -> ``(1, H, W)`` z-depth (inf where empty); needs the ``depth`` column."""
        import torch

        rel = self.df.at[i, "depth"]
        if not rel:
            raise DataError(f"{self.name}: row {i} has no depth map")
        raw = read_image_file(self.path(rel), "depth").astype(np.float32)
        scale = float(self.meta.get("depth_scale", 1000.0))
        d = np.where(raw > 0, raw / scale, np.inf).astype(np.float32)
        return torch.from_numpy(d)[None]

    def keypoints(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i`` -> ``(K, 2)`` pixel keypoints and ``(K,)`` visibility (K = 0 when absent)."""
        kp = self.df.at[i, "keypoints_2d"]
        vis = self.df.at[i, "keypoints_visible"]
        if kp is None or (not isinstance(kp, (list, np.ndarray))) or len(kp) == 0:
            return np.zeros((0, 2), np.float32), np.zeros((0,), bool)
        kp = np.stack([np.asarray(k, np.float32) for k in kp])
        vis = np.asarray(list(vis), bool)
        return kp, vis

    def validate(self, check_files: bool = False, limit: Optional[int] = None) -> Dict[str, Any]:
        """Schema checks (and, with ``check_files``, that every referenced file opens).

        Returns counts per split; raises :class:`DataError` naming the first bad file/field.
        """
        df = self.df
        idx = self.root / "index.parquet"
        for col in ("azimuth", "elevation", "theta", "distance", "focal"):
            v = df[col].to_numpy()
            if np.isinf(v).any():
                raise DataError(f"{idx}: column '{col}' has infinite values")
        known_splits = set(self.meta.get("splits", {}) or {})
        if known_splits:
            extra = set(df["split"]) - known_splits
            if extra:
                raise DataError(f"{idx}: splits {sorted(extra)} are not listed in meta.yaml 'splits'")
        cats = set(self.meta.get("categories", [])) | set(self.meta.get("unknown_categories", []) or [])
        cats |= set(self.meta.get("families", []) or [])
        if cats:
            bad = set(df["category"]) - cats
            if bad:
                raise DataError(f"{idx}: categories {sorted(bad)[:5]} are not listed in meta.yaml")
        for i in range(len(df) if limit is None else min(limit, len(df))):
            kp = df.at[i, "keypoints_2d"]
            vis = df.at[i, "keypoints_visible"]
            if kp is not None and vis is not None and len(kp) != len(vis):
                raise DataError(f"{idx}: row {i}: {len(kp)} keypoints but {len(vis)} visibility flags")
            if check_files:
                for col in ("image", "mask", "amodal_mask", "occluder_mask", "depth"):
                    rel = df.at[i, col]
                    if rel:
                        read_image_file(self.path(rel), "image" if col == "image" else "mask")
        return {"rows": len(df), "splits": df["split"].value_counts().sort_index().to_dict()}

    def save(self, out: str | os.PathLike) -> Path:
        """Write this index (meta + parquet) to ``out``; image paths keep pointing at ``image_root``."""
        out = Path(out)
        meta = dict(self.meta)
        meta["image_root"] = str(self.image_root)
        write_index(out, meta, self.df)
        return out

    def __repr__(self) -> str:
        return f"DatasetIndex(name={self.name!r}, rows={len(self)}, splits={self.splits}, root='{self.root}')"
