"""Torch ``Dataset``s over the on-disk schema (synthetic presets and real-dataset adapters alike).

Every dataset takes ``root`` (a directory or a :class:`~workbench.data.schema.DatasetIndex`),
a ``split`` (or list of splits) and an optional ``transform`` (``item dict -> item dict``, see
:mod:`workbench.data.transforms`). Items are dicts of tensors (plus a few strings):

* :class:`ViewsDataset` -- single images: ``image (3,H,W)``, ``mask (1,H,W)``, ``category`` (int,
  -1 for categories outside ``meta.categories``), ``known`` (bool), ``instance`` (int object id),
  ``azimuth/elevation/theta/distance`` (float, radians), ``R (3,3)``, ``T (3,)`` (via
  ``workbench.geometry.pose.pose_to_rt``), ``focal`` (px), ``principal (2,)`` (px), ``keypoints_2d (K,2)``
  px and ``keypoints_visible (K,)`` padded to the largest keypoint set (padding invisible),
  ``bbox (4,)``, ``occlusion_level``, ``index``.
* :class:`CollectionDataset` -- as above plus ``mesh_path`` (str) and ``depth (1,H,W)`` when saved.
* :class:`MultiViewDataset` -- objects: ``images (V,3,H,W)``, ``category`` (coarse category, or the
  fine-grained family on ``fine_*`` splits), ``coarse_category``, ``object`` (int id), ``azimuth (V,)``.
* :class:`ObjectPairDataset` -- PiRO's sampling: anchor object ``index // ncomp`` + a random other
  object of the same category, same random view order for both.
* :class:`RetrievalDataset` -- queries: ``image``, ``mask``, ``shape`` (int shape id), ``category``,
  optionally the GT shape's ``renders (V,1,h,w)``; :class:`ShapeRepository` -- the gallery:
  ``.renders (S,V,1,h,w)``, ``.shape_ids``, ``.categories``, ``.mesh_paths``.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import DataError
from .schema import DatasetIndex, read_image_file

__all__ = ["ViewsDataset", "CollectionDataset", "MultiViewDataset", "ObjectPairDataset", "RetrievalDataset",
           "ShapeRepository", "open_index"]

Root = Union[str, os.PathLike, DatasetIndex]


def open_index(root: Root) -> DatasetIndex:
    return root if isinstance(root, DatasetIndex) else DatasetIndex(root)


def _rows(ds: DatasetIndex, split) -> np.ndarray:
    return ds.split(split).index.to_numpy()


class _Base(Dataset):
    def __init__(self, root: Root, split: Union[str, Sequence[str]], transform: Optional[Callable] = None):
        self.ds = open_index(root)
        self.meta = self.ds.meta
        self.split = split
        self.rows = _rows(self.ds, split)
        self.transform = transform
        self.categories: List[str] = list(self.meta.get("categories", []))
        self._cat_index = {c: i for i, c in enumerate(self.categories)}

    def category_index(self, name: str) -> int:
        return self._cat_index.get(name, -1)

    def __len__(self) -> int:
        return len(self.rows)


class ViewsDataset(_Base):
    """Single posed images (see the module docstring)."""

    def __init__(self, root: Root, split: Union[str, Sequence[str]] = "train", transform: Optional[Callable] = None,
                 load_masks: bool = True):
        super().__init__(root, split, transform)
        from ..geometry.pose import pose_to_rt

        self.load_masks = load_masks
        df = self.ds.df.loc[self.rows]
        kn = self.meta.get("keypoint_names", {}) or {}
        lens = [len(v) for v in kn.values()] or [0]
        self.num_keypoints = max(lens + [max((len(k) for k in df["keypoints_2d"] if k is not None), default=0)])
        ang = df[["azimuth", "elevation", "theta", "distance"]].to_numpy(np.float64)
        finite = np.isfinite(ang).all(1)
        self.R = torch.zeros(len(df), 3, 3)
        self.T = torch.zeros(len(df), 3)
        if finite.any():
            R, T = pose_to_rt(*[torch.as_tensor(ang[finite, k]) for k in range(4)])
            self.R[torch.as_tensor(finite)] = R.float()
            self.T[torch.as_tensor(finite)] = T.float()

    def flip_transform(self, p: float = 0.5, generator: Optional[torch.Generator] = None):
        """A :class:`~workbench.data.transforms.RandomHorizontalFlip` with this dataset's flip pairs."""
        from .transforms import RandomHorizontalFlip, _swap_index

        perms = {}
        for c, names in (self.meta.get("keypoint_names") or {}).items():
            if c in self._cat_index:
                perms[self._cat_index[c]] = _swap_index(names, (self.meta.get("flip_pairs") or {}).get(c, []))
        return RandomHorizontalFlip(p, perms, generator)

    def _item(self, k: int) -> Dict[str, object]:
        i = int(self.rows[k])
        r = self.ds.df.loc[i]
        K = self.num_keypoints
        kp, vis = self.ds.keypoints(i)
        kp_t = torch.zeros(K, 2)
        vis_t = torch.zeros(K, dtype=torch.bool)
        if len(kp):
            kp_t[:len(kp)] = torch.from_numpy(kp)
            vis_t[:len(vis)] = torch.from_numpy(vis)
        bbox = r["bbox"]
        item: Dict[str, object] = {
            "image": self.ds.load_image(i),
            "category": self.category_index(r["category"]),
            "known": bool(r["known"]) and r["category"] in self._cat_index,
            "instance": int(r["object_id"]),
            "azimuth": torch.tensor(r["azimuth"], dtype=torch.float32),
            "elevation": torch.tensor(r["elevation"], dtype=torch.float32),
            "theta": torch.tensor(r["theta"], dtype=torch.float32),
            "distance": torch.tensor(r["distance"], dtype=torch.float32),
            "R": self.R[k].clone(), "T": self.T[k].clone(),
            "focal": torch.tensor(r["focal"], dtype=torch.float32),
            "principal": torch.tensor([r["px"], r["py"]], dtype=torch.float32),
            "keypoints_2d": kp_t, "keypoints_visible": vis_t,
            "bbox": torch.tensor(list(bbox) if bbox is not None and len(bbox) == 4 else [0.0] * 4, dtype=torch.float32),
            "occlusion_level": int(r["occlusion_level"]),
            "index": i,
        }
        if self.load_masks and r["mask"]:
            item["mask"] = self.ds.load_mask(i)
        return item

    def __getitem__(self, k: int) -> Dict[str, object]:
        item = self._item(k)
        return self.transform(item) if self.transform else item


