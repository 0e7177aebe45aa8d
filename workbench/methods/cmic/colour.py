"""Colour spaces and colour-transfer / HSV augmentation of CMIC's query images.

CMIC's key augmentation (paper Sec. 3.3) re-colours every query image of a batch with the colour
statistics of another query of the same batch, so that the query encoder cannot rely on colour and
texture (the renders it is matched against are grey). Per channel of a decorrelated colour space::

    x' = (sigma_s / sigma_t) (x - mu_t) + mu_s        s: colour source, t: the query (geometry)

Three colour spaces (``space``):

* ``"lab_reinhard"`` (default, the paper): Reinhard et al. 2001's l-alpha-beta: RGB -> LMS (a 3x3
  matrix), log10, then a fixed orthogonal-ish decorrelation. Values are clamped below at
  ``REINHARD_EPS`` (about one grey level) before the log, so pixels darker than that come back as
  that level; everything else inverts to float precision. The inverse matrices are the exact
  inverses of the forward ones (the paper's printed LMS -> RGB matrix is a rounded, slightly
  inconsistent inverse: its third row differs by up to 0.017).
* ``"cielab"``: sRGB -> linear -> XYZ (D65) -> CIE L*a*b* on [0, 1] inputs (what the official code
  meant to do; the recommended default of the reference notes when Lab is wanted).
* ``"cielab_x255"``: the official code's quirk: pixels are multiplied by 255 *before* an rgb->Lab that
  expects [0, 1], so the "Lab" it works in is distorted (still a bijection); the result is clipped to
  [0, 255] and divided by 255.

Statistics are per image and per channel, mean and unbiased std over the whole image (official) or
over the object mask (``stats_region="mask"``); the affine map is applied to every pixel. All
functions are batched: images ``(B, 3, H, W)`` float in [0, 1].
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from ...core.errors import ConfigError, check_shape

ColourSpace = Literal["lab_reinhard", "cielab", "cielab_x255"]
StatsRegion = Literal["image", "mask"]
COLOUR_SPACES = ("lab_reinhard", "cielab", "cielab_x255")

REINHARD_EPS = 1.0 / 255.0

# Reinhard, Ashikhmin, Gooch, Shirley (2001), "Color transfer between images", eqs 1-6.
_RGB2LMS = torch.tensor([[0.3811, 0.5783, 0.0402],
                         [0.1967, 0.7244, 0.0782],
                         [0.0241, 0.1288, 0.8444]], dtype=torch.float64)
_LMS2LAB = (torch.diag(torch.tensor([1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)], dtype=torch.float64))
            @ torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]], dtype=torch.float64))
_LMS2RGB = torch.linalg.inv(_RGB2LMS)
_LAB2LMS = torch.linalg.inv(_LMS2LAB)

# sRGB (D65) <-> XYZ, as scikit-image / the official port.
_RGB2XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def _mat(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to ``(B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", m.to(device=x.device, dtype=x.dtype), x)


# ------------------------------------------------------------------ Reinhard l-alpha-beta
def rgb_to_lalphabeta(rgb: torch.Tensor, eps: float = REINHARD_EPS) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> Reinhard's l-alpha-beta (log10 LMS, decorrelated)."""
    lms = _mat(_RGB2LMS, rgb).clamp_min(eps)
    return _mat(_LMS2LAB, torch.log10(lms))


