"""Geometric augmentation (affine / random-resized crop / flip) and the query colour pipeline.

Every geometric augmentation is one batched ``grid_sample``: a per-sample affine sampling grid
that combines a random-resized crop (area fraction ``scale``, aspect ratio ``ratio``), a
translation and a horizontal flip, and resamples to the network's input size in the same step.
The query image and its mask share the grid (the official code shares a random seed), the renders
get their own per-view grids. Coordinates are ``grid_sample``'s normalised [-1, 1] with
``align_corners=False``.

Query pipeline of one training step (:func:`augment_queries`)::

    geometric (crop + translate + flip, shared by image and mask) -> colour (one of
    "transfer" | "hsv" | "none") -> network input

The colour step runs after the crop so that the colour source statistics are those of what the
network sees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError, check_shape
from .colour import ColourSpace, StatsRegion, batch_colour_transfer, hsv_jitter

ColourAug = Literal["transfer", "hsv", "none"]


def random_affine_theta(n: int, scale: tuple[float, float] = (1.0, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        translate: float = 0.0, flip_p: float = 0.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``(n, 2, 3)`` affine matrices for :func:`torch.nn.functional.affine_grid`.

    The crop covers an area fraction ``U(scale)`` of the image with aspect ratio (w/h) log-uniform
    in ``ratio`` (a side longer than the image is cut to it, the other keeps the area), placed uniformly inside the image, then shifted by
    up to ``translate`` of the image size in x and y (``RandomAffine(translate=...)``), then
    mirrored left-right with probability ``flip_p``.
    """
    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    area = u(*scale)
    logr = u(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(logr)
    w, h = torch.sqrt(area * r), torch.sqrt(area / r)
    # a side longer than the image is cut to the image and the other side keeps the area
    w, h = torch.where(w > 1, torch.ones_like(w), w), torch.where(w > 1, area, h)
    w, h = torch.where(h > 1, area, w), torch.where(h > 1, torch.ones_like(h), h)
    cx = (1 - w) * u(-1.0, 1.0) + 2 * translate * u(-1.0, 1.0)
    cy = (1 - h) * u(-1.0, 1.0) + 2 * translate * u(-1.0, 1.0)
    flip = torch.where(torch.rand(n, generator=generator) < flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], padding_mode: str = "zeros",
         mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """Resample ``(N, C, H, W)`` with affine ``theta (N, 2, 3)`` (axis-aligned: scale + shift, as
    :func:`random_affine_theta` makes) to ``(N, C, *size)``.

    ``antialias``: where the crops shrink the image (more than one source pixel per output pixel),
    the source is first resized with an anti-aliased filter to the resolution at which the least
    shrunk crop of the batch maps one to one (the others shrink by at most the batch's spread of
    crop sizes), as torchvision's ``RandomResizedCrop`` crops and then resizes with anti-aliasing.
    Bilinear ``grid_sample`` alone reads 2 x 2 pixels per output pixel and aliases thin structures:
    a 64 px render cropped to 32 px would then differ from the anti-aliased :func:`resize` that
    evaluation uses.
    """
    if antialias:
        th = theta.detach().abs()
        shrink = torch.minimum(th[:, 0, 0] * x.shape[-1] / size[1], th[:, 1, 1] * x.shape[-2] / size[0])
        f = float(shrink.min()) if shrink.numel() else 1.0
        if f > 1.0 + 1e-6:
            hw = (max(size[0], round(x.shape[-2] / f)), max(size[1], round(x.shape[-1] / f)))
            x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    grid = F.affine_grid(theta.to(x), (x.shape[0], x.shape[1], *size), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased resize of ``(..., C, H, W)`` to ``(..., C, size, size)`` (no-op when equal)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    return y.reshape(*lead, *y.shape[-3:])


@dataclass
class AugmentSettings:
    """Resolved augmentation settings (built from :class:`~.config.AugmentConfig`)."""

    colour: ColourAug = "transfer"
    colour_space: ColourSpace = "lab_reinhard"
    stats_region: StatsRegion = "image"
    transfer_p: float = 1.0
    allow_self: bool = True
    hsv_p: float = 0.5
    hsv_hue: float = 0.1
    hsv_saturation: float = 0.4
    hsv_value: float = 0.4
    geometric: bool = True
    query_scale: tuple[float, float] = (0.85, 0.95)
    query_translate: float = 0.05
    render_scale: tuple[float, float] = (0.65, 0.9)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5


def augment_queries(images: torch.Tensor, masks: torch.Tensor, size: int, aug: AugmentSettings,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-time query augmentation.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1]; masks: ``(B, 1, H, W)`` in [0, 1].
        size: network input side.

    Returns:
        ``(images (B, 3, size, size), masks (B, 1, size, size))``.
    """
    check_shape("images", images, (None, 3, None, None))
    check_shape("masks", masks, (images.shape[0], 1, images.shape[2], images.shape[3]))
    B = images.shape[0]
    if aug.geometric:
        theta = random_affine_theta(B, aug.query_scale, aug.crop_ratio, translate=aug.query_translate, flip_p=aug.flip_p,
                                    generator=generator)
        images = warp(images, theta, (size, size), padding_mode="zeros")
        masks = warp(masks, theta, (size, size), padding_mode="zeros")
    else:
        images, masks = resize(images, size), resize(masks, size)
    if aug.colour == "transfer":
        images, _ = batch_colour_transfer(images, masks, aug.colour_space, aug.stats_region, aug.transfer_p,
                                          aug.allow_self, generator)
    elif aug.colour == "hsv":
        images = hsv_jitter(images, aug.hsv_hue, aug.hsv_saturation, aug.hsv_value, aug.hsv_p, generator)
    elif aug.colour != "none":
        raise ConfigError(f"augment.colour must be transfer, hsv or none, got '{aug.colour}'")
    return images.clamp(0, 1), masks.clamp(0, 1)


def augment_renders(renders: torch.Tensor, size: int, aug: AugmentSettings,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Training-time render augmentation: an independent crop + flip per view.

    Args:
        renders: ``(S, V, 1, H, W)`` grey renders in [0, 1] on a white background.

    Returns:
        ``(S, V, 1, size, size)``.
    """
    check_shape("renders", renders, (None, None, 1, None, None))
    S, V = renders.shape[:2]
    flat = renders.reshape(S * V, *renders.shape[2:])
    if aug.geometric:
        theta = random_affine_theta(S * V, aug.render_scale, aug.crop_ratio, flip_p=aug.flip_p, generator=generator)
        flat = warp(flat, theta, (size, size), padding_mode="border")
    else:
        flat = resize(flat, size)
    return flat.reshape(S, V, 1, size, size)
