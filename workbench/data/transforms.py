"""Augmentation hooks for the task datasets: callables ``item (dict) -> item (dict)``.

They act consistently on every field they know: ``image (3, H, W)``, ``mask``/``amodal_mask``
``(1, H, W)``, ``keypoints_2d (K, 2)`` + ``keypoints_visible (K,)``, ``bbox (4,)``, ``principal (2,)``,
``focal``, and the pose (``azimuth``, ``theta``, ``R``, ``T``). Multi-view items
(``images (V, 3, H, W)``) are handled by :class:`PerView`.

* :class:`Compose`, :class:`Normalize`, :class:`ColorJitter` (photometric only);
* :func:`photometric_batch`: the batched, functional photometric jitter (brightness, contrast,
  saturation, RGB channel shuffle, greyscale) for training steps that augment on the device;
* :class:`ResizePad` (aspect-preserving resize + pad to a square; intrinsics stay a valid pinhole);
* :class:`RandomHorizontalFlip` (mirror: ``x -> W - x``, left/right keypoints swapped through
  ``flip_pairs``, ``azimuth -> -azimuth``, ``theta -> -theta``; exact for bilaterally symmetric objects).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Compose", "Normalize", "ColorJitter", "photometric_batch", "ResizePad", "RandomHorizontalFlip",
           "PerView"]

Item = Dict[str, object]


class Compose:
    def __init__(self, transforms: Sequence[Callable[[Item], Item]]):
        self.transforms = list(transforms)

    def __call__(self, item: Item) -> Item:
        for t in self.transforms:
            item = t(item)
        return item


class Normalize:
    """``(image - mean) / std`` per channel (ImageNet statistics by default)."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), key: str = "image"):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.key = key

    def __call__(self, item: Item) -> Item:
        x = item[self.key]
        item[self.key] = (x - self.mean.to(x)) / self.std.to(x)
        return item


class ColorJitter:
    """Random brightness / contrast / saturation factors in ``[1 - s, 1 + s]`` (seedable generator):
    :func:`photometric_batch` on one item's image."""

    def __init__(self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.3,
                 generator: Optional[torch.Generator] = None):
        self.b, self.c, self.s = brightness, contrast, saturation
        self.g = generator

    def __call__(self, item: Item) -> Item:
        item["image"] = photometric_batch(item["image"][None], self.b, self.c, self.s, generator=self.g)[0]
        return item


