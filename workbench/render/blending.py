"""Blending of per-slot colours/features into images (pytorch3d semantics, channels-last).

All functions take ``colors (N, H, W, K, C)`` and :class:`Fragments` and return ``(N, H, W, C + 1)``
(colour channels then alpha). Slots with ``pix_to_face < 0`` never contribute. When the fragments
carry the torch backend's packed view, the ``*_packed`` implementations run on the occupied slots
only (same values and gradients); otherwise layers beyond the deepest occupied slot of the batch
are trimmed before the dense computation.

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
from .fragments import Fragments, packed_of
from . import cpu_kernels as _cpu
from .rasterize_torch import _group_starts

__all__ = ["BlendParams", "hard_rgb_blend", "sigmoid_alpha_blend", "softmax_rgb_blend", "layered_rgb_blend",
           "trim_fragments", "hard_rgb_blend_packed", "sigmoid_alpha_blend_packed", "silhouette_alpha_packed",
           "softmax_rgb_blend_packed", "layered_rgb_blend_packed", "layered_active_slots"]


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


def _packed_colors(colors: torch.Tensor, fragments: Fragments, idx=None):
    """(packed fragments, per-slot colours) when ``fragments`` carries a consistent packed view."""
    p = packed_of(fragments)
    if p is None:
        return None, None
    slot = p.slot if idx is None else p.slot.index_select(0, idx)
    return p, colors.reshape(-1, colors.shape[-1]).index_select(0, slot)


def _check(colors: torch.Tensor, fragments: Fragments) -> None:
    if colors.dim() != 5 or colors.shape[:4] != fragments.pix_to_face.shape:
        raise ShapeError(f"colors: expected {tuple(fragments.pix_to_face.shape)} + (C,), got {tuple(colors.shape)}")


def hard_rgb_blend(colors: torch.Tensor, fragments: Fragments, blend_params: BlendParams = BlendParams()
                   ) -> torch.Tensor:
    """Nearest-face colour or background -> ``(N, H, W, C + 1)``; alpha = 1 where covered."""
    _check(colors, fragments)
    p, cp = _packed_colors(colors, fragments)
    if p is not None:
        return hard_rgb_blend_packed(p, cp, blend_params)
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
    p = packed_of(fragments)
    if p is not None:
        return torch.cat([rgb, silhouette_alpha_packed(p, blend_params)[..., None]], -1)
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
    p, cp = _packed_colors(colors, fragments)
    if p is not None:
        return softmax_rgb_blend_packed(p, cp, blend_params, znear=znear, zfar=zfar)
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
    p = packed_of(fragments)
    if p is not None:
        idx = layered_active_slots(p)
        _, cp = _packed_colors(colors, fragments, idx)
        return layered_rgb_blend_packed(p, cp, idx, blend_params)
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


# ---------------------------------------------------------------------------------------------
# Packed (sparse) implementations: identical results, cost proportional to the occupied slots.
# ``colors`` are per occupied slot ``(M, C)`` (or for the slots ``idx`` only where documented).
# ---------------------------------------------------------------------------------------------

def _image_out(rgb_flat: torch.Tensor, alpha_flat: torch.Tensor, N: int, H: int, W: int) -> torch.Tensor:
    return torch.cat([rgb_flat, alpha_flat[:, None]], -1).view(N, H, W, -1)


def hard_rgb_blend_packed(packed, colors: torch.Tensor, blend_params: BlendParams = BlendParams()) -> torch.Tensor:
    """:func:`hard_rgb_blend` from packed fragments and per-slot colours ``(M, C)``."""
    N, H, W = packed.N, packed.H, packed.W
    C = colors.shape[-1]
    first = torch.nonzero(packed.rank == 0).flatten()
    pix = packed.pix.index_select(0, first)
    bg = _background(blend_params, C, colors)
    rgb = bg.reshape(1, C).expand(N * H * W, C).clone().index_copy(0, pix, colors.index_select(0, first))
    alpha = colors.new_zeros(N * H * W).index_fill_(0, pix, 1.0)
    return _image_out(rgb, alpha, N, H, W)


def _log_one_minus_sigmoid(d: torch.Tensor, sigma: float) -> torch.Tensor:
    """``log(1 - sigmoid(-d / sigma)) = -softplus(-d / sigma)``, stable for any d."""
    return -torch.nn.functional.softplus(-d / sigma)


def silhouette_alpha_packed(packed, blend_params: BlendParams = BlendParams()) -> torch.Tensor:
    """Soft silhouette alpha ``(N, H, W)`` of :func:`sigmoid_alpha_blend` from packed fragments."""
    N, H, W = packed.N, packed.H, packed.W
    d = packed.dists
    if blend_params.sigma <= 0:
        hit = (d <= 0).to(d.dtype)
        cover = d.new_zeros(N * H * W).index_add_(0, packed.pix, hit)
        return (cover > 0).to(d.dtype).view(N, H, W)
    L = _log_one_minus_sigmoid(d.double(), blend_params.sigma)
    tot = L.new_zeros(N * H * W).index_add(0, packed.pix, L)
    return (1.0 - torch.exp(tot)).to(d.dtype).view(N, H, W)


def sigmoid_alpha_blend_packed(packed, colors: torch.Tensor, blend_params: BlendParams = BlendParams()
                               ) -> torch.Tensor:
    """:func:`sigmoid_alpha_blend` from packed fragments (rgb = colour of slot 0, 0 where empty)."""
    N, H, W = packed.N, packed.H, packed.W
    C = colors.shape[-1]
    first = torch.nonzero(packed.rank == 0).flatten()
    rgb = colors.new_zeros(N * H * W, C).index_copy(0, packed.pix.index_select(0, first), colors.index_select(0, first))
    alpha = silhouette_alpha_packed(packed, blend_params).reshape(-1)
    return _image_out(rgb, alpha, N, H, W)


def softmax_rgb_blend_packed(packed, colors: torch.Tensor, blend_params: BlendParams = BlendParams(),
                             znear: Union[float, torch.Tensor] = 1.0, zfar: Union[float, torch.Tensor] = 100.0
                             ) -> torch.Tensor:
    """:func:`softmax_rgb_blend` from packed fragments and per-slot colours ``(M, C)``."""
    N, H, W = packed.N, packed.H, packed.W
    C = colors.shape[-1]
    eps = 1e-10
    _, z, d = packed.terms()
    pix = packed.pix
    n_img = torch.div(pix, H * W, rounding_mode="floor")
    zn = torch.as_tensor(znear, dtype=z.dtype, device=z.device).reshape(-1)
    zf = torch.as_tensor(zfar, dtype=z.dtype, device=z.device).reshape(-1)
    zn = zn.index_select(0, n_img) if zn.numel() > 1 else zn
    zf = zf.index_select(0, n_img) if zf.numel() > 1 else zf
    prob = torch.sigmoid(-d / blend_params.sigma) if blend_params.sigma > 0 else (d <= 0).to(d.dtype)
    z_inv = (zf - z) / (zf - zn)
    zmax = z.new_full((N * H * W,), eps).scatter_reduce(0, pix, z_inv, reduce="amax", include_self=True)
    zmax_s = zmax.index_select(0, pix)
    w = prob * torch.exp((z_inv - zmax_s) / blend_params.gamma)
    delta = torch.exp((eps - zmax) / blend_params.gamma).clamp(min=eps)
    denom = z.new_zeros(N * H * W).index_add(0, pix, w) + delta
    bg = _background(blend_params, C, colors)
    num = colors.new_zeros(N * H * W, C).index_add(0, pix, w[:, None] * colors) + delta[:, None] * bg
    if blend_params.sigma > 0:
        L = _log_one_minus_sigmoid(d.double(), blend_params.sigma)
        alpha = 1.0 - torch.exp(L.new_zeros(N * H * W).index_add(0, pix, L)).to(d.dtype)
    else:
        alpha = (d.new_zeros(N * H * W).index_add(0, pix, prob) > 0).to(d.dtype)
    return _image_out(num / denom[:, None], alpha, N, H, W)


def layered_active_slots(packed) -> torch.Tensor:
    """Indices of the slots that can contribute to layered compositing: per pixel, the slots up to
    and including the nearest one whose pixel centre is inside its face (occupancy 1)."""
    N, H, W, K = packed.N, packed.H, packed.W, packed.K
    inside_rank = torch.where(packed.inside, packed.rank, torch.full_like(packed.rank, K))
    first = torch.full((N * H * W,), K, dtype=torch.int64, device=packed.rank.device)
    first.scatter_reduce_(0, packed.pix, inside_rank, reduce="amin")
    return torch.nonzero(packed.rank <= first.index_select(0, packed.pix)).flatten()


def layered_rgb_blend_packed(packed, colors: torch.Tensor, idx: torch.Tensor,
                             blend_params: BlendParams = BlendParams()) -> torch.Tensor:
    """:func:`layered_rgb_blend` from packed fragments.

    ``idx`` are the slots from :func:`layered_active_slots` (sorted by pixel, then rank) and
    ``colors (len(idx), C)`` their colours. Transmittance is a segmented exclusive cumulative sum of
    ``log(1 - o_k)`` in float64; the remaining slots have zero weight and are skipped exactly.
    """
    N, H, W = packed.N, packed.H, packed.W
    C = colors.shape[-1]
    _, _, d = packed.terms(idx)
    pix = packed.pix.index_select(0, idx)
    sigma = blend_params.sigma
    if _cpu.use_cpu_kernels(colors) and d.dtype == colors.dtype:  # compiled scan (same values, one pass)
        rgb, t_final = _cpu.LayeredBlendCPUFn.apply(pix, d, colors, float(sigma), N * H * W)
    else:
        rgb, t_final = _layered_scan(pix, d, colors, sigma, N * H * W)
    bg = _background(blend_params, C, colors)
    if bg.dim() > 1:  # a background image (N, H, W, C), e.g. UNICORN's generated backgrounds
        bg = bg.expand(N, H, W, C).reshape(N * H * W, C)
    return _image_out(rgb + t_final[:, None] * bg, 1.0 - t_final, N, H, W)


def _layered_scan(pix: torch.Tensor, d: torch.Tensor, colors: torch.Tensor, sigma: float, P: int):
    """Foreground ``rgb (P, C)`` and background transmittance ``(P,)`` of pixel-sorted slots (array ops)."""
    C = colors.shape[-1]
    dd = d.double()
    if sigma <= 0:
        occ = (dd <= 0).to(dd.dtype)
        L = torch.zeros_like(dd)  # non-opaque slots have occupancy 0
        opaque = occ > 0
    else:
        x = dd.clamp_min(0.0) / sigma
        occ = torch.exp(-x)
        opaque = x <= 0
        one_minus = -torch.expm1(-x)
        L = torch.where(opaque, torch.zeros_like(x), torch.log(torch.where(opaque, torch.ones_like(x), one_minus)))
    # exclusive segmented cumsum over each pixel's run of slots
    cs = torch.cumsum(L, 0) - L
    S = cs - cs.index_select(0, _group_starts(pix))
    trans = torch.exp(S)
    w = (occ * trans).to(colors.dtype)
    rgb = colors.new_zeros(P, C).index_add(0, pix, w[:, None] * colors)
    # background transmittance: 0 if the pixel has an opaque slot, else prod(1 - o_k)
    tot = L.new_zeros(P).index_add(0, pix, L)
    has_opaque = torch.zeros(P, dtype=torch.bool, device=pix.device)
    has_opaque[pix[opaque]] = True
    return rgb, torch.where(has_opaque, torch.zeros_like(tot), torch.exp(tot)).to(colors.dtype)
