"""Blending of per-slot colours/features into images (pytorch3d semantics, channels-last).

All functions take ``colors (N, H, W, K, C)`` and :class:`Fragments` and return ``(N, H, W, C + 1)``
(colour channels then alpha). Slots with ``pix_to_face < 0`` never contribute. Layers beyond the
deepest occupied slot of the batch are trimmed before blending (exact, and much cheaper for
large ``faces_per_pixel``).

* :func:`hard_rgb_blend`: colour of the nearest face, background elsewhere; alpha 1 where covered.
* :func:`sigmoid_alpha_blend` (soft silhouette): ``alpha = 1 - prod_k (1 - sigmoid(-d_k / sigma))``.
* :func:`softmax_rgb_blend` (SoftRas): depth-weighted softmax with a background term.
* :func:`layered_rgb_blend` (UNICORN): occupancy ``o_k = exp(min(0, -d_k / sigma))`` (1 inside),
  front-to-back compositing ``C = sum_k o_k prod_{j<k}(1 - o_j) c_k + prod_k(1 - o_k) bg``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import torch

from ..core.errors import ShapeError
from .fragments import Fragments

__all__ = ["BlendParams", "hard_rgb_blend", "sigmoid_alpha_blend", "softmax_rgb_blend", "layered_rgb_blend",
           "trim_fragments"]


@dataclass
class BlendParams:
    """``sigma`` (silhouette sharpness, squared-NDC units), ``gamma`` (depth softmax temperature),
    ``background_color`` (one value per channel, or a tensor broadcastable to ``(N, H, W, C)``)."""

    sigma: float = 1e-4
    gamma: float = 1e-4
    background_color: Union[Sequence[float], torch.Tensor] = (1.0, 1.0, 1.0)


def _background(bp: BlendParams, C: int, ref: torch.Tensor) -> torch.Tensor:
    bg = torch.as_tensor(bp.background_color, dtype=ref.dtype, device=ref.device)
    if bg.dim() <= 1:
        if bg.numel() == 1:
            bg = bg.reshape(1).expand(C)
        elif bg.numel() != C:
            if C != 3 and bg.numel() == 3:
                bg = torch.zeros(C, dtype=ref.dtype, device=ref.device)  # feature maps: zero background
            else:
                raise ShapeError(f"background_color has {bg.numel()} values but colours have {C} channels")
    return bg


def trim_fragments(colors: torch.Tensor, fragments: Fragments) -> Tuple[torch.Tensor, Fragments]:
    """Drop trailing slots that are empty at every pixel (slots are filled front to back)."""
    K = fragments.pix_to_face.shape[-1]
    if K <= 1:
        return colors, fragments
    used = int((fragments.pix_to_face >= 0).sum(-1).max()) if fragments.pix_to_face.numel() else 0
    used = max(used, 1)
    if used == K:
        return colors, fragments
    fr = Fragments(fragments.pix_to_face[..., :used], fragments.zbuf[..., :used],
                   fragments.bary_coords[..., :used, :], fragments.dists[..., :used])
    return colors[..., :used, :], fr


def _check(colors: torch.Tensor, fragments: Fragments) -> None:
    if colors.dim() != 5 or colors.shape[:4] != fragments.pix_to_face.shape:
        raise ShapeError(f"colors: expected {tuple(fragments.pix_to_face.shape)} + (C,), got {tuple(colors.shape)}")


def hard_rgb_blend(colors: torch.Tensor, fragments: Fragments, blend_params: BlendParams = BlendParams()
                   ) -> torch.Tensor:
    """Nearest-face colour or background -> ``(N, H, W, C + 1)``; alpha = 1 where covered."""
    _check(colors, fragments)
    C = colors.shape[-1]
    covered = (fragments.pix_to_face[..., 0] >= 0)[..., None]
    bg = _background(blend_params, C, colors)
    rgb = torch.where(covered, colors[..., 0, :], bg.expand_as(colors[..., 0, :]))
    return torch.cat([rgb, covered.to(colors.dtype)], -1)


def _prob(fragments: Fragments, sigma: float) -> torch.Tensor:
    mask = fragments.pix_to_face >= 0
    if sigma <= 0:
        return ((fragments.dists <= 0) & mask).to(fragments.dists.dtype)
    return torch.sigmoid(-fragments.dists / sigma) * mask


def sigmoid_alpha_blend(colors: torch.Tensor, fragments: Fragments, blend_params: BlendParams = BlendParams()
                        ) -> torch.Tensor:
    """Soft silhouette: colour of slot 0 and ``alpha = 1 - prod_k(1 - sigmoid(-d_k/sigma))``."""
    _check(colors, fragments)
    rgb = colors[..., 0, :]
    colors, fragments = trim_fragments(colors, fragments)
    prob = _prob(fragments, blend_params.sigma)
    alpha = 1.0 - torch.prod(1.0 - prob, dim=-1)
    return torch.cat([rgb, alpha[..., None]], -1)


def softmax_rgb_blend(colors: torch.Tensor, fragments: Fragments, blend_params: BlendParams = BlendParams(),
                      znear: Union[float, torch.Tensor] = 1.0, zfar: Union[float, torch.Tensor] = 100.0
                      ) -> torch.Tensor:
    """SoftRas blending (pytorch3d ``softmax_rgb_blend``) -> ``(N, H, W, C + 1)``.

    ``p_k = sigmoid(-d_k/sigma) mask_k``, ``z_k = (zfar - z)/(zfar - znear) mask_k``,
    ``w_k = p_k exp((z_k - max z)/gamma)``, background weight ``exp((1e-10 - max z)/gamma)`` (>= 1e-10),
    alpha ``1 - prod(1 - p_k)``.
    """
    _check(colors, fragments)
    C = colors.shape[-1]
    colors, fragments = trim_fragments(colors, fragments)
    eps = 1e-10
    mask = fragments.pix_to_face >= 0
    prob = _prob(fragments, blend_params.sigma)
    alpha = 1.0 - torch.prod(1.0 - prob, dim=-1)
    znear = torch.as_tensor(znear, dtype=colors.dtype, device=colors.device).reshape(-1, 1, 1, 1)
    zfar = torch.as_tensor(zfar, dtype=colors.dtype, device=colors.device).reshape(-1, 1, 1, 1)
    z_inv = (zfar - fragments.zbuf) / (zfar - znear) * mask
    z_inv_max = torch.max(z_inv, dim=-1).values[..., None].clamp(min=eps)
    weights = prob * torch.exp((z_inv - z_inv_max) / blend_params.gamma)
    delta = torch.exp((eps - z_inv_max) / blend_params.gamma).clamp(min=eps)
    denom = weights.sum(dim=-1)[..., None] + delta
    bg = _background(blend_params, C, colors)
    rgb = ((weights[..., None] * colors).sum(dim=-2) + delta * bg) / denom
    return torch.cat([rgb, alpha[..., None]], -1)


def layered_rgb_blend(colors: torch.Tensor, fragments: Fragments, blend_params: BlendParams = BlendParams()
                      ) -> torch.Tensor:
    """UNICORN layered compositing -> ``(N, H, W, C + 1)``.

    Occupancy ``o_k = exp(-max(d_k, 0) / sigma)`` (1 inside a face, decaying outside; ``sigma = 0``
    gives the hard ``d_k <= 0``), composited front to back over the background:
    ``C = sum_k o_k T_k c_k + T_K bg`` with transmittance ``T_k = prod_{j<k}(1 - o_j)``;
    alpha ``= 1 - prod_k (1 - o_k)``.
    """
    _check(colors, fragments)
    C = colors.shape[-1]
    colors, fragments = trim_fragments(colors, fragments)
    mask = fragments.pix_to_face >= 0
    sigma = blend_params.sigma
    if sigma <= 0:
        occ = ((fragments.dists <= 0) & mask).to(colors.dtype)
    else:
        occ = torch.exp(-fragments.dists.clamp_min(0.0) / sigma) * mask
    one_minus = 1.0 - occ
    trans = torch.cumprod(torch.cat([torch.ones_like(occ[..., :1]), one_minus], -1), dim=-1)  # (..., K+1)
    w = occ * trans[..., :-1]
    bg = _background(blend_params, C, colors)
    rgb = (w[..., None] * colors).sum(-2) + trans[..., -1:] * bg
    return torch.cat([rgb, 1.0 - trans[..., -1:]], -1)
