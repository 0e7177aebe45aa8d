"""Generic metrics on hand-computed cases and invariants."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.core import ShapeError, WorkbenchError
from workbench.eval.metrics import (accuracy, average_precision, balanced_accuracy, confusion_matrix, knn_classify,
                                    mask_iou, mean_average_precision, pck, per_class_accuracy, relevance_from_labels,
                                    retrieval_metrics, topk_accuracy, topk_retrieval_accuracy)


# ------------------------------------------------------------------------------ classification
def test_accuracy_topk_and_confusion():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    target = torch.tensor([1, 1, 2, 2])
    assert accuracy(logits, target) == 0.5
    assert accuracy(np.array([1, 0, 2, 0]), target) == 0.5
    assert topk_accuracy(logits, target, k=(1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 1.0}
    cm = confusion_matrix(logits, target, 3)
    assert cm.tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 1]]  # rows: true class, cols: predicted
    assert cm.sum() == 4
    pc = per_class_accuracy(cm)
    assert math.isnan(pc[0]) and pc[1:].tolist() == [0.5, 0.5]
    assert balanced_accuracy(logits, target, 3) == 0.5
    with pytest.raises(ShapeError):
        accuracy(logits, target[:3])
    with pytest.raises(ShapeError, match="exceeds"):
        topk_accuracy(logits, target, k=5)
    with pytest.raises(ShapeError, match=r"labels must be in \[0, 2\)"):
        confusion_matrix(logits, target, 2)


def test_balanced_accuracy_differs_from_accuracy_on_imbalance():
    target = torch.tensor([0] * 9 + [1])
    pred = torch.zeros(10, dtype=torch.long)
    assert accuracy(pred, target) == 0.9 and balanced_accuracy(pred, target, 2) == 0.5


# ------------------------------------------------------------------------------ retrieval
def test_average_precision_hand_computed():
    # ranking of query 0: g2 (rel), g0, g3 (rel), g1 -> AP = (1/1 + 2/3) / 2
    scores = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.1, 0.2, 0.3, 0.4]])
    rel = torch.tensor([[False, False, True, True], [True, False, False, False]])
    ap = average_precision(scores, rel)
    assert ap[0].item() == pytest.approx((1 + 2 / 3) / 2)
    assert ap[1].item() == pytest.approx(1 / 4)  # the only relevant item is ranked last
    assert mean_average_precision(scores, rel) == pytest.approx(((1 + 2 / 3) / 2 + 0.25) / 2)
    # distances: the reversed order
    assert average_precision(-scores, rel, largest=False).tolist() == pytest.approx(ap.tolist())
    assert topk_retrieval_accuracy(scores, rel, k=(1, 3, 4)) == {1: 0.5, 3: 0.5, 4: 1.0}


def test_exclude_self_and_queries_without_relevant_items():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    sim = emb @ emb.T
    rel = relevance_from_labels(labels, labels)
    eye = torch.eye(5, dtype=torch.bool)
    with_self = average_precision(sim, rel)
    assert with_self[:4].tolist() == pytest.approx([1.0] * 4) and with_self[4].item() == 1.0  # self at rank 1
    no_self = average_precision(sim, rel, exclude=eye)
    assert no_self[:4].tolist() == pytest.approx([1.0] * 4) and math.isnan(no_self[4].item())
    assert mean_average_precision(sim, rel, exclude=eye) == 1.0  # the label-2 query is ignored
    # the excluded self must not occupy a rank: a query whose neighbour is ranked after a wrong item
    s = torch.tensor([[1.0, 0.2, 0.5]])
    r = torch.tensor([[True, True, False]])
    assert average_precision(s, r, exclude=torch.tensor([[True, False, False]])).item() == pytest.approx(0.5)
    with pytest.raises(WorkbenchError, match="no query has a relevant"):
        mean_average_precision(sim[4:], rel[4:], exclude=eye[4:])


def test_ties_are_broken_by_gallery_index_and_metrics_bundle():
    scores = torch.zeros(1, 3)
    assert average_precision(scores, torch.tensor([[False, False, True]])).item() == pytest.approx(1 / 3)
    assert average_precision(scores, torch.tensor([[True, False, False]])).item() == 1.0
    m = retrieval_metrics(torch.tensor([[0.2, 0.9, 0.1]]), torch.tensor([[True, False, False]]), k=(1, 2))
    assert m == {"mAP": pytest.approx(0.5), "top1": 0.0, "top2": 1.0}


def test_random_scores_give_chance_level_map():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(400, 50, generator=g)
    rel = torch.rand(400, 50, generator=g) < 0.2
    m = mean_average_precision(scores, rel)
    assert 0.15 < m < 0.35  # about the fraction of relevant items
    perfect = mean_average_precision(rel.float() + 0.01 * scores, rel)
    assert perfect == 1.0


def test_knn_classify_vote_and_ties():
    gallery = torch.tensor([0, 1, 1, 2])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1],    # k=3: votes 0:1, 1:2 -> 1
                           [0.9, 0.1, 0.2, 0.8],    # k=3: 0, 2, 1 one vote each -> first ranked (0)
                           [0.1, 0.2, 0.3, 0.9]])   # k=3: 2, 1, 1 -> majority 1 beats the nearest (2)
    assert knn_classify(scores, gallery, k=3).tolist() == [1, 0, 1]
    assert knn_classify(scores, gallery, k=1).tolist() == [0, 0, 2]
    assert knn_classify(-scores, gallery, k=1, largest=False).tolist() == [0, 0, 2]
    excl = torch.tensor([[True, False, False, False]] + [[False] * 4] * 2)
    assert knn_classify(scores, gallery, k=1, exclude=excl).tolist() == [1, 0, 2]


# ------------------------------------------------------------------------------ masks / keypoints
def test_mask_iou_hard_soft_and_empty():
    a = torch.zeros(3, 1, 4, 4)
    b = torch.zeros(3, 1, 4, 4)
    a[0, :, :2, :] = 1            # 8 px
    b[0, :, 1:3, :] = 1           # 8 px, overlap 4 -> IoU 4/12
    a[1, :, :, :] = 0.5           # soft: sum(p t) / sum(p + t - p t) with t = 1 everywhere = 0.5
    b[1, :, :, :] = 1
    iou = mask_iou(a, b)
    assert iou.tolist() == pytest.approx([1 / 3, 0.5, 1.0])  # both empty -> 1
    assert mask_iou(a, b, threshold=0.4).tolist() == pytest.approx([1 / 3, 1.0, 1.0])
    assert mask_iou(a[:, 0], b[:, 0], empty=0.0)[2].item() == 0.0
    with pytest.raises(ShapeError):
        mask_iou(a, b[:2])


def test_pck_thresholds_visibility_and_per_image_scale():
    target = torch.zeros(2, 3, 2)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 11.0], [100.0, 0.0]],
                         [[3.0, 4.0], [0.0, 11.0], [0.0, 0.0]]])  # distances 5, 11, 100 / 5, 11, 0
    vis = torch.tensor([[True, True, False], [True, True, True]])
    assert pck(pred, target, vis, alpha=0.1, scale=100.0) == pytest.approx(3 / 5)  # <= 10 px
    assert pck(pred, target, vis, alpha=0.1, scale=torch.tensor([100.0, 200.0])) == pytest.approx(4 / 5)
    # per keypoint: kp0 1.0, kp1 0.0, kp2 1.0 (only image 1 sees it)
    assert pck(pred, target, vis, alpha=0.1, scale=100.0, per_keypoint=True) == pytest.approx(2 / 3)
    assert pck(pred, target, alpha=0.05, scale=100.0) == pytest.approx(3 / 6)  # 5 <= 5 counts as correct
    with pytest.raises(WorkbenchError, match="no visible"):
        pck(pred, target, torch.zeros(2, 3, dtype=torch.bool))