class CollectionDataset(ViewsDataset):
    """One-category collection: :class:`ViewsDataset` items plus ``mesh_path`` and ``depth``."""

    def __init__(self, root: Root, split: Union[str, Sequence[str]] = "train", transform: Optional[Callable] = None,
                 load_depth: bool = False):
        super().__init__(root, split, transform)
        self.load_depth = load_depth

    def _item(self, k: int) -> Dict[str, object]:
        item = super()._item(k)
        i = int(self.rows[k])
        shape = self.ds.df.at[i, "shape"]
        item["mesh_path"] = str(self.ds.path(shape)) if shape else ""
        if self.load_depth and self.ds.df.at[i, "depth"]:
            item["depth"] = self.ds.load_depth(i)
        return item


class MultiViewDataset(_Base):
    """Objects seen from V views (see the module docstring)."""

    def __init__(self, root: Root, split: Union[str, Sequence[str]] = "train", views: Optional[int] = None,
                 transform: Optional[Callable] = None, label: Optional[str] = None):
        super().__init__(root, split, transform)
        df = self.ds.df.loc[self.rows]
        fine = label == "family" or (label is None and str(split if isinstance(split, str) else split[0]).startswith("fine"))
        self.label = "family" if fine else "category"
        self.classes: List[str] = list(self.meta.get("families", [])) if fine else self.categories
        cls_index = {c: i for i, c in enumerate(self.classes)}
        self.objects: List[np.ndarray] = []
        self.object_ids: List[int] = []
        self.labels: List[int] = []
        self.coarse: List[int] = []
        for oid, g in df.groupby("object_id", sort=True):
            g = g.sort_values("view")
            self.objects.append(g.index.to_numpy())
            self.object_ids.append(int(oid))
            self.labels.append(cls_index.get(g.iloc[0][self.label], -1))
            self.coarse.append(self.category_index(g.iloc[0]["category"]))
        nv = {len(o) for o in self.objects}
        if len(nv) > 1:
            raise DataError(f"{self.ds.name}: objects of split {split} have different numbers of views {sorted(nv)}")
        self.num_views = nv.pop() if nv else 0
        if views is not None and views > self.num_views:
            raise DataError(f"{self.ds.name}: asked for {views} views, objects have {self.num_views}")
        self.views = views or self.num_views

    def __len__(self) -> int:
        return len(self.objects)

    def load_views(self, k: int, order: Optional[Sequence[int]] = None) -> torch.Tensor:
        rows = self.objects[k]
        sel = rows[: self.views] if order is None else rows[list(order)[: self.views]]
        return torch.stack([self.ds.load_image(int(i)) for i in sel])

    def __getitem__(self, k: int) -> Dict[str, object]:
        rows = self.objects[k][: self.views]
        item = {"images": torch.stack([self.ds.load_image(int(i)) for i in rows]),
                "category": self.labels[k], "coarse_category": self.coarse[k], "object": self.object_ids[k],
                "azimuth": torch.tensor(self.ds.df.loc[rows, "azimuth"].to_numpy(np.float32)), "index": k}
        return self.transform(item) if self.transform else item


