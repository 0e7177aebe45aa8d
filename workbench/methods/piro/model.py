"""PAN: the pose-invariant attention network of PiRO (Sarkar & Kak, CVPR 2024).

One shared CNN backbone embeds every view of an object; two linear heads map the backbone
feature to a *category* and an *object* embedding; one single-head self-attention block per
space mixes the (unordered) views of one object, and the mean of its outputs is the
multi-view (MV) embedding::

    f_k   = B(I_k)                                  (V, F)   backbone feature of view k
    c_k   = W_cat f_k + b,   o_k = W_obj f_k + b    (V, D)   single-view (SV) embeddings
    c_mv  = normalize(mean_k A_cat(c)_k)            (D,)     MV embeddings
    o_mv  = normalize(mean_k A_obj(o)_k)
    SV embeddings are L2-normalised after the attention has read the raw head outputs.

``dual=False`` gives PiRO-SE (a single space: the category and object embeddings are the same
tensor); ``attention=False`` replaces the attention by plain averaging (the MV-CNN / PIE
baselines). Inputs are images in [0, 1]; the ImageNet normalisation, when asked for, is done
inside the model.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.errors import ConfigError, ShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ViewSetAttention(nn.Module):
    """Single-head self-attention over the views of one object (no positional encoding).

    As the official PAN block: Q/K/V linear maps with bias (weights ``N(0, sqrt(2/(2d)))``),
    scaled dot-product attention over the views, an output linear map (xavier-normal), dropout,
    then post-LayerNorm of ``output + residual``; no feed-forward block. Without positional
    encoding the block is permutation-equivariant over views, so the mean of its outputs is
    permutation-invariant.

    Shapes: ``x (B, V, D) -> (B, V, D)``; ``return_attention`` also gives ``(B, V, V)``.
    """

    def __init__(self, dim: int, dropout: float = 0.25):
        super().__init__()
        self.dim = int(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        std = math.sqrt(2.0 / (dim + dim))
        for lin in (self.q, self.k, self.v):
            nn.init.normal_(lin.weight, mean=0.0, std=std)
        self.fc = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.fc.weight)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ShapeError(f"ViewSetAttention: expected (B, V, {self.dim}), got {tuple(x.shape)}")
        q, k, v = self.q(x), self.k(x), self.v(x)
        attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.dim), dim=-1)  # (B, V, V)
        out = self.norm(self.dropout(self.fc(attn @ v)) + x)
        return (out, attn) if return_attention else out


class _GlobalPool(nn.Module):
    """``(N, C, h, w) -> (N, C)`` average pooling, or flatten of a fixed ``s x s`` grid (VGG)."""

    def __init__(self, mode: str = "avg", grid: int = 7):
        super().__init__()
        if mode not in ("avg", "flatten"):
            raise ConfigError(f"model.pool: '{mode}' is not one of ['avg', 'flatten']")
        self.mode, self.grid = mode, int(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return x
        if x.ndim != 4:
            raise ShapeError(f"backbone output: expected (N, C) or (N, C, h, w), got {tuple(x.shape)}")
        if self.mode == "avg":
            return x.mean(dim=(2, 3))
        return torch.flatten(F.adaptive_avg_pool2d(x, self.grid), 1)


class PiroNet(nn.Module):
    """Pose-invariant attention network with a category and an object space.

    Args:
        backbone: a :class:`workbench.nn.Backbone` (its ``features`` map ``(N, C, h, w)`` is pooled
            here) or any module mapping ``(N, 3, H, W)`` to ``(N, C, h, w)`` or ``(N, C)``.
        feat_dim: channels ``C`` of the backbone output.
        cat_dim, obj_dim: embedding sizes (the paper: 2048 each). Ignored ``obj_dim`` when single.
        dual: two spaces (PiRO-DE) or one (PiRO-SE; the object embedding *is* the category one).
        attention: self-attention before the mean (PAN) or plain mean (MV-CNN/PIE baselines).
        dropout: dropout of the attention block (0.25 in the paper).
        pool: ``"avg"`` (global average) or ``"flatten"`` (VGG's 512x7x7 = 25088-d feature).
        input_norm: ``"imagenet"`` to normalise [0, 1] inputs for pretrained backbones, or ``"none"``.
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, cat_dim: int = 2048, obj_dim: int = 2048,
                 dual: bool = True, attention: bool = True, dropout: float = 0.25, pool: str = "avg",
                 input_norm: str = "none"):
        super().__init__()
        if input_norm not in ("imagenet", "none"):
            raise ConfigError(f"model.input_norm: '{input_norm}' is not one of ['imagenet', 'none']")
        self.backbone = backbone
        self.pool = _GlobalPool(pool)
        in_dim = feat_dim * (self.pool.grid ** 2 if pool == "flatten" else 1)
        self.dual, self.use_attention = bool(dual), bool(attention)
        self.cat_dim = int(cat_dim)
        self.obj_dim = int(obj_dim) if dual else int(cat_dim)
        self.input_norm = input_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.cat_head = nn.Linear(in_dim, self.cat_dim)
        self.cat_attn = ViewSetAttention(self.cat_dim, dropout) if attention else None
        if dual:
            self.obj_head = nn.Linear(in_dim, self.obj_dim)
            self.obj_attn = ViewSetAttention(self.obj_dim, dropout) if attention else None

    # ------------------------------------------------------------------ pieces
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> backbone features ``(N, F)``."""
        if self.input_norm == "imagenet":
            images = (images - self.mean) / self.std
        fmap = self.backbone.features(images) if hasattr(self.backbone, "features") else self.backbone(images)
        return self.pool(fmap)

    @staticmethod
    def _pool_views(raw: torch.Tensor, attn: nn.Module | None, want_attention: bool):
        if attn is None:
            return F.normalize(raw.mean(dim=1), dim=-1), None
        out, a = attn(raw, return_attention=True)
        return F.normalize(out.mean(dim=1), dim=-1), (a if want_attention else None)

    def embed_features(self, feats: torch.Tensor, return_attention: bool = False) -> dict:
        """Backbone features ``(B, V, F)`` -> embeddings (see :meth:`forward`)."""
        if feats.ndim != 3:
            raise ShapeError(f"PiroNet.embed_features: expected (B, V, F), got {tuple(feats.shape)}")
        cat_raw = self.cat_head(feats)                           # (B, V, Dc)
        cat_mv, cat_a = self._pool_views(cat_raw, self.cat_attn, return_attention)
        out = {"cat_raw": cat_raw, "cat_sv": F.normalize(cat_raw, dim=-1), "cat_mv": cat_mv}
        if self.dual:
            obj_raw = self.obj_head(feats)
            obj_mv, obj_a = self._pool_views(obj_raw, self.obj_attn, return_attention)
            out.update(obj_raw=obj_raw, obj_sv=F.normalize(obj_raw, dim=-1), obj_mv=obj_mv)
        else:
            obj_a = cat_a
            out.update(obj_raw=cat_raw, obj_sv=out["cat_sv"], obj_mv=cat_mv)
        if return_attention:
            out.update(cat_attention=cat_a, obj_attention=obj_a)
        return out

    def forward(self, images: torch.Tensor, return_attention: bool = False) -> dict:
        """Embed ``images (B, V, 3, H, W)`` in [0, 1] (V unordered views of B objects).

        Returns a dict of tensors: ``cat_sv (B, V, Dc)``, ``obj_sv (B, V, Do)`` unit-norm
        single-view embeddings; ``cat_mv (B, Dc)``, ``obj_mv (B, Do)`` unit-norm multi-view
        embeddings; ``cat_raw``/``obj_raw`` the un-normalised head outputs; with
        ``return_attention`` also ``cat_attention``/``obj_attention (B, V, V)`` (None without
        attention). In a single space ``obj_* is cat_*``.
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ShapeError(f"PiroNet: expected images (B, V, 3, H, W), got {tuple(images.shape)}")
        b, v = images.shape[:2]
        feats = self.features(images.flatten(0, 1)).view(b, v, -1)
        return self.embed_features(feats, return_attention=return_attention)


