"""CMIC figures and widgets on tensors: gallery, attention, colour-transfer widget, embeddings."""
import pytest
import torch
import torch.nn as nn

from workbench.methods.cmic import CMICConfig
from workbench.methods.cmic.colour import colour_transfer
from workbench.methods.cmic.data import QuerySet, Repository, RetrievalData
from workbench.methods.cmic.model import CMIC, EmbeddingEncoder, ViewAttention


class Tiny(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = nn.Conv2d(cin, 8, 3, 2, 1)
        self.out_channels = 8

    def forward(self, x):
        return self.conv(x)


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    S, N = 6, 10
    repo = Repository(torch.rand(S, 12, 1, 16, 16, generator=g), torch.arange(S), torch.arange(S) % 2)
    rows = torch.arange(N) % S
    q = QuerySet(torch.rand(N, 3, 16, 16, generator=g), (torch.rand(N, 1, 16, 16, generator=g) > 0.5).float(),
                 rows, rows % 2)
    data = RetrievalData(q, q, repo, None, ["a", "b"])
    torch.manual_seed(0)
    model = CMIC(EmbeddingEncoder(Tiny(4), 8), EmbeddingEncoder(Tiny(1), 8), ViewAttention(8)).eval()
    cfg = CMICConfig.for_profile("smoke", overrides=["model.image_size=16", "model.render_size=16", "model.dim=8"])
    topk = torch.stack([torch.roll(torch.arange(S), -int(r)) for r in rows])  # GT first
    preds = {"query_index": torch.arange(N), "gt": rows, "seen_topk": topk, "seen_scores": torch.rand(N, S)}
    return data, model, cfg, preds


def test_gallery_and_attention_figures(setup):
    from workbench.methods.cmic.viz import attention_figure, attention_weights, retrieval_gallery

    data, model, cfg, preds = setup
    fig = retrieval_gallery(data, preds, [0, 3], k=3)
    titles = [a.text for a in fig.layout.annotations]
    assert sum(t.startswith("#1 ✓") for t in titles) == 2 and sum("✓" in t for t in titles) == 2
    assert sum(1 for tr in fig.data if tr.type == "image") == 2 * 4
    w = attention_weights(model, data, 2, [1, 4], cfg)
    assert w.shape == (2, 12) and torch.allclose(w.sum(1), torch.ones(2))
    fig = attention_figure(model, data, 2, 4, cfg)
    bar = [tr for tr in fig.data if tr.type == "bar"][0]
    assert torch.allclose(torch.tensor(bar.y, dtype=torch.float32), w[1], atol=1e-6)


def test_colour_transfer_widget_follows_its_controls(setup):
    pytest.importorskip("ipywidgets")
    from workbench.methods.cmic.viz import colour_transfer_widget

    data, *_ = setup
    images, masks = data.train.get(torch.arange(5))
    box, h = colour_transfer_widget(images, masks)
    h["target"].value, h["source"].value, h["space"].value = 2, 4, "cielab"
    torch.testing.assert_close(h["result"](), colour_transfer(images[2:3], images[4:5], "cielab")[0])
    h["region"].value = "mask"
    torch.testing.assert_close(h["result"](), colour_transfer(images[2:3], images[4:5], "cielab", masks[2:3],
                                                             masks[4:5])[0])
    assert h["result_img"].value[:4] == b"\x89PNG"


def test_query_embedding_coordinates(setup):
    from workbench.methods.cmic.viz import query_embedding_coords

    data, model, cfg, _ = setup
    coords, labels, images = query_embedding_coords(model, data, cfg, n=8, method="pca")
    assert coords.shape == (8, 2) and len(labels["category"]) == 8 and images.shape == (8, 3, 16, 16)
    assert set(labels["category"]) == {"a", "b"}
