"""The data 3D-CompNets trains and evaluates on: the ``views`` preset seen through one task view.

``load_task_data(cfg)`` generates (or reuses) the dataset, fixes the class list (the categories of
the ``train`` split, in ``meta.yaml`` order), builds one cuboid mesh per class from ``meta.yaml``
``cuboids`` (+ ``cuboid_centers``), and carves the held-out calibration split out of ``train``
(``data.calib_fraction`` of each class's images, fixed seed) for the confusion weights.

Batches are dicts: ``image (B, 3, H, W)`` in [0, 1], ``mask (B, 1, H, W)``, ``label (B,)`` (class
id; -1 for categories outside the class list, i.e. the ``unknown`` split), ``azimuth, elevation,
theta, distance (B,)`` radians / world units, ``R (B, 3, 3)``, ``T (B, 3)`` (``pose_to_rt``),
``focal (B,)`` px, ``principal (B, 2)`` px, ``index (B,)`` (row of ``index.parquet``) and
``category_name`` (list of str).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...core.errors import DataError
from ...geometry.pose import pose_to_rt
from .mesh import CategoryMeshes, build_category_meshes

log = logging.getLogger(__name__)


class ViewsTask(Dataset):
    """Rows ``rows`` of a :class:`~workbench.data.schema.DatasetIndex` as task items (module docstring)."""

    def __init__(self, index, rows: list[int], class_ids: dict[str, int], cache: dict | None = None):
        self.index = index
        self.cache = cache
        self.rows = [int(r) for r in rows]
        self.class_ids = class_ids
        df = index.df
        R, T = pose_to_rt(torch.tensor(df["azimuth"].to_numpy()[self.rows], dtype=torch.float32),
                          torch.tensor(df["elevation"].to_numpy()[self.rows], dtype=torch.float32),
                          torch.tensor(df["theta"].to_numpy()[self.rows], dtype=torch.float32),
                          torch.tensor(df["distance"].to_numpy()[self.rows], dtype=torch.float32)) \
            if self.rows else (torch.zeros(0, 3, 3), torch.zeros(0, 3))
        self._R, self._T = R, T
        cols = {}
        for col in ("azimuth", "elevation", "theta", "distance", "focal", "px", "py"):
            vals = df[col].to_numpy()[self.rows]
            if len(vals) and not np.isfinite(vals).all():
                bad = self.rows[int(np.flatnonzero(~np.isfinite(vals))[0])]
                raise DataError(f"{index.root / 'index.parquet'}: row {bad} has a non-finite '{col}'")
            cols[col] = torch.tensor(vals.astype(np.float64), dtype=torch.float64).float()
        # per-item values read once (``__getitem__`` runs once per image and step: no DataFrame access)
        self._cols = cols
        self._principal = torch.stack([cols["px"], cols["py"]], 1) if self.rows else torch.zeros(0, 2)
        self._cats = [str(c) for c in df["category"].to_numpy()[self.rows]]
        self._labels = torch.tensor([class_ids.get(c, -1) for c in self._cats], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def categories(self) -> list[str]:
        return self.index.df["category"].to_numpy()[self.rows].tolist()

    def labels(self) -> list[int]:
        return [self.class_ids.get(c, -1) for c in self.categories()]

    def rotations(self) -> torch.Tensor:
        """``(N, 3, 3)`` ground-truth rotations of the split's images (no image is read)."""
        return self._R

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        c = self._cols
        image, mask = self._load(r)
        return {
            "image": image,
            "mask": mask,
            "label": self._labels[i].clone(),
            "azimuth": c["azimuth"][i].clone(),
            "elevation": c["elevation"][i].clone(),
            "theta": c["theta"][i].clone(),
            "distance": c["distance"][i].clone(),
            "R": self._R[i], "T": self._T[i],
            "focal": c["focal"][i].clone(),
            "principal": self._principal[i].clone(),
            "index": torch.tensor(r),
            "category_name": self._cats[i],
        }

    def _load(self, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and mask of row ``r`` (kept as uint8 in ``cache`` when one is given)."""
        if self.cache is not None and r in self.cache:
            img, m = self.cache[r]
            return img.float() / 255.0, m.float()
        img = self.index.load_image(r)
        m = self.index.load_mask(r) if self.index.df.at[r, "mask"] else torch.zeros(1, *self._hw(r))
        if self.cache is not None:
            self.cache[r] = ((img * 255).round().to(torch.uint8), (m > 0.5).to(torch.uint8))
        return img, m

    def _hw(self, r: int) -> tuple[int, int]:
        return int(self.index.df.at[r, "height"]), int(self.index.df.at[r, "width"])


def stratified_subset(labels: list, n: int) -> list[int]:
    """The first ``n`` positions taken round-robin over the label values (deterministic)."""
    if not n or n >= len(labels):
        return list(range(len(labels)))
    groups: dict[Any, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(y, []).append(i)
    order = []
    depth = 0
    while len(order) < n:
        added = False
        for y in sorted(groups, key=str):
            if depth < len(groups[y]):
                order.append(groups[y][depth])
                added = True
                if len(order) == n:
                    break
        if not added:
            break
        depth += 1
    return sorted(order)


@dataclass
class TaskData:
    """Dataset index, class list, meshes, and the per-split row lists (see module docstring)."""

    root: Path
    index: Any
    class_names: list[str]
    meshes: CategoryMeshes
    image_size: tuple[int, int]
    rows: dict[str, list[int]]
    median_distance: float
    unknown_names: list[str] = field(default_factory=list)
    cache: dict | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_ids(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.class_names)}

    @property
    def available_splits(self) -> list[str]:
        return [s for s, r in self.rows.items() if r]

    @property
    def n_train(self) -> int:
        return len(self.rows["train"])

    @property
    def n_calib(self) -> int:
        return len(self.rows["calib"])

    def dataset(self, split: str, max_images: int = 0) -> ViewsTask:
        if split not in self.rows:
            raise DataError(f"{self.root}: no split '{split}' (available: {', '.join(self.available_splits)})")
        ds = ViewsTask(self.index, self.rows[split], self.class_ids, self.cache)
        if max_images and max_images < len(ds):
            keep = stratified_subset(ds.categories(), max_images)
            ds = ViewsTask(self.index, [ds.rows[i] for i in keep], self.class_ids, self.cache)
        return ds

    def loader(self, split: str, batch_size: int = 16, max_images: int = 0, num_workers: int = 0) -> DataLoader:
        """Deterministic (unshuffled) batches of a split."""
        return DataLoader(self.dataset(split, max_images), batch_size=batch_size, shuffle=False,
                          num_workers=num_workers)


def dataset_root(cfg) -> Path:
    if cfg.data.root:
        return Path(cfg.data.root)
    import importlib

    generate = importlib.import_module("workbench.data.generate").generate
    return Path(generate(cfg.data.preset, profile=cfg.data.profile, seed=cfg.data.seed,
                         overrides=list(cfg.data.preset_overrides) or None))


def load_task_data(cfg, root: str | Path | None = None) -> TaskData:
    """Open (generating if needed) the dataset of ``cfg.data`` and prepare the task view."""
    from ...data.schema import DatasetIndex

    root = Path(root) if root is not None else dataset_root(cfg)
    index = DatasetIndex(root)
    meta, df = index.meta, index.df
    if "train" not in set(df["split"]):
        raise DataError(f"{root}: no 'train' split (splits: {', '.join(index.splits)})")
    train_df = df[df["split"] == "train"]
    present = set(train_df["category"])
    names = [c for c in meta["categories"] if c in present] + sorted(present - set(meta["categories"]))
    cuboids = meta.get("cuboids") or {}
    centres = meta.get("cuboid_centers") or {}
    meshes = build_category_meshes(cuboids, names, cfg.model.n_vertices, centres)
    H, W = (int(v) for v in meta.get("image_size", [int(train_df["height"].iloc[0]), int(train_df["width"].iloc[0])]))
    # calibration rows: a fixed fraction of each class's training images
    rng = np.random.default_rng(cfg.data.seed + 7919)
    train_rows = train_df.index.to_numpy()
    cats = train_df["category"].to_numpy()
    calib, keep = [], []
    for c in names:
        r = train_rows[cats == c]
        r = r[rng.permutation(len(r))]
        n_cal = max(1, int(round(cfg.data.calib_fraction * len(r)))) if len(r) > 1 else 0
        calib.extend(r[:n_cal].tolist())
        keep.extend(r[n_cal:].tolist())
    keep.sort()
    calib.sort()
    if cfg.data.max_train_images and len(keep) > cfg.data.max_train_images:
        sub = stratified_subset(df.loc[keep, "category"].tolist(), cfg.data.max_train_images)
        keep = [keep[i] for i in sub]
    rows = {"train": keep, "calib": calib}
    for s in index.splits:
        if s != "train":
            rows[s] = df.index[df["split"] == s].tolist()
    median_d = float(np.median(df.loc[keep, "distance"].to_numpy())) if keep else 4.0
    unknown = list(meta.get("unknown_categories") or [])
    log.info("compnet3d data %s: %d classes, %d train / %d calib images, splits %s", root.name, len(names),
             len(keep), len(calib), ", ".join(k for k, v in rows.items() if v))
    cache = {} if cfg.data.cache_images else None
    return TaskData(root, index, names, meshes, (H, W), rows, median_d, unknown, cache)
