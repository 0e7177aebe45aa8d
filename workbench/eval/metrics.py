"""Generic evaluation metrics: classification, retrieval, masks, keypoints.

All functions take torch tensors (numpy arrays are accepted and converted) and work on any
device. Scalar summaries are returned as Python floats, per-item values as tensors. Pose
metrics (geodesic rotation error, accuracy at pi/6 and pi/18, median error) live with the pose
convention in :mod:`workbench.geometry.pose` (``rotation_error``, ``pose_summary``).

Retrieval conventions
---------------------
``scores`` is a ``(Q, G)`` matrix between Q queries and G gallery items; with ``largest=True``
(similarities) a higher score ranks first, with ``largest=False`` (distances) a lower one.
``relevant`` is a ``(Q, G)`` bool matrix (see :func:`relevance_from_labels`); ``exclude`` is an
optional ``(Q, G)`` bool matrix of pairs removed from the ranking (e.g. the query itself when
the query set is the gallery: ``exclude=torch.eye(N, dtype=bool)``). Ties are broken by gallery
index (stable sort). AP is the mean of precision@k over the ranks k of the relevant items
(the PIEs / ``rank_metrics`` definition); queries without any relevant item are ignored by
:func:`mean_average_precision` (their AP is NaN).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.errors import ShapeError, WorkbenchError


def _t(x, dtype=None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    return x.to(dtype) if dtype is not None else x


# ------------------------------------------------------------------------------ classification
def _labels(pred_or_logits: torch.Tensor) -> torch.Tensor:
    p = _t(pred_or_logits)
    return p.argmax(-1) if p.ndim == 2 else p


def accuracy(pred_or_logits, target) -> float:
    """Fraction of correct predictions; ``pred_or_logits`` is ``(N,)`` labels or ``(N, C)`` scores."""
    pred, target = _labels(pred_or_logits), _t(target)
    if pred.shape != target.shape:
        raise ShapeError(f"accuracy: predictions {tuple(pred.shape)} vs targets {tuple(target.shape)}")
    if pred.numel() == 0:
        raise ShapeError("accuracy: empty input")
    return (pred.to(target.device) == target).double().mean().item()


def topk_accuracy(logits, target, k: int | Sequence[int] = (1, 5)) -> dict[int, float]:
    """``{k: fraction of samples whose target is among the k highest scores}`` for ``(N, C)`` logits."""
    logits, target = _t(logits), _t(target)
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ShapeError(f"topk_accuracy: expected logits (N, C) and targets (N,), got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    ks = [k] if isinstance(k, int) else list(k)
    if max(ks) > logits.shape[1]:
        raise ShapeError(f"topk_accuracy: k={max(ks)} exceeds the {logits.shape[1]} classes")
    top = logits.topk(max(ks), dim=1).indices
    hit = top == target.to(top.device)[:, None]
    return {kk: hit[:, :kk].any(1).double().mean().item() for kk in ks}


def confusion_matrix(pred_or_logits, target, num_classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts, row = true class, column = predicted class."""
    pred, target = _labels(pred_or_logits).long(), _t(target).long()
    if pred.shape != target.shape:
        raise ShapeError(f"confusion_matrix: predictions {tuple(pred.shape)} vs targets {tuple(target.shape)}")
    if pred.numel() and (min(pred.min(), target.min()) < 0 or max(pred.max(), target.max()) >= num_classes):
        raise ShapeError(f"confusion_matrix: labels must be in [0, {num_classes})")
    idx = target.cpu() * num_classes + pred.cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix; NaN for classes without samples."""
    cm = _t(cm).double()
    return cm.diagonal() / cm.sum(1)


def balanced_accuracy(pred_or_logits, target, num_classes: int) -> float:
    """Mean of the per-class accuracies over the classes present in ``target``."""
    pc = per_class_accuracy(confusion_matrix(pred_or_logits, target, num_classes))
    return pc[~pc.isnan()].mean().item()


# ------------------------------------------------------------------------------ retrieval
def relevance_from_labels(query_labels, gallery_labels) -> torch.Tensor:
    """``(Q, G)`` bool: gallery item g is relevant to query q when their labels are equal."""
    q, g = _t(query_labels), _t(gallery_labels)
    return q.reshape(-1, 1) == g.to(q.device).reshape(1, -1)


def _ranking(scores, relevant, exclude, largest):
    s, rel = _t(scores).double(), _t(relevant).bool().to(_t(scores).device)
    if s.ndim != 2 or rel.shape != s.shape:
        raise ShapeError(f"retrieval: scores {tuple(s.shape)} and relevant {tuple(rel.shape)} must be (Q, G)")
    keep = torch.ones_like(rel) if exclude is None else ~_t(exclude).bool().to(s.device)
    if keep.shape != s.shape:
        raise ShapeError(f"retrieval: exclude {tuple(keep.shape)} must be {tuple(s.shape)}")
    key = s if largest else -s
    key = torch.where(keep, key, torch.full_like(key, -torch.inf))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    rel_sorted = torch.gather(rel & keep, 1, order)
    keep_sorted = torch.gather(keep, 1, order)
    rank = keep_sorted.long().cumsum(1)  # 1-based rank among kept items
    return rel_sorted, keep_sorted, rank


def average_precision(scores, relevant, exclude=None, largest: bool = True) -> torch.Tensor:
    """``(Q,)`` average precision of each query (NaN when it has no relevant gallery item)."""
    rel_sorted, keep_sorted, rank = _ranking(scores, relevant, exclude, largest)
    hits = rel_sorted.double().cumsum(1)
    prec = hits / rank.clamp(min=1)
    n_rel = rel_sorted.sum(1).double()
    ap = (prec * rel_sorted).sum(1) / n_rel
    return torch.where(n_rel > 0, ap, torch.full_like(ap, float("nan")))


def mean_average_precision(scores, relevant, exclude=None, largest: bool = True) -> float:
    """mAP over the queries that have at least one relevant gallery item."""
    ap = average_precision(scores, relevant, exclude, largest)
    valid = ~ap.isnan()
    if not valid.any():
        raise WorkbenchError("mean_average_precision: no query has a relevant gallery item")
    return ap[valid].mean().item()


def topk_retrieval_accuracy(scores, relevant, k: int | Sequence[int] = (1, 5, 10), exclude=None,
                            largest: bool = True) -> dict[int, float]:
    """``{k: fraction of queries with a relevant item among their k best-ranked}`` (recall@k)."""
    rel_sorted, keep_sorted, rank = _ranking(scores, relevant, exclude, largest)
    ks = [k] if isinstance(k, int) else list(k)
    return {kk: ((rank <= kk) & rel_sorted).any(1).double().mean().item() for kk in ks}


def retrieval_metrics(scores, relevant, k: Sequence[int] = (1, 5, 10), exclude=None,
                      largest: bool = True) -> dict[str, float]:
    """``{"mAP": ..., "top1": ..., "top5": ..., ...}`` in one call."""
    out = {"mAP": mean_average_precision(scores, relevant, exclude, largest)}
    out.update({f"top{kk}": v for kk, v in topk_retrieval_accuracy(scores, relevant, k, exclude, largest).items()})
    return out


def knn_classify(scores, gallery_labels, k: int = 1, exclude=None, largest: bool = True) -> torch.Tensor:
    """``(Q,)`` labels by majority vote of the k best-ranked gallery items.

    Ties between labels go to the label whose best-ranked item comes first.
    """
    s = _t(scores).double()
    labels = _t(gallery_labels).long().to(s.device)
    if s.ndim != 2 or labels.shape != (s.shape[1],):
        raise ShapeError(f"knn_classify: scores {tuple(s.shape)} (Q, G) vs gallery labels {tuple(labels.shape)}")
    key = s if largest else -s
    if exclude is not None:
        key = torch.where(_t(exclude).bool().to(s.device), torch.full_like(key, -torch.inf), key)
    k = min(k, s.shape[1])
    top = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]
    lab = labels[top]  # (Q, k)
    n_cls = int(labels.max().item()) + 1
    counts = torch.zeros(s.shape[0], n_cls, dtype=torch.long, device=s.device).scatter_add_(
        1, lab, torch.ones_like(lab))
    first = torch.full((s.shape[0], n_cls), k, dtype=torch.long, device=s.device).scatter_reduce_(
        1, lab, torch.arange(k, device=s.device).expand_as(lab), reduce="amin")
    return (counts * (k + 1) - first).argmax(1)


# ------------------------------------------------------------------------------ masks / keypoints
def mask_iou(pred, target, threshold: float | None = None, empty: float = 1.0) -> torch.Tensor:
    """``(B,)`` IoU between masks ``(B, 1, H, W)`` or ``(B, H, W)``.

    With ``threshold=None`` the soft IoU ``sum(p t) / sum(p + t - p t)`` of values in [0, 1]
    (the CMR/TTP silhouette metric); otherwise ``pred > threshold`` and ``target > 0.5`` are
    compared. Both masks empty gives ``empty``.
    """
    p, t = _t(pred).double(), _t(target).double().to(_t(pred).device)
    if p.shape != t.shape or p.ndim not in (3, 4):
        raise ShapeError(f"mask_iou: pred {tuple(p.shape)} and target {tuple(t.shape)} must both be "
                         f"(B, 1, H, W) or (B, H, W)")
    if threshold is not None:
        p, t = (p > threshold).double(), (t > 0.5).double()
    p, t = p.flatten(1), t.flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.full_like(union, float(empty)))


def pck(pred, target, visible=None, alpha: float = 0.1, scale=1.0, per_keypoint: bool = False) -> float:
    """Percentage of correct keypoints: ``||pred - target|| <= alpha * scale`` over visible points.

    Args:
        pred, target: ``(N, K, 2)`` positions (pixels, or any unit consistent with ``scale``).
        visible: ``(N, K)`` bool (default: all).
        alpha: threshold as a fraction of ``scale``.
        scale: float or ``(N,)`` per-image reference length (e.g. ``max(bbox_w, bbox_h)`` in pixels).
        per_keypoint: mean over keypoints of the per-keypoint PCK (keypoints never visible are
            skipped) instead of the mean over all visible points.
    Returns:
        PCK in [0, 1].
    """
    p, t = _t(pred).double(), _t(target).double().to(_t(pred).device)
    if p.shape != t.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ShapeError(f"pck: pred {tuple(p.shape)} and target {tuple(t.shape)} must both be (N, K, 2)")
    vis = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device) if visible is None else \
        _t(visible).bool().to(p.device)
    if vis.shape != p.shape[:2]:
        raise ShapeError(f"pck: visible {tuple(vis.shape)} must be {tuple(p.shape[:2])}")
    sc = _t(scale).double().to(p.device)
    sc = sc.reshape(-1, 1) if sc.ndim == 1 else sc
    correct = ((p - t).norm(dim=-1) <= alpha * sc) & vis
    if not vis.any():
        raise WorkbenchError("pck: no visible keypoint")
    if per_keypoint:
        n = vis.sum(0)
        pk = correct.sum(0).double() / n.clamp(min=1)
        return pk[n > 0].mean().item()
    return (correct.sum().double() / vis.sum()).item()