def photometric_batch(images: torch.Tensor, brightness: float = 0.0, contrast: float = 0.0,
                      saturation: float = 0.0, channel_shuffle: float = 0.0, grayscale: float = 0.0,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image photometric jitter of a batch; the geometry (and so every label) is unchanged.

    Each image gets its own factors: brightness, contrast (about the image's mean) and saturation
    (about its per-pixel grey) scaled by U(1 - s, 1 + s); with probability ``channel_shuffle`` its RGB
    channels are permuted (one of the 5 non-identity orders: a hue change that keeps the shading), and
    with probability ``grayscale`` it is replaced by its grey (kept as 3 channels). Use it where an
    object's colour is not part of what is learned: instances of a category painted at random.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        generator: CPU generator for the random draws; None = the global RNG.

    Returns:
        ``(B, 3, H, W)`` in [0, 1], on the device of ``images``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"photometric_batch expects (B, 3, H, W) images, got {tuple(images.shape)}")
    B, dev, dt = images.shape[0], images.device, images.dtype

    def factor(s: float) -> torch.Tensor:
        return (1 + (torch.rand(B, generator=generator) * 2 - 1) * s).to(dev, dt).view(B, 1, 1, 1)

    x = images
    if brightness > 0:
        x = x * factor(brightness)
    if contrast > 0:
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * factor(contrast) + m
    if saturation > 0:
        grey = x.mean(1, keepdim=True)
        x = (x - grey) * factor(saturation) + grey
    if channel_shuffle > 0:
        orders = torch.tensor([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
        pick = orders[torch.randint(0, 5, (B,), generator=generator)]
        apply = torch.rand(B, generator=generator) < channel_shuffle
        perm = torch.where(apply[:, None], pick, torch.arange(3).expand(B, 3)).to(dev)
        x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    if grayscale > 0:
        apply = (torch.rand(B, generator=generator) < grayscale).to(dev).view(B, 1, 1, 1)
        x = torch.where(apply, x.mean(1, keepdim=True).expand_as(x), x)
    return x.clamp(0, 1)


class ResizePad:
    """Resize so the longer side is ``size`` and pad (bottom/right) to ``size x size``."""

    def __init__(self, size: int, fill: float = 1.0):
        self.size, self.fill = int(size), float(fill)

    def __call__(self, item: Item) -> Item:
        img = item["image"]
        H, W = img.shape[-2:]
        k = self.size / max(H, W)
        h, w = max(1, round(H * k)), max(1, round(W * k))
        out = torch.full((img.shape[0], self.size, self.size), self.fill, dtype=img.dtype)
        out[:, :h, :w] = F.interpolate(img[None], size=(h, w), mode="bilinear", align_corners=False,
                                       antialias=k < 1)[0]
        item["image"] = out
        for key in ("mask", "amodal_mask"):
            if key in item and isinstance(item[key], torch.Tensor):
                m = torch.zeros((1, self.size, self.size), dtype=item[key].dtype)
                m[:, :h, :w] = (F.interpolate(item[key][None].float(), size=(h, w), mode="bilinear",
                                              align_corners=False)[0] >= 0.5).to(m.dtype)
                item[key] = m
        sx, sy = w / W, h / H
        if "keypoints_2d" in item:
            item["keypoints_2d"] = item["keypoints_2d"] * torch.tensor([sx, sy], dtype=item["keypoints_2d"].dtype)
        if "bbox" in item:
            item["bbox"] = item["bbox"] * torch.tensor([sx, sy, sx, sy], dtype=item["bbox"].dtype)
        if "principal" in item:
            item["principal"] = item["principal"] * torch.tensor([sx, sy], dtype=item["principal"].dtype)
        if "focal" in item:
            item["focal"] = item["focal"] * sx
        return item


def _swap_index(names: Sequence[str], pairs: Sequence[Sequence[str]]) -> List[int]:
    perm = list(range(len(names)))
    pos = {n: i for i, n in enumerate(names)}
    for a, b in pairs:
        if a in pos and b in pos:
            perm[pos[a]], perm[pos[b]] = pos[b], pos[a]
    return perm


class RandomHorizontalFlip:
    """Mirror the image with probability ``p`` (see the module docstring).

    ``flip_perm``: ``{category_index: permutation}`` of keypoint slots (from the dataset's
    ``flip_pairs``); a dataset's :meth:`flip_transform` builds it.
    """

    def __init__(self, p: float = 0.5, flip_perm: Optional[Dict[int, List[int]]] = None,
                 generator: Optional[torch.Generator] = None):
        self.p = p
        self.flip_perm = flip_perm or {}
        self.g = generator

    def __call__(self, item: Item) -> Item:
        if float(torch.rand((), generator=self.g)) >= self.p:
            return item
        img = item["image"]
        W = img.shape[-1]
        item["image"] = img.flip(-1)
        for key in ("mask", "amodal_mask"):
            if key in item and isinstance(item[key], torch.Tensor):
                item[key] = item[key].flip(-1)
        if "keypoints_2d" in item:
            kp = item["keypoints_2d"].clone()
            kp[:, 0] = W - kp[:, 0]
            vis = item["keypoints_visible"]
            perm = self.flip_perm.get(int(item.get("category", -1)))
            if perm is not None:
                idx = torch.as_tensor(perm + list(range(len(perm), kp.shape[0])))
                kp, vis = kp[idx], vis[idx]
            item["keypoints_2d"], item["keypoints_visible"] = kp, vis
        if "bbox" in item:
            b = item["bbox"].clone()
            item["bbox"] = torch.stack([W - b[2], b[1], W - b[0], b[3]])
        if "principal" in item:
            pr = item["principal"].clone()
            pr[0] = W - pr[0]
            item["principal"] = pr
        if "azimuth" in item:
            item["azimuth"] = -item["azimuth"]
            item["theta"] = -item["theta"]
            if "R" in item:
                from ..geometry.pose import pose_to_rt

                R, T = pose_to_rt(item["azimuth"].double(), item["elevation"].double(), item["theta"].double(),
                                  item["distance"].double())
                item["R"], item["T"] = R[0].to(item["R"].dtype), T[0].to(item["T"].dtype)
        item["flipped"] = True
        return item


class PerView:
    """Apply an image-only transform to every view of a multi-view item (``images (V, 3, H, W)``)."""

    def __init__(self, transform: Callable[[Item], Item], key: str = "images"):
        self.t, self.key = transform, key

    def __call__(self, item: Item) -> Item:
        item[self.key] = torch.stack([self.t({"image": v})["image"] for v in item[self.key]])
        return item
