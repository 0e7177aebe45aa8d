"""PiRO figures and widgets: confusable categories, retrieval gallery, Fig. 5/7 builders."""
import pytest
import torch

from workbench.methods.piro.viz import (confusable_categories, dimension_ablation, embedding_spaces,
                                        retrieval_gallery, space_points)


def _emb():
    # 4 categories on a line of centroids 0, 1, 1.2, 5 (x axis); 2 objects x 3 views each
    g = torch.Generator().manual_seed(0)
    cents = torch.tensor([0.0, 1.0, 1.2, 5.0])
    cats = torch.arange(4).repeat_interleave(2)
    sv = torch.zeros(8, 3, 4)
    sv[..., 0] = cents[cats][:, None]
    sv[..., 1] = torch.arange(8).float()[:, None] * 0.05
    sv = sv + 0.01 * torch.randn(8, 3, 4, generator=g)
    mv = sv.mean(1)
    return {"cat_sv": sv, "obj_sv": sv.clone(), "cat_mv": mv, "obj_mv": mv.clone(), "categories": cats,
            "objects": torch.arange(100, 108)}


def test_confusable_categories_greedy():
    e = _emb()
    # centroids after normalisation: categories 1 and 2 closest, then 3 (far on x but normalised)...
    picked = confusable_categories(e, n=2)
    assert sorted(picked) == [1, 2]
    assert len(confusable_categories(e, n=3)) == 3 and set(confusable_categories(e, n=10)) == {0, 1, 2, 3}


def test_space_points_and_gallery():
    e = _emb()
    feats, labels, where = space_points(e, "obj", categories=[1, 2], category_names=list("abcd"))
    assert feats.shape == (12, 4) and set(labels["category"]) == {"b", "c"} and where.shape == (12, 2)
    imgs = torch.rand(8, 3, 3, 8, 8)
    fig = retrieval_gallery(e, imgs, [(0, 0), (5, 1)], k=3, space="obj")
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 2 * 4 and titles[0].startswith("query")
    # the nearest other views of object 0 are its own two views -> marked as hits
    assert titles[1].startswith("1. ✓") and titles[2].startswith("2. ✓")


def test_embedding_spaces_static_pca():
    figs = embedding_spaces(_emb(), method="pca", interactive=False, categories=[0, 1, 2])
    assert set(figs) == {"object", "category"}
    n_points = sum(len(t.x) for t in figs["object"].data)
    assert n_points == 18


def test_dimension_ablation_widget():
    pytest.importorskip("ipywidgets")
    calls = []

    def launch(c, o):
        calls.append((c, o))
        return {"sv_cat_acc": 50.0 + c, "sv_obj_acc": 10.0 + o, "sv_cat_map": 1.0, "sv_obj_map": 2.0}

    box, h = dimension_ablation(launch, dims=(8, 16, 32))
    h["run_dims"](8, 8)
    h["run_dims"](16, 32)
    h["run_dims"](8, 8)                       # cached: not launched again
    assert calls == [(8, 8), (16, 32)]
    t = h["table"]()
    assert t[["cat_dim", "obj_dim"]].values.tolist() == [[8, 8], [16, 32]]
    assert len(h["figure"].data) == 4 and "sv_obj_acc=18.0" in h["status"].value
    h["cat_dim"].value, h["obj_dim"].value = 32, 16
    h["run"].click()
    assert calls[-1] == (32, 16)
