"""PiRO and PIE losses against hand computations on tiny tensors."""
import math

import numpy as np
import pytest
import torch

from workbench.core.errors import ShapeError
from workbench.methods.piro.losses import (LargeMarginSoftmaxLoss, PiroCriterion, hard_miner_weights,
                                           large_margin_logits, large_margin_softmax, pi_category_loss,
                                           pi_object_loss, pie_nca_loss, pie_triplet_center_loss,
                                           select_confusers)
from workbench.methods.piro.config import LossConfig


def _ce(logits, y):
    z = np.asarray(logits, dtype=np.float64)
    return -(z[y] - np.log(np.exp(z).sum()))


def test_large_margin_softmax_hand():
    # W columns: class 0 along x with norm 2, class 1 along y with norm 1.
    W = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # sample 0: on class 0's axis (theta = 0); sample 1: 60 deg from class 0, norm 3.
    x = torch.tensor([[1.0, 0.0], [3 * math.cos(math.pi / 3), 3 * math.sin(math.pi / 3)]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    logits = large_margin_logits(x, W, y, margin=4)
    # sample 0: target psi(0) = 1 -> 2*1*1 = 2; other cos(90deg) = 0.
    # sample 1: theta = pi/3, k = floor((pi/3)/(pi/4)) = 1, psi = -cos(4 pi/3) - 2 = -1.5,
    #           target = 2 * 3 * -1.5 = -9; other: |W_1| |x| cos(30 deg) = 3 * sqrt(3)/2.
    expected = np.array([[2.0, 0.0], [-9.0, 3 * math.sqrt(3) / 2]])
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-9)
    loss = large_margin_softmax(x, W, y, margin=4)
    np.testing.assert_allclose(loss.item(), (_ce(expected[0], 0) + _ce(expected[1], 0)) / 2, rtol=1e-9)
    # per-sample weights multiply the per-sample CE before the mean (PML's element reduction)
    wl = large_margin_softmax(x, W, y, margin=4, sample_weights=torch.tensor([1.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(wl.item(), _ce(expected[0], 0) / 2, rtol=1e-9)


def test_large_margin_margin1_is_softmax_and_psi_monotone():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    W = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(large_margin_logits(x, W, y, margin=1).numpy(), (x @ W).numpy(), atol=1e-9)
    # psi(theta) = (-1)^k cos(m theta) - 2k is continuous and decreasing on [0, pi]
    th = torch.linspace(0, math.pi, 721, dtype=torch.float64)
    xs = torch.stack([torch.cos(th), torch.sin(th)], 1)
    Wt = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    psi = large_margin_logits(xs, Wt, torch.zeros(721, dtype=torch.long), margin=4)[:, 0]
    assert psi[0].item() == pytest.approx(1.0) and psi[-1].item() == pytest.approx(-7.0)
    assert (psi[1:] - psi[:-1] <= 1e-9).all()


def test_large_margin_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 1])
    assert torch.autograd.gradcheck(lambda a, b: large_margin_softmax(a, b, y, margin=4), (x, W))


def test_hard_miner_weights_hand():
    # four unit vectors at angles 0, 10, 90, 100 degrees (after normalisation), labels 0,0,1,1
    ang = np.deg2rad([0.0, 10.0, 90.0, 100.0])
    e = torch.tensor(np.stack([np.cos(ang), np.sin(ang)], 1) * np.array([[1], [2], [3], [1]]), dtype=torch.float32)
    y = torch.tensor([0, 0, 1, 1])
    # hardest positive of each anchor is its only positive: 0<->1, 2<->3.
    # hardest negatives: 0 -> closest of {2 (90), 3 (100)} = 2; 1 (10 deg) -> 2 (80 deg away);
    # 2 -> closest of {0 (90), 1 (80)} = 1; 3 -> 1 (90 deg away vs 100).
    # counts: anchors appear twice each (a1 and a2) -> 2 each; positives: +1 each;
    # negatives: 2 gets +2 (from 0 and 1), 1 gets +2 (from 2 and 3).
    # totals: [3, 5, 5, 3] -> / 5
    w = hard_miner_weights(e, y)
    np.testing.assert_allclose(w.numpy(), [0.6, 1.0, 1.0, 0.6], atol=1e-6)
    # nothing to mine (one sample) -> all ones
    assert hard_miner_weights(e[:1], y[:1]).tolist() == [1.0]
    # one class only: positives only -> anchors 2 each + hardest positive counts
    w1 = hard_miner_weights(e[:3], torch.tensor([0, 0, 0]))
    # anchor 0: farthest positive of 0 is 2 (90 deg); of 1 is 2 (80); of 2 is 0 (90 vs 80)
    # counts: [1+1, 1, 1+2] -> [2, 1, 3] / 3
    np.testing.assert_allclose(w1.numpy(), [2 / 3, 1 / 3, 1.0], atol=1e-6)


def test_lsoftmax_module_frozen_vs_trainable():
    frozen = LargeMarginSoftmaxLoss(3, 4, trainable=False, seed=7)
    train = LargeMarginSoftmaxLoss(3, 4, trainable=True, seed=7)
    assert len(list(frozen.parameters())) == 0 and len(list(train.parameters())) == 1
    torch.testing.assert_close(frozen.weight, train.weight.detach())   # same seeded N(0,1) draw
    assert frozen.weight.shape == (4, 3)
    x = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 0, 1])
    torch.testing.assert_close(frozen(x, y), train(x, y))


