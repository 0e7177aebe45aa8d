"""Real-dataset adapters: read official layouts into the workbench schema (:class:`DatasetIndex`).

``ADAPTERS[name](root) -> DatasetIndex`` (in memory; image paths relative to the official root,
``meta['image_root']``); :func:`read_dataset` dispatches by name. Every adapter raises
:class:`~workbench.core.errors.DataError` naming the missing/malformed file and what was expected.
Use ``ds.save(out)`` to persist an index, and the task datasets (``ViewsDataset(ds, split)``...)
directly on the returned object.

========================  =========================================================================
name                      reader (layout documented in its module)
========================  =========================================================================
modelnet40                :func:`.multiview.read_modelnet40` (PiRO or MVCNN layout)
objectpi                  :func:`.multiview.read_objectpi`
fg3d                      :func:`.multiview.read_fg3d`
shapenet_nmr              :func:`.shapenet_cub.read_shapenet_nmr` (DVR / SoftRas)
pascal3d                  :func:`.pascal.read_pascal3d`
occluded_pascal3d         :func:`.pascal.read_occluded_pascal3d`
imagenet3d                :func:`.pascal.read_imagenet3d`
pix3d                     :func:`.retrieval.read_pix3d`
compcars                  :func:`.retrieval.read_compcars` (CMIC layout)
stanford_cars             :func:`.retrieval.read_stanford_cars` (CMIC layout)
cub                       :func:`.shapenet_cub.read_cub` (CUB-200-2011 + CMR annotations)
========================  =========================================================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

from ...core.errors import DataError
from .multiview import read_fg3d, read_modelnet40, read_objectpi
from .pascal import read_imagenet3d, read_occluded_pascal3d, read_pascal3d
from .retrieval import read_compcars, read_pix3d, read_stanford_cars
from .shapenet_cub import read_cub, read_shapenet_nmr

ADAPTERS: Dict[str, Callable] = {
    "modelnet40": read_modelnet40,
    "objectpi": read_objectpi,
    "fg3d": read_fg3d,
    "shapenet_nmr": read_shapenet_nmr,
    "pascal3d": read_pascal3d,
    "occluded_pascal3d": read_occluded_pascal3d,
    "imagenet3d": read_imagenet3d,
    "pix3d": read_pix3d,
    "compcars": read_compcars,
    "stanford_cars": read_stanford_cars,
    "cub": read_cub,
}

__all__ = ["ADAPTERS", "read_dataset"] + [f.__name__ for f in ADAPTERS.values()]


def read_dataset(name: str, root: str | Path, **kwargs):
    """Read the real dataset ``name`` from its official layout at ``root``."""
    if name not in ADAPTERS:
        import difflib

        close = difflib.get_close_matches(name, list(ADAPTERS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(f"no adapter for dataset '{name}'{hint} (available: {', '.join(ADAPTERS)})")
    return ADAPTERS[name](Path(root), **kwargs)
