"""Helpers shared by the real-dataset adapters: errors that name files, .mat/.npz access, caches."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ...core.errors import DataError
from ...core.paths import data_dir
from ..schema import DatasetIndex

__all__ = ["need_dir", "need_file", "load_mat", "load_npz", "mat_list", "mat_get", "cache_dir_for", "save_mask",
           "make_index", "image_size"]


def need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: directory not found; expected {what}")
    return path


def need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {what}")
    return path


def load_mat(path: Path, what: str) -> Dict[str, Any]:
    import scipy.io

    need_file(path, what)
    try:
        return scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError/TypeError/MatReadError
        raise DataError(f"{path}: cannot read MATLAB file ({e}); expected {what}") from None


def load_npz(path: Path, what: str) -> Dict[str, Any]:
    need_file(path, what)
    try:
        with np.load(str(path), allow_pickle=True) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read npz ({e}); expected {what}") from None


def mat_list(x: Any) -> List[Any]:
    """A MATLAB struct array / cell array / single struct (after squeeze_me) as a Python list."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        if x.dtype == object or x.dtype.names is None:
            return list(x.reshape(-1)) if x.ndim else [x.item()]
        return list(x.reshape(-1))
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def mat_get(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a mat_struct, a dict or a numpy record."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    if isinstance(obj, np.void) and obj.dtype.names and name in obj.dtype.names:
        return obj[name]
    if isinstance(obj, np.ndarray) and obj.dtype.names and name in obj.dtype.names:
        v = obj[name]
        return v.item() if v.size == 1 else v
    return getattr(obj, name, default)


def cache_dir_for(name: str, root: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where an adapter materialises derived files (masks stored inside .mat/.npz annotations)."""
    if cache_dir is not None:
        return Path(cache_dir)
    h = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return data_dir() / ".adapter_cache" / f"{name}-{h}"


def save_mask(path: Path, mask: np.ndarray) -> str:
    """Write a binary mask PNG (skipped when an identical file exists); returns the absolute path."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.asarray(mask) > 0).astype(np.uint8) * 255
    if not path.is_file():
        from ...core.io import atomic_path

        with atomic_path(path) as tmp:
            Image.fromarray(arr).save(tmp, format="PNG")
    return str(path)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the image header; DataError naming the file when unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"corrupt image file {path}: {e}") from None


def make_index(name: str, root: Path, rows: List[dict], categories: Sequence[str], *, source: str, licence: str,
               keypoint_names: Optional[dict] = None, extra_meta: Optional[dict] = None,
               shapes: Optional[pd.DataFrame] = None) -> DatasetIndex:
    if not rows:
        raise DataError(f"{root}: no samples found for {name} (is this the right directory?)")
    df = pd.DataFrame(rows)
    splits = sorted(df["split"].unique().tolist())
    meta = {"name": name, "generator_version": None, "seed": None, "preset": None, "profile": None,
            "categories": list(categories), "keypoint_names": keypoint_names or {}, "cuboids": {},
            "image_size": None, "camera": {"model": "pinhole"}, "splits": {s: int((df["split"] == s).sum()) for s in splits},
            "source": source, "licence": licence, "image_root": str(root.resolve())}
    meta.update(extra_meta or {})
    ds = DatasetIndex(root, meta=meta, df=df)
    ds.shapes = shapes  # type: ignore[attr-defined]
    return ds
