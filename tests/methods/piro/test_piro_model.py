"""PAN encoder: shapes, unit norms, permutation invariance over views, single vs dual space."""
import pytest
import torch
import torch.nn as nn

from workbench.core.errors import ShapeError
from workbench.methods.piro.model import PiroNet, ViewSetAttention


class TinyBackbone(nn.Module):
    out_channels = 8

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def _model(**kw):
    torch.manual_seed(0)
    return PiroNet(TinyBackbone(), 8, cat_dim=6, obj_dim=5, **kw).eval()


def test_attention_permutation_equivariant_and_mean_invariant():
    torch.manual_seed(0)
    attn = ViewSetAttention(7, dropout=0.25).eval()
    x = torch.randn(3, 5, 7)
    perm = torch.tensor([3, 0, 4, 1, 2])
    y, a = attn(x, return_attention=True)
    y_p = attn(x[:, perm])
    torch.testing.assert_close(y_p, y[:, perm], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y_p.mean(1), y.mean(1), atol=1e-6, rtol=1e-5)
    assert a.shape == (3, 5, 5)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 5))
    # residual + LayerNorm: every output row has zero mean and unit variance (LN init weights 1, bias 0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    with pytest.raises(ShapeError):
        attn(torch.randn(3, 7))


def test_attention_dropout_active_only_in_training():
    torch.manual_seed(0)
    attn = ViewSetAttention(16, dropout=0.25)
    x = torch.randn(2, 4, 16)
    attn.train()
    assert not torch.allclose(attn(x), attn(x))
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))


@pytest.mark.parametrize("dual", [True, False])
def test_pironet_shapes_norms_and_view_permutation(dual):
    m = _model(dual=dual)
    imgs = torch.rand(2, 4, 3, 16, 16)
    out = m(imgs, return_attention=True)
    do = 5 if dual else 6
    assert out["cat_sv"].shape == (2, 4, 6) and out["cat_mv"].shape == (2, 6)
    assert out["obj_sv"].shape == (2, 4, do) and out["obj_mv"].shape == (2, do)
    for k in ("cat_sv", "cat_mv", "obj_sv", "obj_mv"):
        torch.testing.assert_close(out[k].norm(dim=-1), torch.ones(out[k].shape[:-1]))
    assert out["cat_attention"].shape == (2, 4, 4)
    if not dual:
        assert out["obj_mv"] is out["cat_mv"] and out["obj_sv"] is out["cat_sv"]
    else:
        assert not torch.allclose(out["obj_sv"][..., :5], out["cat_sv"][..., :5])
    perm = torch.tensor([2, 0, 3, 1])
    out_p = m(imgs[:, perm])
    torch.testing.assert_close(out_p["cat_mv"], out["cat_mv"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_p["obj_mv"], out["obj_mv"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_p["obj_sv"], out["obj_sv"][:, perm], atol=1e-5, rtol=1e-4)


def test_pironet_without_attention_is_mean_of_raw():
    m = _model(dual=True, attention=False)
    out = m(torch.rand(2, 3, 3, 16, 16))
    expect = torch.nn.functional.normalize(out["obj_raw"].mean(1), dim=-1)
    torch.testing.assert_close(out["obj_mv"], expect)


def test_pironet_views_are_independent_of_other_objects_and_counts():
    m = _model()
    imgs = torch.rand(3, 4, 3, 16, 16)
    full = m(imgs)
    one = m(imgs[1:2])
    torch.testing.assert_close(one["obj_mv"][0], full["obj_mv"][1], atol=1e-5, rtol=1e-4)
    half = m(imgs[:, :2])            # fewer views: same SV embeddings, a valid MV embedding
    torch.testing.assert_close(half["obj_sv"], full["obj_sv"][:, :2], atol=1e-5, rtol=1e-4)
    with pytest.raises(ShapeError):
        m(torch.rand(4, 3, 16, 16))


def test_pironet_flatten_pool_and_imagenet_norm():
    m = PiroNet(TinyBackbone(), 8, cat_dim=4, obj_dim=4, pool="flatten", input_norm="imagenet")
    assert m.cat_head.in_features == 8 * 49
    out = m(torch.rand(1, 2, 3, 16, 16))
    assert out["cat_sv"].shape == (1, 2, 4)