def lalphabeta_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_lalphabeta` (no clipping)."""
    return _mat(_LMS2RGB, torch.pow(10.0, _mat(_LAB2LMS, lab)))


# ------------------------------------------------------------------ CIE L*a*b*
def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_cielab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(B, 3, H, W)`` -> CIE L*a*b* (D65; L in [0, 100] for inputs in [0, 1])."""
    xyz = _mat(_RGB2XYZ, _srgb_to_linear(rgb)) / _WHITE_D65.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def cielab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_cielab` (no clipping)."""
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f > 0.2068966, f.clamp_min(0.2068966) ** 3, (f - 16 / 116) / 7.787)
    return _linear_to_srgb(_mat(_XYZ2RGB, xyz * _WHITE_D65.to(lab).view(1, 3, 1, 1)))


# ------------------------------------------------------------------ dispatch
def to_space(rgb: torch.Tensor, space: ColourSpace) -> torch.Tensor:
    """RGB in [0, 1] -> the colour space ``space`` (see the module docstring)."""
    if space == "lab_reinhard":
        return rgb_to_lalphabeta(rgb)
    if space == "cielab":
        return rgb_to_cielab(rgb)
    if space == "cielab_x255":
        return rgb_to_cielab(rgb * 255.0)
    raise ConfigError(f"unknown colour space '{space}' (valid: {', '.join(COLOUR_SPACES)})")


def from_space(x: torch.Tensor, space: ColourSpace) -> torch.Tensor:
    """Inverse of :func:`to_space` (RGB on the [0, 1] scale, not clipped)."""
    if space == "lab_reinhard":
        return lalphabeta_to_rgb(x)
    if space == "cielab":
        return cielab_to_rgb(x)
    if space == "cielab_x255":
        return cielab_to_rgb(x) / 255.0
    raise ConfigError(f"unknown colour space '{space}' (valid: {', '.join(COLOUR_SPACES)})")


def channel_stats(x: torch.Tensor, mask: torch.Tensor | None = None, min_pixels: int = 16
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel mean and unbiased std of ``(B, C, H, W)``.

    With ``mask`` ``(B, 1, H, W)`` (> 0.5 = inside) the statistics are taken over the masked pixels;
    images whose mask holds fewer than ``min_pixels`` pixels fall back to the whole image.

    Returns:
        ``mean (B, C, 1, 1)`` and ``std (B, C, 1, 1)``.
    """
    B, C, H, W = x.shape
    if mask is None:
        w = torch.ones(B, 1, H, W, dtype=x.dtype, device=x.device)
    else:
        check_shape("mask", mask, (B, 1, H, W))
        w = (mask > 0.5).to(x.dtype)
        small = w.sum((1, 2, 3)) < min_pixels
        w = torch.where(small.view(B, 1, 1, 1), torch.ones_like(w), w)
    n = w.sum((2, 3), keepdim=True)
    mean = (x * w).sum((2, 3), keepdim=True) / n
    var = ((x - mean) ** 2 * w).sum((2, 3), keepdim=True) / (n - 1).clamp_min(1)
    return mean, var.sqrt()