class ObjectPairDataset(MultiViewDataset):
    """PiRO pairs: ``len = objects * ncomp``; anchor ``idx // ncomp``, partner a random other object
    of the same label; both use the same random permutation of views. Call :meth:`set_epoch` to
    redraw partners deterministically per epoch."""

    def __init__(self, root: Root, split: Union[str, Sequence[str]] = "train", ncomp: int = 10,
                 views: Optional[int] = None, transform: Optional[Callable] = None, seed: int = 0,
                 shuffle_views: bool = True, label: Optional[str] = None):
        super().__init__(root, split, views, transform, label)
        self.ncomp, self.seed, self.epoch, self.shuffle_views = ncomp, seed, 0, shuffle_views
        by_label: Dict[int, List[int]] = {}
        for k, lab in enumerate(self.labels):
            by_label.setdefault(lab, []).append(k)
        self.by_label = by_label

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.objects) * self.ncomp

    def __getitem__(self, idx: int) -> Dict[str, object]:
        a = idx // self.ncomp
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        same = [k for k in self.by_label[self.labels[a]] if k != a]
        b = int(rng.choice(same)) if same else a
        order = rng.permutation(self.num_views) if self.shuffle_views else np.arange(self.num_views)
        item = {"images_a": self.load_views(a, order), "images_b": self.load_views(b, order),
                "category": self.labels[a], "object_a": self.object_ids[a], "object_b": self.object_ids[b],
                "views": torch.as_tensor(order[: self.views])}
        return self.transform(item) if self.transform else item


class ShapeRepository:
    """The retrieval gallery of one track (``multi`` or ``fine``; inferred from a query split name).

    ``renders (S, V, 1, h, w)`` float in [0, 1] (white background), ``shape_ids (S,)`` long,
    ``categories (S,)`` long, ``instances``, ``families``, ``mesh_paths``.
    """

    def __init__(self, root: Root, split: str = "train"):
        self.ds = open_index(root)
        path = self.ds.root / "shapes.parquet"
        shapes = getattr(self.ds, "shapes", None)
        if shapes is None:
            raise DataError(f"{path}: missing; expected the shape repository of a retrieval dataset")
        track = "fine" if split.startswith("fine") else ("multi" if split in ("train", "test", "multi", "all") else split)
        shapes = shapes[shapes["split"] == track].sort_values("shape_id").reset_index(drop=True)
        if not len(shapes):
            raise DataError(f"{path}: no shapes for track '{track}'")
        cats = list(self.ds.meta.get("categories", []))
        self.shape_ids = torch.as_tensor(np.array(shapes["shape_id"], dtype=np.int64))
        self.categories = torch.as_tensor([cats.index(c) if c in cats else -1 for c in shapes["category"]])
        self.instances = shapes["instance"].tolist()
        self.families = shapes["family"].tolist()
        self.mesh_paths = [str(self.ds.path(p)) for p in shapes["mesh"]]
        n = int((self.ds.meta.get("renders") or {}).get("views", 12))
        pkl = self.ds.meta.get("render_pickle")
        table = None
        if pkl:  # CMIC's rendering_<name>.pkl: dict[cat][instance] -> (V, h, w) grey views
            import pickle

            with open(pkl, "rb") as fh:
                table = pickle.load(fh)
        imgs = []
        for cat, inst, rd in zip(shapes["category"], shapes["instance"], shapes["renders"]):
            if table is not None:
                try:
                    arr = np.asarray(table[cat][inst])[:n].astype(np.float32)
                except KeyError:
                    raise DataError(f"{pkl}: no renders for {cat}/{inst}") from None
                arr = arr / 255.0 if arr.max() > 1.5 else arr
            elif rd:
                views = [read_image_file(self.ds.path(f"{rd}/{v:03d}.png"), "render") for v in range(n)]
                arr = np.stack(views).astype(np.float32) / 255.0
            else:
                raise DataError(f"{self.ds.name}: shape {cat}/{inst} has no renders (expected renders/<instance>/"
                                f"<view>.png or a render pickle)")
            if arr.ndim == 4:
                arr = arr[..., 0]
            imgs.append(arr)
        self.renders = torch.from_numpy(np.stack(imgs))[:, :, None]
        self._pos = {int(s): i for i, s in enumerate(self.shape_ids.tolist())}

    def __len__(self) -> int:
        return len(self.shape_ids)

    def index_of(self, shape_id: int) -> int:
        return self._pos[int(shape_id)]


class RetrievalDataset(_Base):
    """Query images for shape retrieval (see the module docstring)."""

    def __init__(self, root: Root, split: str = "train", transform: Optional[Callable] = None,
                 with_renders: bool = False):
        super().__init__(root, split, transform)
        self.repository = ShapeRepository(self.ds, split) if with_renders else None

    def __getitem__(self, k: int) -> Dict[str, object]:
        i = int(self.rows[k])
        r = self.ds.df.loc[i]
        item: Dict[str, object] = {"image": self.ds.load_image(i), "mask": self.ds.load_mask(i),
                                   "shape": int(r["shape_id"]), "category": self.category_index(r["category"]),
                                   "index": i}
        if self.repository is not None:
            item["renders"] = self.repository.renders[self.repository.index_of(int(r["shape_id"]))]
        return self.transform(item) if self.transform else item