def test_select_confusers():
    sv_a = torch.tensor([[[0.0, 0.0], [5.0, 0.0]]])                 # (1, 2, 2)
    sv_b = torch.tensor([[[0.0, 3.0], [4.0, 1.0], [9.0, 9.0]]])     # (1, 3, 2)
    con_a, con_b, ia, ib, d = select_confusers(sv_a, sv_b)
    # distances: a0-b0 3, a0-b1 sqrt(17), a1-b1 sqrt(2) (closest), ...
    assert (ia.item(), ib.item()) == (1, 1)
    torch.testing.assert_close(con_a, torch.tensor([[5.0, 0.0]]))
    torch.testing.assert_close(con_b, torch.tensor([[4.0, 1.0]]))
    assert d.item() == pytest.approx(math.sqrt(2))


def test_pi_object_loss_hand():
    sv_a = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    sv_b = torch.tensor([[[1.5, 0.0], [3.0, 0.0]]])
    mv_a = torch.tensor([[0.5, 0.0]])
    mv_b = torch.tensor([[2.0, 0.0]])
    # confusers: a1=(1,0), b0=(1.5,0): d = 0.5, squared 0.25
    # intra: |mv_a - con_a| = 0.5 -> [0.5-0.25]+ = 0.25 ; |mv_b - con_b| = 0.5 -> 0.25
    # inter (squared): [1 - 0.25]+ = 0.75 ; MV: [1 - 1.5]+ = 0
    loss = pi_object_loss(sv_a, sv_b, mv_a, mv_b, alpha=0.25, beta=1.0, inter_weight=1.0, squared_confuser=True)
    assert loss.item() == pytest.approx(0.25 + 0.25 + 0.75)
    # paper form (un-squared): [1 - 0.5]+ = 0.5 ; lambda = 2 doubles the inter terms
    loss2 = pi_object_loss(sv_a, sv_b, mv_a, mv_b, alpha=0.25, beta=1.0, inter_weight=2.0, squared_confuser=False)
    assert loss2.item() == pytest.approx(0.25 + 0.25 + 2 * 0.5)
    # mean over pairs: a second, satisfied pair (far apart, tight) contributes 0
    sv_a2 = torch.cat([sv_a, torch.tensor([[[0.0, 0.0], [0.1, 0.0]]])])
    sv_b2 = torch.cat([sv_b, torch.tensor([[[5.0, 0.0], [5.1, 0.0]]])])
    mv_a2 = torch.cat([mv_a, torch.tensor([[0.05, 0.0]])])
    mv_b2 = torch.cat([mv_b, torch.tensor([[5.05, 0.0]])])
    per = pi_object_loss(sv_a2, sv_b2, mv_a2, mv_b2, reduce=False)
    np.testing.assert_allclose(per.numpy(), [1.25, 0.0], atol=1e-6)
    assert pi_object_loss(sv_a2, sv_b2, mv_a2, mv_b2).item() == pytest.approx(0.625)


def test_pi_object_loss_gradient_flows_through_confusers_only():
    sv_a = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], requires_grad=True)
    sv_b = torch.tensor([[[1.5, 0.0], [3.0, 0.0]]], requires_grad=True)
    mv_a, mv_b = torch.tensor([[0.5, 0.0]]), torch.tensor([[2.0, 0.0]])
    pi_object_loss(sv_a, sv_b, mv_a, mv_b).backward()
    assert sv_a.grad[0, 0].abs().sum() == 0 and sv_a.grad[0, 1].abs().sum() > 0
    assert sv_b.grad[0, 1].abs().sum() == 0 and sv_b.grad[0, 0].abs().sum() > 0


def test_pi_category_loss_hand():
    sv_a = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    sv_b = torch.tensor([[[0.0, 2.0], [0.0, 2.0]]])
    mv_a = torch.tensor([[0.5, 0.0]])
    mv_b = torch.tensor([[0.0, 2.0]])
    # d_sm^a = mean(0.5, 0.5) = 0.5 -> 0.25 ; d_sm^b = 0 -> 0 ; d(mv_a, mv_b) = sqrt(0.25 + 4)
    expected = 0.25 + 0.0 + (math.sqrt(4.25) - 0.25)
    assert pi_category_loss(sv_a, sv_b, mv_a, mv_b, theta=0.25).item() == pytest.approx(expected)


