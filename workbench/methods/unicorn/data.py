"""UNICORN's view of the synthetic ``collection`` preset (object-centred crops, GT meshes).

:class:`UnicornDataset` holds one split of one or more categories in memory (uint8) and yields
``image (3, S, S)`` in [0, 1], ``mask (1, S, S)`` in [0, 1] (used only by the evaluation),
``R (3, 3)``, ``T (3,)`` (ground-truth camera, pytorch3d row convention), ``category`` (int index
into ``.categories``) and ``index``; ``mesh_path(k)`` gives the GT mesh (canonical frame).
The images are the only training signal: masks, poses and meshes are never used by ``train``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...core.errors import DataError
from .config import DataSection

log = logging.getLogger(__name__)

__all__ = ["dataset_roots", "split_name", "UnicornDataset"]


def dataset_roots(cfg: DataSection, workers: int | None = None) -> dict[str, Path]:
    """``{category: dataset root}`` for a data config (generated and cached on first use)."""
    if cfg.root:
        root = Path(cfg.root).expanduser()
        if not (root / "meta.yaml").is_file():
            raise DataError(f"data.root={root}: not a workbench dataset (no meta.yaml)")
        import yaml

        cats = (yaml.safe_load((root / "meta.yaml").read_text()) or {}).get("categories") or cfg.categories
        return {str(cats[0]): root}
    from ...data.generate import generate

    out = {}
    for cat in cfg.categories:
        overrides = ([f"category={cat}"] if cat != "bird" else []) + list(cfg.preset_overrides)
        out[cat] = generate(cfg.preset, profile=cfg.profile, seed=cfg.seed, overrides=overrides or None,
                            workers=workers, progress=False)
    return out


def split_name(split: str, variant: str) -> str:
    """``test`` + ``textured`` -> ``test_textured`` (the collection preset's split names)."""
    return f"{split}_textured" if variant == "textured" and not split.endswith("_textured") else split


class UnicornDataset(Dataset):
    """One split over several category datasets, resized to ``image_size`` (module docstring)."""

    def __init__(self, roots: dict[str, Path], split: str, variant: str = "white", image_size: int = 64,
                 max_images: int = 0):
        from ...data.schema import DatasetIndex
        from ...geometry.pose import pose_to_rt

        self.categories = list(roots)
        self.size = S = int(image_size)
        imgs, masks, Rs, Ts, cats, self._meshes, self._instances = [], [], [], [], [], [], []
        for ci, (cat, root) in enumerate(roots.items()):
            index = DatasetIndex(root)
            name = split_name(split, variant)
            if name not in set(index.df["split"]):
                raise DataError(f"{index.root}: no split '{name}' (available: {', '.join(index.splits)})")
            df = index.split(name)
            if max_images:
                df = df.iloc[:max_images]
            if len(df) == 0:
                raise DataError(f"{index.root}: split '{name}' is empty")
            for i in df.index:
                img, m = index.load_image(int(i)), index.load_mask(int(i))
                if img.shape[-1] != S or img.shape[-2] != S:
                    img = F.interpolate(img[None], size=(S, S), mode="bilinear", antialias=True,
                                        align_corners=False)[0]
                    m = F.interpolate(m[None], size=(S, S), mode="area")[0]
                imgs.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
                masks.append((m.clamp(0, 1) * 255).round().to(torch.uint8))
                row = index.df.loc[int(i)]
                R, T = pose_to_rt(torch.tensor([float(row.azimuth)]), torch.tensor([float(row.elevation)]),
                                  torch.tensor([float(row.theta)]), torch.tensor([float(row.distance)]))
                Rs.append(R[0].float())
                Ts.append(T[0].float())
                cats.append(ci)
                rel = row["shape"]
                self._meshes.append(index.path(rel) if rel else None)
                self._instances.append(str(row["instance"]))
        self.images = torch.stack(imgs)
        self.masks = torch.stack(masks)
        self.R = torch.stack(Rs)
        self.T = torch.stack(Ts)
        self.category = torch.tensor(cats, dtype=torch.int64)
        self.split = split

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, k: int) -> dict:
        return {"image": self.images[k].float() / 255.0, "mask": self.masks[k].float() / 255.0,
                "R": self.R[k], "T": self.T[k], "category": self.category[k], "index": torch.tensor(k)}

    def mesh_path(self, k: int) -> Path:
        p = self._meshes[k]
        if p is None:
            raise DataError(f"item {k} of split '{self.split}' has no ground-truth mesh")
        return p

    def instance(self, k: int) -> str:
        return self._instances[k]
