"""Classification without rendering (paper eq 7).

    S_y = sum_{i in F} max( max_{k in C_y} f_i . C_k ,  max_n f_i . b_n ),     y_hat = argmax_y S_y

Every pixel votes for the best vertex of each class unless the background explains it better;
geometry is ignored, so the whole thing is matrix products of the feature map against the vertex
and background banks (chunked over classes to bound memory).
"""
from __future__ import annotations

import torch

from ...core.errors import ShapeError, check_shape


def pixel_vertex_max(feats: torch.Tensor, vertex: torch.Tensor, valid: torch.Tensor,
                     chunk: int = 16) -> torch.Tensor:
    """``max_{k in C_y} f_i . C_k`` for every pixel and class.

    Args:
        feats: ``(B, P, D)`` pixel features.
        vertex: ``(Y, K, D)`` vertex bank, ``valid (Y, K)`` real slots.
        chunk: classes per matrix product.

    Returns:
        ``(B, P, Y)``.
    """
    Bsz, P, D = feats.shape
    Y, K, _ = vertex.shape
    out = feats.new_empty(Bsz, P, Y)
    flat = feats.reshape(Bsz * P, D)
    for s in range(0, Y, chunk):
        e = min(Y, s + chunk)
        sim = (flat @ vertex[s:e].reshape(-1, D).T).view(Bsz * P, e - s, K)
        sim = sim.masked_fill(~valid[s:e][None], float("-inf"))
        out[:, :, s:e] = sim.amax(-1).view(Bsz, P, e - s)
    return out


def class_scores(feature_map: torch.Tensor, vertex: torch.Tensor, valid: torch.Tensor,
                 background: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None,
                 chunk: int = 16) -> torch.Tensor:
    """Eq 7 scores ``S (B, Y)``.

    Args:
        feature_map: ``(B, D, H, W)`` unit features.
        vertex: ``(Y, K, D)`` vertex bank; ``valid (Y, K)`` real slots.
        background: ``(N_b, D)`` background bank, or None to drop the background term.
        pixel_mask: optional ``(B, 1, H, W)`` (bool or {0,1}) restricting the sum (e.g. NOVUM's
            oracle ground-truth box crop); default every pixel.
        chunk: classes per matrix product.
    """
    if feature_map.ndim != 4:
        raise ShapeError(f"feature_map: expected shape (B, D, H, W), got {tuple(feature_map.shape)}")
    Bsz, D, H, W = feature_map.shape
    check_shape("vertex", vertex, (None, None, D))
    check_shape("valid", valid, vertex.shape[:2])
    feats = feature_map.flatten(2).transpose(1, 2)                                # (B, P, D)
    vmax = pixel_vertex_max(feats, vertex, valid, chunk)                          # (B, P, Y)
    if background is not None:
        check_shape("background", background, (None, D))
        bmax = (feats @ background.T).amax(-1, keepdim=True)                      # (B, P, 1)
        vmax = torch.maximum(vmax, bmax)
    if pixel_mask is not None:
        check_shape("pixel_mask", pixel_mask, (Bsz, 1, H, W))
        vmax = vmax * pixel_mask.flatten(1).to(vmax)[..., None]
    return vmax.sum(1)
