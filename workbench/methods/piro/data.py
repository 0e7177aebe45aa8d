"""Multi-view objects for PiRO: one split as ``(N objects, V views)`` plus labels.

:func:`load_split` builds a :class:`MultiViewSplit` from the data layer (the synthetic
``multiview`` preset through ``workbench.data.generate``, or a real dataset's adapter, or an
explicit ``root``) via ``workbench.data.MultiViewDataset(root, split, views=V)``. Small splits are
held in memory as uint8 ``(N, V, 3, H, W)``; large ones stay on disk and are read per batch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...core.errors import DataError, ShapeError

log = logging.getLogger(__name__)


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(..., 3, H, W)`` -> ``(..., 3, size, size)`` (area/bilinear with antialias); no-op if equal."""
    if size is None or (images.shape[-1] == size and images.shape[-2] == size):
        return images
    lead = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:]).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.reshape(*lead, *x.shape[-3:])


@dataclass
class MultiViewSplit:
    """The objects of one split.

    Attributes:
        categories: ``(N,)`` int64 category index (into ``category_names``).
        objects: ``(N,)`` int64 object id as the dataset names it.
        category_names: names of the category indices.
        images: ``(N, V, 3, H, W)`` uint8 when held in memory, else None.
        dataset: the underlying map-style dataset when not in memory (items as ``MultiViewDataset``).
        azimuth: ``(N, V)`` radians when known.
        image_size: side of the images :meth:`get` returns.
        meta: free-form information (root, source, families...).
    """

    categories: torch.Tensor
    objects: torch.Tensor
    category_names: list[str]
    images: torch.Tensor | None = None
    dataset: Any = None
    azimuth: torch.Tensor | None = None
    image_size: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = int(self.categories.shape[0])
        if self.objects.shape != (n,):
            raise ShapeError(f"MultiViewSplit: objects {tuple(self.objects.shape)} vs categories ({n},)")
        if self.images is not None:
            if self.images.ndim != 5 or self.images.shape[0] != n or self.images.shape[2] != 3:
                raise ShapeError(f"MultiViewSplit: images must be (N={n}, V, 3, H, W), got {tuple(self.images.shape)}")
        elif self.dataset is None:
            raise DataError("MultiViewSplit needs images or a dataset")

    def __len__(self) -> int:
        return int(self.categories.shape[0])

    @property
    def num_views(self) -> int:
        if self.images is not None:
            return int(self.images.shape[1])
        return int(self.meta["views"])

    @property
    def num_classes(self) -> int:
        return len(self.category_names)

    def get(self, idx: torch.Tensor | Sequence[int], views: torch.Tensor | None = None) -> torch.Tensor:
        """Images of objects ``idx (B,)`` as float ``(B, V', 3, S, S)`` in [0, 1].

        ``views (B, V')`` selects (and orders) the views of each object; all views by default.
        """
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.images is not None:
            imgs = self.images[idx] if views is None else self.images[idx[:, None], views]
            return _resize(imgs.float() / 255.0, self.image_size)
        items = [self.dataset[int(i)]["images"] for i in idx.tolist()]
        imgs = torch.stack(items).float()
        if views is not None:
            imgs = imgs[torch.arange(len(items))[:, None], views]
        return _resize(imgs, self.image_size).clamp(0, 1)

    def subset(self, index: torch.Tensor | Sequence[int]) -> "MultiViewSplit":
        """The objects ``index`` (same category indexing)."""
        index = torch.as_tensor(index, dtype=torch.long)
        if self.images is None:
            raise DataError("MultiViewSplit.subset needs an in-memory split")
        return MultiViewSplit(self.categories[index], self.objects[index], list(self.category_names),
                              images=self.images[index],
                              azimuth=None if self.azimuth is None else self.azimuth[index],
                              image_size=self.image_size, meta=dict(self.meta))

    @classmethod
    def from_tensors(cls, images: torch.Tensor, categories, objects=None, category_names=None,
                     image_size: int | None = None, azimuth=None, meta: dict | None = None) -> "MultiViewSplit":
        """From ``images (N, V, 3, H, W)`` (float in [0, 1] or uint8) and ``categories (N,)``."""
        if images.dtype != torch.uint8:
            images = (images.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
        cats = torch.as_tensor(categories, dtype=torch.long)
        objs = torch.arange(len(cats)) if objects is None else torch.as_tensor(objects, dtype=torch.long)
        names = list(category_names) if category_names is not None else [str(i) for i in range(int(cats.max()) + 1)]
        return cls(cats, objs, names, images=images, azimuth=azimuth,
                   image_size=image_size or int(images.shape[-1]), meta=dict(meta or {}))


def dataset_root(data_cfg, seed: int = 0, profile: str = "quick"):
    """What a config's data section points at: a dataset directory, or a real dataset's index.

    * ``source="synthetic"``: ``data.root`` if given, else ``workbench.data.generate(preset,
      data.profile or profile, seed, overrides=data.overrides)`` (generated once, then cached);
    * ``modelnet40`` / ``objectpi`` / ``fg3d``: the data layer's adapter
      (``workbench.data.read_dataset(source, root)``) on ``data.root``, or on
      ``<data_dir>/<source>`` (where ``workbench data fetch`` puts it); returns a ``DatasetIndex``.
    """
    import types

    from ... import data as wdata

    if data_cfg.source == "synthetic":
        if data_cfg.root:
            root = Path(data_cfg.root)
            if not root.exists():
                raise DataError(f"data.root: {root} does not exist")
            return root
        gen = getattr(wdata, "generate", None)
        if gen is None or isinstance(gen, types.ModuleType):   # not re-exported by workbench.data
            from ...data.generate import generate as gen
        return Path(gen(data_cfg.preset, profile=data_cfg.profile or profile, seed=seed,
                        overrides=list(data_cfg.overrides) or None))
    from ...core.paths import data_dir

    root = Path(data_cfg.root) if data_cfg.root else data_dir() / data_cfg.source
    if not root.exists():
        raise DataError(f"data.source '{data_cfg.source}': no dataset at {root}; run `workbench data fetch "
                        f"{data_cfg.source}` (manual download) or set data.root")
    from ...data.adapters import read_dataset

    return read_dataset(data_cfg.source, root)


def split_names(data_cfg) -> tuple[str, str]:
    """The (train, test) split names: ``fine_*`` for the synthetic fine-grained families."""
    if data_cfg.source == "synthetic" and data_cfg.subset == "fine":
        return "fine_train", "fine_test"
    return "train", "test"


def load_split(data_cfg, split: str, seed: int = 0, root=None,
               category_names: Sequence[str] | None = None) -> MultiViewSplit:
    """Load one split (``"train"``/``"test"``/``"fine_train"``...) as a :class:`MultiViewSplit`.

    ``root``: a dataset directory or a ``DatasetIndex`` (default: :func:`dataset_root`).
    ``category_names`` fixes the category indexing (pass the train split's names when loading
    the test split). ``data_cfg.categories`` restricts the objects to those categories.
    """
    root = root if root is not None else dataset_root(data_cfg, seed)
    if isinstance(root, (str, Path)):
        root = Path(root)
    from ...data import MultiViewDataset

    ds = MultiViewDataset(root, split, views=data_cfg.views)
    cat_col, obj_col, names_all = _labels(ds, root)
    keep_names = list(data_cfg.categories) or None
    if keep_names:
        missing = sorted(set(keep_names) - set(names_all))
        if missing:
            raise DataError(f"data.categories: {missing} not in {root} (has {names_all})")
    names = list(category_names) if category_names is not None else (keep_names or list(names_all))
    name_of = [names_all[c] for c in cat_col]
    sel = [i for i, n in enumerate(name_of) if n in names and (keep_names is None or n in keep_names)]
    if not sel:
        raise DataError(f"{root} split '{split}': no objects of categories {names}")
    cats = torch.tensor([names.index(name_of[i]) for i in sel], dtype=torch.long)
    objs = torch.tensor([obj_col[i] for i in sel], dtype=torch.long)
    meta = {"root": str(getattr(root, "root", root)), "split": split, "views": data_cfg.views,
            "source": data_cfg.source}
    if not data_cfg.in_memory:
        sub = torch.utils.data.Subset(ds, sel) if len(sel) != len(ds) else ds
        return MultiViewSplit(cats, objs, names, dataset=sub, image_size=data_cfg.image_size, meta=meta)
    imgs, azs = [], []
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, sel), batch_size=8,
                                         num_workers=data_cfg.workers)
    for batch in tqdm(loader, desc=f"load {split}", leave=False):
        x = _resize(batch["images"].float(), data_cfg.image_size)
        imgs.append((x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8))
        if "azimuth" in batch:
            azs.append(batch["azimuth"].float())
    images = torch.cat(imgs)
    az = torch.cat(azs) if len(azs) == len(imgs) and azs else None
    return MultiViewSplit(cats, objs, names, images=images, azimuth=az, image_size=data_cfg.image_size, meta=meta)


def _labels(ds, root) -> tuple[list[int], list[int], list[str]]:
    """Per-object class index, object id and class names, without decoding images when the
    dataset exposes them (``MultiViewDataset.classes/labels/object_ids``)."""
    names = getattr(ds, "classes", None) or getattr(ds, "category_names", None)
    cats = getattr(ds, "labels", None)
    if cats is None:
        cats = getattr(ds, "object_categories", None)
    objs = getattr(ds, "object_ids", None)
    if names is None:
        names = list((getattr(ds, "meta", None) or {}).get("categories", []))
        if not names:
            raise DataError(f"{root}: the dataset names no categories (meta.yaml 'categories')")
    if cats is None or objs is None:
        cats, objs = [], []
        for i in range(len(ds)):
            item = ds[i]
            cats.append(int(item["category"]))
            objs.append(int(item["object"]))
    if any(int(c) < 0 or int(c) >= len(names) for c in cats):
        raise DataError(f"{root}: object labels outside the {len(names)} classes {list(names)[:5]}...")
    return [int(c) for c in cats], [int(o) for o in objs], [str(n) for n in names]
