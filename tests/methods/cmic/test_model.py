"""View attention (convexity, hand computation), encoders, chunked retrieval == brute force."""
import pytest
import torch
import torch.nn as nn

from workbench.methods.cmic.model import CMIC, EmbeddingEncoder, ViewAttention
from workbench.methods.cmic.retrieval import attention_scores, brute_force_scores, topk


class TinyBackbone(nn.Module):
    def __init__(self, cin, c=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1))
        self.out_channels = c

    def forward(self, x):
        return self.net(x)


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def _attention(dim, hidden=0, seed=0):
    torch.manual_seed(seed)
    return ViewAttention(dim, hidden=hidden).double()


@pytest.mark.parametrize("hidden", [0, 16])
def test_attention_is_a_convex_combination_of_the_views(hidden):
    att = _attention(8, hidden)
    q, views = _unit(3, 8, seed=1), _unit(5, 12, 8, seed=2)
    emb, w = att(q, views)
    assert emb.shape == (3, 5, 8) and w.shape == (3, 5, 12)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 5, dtype=torch.float64))
    for b in range(3):
        for s in range(5):
            torch.testing.assert_close(emb[b, s], (w[b, s, :, None] * views[s]).sum(0))
    assert (emb.norm(dim=-1) <= 1 + 1e-12).all()  # inside the unit ball (convex hull of unit vectors)
    # identical views: the embedding is that view whatever the query
    same = views[:1, :1].expand(1, 12, 8)
    emb1, w1 = att(q, same)
    torch.testing.assert_close(emb1[:, 0], views[0, 0].expand(3, 8))
    torch.testing.assert_close(w1, torch.full_like(w1, 1 / 12))


def test_attention_weights_by_hand_and_query_dependence():
    att = _attention(4)
    W = att.mlp.weight.detach()  # official: score_m = r_m^T W q
    q, views = _unit(2, 4, seed=3), _unit(1, 3, 4, seed=4)
    _, w = att(q, views)
    for b in range(2):
        logits = torch.stack([views[0, m] @ (W @ q[b]) for m in range(3)])
        torch.testing.assert_close(w[b, 0], torch.softmax(logits, 0))
    assert (w[0] - w[1]).abs().max() > 1e-3  # a different query attends differently


@pytest.mark.parametrize("normalize", [False, True])
def test_chunked_retrieval_equals_brute_force(normalize):
    att = _attention(6, hidden=10)
    q, views = _unit(7, 6, seed=5), _unit(13, 12, 6, seed=6)
    ref = brute_force_scores(att, q, views, normalize_shape=normalize)
    for qc, sc in [(3, 5), (7, 13), (1, 1), (100, 4)]:
        got = attention_scores(att, q, views, normalize_shape=normalize, query_chunk=qc, shape_chunk=sc)
        torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    s, w = attention_scores(att, q, views, normalize_shape=normalize, query_chunk=4, shape_chunk=6,
                            return_weights=True)
    torch.testing.assert_close(w, att(q, views)[1])
    # top-k: best first, ties broken towards the lower index
    assert topk(torch.tensor([[0.1, 0.5, 0.5, 0.2]]), 3).tolist() == [[1, 2, 3]]
    assert topk(ref, 20).shape == (7, 13)


def test_model_forward_scores_match_retrieval_and_gradients_flow():
    torch.manual_seed(0)
    model = CMIC(EmbeddingEncoder(TinyBackbone(4), 16), EmbeddingEncoder(TinyBackbone(1), 16), ViewAttention(16))
    images, masks = torch.rand(4, 3, 16, 16), (torch.rand(4, 1, 16, 16) > 0.5).float()
    renders = torch.rand(3, 12, 1, 16, 16)
    out = model(images, masks, renders)
    assert out["query"].shape == (4, 16) and out["views"].shape == (3, 12, 16) and out["scores"].shape == (4, 3)
    torch.testing.assert_close(out["query"].norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out["views"].norm(dim=-1), torch.ones(3, 12))
    ref = attention_scores(model.attention, out["query"].detach(), out["views"].detach(), query_chunk=3, shape_chunk=2)
    torch.testing.assert_close(out["scores"].detach(), ref, atol=1e-6, rtol=0)
    emb = out["shape_emb"].detach()
    assert emb.shape == (4, 3, 16)
    torch.testing.assert_close(torch.einsum("bd,bsd->bs", out["query"].detach(), emb), ref, atol=1e-6, rtol=0)
    out["scores"].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.attention.mlp.weight.grad.abs().sum() > 0
