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


def dataset_root(data_cfg, seed: int = 0, profile: str = "quick") -> Path:
    """The dataset directory a config points at (generating the synthetic preset if needed).

    The synthetic preset is generated at ``data_cfg.profile``, or ``profile`` when that is None.
    """
    if data_cfg.root:
        root = Path(data_cfg.root)
        if not root.exists():
            raise DataError(f"data.root: {root} does not exist")
        return root
    import types

    from ... import data as wdata

    if data_cfg.source == "synthetic":
        gen = getattr(wdata, "generate", None)
        if gen is None or isinstance(gen, types.ModuleType):   # not re-exported by workbench.data yet
            from ...data.generate import generate as gen
        return Path(gen(data_cfg.preset, profile=data_cfg.profile or profile, seed=seed))
    fetch = getattr(wdata, "real_dataset_root", None) or getattr(wdata, "dataset_root", None)
    if fetch is None:
        raise DataError(f"data.source '{data_cfg.source}': the data layer has no real-dataset adapter yet; "
                        "set data.root to a converted dataset directory")
    return Path(fetch(data_cfg.source))


def load_split(data_cfg, split: str, seed: int = 0, root: Path | None = None,
               category_names: Sequence[str] | None = None) -> MultiViewSplit:
    """Load one split (``"train"``/``"test"``) as a :class:`MultiViewSplit`.

    ``category_names`` fixes the category indexing (pass the train split's names when loading
    the test split). ``data_cfg.categories`` restricts the objects to those categories.
    """
    root = Path(root) if root is not None else dataset_root(data_cfg, seed)
    try:
        from ...data import MultiViewDataset
    except ImportError:
        MultiViewDataset = _IndexMultiView  # noqa: N806 - the data layer's class is not there yet
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
    meta = {"root": str(root), "split": split, "views": data_cfg.views, "source": data_cfg.source}
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


def _labels(ds, root: Path) -> tuple[list[int], list[int], list[str]]:
    """Per-object class index, object id and class names, without decoding images when the
    dataset exposes them (``MultiViewDataset.classes/labels/object_ids``)."""
    names = getattr(ds, "classes", None) or getattr(ds, "category_names", None)
    cats = getattr(ds, "labels", None)
    if cats is None:
        cats = getattr(ds, "object_categories", None)
    objs = getattr(ds, "object_ids", None)
    if names is None:
        try:
            import yaml

            names = list(yaml.safe_load((root / "meta.yaml").read_text())["categories"])
        except (OSError, KeyError, TypeError) as e:
            raise DataError(f"{root}/meta.yaml: cannot read the category list ({e})") from None
    if cats is None or objs is None:
        cats, objs = [], []
        for i in range(len(ds)):
            item = ds[i]
            cats.append(int(item["category"]))
            objs.append(int(item["object"]))
    if any(int(c) < 0 or int(c) >= len(names) for c in cats):
        raise DataError(f"{root}: object labels outside the {len(names)} classes {list(names)[:5]}...")
    return [int(c) for c in cats], [int(o) for o in objs], [str(n) for n in names]


class _IndexMultiView(torch.utils.data.Dataset):
    """Minimal multi-view reader over :class:`workbench.data.schema.DatasetIndex` (used only when
    ``workbench.data.MultiViewDataset`` is not importable). Items as ``MultiViewDataset``:
    ``images (V, 3, H, W)``, ``category`` (index into ``category_names``; the family for the
    ``fine_*`` splits), ``object`` (``object_id``), ``azimuth (V,)``; views sorted by view index,
    ``views`` evenly spaced ones when fewer than available are asked for.
    """

    def __init__(self, root, split: str, views: int = 12):
        from ...data.schema import DatasetIndex

        self.ix = DatasetIndex(root)
        df = self.ix.split(split)
        col = "family" if split.startswith("fine_") and (df["family"] != "").all() else "category"
        self.category_names = sorted(df[col].unique().tolist()) if col == "family" else \
            [c for c in self.ix.meta["categories"] if c in set(df[col])] + \
            sorted(set(df[col]) - set(self.ix.meta["categories"]))
        self.objects_rows = []
        cats, objs = [], []
        for oid, g in df.groupby("object_id", sort=True):
            g = g.sort_values("view")
            if len(g) < views:
                raise DataError(f"{root}: object {oid} of split '{split}' has {len(g)} views, {views} asked for")
            pick = np.round(np.linspace(0, len(g), views, endpoint=False)).astype(int)
            self.objects_rows.append(g.index.to_numpy()[pick])
            cats.append(self.category_names.index(g[col].iloc[0]))
            objs.append(int(oid))
        self.object_categories, self.object_ids = cats, objs

    def __len__(self) -> int:
        return len(self.objects_rows)

    def __getitem__(self, i: int) -> dict:
        rows = self.objects_rows[i]
        imgs = torch.stack([self.ix.load_image(int(r)) for r in rows])
        az = torch.tensor(self.ix.df.loc[rows, "azimuth"].to_numpy(np.float32))
        return {"images": imgs, "category": self.object_categories[i], "object": self.object_ids[i], "azimuth": az}