def colour_transfer(target: torch.Tensor, source: torch.Tensor, space: ColourSpace = "lab_reinhard",
                    target_mask: torch.Tensor | None = None, source_mask: torch.Tensor | None = None,
                    clip: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Give each ``target`` image the per-channel colour statistics of the matching ``source`` image.

    Args:
        target: ``(B, 3, H, W)`` RGB in [0, 1], the images whose content is kept.
        source: ``(B, 3, H, W)`` RGB in [0, 1], the colour sources (another image's H, W is fine).
        space: colour space of the statistics (``lab_reinhard``, ``cielab``, ``cielab_x255``).
        target_mask, source_mask: optional ``(B, 1, H, W)`` masks; given, the statistics are
            computed over the masked region only (the map is still applied to every pixel).
        clip: clip the result to [0, 1] (without it, the result exactly matches the source
            statistics in ``space``).
        eps: floor of the target std (a flat channel is shifted, not blown up).

    Returns:
        ``(B, 3, H, W)`` re-coloured ``target``.
    """
    check_shape("target", target, (None, 3, None, None))
    check_shape("source", source, (target.shape[0], 3, None, None))
    dtype = target.dtype
    t = to_space(target.double(), space)
    s = to_space(source.double(), space)
    mu_t, sd_t = channel_stats(t, None if target_mask is None else target_mask.double())
    mu_s, sd_s = channel_stats(s, None if source_mask is None else source_mask.double())
    out = from_space((t - mu_t) * (sd_s / sd_t.clamp_min(eps)) + mu_s, space)
    if clip:
        out = out.clamp(0.0, 1.0)
    return out.to(dtype)


def random_partner(n: int, generator: torch.Generator | None = None, allow_self: bool = True) -> torch.Tensor:
    """Colour source index of each of ``n`` batch images.

    ``allow_self=True`` is the official code's ``randperm`` (an image may be its own source);
    ``False`` draws a random derangement (every image gets another image's colours; needs n >= 2).
    """
    if allow_self or n < 2:
        return torch.randperm(n, generator=generator)
    # random cyclic shift of a random permutation: a derangement with no fixed point
    perm = torch.randperm(n, generator=generator)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    out = torch.empty(n, dtype=torch.long)
    out[perm] = perm.roll(shift)
    return out


def batch_colour_transfer(images: torch.Tensor, masks: torch.Tensor | None = None,
                          space: ColourSpace = "lab_reinhard", stats_region: StatsRegion = "image",
                          p: float = 1.0, allow_self: bool = True,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CMIC's augmentation: re-colour each query with the colours of another query of the batch.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1]; masks: ``(B, 1, H, W)`` (needed for ``stats_region="mask"``).
        p: probability per image of being re-coloured (1 in the paper/code).

    Returns:
        ``(images (B, 3, H, W), source (B,))`` with ``source[i]`` the colour source of image i
        (``i`` itself where the image was left unchanged).
    """
    B = images.shape[0]
    if stats_region not in ("image", "mask"):
        raise ConfigError(f"stats_region must be 'image' or 'mask', got '{stats_region}'")
    if stats_region == "mask" and masks is None:
        raise ConfigError("stats_region='mask' needs the query masks")
    src = random_partner(B, generator, allow_self)
    apply = torch.rand(B, generator=generator) < p
    src = torch.where(apply, src, torch.arange(B))
    src = src.to(images.device)
    m = masks if stats_region == "mask" else None
    out = colour_transfer(images, images[src], space,
                          target_mask=m, source_mask=None if m is None else m[src])
    keep = (src == torch.arange(B, device=images.device)).view(B, 1, 1, 1)
    return torch.where(keep, images, out), src


# ------------------------------------------------------------------ HSV jitter (ablation)
def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> HSV with hue in [0, 1) (turns), s, v in [0, 1]."""
    r, g, b = rgb.unbind(1)
    maxc, argmax = rgb.max(1)
    minc = rgb.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.stack([((g - b) / safe) % 6, (b - r) / safe + 2, (r - g) / safe + 4], 1)
    h = h.gather(1, argmax.unsqueeze(1)).squeeze(1) / 6.0
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([h % 1.0, s, maxc], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = hsv.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)  # r, g, b
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * (torch.minimum(k, 4 - k).clamp(0, 1))


def rotate_hue(images: torch.Tensor, turns: float) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] with every hue turned by ``turns`` (HSV; the evaluation's hue-rotation test)."""
    hsv = rgb_to_hsv(images)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + turns, 1.0)
    return hsv_to_rgb(hsv)


def hsv_jitter(images: torch.Tensor, hue: float = 0.1, saturation: float = 0.4, value: float = 0.4,
               p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random HSV jitter (the paper's "HSV" ablation, applied with probability ``p`` per image).

    Hue is shifted by U(-hue, hue) turns, saturation and value are scaled by U(1 - x, 1 + x).

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].

    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    B = images.shape[0]
    dev = images.device

    def u(lo, hi):
        return (lo + (hi - lo) * torch.rand(B, generator=generator)).to(dev).view(B, 1, 1)

    hsv = rgb_to_hsv(images)
    h = (hsv[:, 0] + u(-hue, hue)) % 1.0
    s = (hsv[:, 1] * u(1 - saturation, 1 + saturation)).clamp(0, 1)
    v = (hsv[:, 2] * u(1 - value, 1 + value)).clamp(0, 1)
    out = hsv_to_rgb(torch.stack([h, s, v], 1)).clamp(0, 1)
    apply = (torch.rand(B, generator=generator) < p).to(dev).view(B, 1, 1, 1)
    return torch.where(apply, out, images)
