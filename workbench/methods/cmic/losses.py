"""CMIC's losses on a batch score matrix.

A training batch holds ``B`` query images and ``S`` *distinct* shapes (the shapes of the queries,
merged, then filled up with other shapes). ``scores (B, S)`` holds ``s_js = v_j^q . v_js^r`` (the
query-specific shape embedding, :mod:`.model`), ``target (B,)`` the column of each query's own
shape, ``query_cat (B,)`` and ``shape_cat (S,)`` the categories.

Instance contrastive (paper eq. 4), averaged over the queries::

    L_inst = -1/B sum_j log( exp(s_{j,t_j} / tau) / sum_s exp(s_js / tau) )

Category contrastive (eq. 5) with P(j) = shapes of the query's category::

    L_cat = -1/|J| sum_{j in J} 1/|P(j)| sum_{p in P(j)} log( exp(s_jp / tau) / sum_s exp(s_js / tau) )

``include_gt=True`` keeps the ground-truth shape in P(j) (the official code and Table 4's better
row); ``False`` is eq. 5 as printed (P(j) excludes it). ``J`` are the queries with a non-empty
P(j). ``reduction="query"`` is the paper's per-query mean (as above); ``"pair"`` is the official
code's mean over all positive (query, shape) pairs. Like the official code, the category loss is
zero when the batch's shapes are all of one category (it cannot separate anything).

All losses use ``log_softmax`` (identical values to the official ``exp``/``sum``, stable).

Baseline (Table 2's "triplet" rows): triplet loss with semi-hard negative mining (FaceNet) on the
squared distance ``d_js = |v_j^q - v_js^r|^2``: for the anchor/positive pair ``(j, t_j)`` the
negative is the closest shape farther than the positive, or, when no shape is, the farthest one
(TensorFlow's ``triplet_semihard_loss`` rule)::

    L_tri = 1/B sum_j max(d_{j,t_j} - d_{j,n_j} + margin, 0)
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError, ShapeError, check_shape


def _check(scores: torch.Tensor, target: torch.Tensor) -> None:
    check_shape("scores", scores, (None, None))
    check_shape("target", target, (scores.shape[0],))
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= scores.shape[1]):
        raise ShapeError(f"target indices must lie in [0, {scores.shape[1]}), got "
                         f"[{int(target.min())}, {int(target.max())}]")


def instance_contrastive_loss(scores: torch.Tensor, target: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """``L_inst``: softmax cross-entropy of each query over the batch's shapes.

    Args:
        scores: ``(B, S)`` similarities; target: ``(B,)`` long, column of each query's shape.
        tau: temperature.

    Returns:
        scalar.
    """
    _check(scores, target)
    if tau <= 0:
        raise ConfigError(f"tau must be > 0, got {tau}")
    return F.cross_entropy(scores / tau, target)


def category_positives(target: torch.Tensor, query_cat: torch.Tensor, shape_cat: torch.Tensor,
                       include_gt: bool = True) -> torch.Tensor:
    """``(B, S)`` bool: shape ``s`` is a category positive of query ``j``."""
    pos = query_cat[:, None] == shape_cat[None, :]
    if not include_gt:
        pos = pos.clone()
        pos[torch.arange(len(target), device=pos.device), target] = False
    return pos


def category_contrastive_loss(scores: torch.Tensor, target: torch.Tensor, query_cat: torch.Tensor,
                              shape_cat: torch.Tensor, tau: float = 0.1, include_gt: bool = True,
                              reduction: Literal["query", "pair"] = "query") -> torch.Tensor:
    """``L_cat``: supervised-contrastive loss with the query's category as positives.

    Args:
        scores: ``(B, S)``; target: ``(B,)``; query_cat: ``(B,)``; shape_cat: ``(S,)`` (int labels).
        tau: temperature; include_gt: keep the ground-truth shape in the positives;
        reduction: ``query`` (paper eq. 5) or ``pair`` (official code).

    Returns:
        scalar (0, with gradient, when the batch's shapes are of a single category or no query has
        a positive).
    """
    _check(scores, target)
    check_shape("query_cat", query_cat, (scores.shape[0],))
    check_shape("shape_cat", shape_cat, (scores.shape[1],))
    if tau <= 0:
        raise ConfigError(f"tau must be > 0, got {tau}")
    zero = scores.sum() * 0.0
    if shape_cat.numel() == 0 or bool((shape_cat == shape_cat[0]).all()):
        return zero
    pos = category_positives(target, query_cat, shape_cat, include_gt)
    logp = torch.log_softmax(scores / tau, dim=1)
    npos = pos.sum(1)
    if int(npos.sum()) == 0:
        return zero
    nll = -(logp * pos).sum(1)
    if reduction == "pair":
        return nll.sum() / npos.sum()
    if reduction == "query":
        keep = npos > 0
        return (nll[keep] / npos[keep]).mean()
    raise ConfigError(f"category loss reduction must be 'query' or 'pair', got '{reduction}'")


def pair_distances(query: torch.Tensor, shape_emb: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(B, S)`` between ``query (B, D)`` and ``shape_emb (B, S, D)``."""
    return ((query[:, None, :] - shape_emb) ** 2).sum(-1)


def semihard_negatives(dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Semi-hard negative column ``(B,)`` per anchor (see the module docstring)."""
    B, S = dist.shape
    rows = torch.arange(B, device=dist.device)
    d_ap = dist[rows, target]
    neg = torch.ones_like(dist, dtype=torch.bool)
    neg[rows, target] = False
    if S < 2:
        raise ShapeError("the triplet loss needs at least 2 shapes in the batch")
    inf = torch.finfo(dist.dtype).max
    outside = neg & (dist > d_ap[:, None])
    closest_outside = torch.where(outside, dist, torch.full_like(dist, inf)).argmin(1)
    farthest = torch.where(neg, dist, torch.full_like(dist, -inf)).argmax(1)
    return torch.where(outside.any(1), closest_outside, farthest)


def triplet_semihard_loss(dist: torch.Tensor, target: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Triplet loss with semi-hard negatives on a ``(B, S)`` distance matrix.

    Args:
        dist: ``(B, S)`` distances between query ``j`` and shape ``s`` (e.g. :func:`pair_distances`).
        target: ``(B,)`` the positive column; margin: the triplet margin.

    Returns:
        scalar, mean over the anchors.
    """
    _check(dist, target)
    rows = torch.arange(dist.shape[0], device=dist.device)
    n = semihard_negatives(dist.detach(), target)
    return F.relu(dist[rows, target] - dist[rows, n] + margin).mean()
