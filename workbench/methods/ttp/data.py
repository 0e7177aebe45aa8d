"""TTP's view of the synthetic ``collection`` preset: object-centred crops of one category.

:class:`TTPDataset` holds a split in memory (uint8 images, masks) and yields dicts of tensors:

* ``image (3, S, S)`` float in [0, 1], ``mask (1, S, S)`` in [0, 1] (area-resized);
* ``dist (1, S, S)``: Euclidean distance of every pixel centre to the mask, in normalised units
  (pixels x 2 / S), 0 inside (the silhouette-consistency term samples it at the regressed points);
* ``keypoints (K, 2)`` normalised coordinates (x right, y down, ``u = 2 x_px / W - 1`` with the
  project's pixel-centre convention), ``keypoints_visible (K,)`` bool;
* ``bbox_size`` (): the larger bounding-box side in normalised units (PCK's reference length);
* ``R (3, 3)``, ``T (3,)`` the ground-truth camera (pytorch3d row convention), ``index``.

The dataset root comes from :func:`dataset_root`: an explicit ``data.root`` or the preset generated
(and cached) by :func:`workbench.data.generate.generate` for ``data.category``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...core.errors import DataError
from .config import DataSection

log = logging.getLogger(__name__)

__all__ = ["dataset_root", "split_name", "TTPDataset", "distance_transform"]


def dataset_root(cfg: DataSection, workers: int | None = None) -> Path:
    """The dataset directory for a data config (generated and cached on first use)."""
    if cfg.root:
        root = Path(cfg.root).expanduser()
        if not (root / "meta.yaml").is_file():
            raise DataError(f"data.root={root}: not a workbench dataset (no meta.yaml)")
        return root
    from ...data.generate import generate

    overrides = [f"category={cfg.category}"] if cfg.category != "bird" else None
    return generate(cfg.preset, profile=cfg.profile, seed=cfg.seed, overrides=overrides, workers=workers,
                    progress=False)


def split_name(split: str, variant: str) -> str:
    """``test`` + ``textured`` -> ``test_textured`` (the collection preset's split names)."""
    return f"{split}_textured" if variant == "textured" and not split.endswith("_textured") else split


def distance_transform(mask: np.ndarray) -> np.ndarray:
    """Pixel distance of every pixel centre to the nearest mask pixel (0 inside); (H, W) float32."""
    from scipy.ndimage import distance_transform_edt

    fg = mask > 0.5
    if not fg.any():
        return np.full(mask.shape, float(max(mask.shape)), np.float32)
    return distance_transform_edt(~fg).astype(np.float32)


class TTPDataset(Dataset):
    """One split of a collection dataset, resized to ``image_size`` (see the module docstring).

    Args:
        root: dataset directory.
        split: ``train`` | ``test`` (or the full split name).
        variant: ``white`` | ``textured``.
        image_size: output side S.
        max_images: cap (0 = all), the first rows of the split.
    """

    def __init__(self, root: str | Path, split: str, variant: str = "textured", image_size: int = 64,
                 max_images: int = 0):
        from ...data.schema import DatasetIndex

        self.index = DatasetIndex(root)
        name = split_name(split, variant)
        if name not in set(self.index.df["split"]):
            name = split if split in set(self.index.df["split"]) else name
        df = self.index.split(name)
        if max_images:
            df = df.iloc[:max_images]
        if len(df) == 0:
            raise DataError(f"{self.index.root}: split '{name}' is empty")
        self.rows = df.index.to_numpy()
        self.df = df.reset_index(drop=True)
        self.split = name
        self.size = int(image_size)
        cats = self.index.meta.get("categories", [])
        self.category = str(df["category"].iloc[0]) if len(df) else (cats[0] if cats else "")
        self.keypoint_names = tuple((self.index.meta.get("keypoint_names") or {}).get(self.category, []))
        self.flip_pairs = [tuple(p) for p in (self.index.meta.get("flip_pairs") or {}).get(self.category, [])]
        self._load()

    def _load(self) -> None:
        S = self.size
        imgs, masks, dists, kps, kpv, bbox, Rs, Ts = [], [], [], [], [], [], [], []
        from ...geometry.pose import pose_to_rt

        for i in self.rows:
            img = self.index.load_image(int(i))                                  # (3, H, W)
            m = self.index.load_mask(int(i))                                     # (1, H, W)
            H, W = img.shape[-2:]
            if H != W:
                raise DataError(f"{self.index.root}: TTP needs square crops, row {i} is {H}x{W}")
            if (H, W) != (S, S):
                img = F.interpolate(img[None], size=(S, S), mode="bilinear", antialias=True,
                                    align_corners=False)[0]
                m = F.interpolate(m[None], size=(S, S), mode="area")[0]
            imgs.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
            masks.append((m.clamp(0, 1) * 255).round().to(torch.uint8))
            dists.append(torch.from_numpy(distance_transform(m[0].numpy()))[None] * (2.0 / S))
            kp, vis = self.index.keypoints(int(i))
            if len(kp) == 0:
                kp = np.zeros((len(self.keypoint_names), 2), np.float32)
                vis = np.zeros((len(self.keypoint_names),), bool)
            kps.append(torch.from_numpy(2.0 * kp / np.array([W, H], np.float32) - 1.0))
            kpv.append(torch.from_numpy(vis))
            bb = self.index.df.at[int(i), "bbox"]
            if bb is None or len(bb) != 4:
                ys, xs = np.nonzero(m[0].numpy() > 0.5)
                side = float(max(xs.ptp() + 1, ys.ptp() + 1)) * 2.0 / S if len(xs) else 2.0
            else:
                side = float(max(bb[2] - bb[0], bb[3] - bb[1])) * 2.0 / W
            bbox.append(side)
            row = self.index.df.loc[int(i)]
            R, T = pose_to_rt(torch.tensor([row.azimuth]), torch.tensor([row.elevation]),
                              torch.tensor([row.theta]), torch.tensor([row.distance]))
            Rs.append(R[0].float())
            Ts.append(T[0].float())
        self.images = torch.stack(imgs)
        self.masks = torch.stack(masks)
        self.dists = torch.stack(dists)
        self.keypoints = torch.stack(kps).float()
        self.keypoints_visible = torch.stack(kpv).bool()
        self.bbox_size = torch.tensor(bbox, dtype=torch.float32)
        self.R = torch.stack(Rs)
        self.T = torch.stack(Ts)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> dict:
        return {"image": self.images[k].float() / 255.0, "mask": self.masks[k].float() / 255.0,
                "dist": self.dists[k], "keypoints": self.keypoints[k],
                "keypoints_visible": self.keypoints_visible[k], "bbox_size": self.bbox_size[k],
                "R": self.R[k], "T": self.T[k], "index": torch.tensor(k)}

    def mesh_path(self, k: int) -> Path:
        """Ground-truth mesh of item ``k`` (in the canonical frame)."""
        rel = self.df.at[k, "shape"]
        if not rel:
            raise DataError(f"{self.index.root}: row {self.rows[k]} has no ground-truth mesh")
        return self.index.path(rel)

    def instance(self, k: int) -> str:
        return str(self.df.at[k, "instance"])
