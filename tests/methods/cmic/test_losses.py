"""CMIC losses against hand computations on tiny batches."""
import math

import pytest
import torch

from workbench.core.errors import ShapeError
from workbench.methods.cmic.losses import (category_contrastive_loss, instance_contrastive_loss,
                                           pair_distances, semihard_negatives, triplet_semihard_loss)

# 3 queries x 4 shapes; query j's shape is target[j]; categories: shapes [0, 0, 1, 1]
SCORES = torch.tensor([[0.9, 0.5, 0.1, -0.2],
                       [0.3, 0.8, 0.6, 0.0],
                       [-0.1, 0.2, 0.4, 0.7]], dtype=torch.float64)
TARGET = torch.tensor([0, 1, 3])
QCAT = torch.tensor([0, 0, 1])
SCAT = torch.tensor([0, 0, 1, 1])


def _logp(j, s, tau):
    row = SCORES[j].tolist()
    return row[s] / tau - math.log(sum(math.exp(v / tau) for v in row))


def test_instance_loss_by_hand():
    tau = 0.1
    expected = -sum(_logp(j, int(TARGET[j]), tau) for j in range(3)) / 3
    assert instance_contrastive_loss(SCORES, TARGET, tau).item() == pytest.approx(expected, rel=1e-12)
    # tau = 1 on a 1 x 2 batch: -log(e^a / (e^a + e^b))
    s = torch.tensor([[2.0, 0.5]], dtype=torch.float64)
    assert instance_contrastive_loss(s, torch.tensor([0]), 1.0).item() == pytest.approx(
        math.log(1 + math.exp(-1.5)), rel=1e-12)


def test_category_loss_by_hand_including_and_excluding_gt():
    tau = 0.1
    pos_in = {0: [0, 1], 1: [0, 1], 2: [2, 3]}
    pos_ex = {0: [1], 1: [0], 2: [2]}
    for include, pos in ((True, pos_in), (False, pos_ex)):
        per_query = [-sum(_logp(j, p, tau) for p in pos[j]) / len(pos[j]) for j in range(3)]
        pairs = [-_logp(j, p, tau) for j in range(3) for p in pos[j]]
        got_q = category_contrastive_loss(SCORES, TARGET, QCAT, SCAT, tau, include_gt=include, reduction="query")
        got_p = category_contrastive_loss(SCORES, TARGET, QCAT, SCAT, tau, include_gt=include, reduction="pair")
        assert got_q.item() == pytest.approx(sum(per_query) / 3, rel=1e-12)
        assert got_p.item() == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)


def test_category_loss_edge_cases():
    # single-category batch: skipped (zero, still differentiable)
    s = SCORES.clone().requires_grad_(True)
    z = category_contrastive_loss(s, TARGET, torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    assert z.item() == 0.0
    z.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))
    # a query whose only same-category shape is its own: dropped when the GT is excluded
    scat = torch.tensor([0, 0, 1, 2])
    qcat = torch.tensor([0, 0, 2])
    got = category_contrastive_loss(SCORES, TARGET, qcat, scat, 0.1, include_gt=False)
    expected = (-_logp(0, 1, 0.1) - _logp(1, 0, 0.1)) / 2
    assert got.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ShapeError):
        instance_contrastive_loss(SCORES, torch.tensor([0, 1, 4]))


def test_contrastive_gradient_matches_finite_differences():
    s = SCORES.clone().requires_grad_(True)
    f = lambda x: (instance_contrastive_loss(x, TARGET, 0.1)
                   + 0.2 * category_contrastive_loss(x, TARGET, QCAT, SCAT, 0.1))
    assert torch.autograd.gradcheck(f, (s,), eps=1e-6, atol=1e-6)


def test_semihard_negative_choice_and_triplet_loss_by_hand():
    # anchors' distances to 4 shapes; positives at columns 0, 1, 2
    d = torch.tensor([[0.5, 0.7, 0.55, 0.3],    # negatives 0.7, 0.55 (> 0.5), 0.3: closest farther = col 2
                      [0.2, 0.9, 0.4, 0.6],     # positive 0.9 > every negative: farthest = col 3 (0.6)
                      [0.1, 0.3, 0.2, 1.2]],    # negatives 0.1, 0.3, 1.2 (> 0.2): closest farther = col 1
                     dtype=torch.float64)
    t = torch.tensor([0, 1, 2])
    assert semihard_negatives(d, t).tolist() == [2, 3, 1]
    m = 0.2
    expected = (max(0.5 - 0.55 + m, 0) + max(0.9 - 0.6 + m, 0) + max(0.2 - 0.3 + m, 0)) / 3
    assert triplet_semihard_loss(d, t, m).item() == pytest.approx(expected, rel=1e-12)
    # distances: squared Euclidean between the query and each query-specific shape embedding
    q = torch.tensor([[1.0, 0.0]])
    e = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    assert pair_distances(q, e).tolist() == [[0.0, 2.0, 4.0]]