def _pie_reference(sv, mv, c, y, alpha, beta, exclude_target):
    """Literal nested loops of Ho et al.'s PI-CNN / PI-Proxy loss."""
    b, v, _ = sv.shape
    total = 0.0
    for i in range(b):
        for k in range(v):
            x = sv[i, k]
            num, den = 0.0, 0.0
            for s in range(b):
                dvs = float(((x - mv[s]) ** 2).sum())
                num += math.exp(-alpha * dvs - beta * float(((mv[s] - c[y[i]]) ** 2).sum()))
                for o in range(c.shape[0]):
                    if exclude_target and o == y[i]:
                        continue
                    den += math.exp(-alpha * dvs - beta * float(((mv[s] - c[o]) ** 2).sum()))
            total += -(math.log(num) - math.log(den))
    return total / (b * v)


@pytest.mark.parametrize("exclude_target", [False, True])
def test_pie_nca_against_loops(exclude_target):
    g = torch.Generator().manual_seed(3)
    sv = torch.nn.functional.normalize(torch.randn(3, 2, 4, generator=g, dtype=torch.float64), dim=-1)
    mv = torch.nn.functional.normalize(sv.mean(1), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    y = torch.tensor([0, 2, 2])
    got = pie_nca_loss(sv, mv, c, y, alpha=1.3, beta=0.7, exclude_target=exclude_target).item()
    assert got == pytest.approx(_pie_reference(sv, mv, c, y.tolist(), 1.3, 0.7, exclude_target), rel=1e-9)


def test_pie_triplet_center_hand():
    # 1-D embeddings: objects at mv = [0], [1]; views of object 0 at 0.1, 0.5; object 1: 1.0, 1.0
    sv = torch.tensor([[[0.1], [0.5]], [[1.0], [1.0]]])
    mv = torch.tensor([[0.0], [1.0]])
    c = torch.tensor([[0.0], [2.0]])
    y = torch.tensor([0, 1])
    # view 0.1 (obj 0, class 0): d(v,s_v)=0.01, d(s_v,c_0)=0, min other obj d=0.81, min other class d(0,2)=4
    #   -> [0.01 + 0 - 0.81 - 4 + 1]+ = 0
    # view 0.5: [0.25 + 0 - 0.25 - 4 + 1]+ = 0
    # views of obj 1 (class 1): d(v,s)=0, d(s,c_1)=1, min other obj d(1,0)=1, other class d(1,0)=1
    #   -> [0 + 1 - 1 - 1 + 1]+ = 0 ... margin 2 -> 1 each
    assert pie_triplet_center_loss(sv, mv, c, y, margin=1.0).item() == pytest.approx(0.0)
    # margin 2: views of obj 0: [0.01-0.81-4+2]+ = 0, [0.25-0.25-4+2]+ = 0; obj 1 views: 1, 1 -> mean 0.5
    assert pie_triplet_center_loss(sv, mv, c, y, margin=2.0).item() == pytest.approx(0.5)


def test_loss_shape_errors():
    with pytest.raises(ShapeError):
        pi_object_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ShapeError):
        large_margin_logits(torch.zeros(2, 3), torch.zeros(4, 2), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("objective", ["piro", "pi_cnn", "pi_proxy", "pi_tc", "mvcnn"])
def test_criterion_terms_and_backward(objective):
    g = torch.Generator().manual_seed(0)
    p, v, d, ncls = 3, 4, 8, 3

    def out():
        raw = torch.randn(p, v, d, generator=g, requires_grad=True)
        sv = torch.nn.functional.normalize(raw, dim=-1)
        mv = torch.nn.functional.normalize(raw.mean(1), dim=-1)
        return {"cat_raw": raw, "cat_sv": sv, "cat_mv": mv, "obj_raw": raw, "obj_sv": sv, "obj_mv": mv}

    a, b = out(), out()
    crit = PiroCriterion(LossConfig(objective=objective), ncls, d, seed=0)
    terms = crit(a, b, torch.tensor([0, 1, 2]))
    assert torch.isfinite(terms["loss"])
    assert terms["loss"].item() == pytest.approx(sum(v_.item() for k_, v_ in terms.items() if k_ != "loss"))
    if objective == "piro":
        assert set(terms) == {"l_cat", "l_picat", "l_piobj", "loss"}
    terms["loss"].backward()
    assert a["cat_raw"].grad is not None and a["cat_raw"].grad.abs().sum() > 0
    # subset of the losses (Table 4 rows)
    only = PiroCriterion(LossConfig(use_cat=True, use_picat=False, use_piobj=False), ncls, d)
    assert set(only(a, b, torch.tensor([0, 1, 2]))) == {"l_cat", "loss"}