def build_model(model_cfg, backbone_factory: Callable[..., nn.Module] | None = None) -> PiroNet:
    """A :class:`PiroNet` from ``cfg.model`` (a :class:`~.config.ModelConfig`).

    The backbone comes from ``workbench.nn.build_backbone(name, pretrained=..., **backbone_kwargs)``
    unless a ``backbone_factory`` with the same signature is given (tests inject tiny ones).
    """
    if backbone_factory is None:
        from ...nn import build_backbone as backbone_factory  # type: ignore[no-redef]
    kwargs = dict(getattr(model_cfg, "backbone_kwargs", {}) or {})
    try:
        backbone = backbone_factory(model_cfg.backbone, pretrained=model_cfg.pretrained, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model.backbone_kwargs {kwargs} do not fit backbone '{model_cfg.backbone}': {e}") from None
    feat_dim = getattr(backbone, "out_channels", None)
    if feat_dim is None:
        raise ConfigError(f"backbone '{model_cfg.backbone}' does not expose out_channels")
    return PiroNet(backbone, int(feat_dim), cat_dim=model_cfg.cat_dim, obj_dim=model_cfg.obj_dim,
                   dual=model_cfg.dual, attention=model_cfg.attention, dropout=model_cfg.dropout,
                   pool=model_cfg.pool, input_norm=model_cfg.input_norm)
