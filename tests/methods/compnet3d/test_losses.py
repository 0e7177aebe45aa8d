"""Loss eqs 2-5 against a direct loop reference; FLOP counting; gradients."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from workbench.core.errors import ConfigError, ShapeError
from workbench.methods.compnet3d.losses import compnet_loss, loss_flops, sample_class_vertices


def _case(seed=0, B=3, Y=3, K=5, D=4, Nb=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    n_vert = [5, 4, 3][:Y]
    valid = torch.arange(K)[None] < torch.tensor(n_vert)[:, None]
    bank = F.normalize(torch.randn(Y, K, D, generator=g, dtype=dtype), dim=-1) * valid[..., None]
    bg = F.normalize(torch.randn(Nb, D, generator=g, dtype=dtype), dim=-1)
    feats = F.normalize(torch.randn(B, K, D, generator=g, dtype=dtype), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1][:B])
    visible = torch.rand(B, K, generator=g) > 0.3
    visible[:, 0] = True
    exclude = torch.rand(B, K, K, generator=g) > 0.6
    omega = torch.tensor([[0.0, 0.3, 0.0], [0.5, 0.0, 0.2], [0.1, 0.9, 0.0]], dtype=dtype)[:Y, :Y]
    return dict(feats=feats, visible=visible, labels=labels, bank=bank, valid=valid, bg=bg,
                exclude=exclude, omega=omega)


def _reference(c, kappa, contrast, sampled=None, wb=0.005):
    """Per-vertex double loops, straight from the equations."""
    feats, vis, labels, bank, valid, bg = c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"]
    Y, K, _ = bank.shape
    ins, crosses = [], []
    for b in range(feats.shape[0]):
        y = int(labels[b])
        for k in range(K):
            if not (vis[b, k] and valid[y, k]):
                continue
            f = feats[b, k]
            num = torch.exp(kappa * f @ bank[y, k])
            den_bg = sum(wb * torch.exp(kappa * f @ bg[n]) for n in range(bg.shape[0]))
            if contrast == "grouped":
                den = den_bg + sum(torch.exp(kappa * f @ bank[y, l]) for l in range(K)
                                   if valid[y, l] and (l == k or not c["exclude"][b, k, l]))
                ins.append(-torch.log(num / den))
                idx, ok = sampled
                cross = num.clone()
                for y2 in range(Y):
                    if y2 == y:
                        continue
                    for j in range(idx.shape[1]):
                        if ok[y2, j]:
                            cross = cross + c["omega"][y, y2] * torch.exp(kappa * f @ bank[y2, idx[y2, j]])
                crosses.append(-torch.log(num / cross))
            else:
                den = den_bg
                for y2 in range(Y):
                    for l in range(K):
                        if not valid[y2, l]:
                            continue
                        if y2 == y and l != k and c["exclude"][b, k, l]:
                            continue
                        den = den + torch.exp(kappa * f @ bank[y2, l])
                ins.append(-torch.log(num / den))
    li = torch.stack(ins).mean()
    lc = torch.stack(crosses).mean() if crosses else torch.zeros((), dtype=li.dtype)
    return li, lc


@pytest.mark.parametrize("kappa", [1.0, 1 / 0.07])
def test_grouped_loss_matches_loop_reference(kappa):
    c = _case()
    sampled = sample_class_vertices(c["valid"], 2, torch.Generator().manual_seed(3))
    out = compnet_loss(c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"],
                       kappa=kappa, contrast="grouped", omega=c["omega"], sampled=sampled,
                       exclude=c["exclude"], bg_weight=0.005)
    li, lc = _reference(c, kappa, "grouped", sampled)
    assert out["loss_in"].item() == pytest.approx(li.item(), rel=1e-10)
    assert out["loss_cross"].item() == pytest.approx(lc.item(), rel=1e-10)
    assert out["loss"].item() == pytest.approx((li + lc).item(), rel=1e-10)
    assert int(out["n_rows"]) == int((c["visible"] & c["valid"][c["labels"]]).sum())


def test_full_loss_matches_loop_reference():
    c = _case(seed=1)
    out = compnet_loss(c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"],
                       kappa=1 / 0.07, contrast="full", exclude=c["exclude"], bg_weight=0.005)
    li, _ = _reference(c, 1 / 0.07, "full")
    assert out["loss"].item() == pytest.approx(li.item(), rel=1e-10)
    assert out["loss_cross"].item() == 0.0


def test_single_class_grouped_equals_full_and_zero_weights_drop_pairs():
    c = _case(seed=2, Y=1)
    c["labels"] = torch.zeros(3, dtype=torch.long)
    args = (c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"])
    g = compnet_loss(*args, contrast="grouped", n_sample=3, exclude=c["exclude"])
    f = compnet_loss(*args, contrast="full", exclude=c["exclude"])
    assert g["loss"].item() == pytest.approx(f["loss"].item(), rel=1e-12)
    assert g["loss_cross"].item() == 0.0
    # all-zero weights drop the cross term entirely, whatever the sampled vertices
    c = _case(seed=2)
    x = c["feats"].clone().requires_grad_(True)
    out = compnet_loss(x, c["visible"], c["labels"], c["bank"], c["valid"], c["bg"],
                       omega=torch.zeros(3, 3, dtype=torch.float64), n_sample=2)
    assert out["loss_cross"].item() == pytest.approx(0.0, abs=1e-12)
    assert out["loss_in"].item() > 0
    out["loss"].backward()                      # fully dropped rows: finite (not NaN) gradients
    assert torch.isfinite(x.grad).all()


def test_loss_gradient_matches_finite_differences():
    c = _case(seed=4, B=2, K=5, D=3, Nb=3)
    sampled = sample_class_vertices(c["valid"], 2, torch.Generator().manual_seed(0))
    bgf = torch.randn(4, 3, dtype=torch.float64)

    def fn(feats, bg_feats):
        return compnet_loss(feats, c["visible"], c["labels"], c["bank"], c["valid"], c["bg"], kappa=2.0,
                            omega=c["omega"], sampled=sampled, exclude=c["exclude"], bg_feats=bg_feats,
                            bg_reg_weight=0.1)["loss"]

    x = c["feats"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x, bgf.requires_grad_(True)))
    for contrast in ("full",):
        fx = lambda feats: compnet_loss(feats, c["visible"], c["labels"], c["bank"], c["valid"], c["bg"],
                                        kappa=2.0, contrast=contrast)["loss"]
        assert torch.autograd.gradcheck(fx, (x,))


def test_bg_regulariser_is_mean_dot_with_all_vertices():
    c = _case(seed=5)
    bgf = torch.randn(7, 4, dtype=torch.float64)
    args = (c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"])
    out = compnet_loss(*args, contrast="full", bg_feats=bgf, bg_reg_weight=0.1)
    allv = c["bank"][c["valid"]]
    assert out["loss_bg_reg"].item() == pytest.approx(0.1 * (bgf @ allv.T).mean().item(), rel=1e-12)


def test_sampling_uniform_without_replacement_and_valid_only():
    valid = torch.zeros(2, 10, dtype=torch.bool)
    valid[0, :6] = True
    valid[1, :3] = True
    counts = torch.zeros(6)
    g = torch.Generator().manual_seed(0)
    for _ in range(600):
        idx, ok = sample_class_vertices(valid, 4, g)
        assert ok[0].all() and ok[1].sum() == 3
        assert len(set(idx[0].tolist())) == 4 and max(idx[0].tolist()) < 6
        assert set(idx[1][ok[1]].tolist()) == {0, 1, 2}
        counts[idx[0]] += 1
    # each of the 6 valid slots is drawn with probability 4/6
    assert torch.allclose(counts / 600, torch.full((6,), 4 / 6), atol=0.07)


@pytest.mark.parametrize("contrast", ["grouped", "full"])
def test_loss_flops_match_flop_counter(contrast):
    g = torch.Generator().manual_seed(0)
    Y, K, D, Nb, B, N = 6, 20, 8, 30, 4, 5
    valid = torch.ones(Y, K, dtype=torch.bool)
    bank = F.normalize(torch.randn(Y, K, D, generator=g), dim=-1)
    bg = F.normalize(torch.randn(Nb, D, generator=g), dim=-1)
    feats = F.normalize(torch.randn(B, K, D, generator=g), dim=-1).requires_grad_(True)
    visible = torch.rand(B, K, generator=g) > 0.5
    labels = torch.tensor([0, 3, 3, 5])
    bgf = torch.randn(10, D, requires_grad=True)
    with FlopCounterMode(display=False) as fc:
        out = compnet_loss(feats, visible, labels, bank, valid, bg, contrast=contrast, n_sample=N,
                           bg_feats=bgf, bg_reg_weight=0.1, generator=g)
        out["loss"].backward()
    M = int(visible.sum())
    ref = loss_flops(M, K, Nb, Y, D, contrast=contrast, n_sample=N, n_bg_feats=10)
    assert fc.get_total_flops() == ref["total"]
    assert ref["columns"] == (K + Nb + Y * N if contrast == "grouped" else Y * K + Nb)


def test_grouped_cheaper_than_full_at_scale():
    full = loss_flops(1000, 500, 2560, 100, 128, "full")["total"]
    grouped = loss_flops(1000, 500, 2560, 100, 128, "grouped", n_sample=32)["total"]
    assert full / grouped == pytest.approx((100 * 500 + 2560) / (500 + 2560 + 3200))


def test_bad_inputs_raise():
    c = _case()
    args = (c["feats"], c["visible"], c["labels"], c["bank"], c["valid"], c["bg"])
    with pytest.raises(ConfigError, match="contrast"):
        compnet_loss(*args, contrast="nope")
    with pytest.raises(ShapeError, match="visible"):
        compnet_loss(c["feats"], c["visible"][:, :2], *args[2:])
    with pytest.raises(ConfigError, match="bg_weight"):
        compnet_loss(*args, bg_weight=0.0)
