"""Evaluation protocol: mAP vs brute force, kNN on toy galleries, faiss/torch agreement, rho."""
import math

import numpy as np
import pytest
import torch

from workbench.methods.piro.retrieval import (average_precision, eight_tasks, faiss_available, knn_search,
                                              knn_vote, nn_other_accuracy, ranking_map, separation_stats)


def test_average_precision_bwhite_example():
    assert average_precision([1, 1, 0, 1, 0, 1, 0, 0, 0, 1]) == pytest.approx(0.78333333333)
    assert average_precision([0, 0, 0]) == 0.0
    assert average_precision([0, 0, 1]) == pytest.approx(1 / 3)


def _brute_map(q, g, ql, gl, exclude=None):
    aps = []
    for i in range(len(q)):
        d = [float(((q[i] - g[j]) ** 2).sum()) for j in range(len(g))]
        order = sorted(range(len(g)), key=lambda j: (d[j], j))
        if exclude is not None:
            order = [j for j in order if j != exclude[i]]
        rel = [1 if gl[j] == ql[i] else 0 for j in order]
        hits, precs = 0, []
        for r, x in enumerate(rel, 1):
            if x:
                hits += 1
                precs.append(hits / r)
        aps.append(np.mean(precs) if precs else 0.0)
    return float(np.mean(aps))


@pytest.mark.parametrize("exclude", [False, True])
def test_ranking_map_matches_brute_force(exclude):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(40, 5))
    gl = rng.integers(0, 4, size=40)
    q = g[:15] + 0.3 * rng.normal(size=(15, 5))
    ql = gl[:15]
    ex = np.arange(15) if exclude else None
    got = ranking_map(q, g, ql, gl, exclude=ex, chunk=4)
    assert got == pytest.approx(_brute_map(q, g, ql, gl, ex), abs=1e-12)


def test_knn_vote_toy_gallery():
    # gallery on a line: labels 0 0 1 1 1 2 at x = 0 1 2 3 4 10
    gal = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [10.0]])
    lab = torch.tensor([0, 0, 1, 1, 1, 2])
    q = torch.tensor([[0.4], [2.9], [9.0], [1.4]])
    # k=3: q0 -> {0,1,2}: labels 0,0,1 -> 0; q1 -> {3,2,4}: 1; q2 -> {5,4,3}: 2,1,1 -> 1;
    # q3 -> {1 (0.4), 2 (0.6), 0 (1.4)} -> 0,1,0 -> 0
    assert knn_vote(q, gal, lab, k=3, backend="torch").tolist() == [0, 1, 1, 0]
    # k=1: q2 -> 2 ; q3 -> x=1 (label 0)
    assert knn_vote(q, gal, lab, k=1, backend="torch").tolist() == [0, 1, 2, 0]
    # k=2 tie between labels 0 and 1 for q3 (neighbours 1 and 2) -> smallest label 0
    assert knn_vote(q[3:], gal, lab, k=2, backend="torch").tolist() == [0]


def test_nn_other_accuracy_toy():
    e = torch.tensor([[0.0], [0.1], [5.0], [5.2], [5.05]])
    obj = torch.tensor([0, 0, 1, 2, 1])
    # 0 -> 1 (obj 0, ok); 1 -> 0 ok; 2 -> 4 (5.05, obj 1) ok; 3 -> 4 (obj 1 vs 2) wrong; 4 -> 2 ok
    assert nn_other_accuracy(e, obj, backend="torch") == pytest.approx(4 / 5)


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (optional extra 'faiss': pip install faiss-cpu)")
def test_faiss_and_torch_agree():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(300, 16)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = g[:50] + 0.05 * rng.normal(size=(50, 16)).astype(np.float32)
    lab = rng.integers(0, 5, size=300)
    df, i_f = knn_search(q, g, 10, backend="faiss")
    dt, i_t = knn_search(q, g, 10, backend="torch")
    assert torch.equal(i_f, i_t)
    np.testing.assert_allclose(df.numpy(), dt.numpy(), atol=1e-4)
    assert torch.equal(knn_vote(q, g, lab, 10, "faiss"), knn_vote(q, g, lab, 10, "torch"))
    assert nn_other_accuracy(g, lab, "faiss") == nn_other_accuracy(g, lab, "torch")


def _toy_embeddings(noise, n_obj=6, v=4, seed=0):
    """2 categories x 3 objects; category direction + object offset + view noise, in 6-D."""
    rng = np.random.default_rng(seed)
    cats = np.array([0, 0, 0, 1, 1, 1])[:n_obj]
    cat_dir = np.eye(6)[cats] * 3
    obj_off = np.eye(6)[(np.arange(n_obj) % 3) + 2] * 1.0
    sv = cat_dir[:, None] + obj_off[:, None] + noise * rng.normal(size=(n_obj, v, 6))
    sv /= np.linalg.norm(sv, axis=-1, keepdims=True)
    mv = sv.mean(1)
    mv /= np.linalg.norm(mv, axis=-1, keepdims=True)
    return torch.tensor(sv, dtype=torch.float32), torch.tensor(mv, dtype=torch.float32), torch.tensor(cats)


def test_eight_tasks_perfect_and_chance_like():
    sv, mv, cats = _toy_embeddings(noise=0.01)
    half = sv.shape[1] // 2
    norm = torch.nn.functional.normalize
    ref, qry = norm(sv[:, :half].mean(1), dim=-1), norm(sv[:, half:].mean(1), dim=-1)
    res = eight_tasks(sv, mv, cats, sv, mv, sv, cats, ref, qry, k=3, backend="torch")
    for t in ("sv_cat_acc", "mv_cat_acc", "sv_obj_acc", "mv_obj_acc", "sv_cat_map", "mv_cat_map",
              "sv_obj_map", "mv_obj_map"):
        assert res[t] == pytest.approx(100.0), t
    # identical objects within a category: object tasks fall to what ties allow, categories stay perfect
    same = sv.clone()
    same[1:3] = same[0]
    same[4:6] = same[3]
    res2 = eight_tasks(same, mv, cats, same, mv, same, cats, ref, qry, k=3, backend="torch")
    assert res2["sv_cat_acc"] == pytest.approx(100.0)
    assert res2["sv_obj_acc"] < 100.0


def test_eight_tasks_category_map_self_inclusion():
    # one test object per category: without self the MV category ranking has no relevant item
    sv, mv, cats = _toy_embeddings(noise=0.01)
    idx = torch.tensor([0, 3])
    r_off = eight_tasks(sv, mv, cats, sv[idx], mv[idx], sv[idx], cats[idx], mv[idx], mv[idx], k=1, backend="torch")
    r_on = eight_tasks(sv, mv, cats, sv[idx], mv[idx], sv[idx], cats[idx], mv[idx], mv[idx], k=1, backend="torch",
                       exclude_self=True)
    assert r_off["mv_cat_map"] == pytest.approx(100.0)   # the query itself is the relevant item
    assert r_on["mv_cat_map"] == pytest.approx(0.0)


def test_separation_stats_hand():
    # one category, two objects on a line, 2 views each: obj0 at 0, 1 ; obj1 at 3, 5
    sv = torch.tensor([[[0.0], [1.0]], [[3.0], [5.0]]])
    s = separation_stats(sv, torch.tensor([0, 0]))
    # intra max: 1 and 2 -> mean 1.5 ; inter min: both 2 (1 to 3) -> 2 ; rho = 2/1.5
    assert s["d_intra_max"] == pytest.approx(1.5)
    assert s["d_inter_min"] == pytest.approx(2.0)
    assert s["rho"] == pytest.approx(2 / 1.5)
    # obj0: 2 > 1 separated; obj1: 2 > 2 no
    assert s["frac_separated"] == pytest.approx(0.5)
    # es ratio: mean view-pair distance between objects = (3+5+2+4)/4 = 3.5 -> 3.5 / 1.5
    assert s["es_ratio"] == pytest.approx(3.5 / 1.5)
    # a singleton category is ignored for the inter terms
    s2 = separation_stats(torch.cat([sv, torch.tensor([[[9.0], [9.5]]])]), torch.tensor([0, 0, 1]))
    assert s2["rho"] == pytest.approx(s["rho"])


def test_within_category_nn_accuracy():
    from workbench.methods.piro.retrieval import within_category_nn_accuracy

    # views on a line; objects 0,1 in category 0, object 2 in category 1 sits right next to object 0
    e = torch.tensor([[0.0], [0.2], [1.0], [1.1], [0.1], [0.15]])
    obj = torch.tensor([0, 0, 1, 1, 2, 2])
    cat = torch.tensor([0, 0, 0, 0, 1, 1])
    # unrestricted 1-NN: view 0 -> 0.1 (obj 2) wrong; restricted to category 0: 0 -> 0.2 (obj 0) right
    assert nn_other_accuracy(e, obj, backend="torch") < 1.0
    assert within_category_nn_accuracy(e, obj, cat) == pytest.approx(1.0)


def test_knn_search_torch_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    g = np.round(rng.normal(size=(60, 3)), 1)            # coarse values: many exact ties
    g[10] = g[3]
    q = g[[3, 7, 20]]
    d, i = knn_search(q, g, 5, backend="torch", device="cpu")
    for r in range(3):
        dist = ((g - q[r]) ** 2).sum(1)
        ref = sorted(range(60), key=lambda j: (dist[j], j))[:5]
        assert i[r].tolist() == ref
    assert i[0, :2].tolist() == [3, 10]                   # the duplicate comes after, by index


def test_within_category_map_matches_brute_force_and_hand_case():
    from workbench.methods.piro.retrieval import ranking_map, within_category_map

    rng = np.random.default_rng(5)
    n_obj, v = 12, 4
    e = rng.normal(size=(n_obj * v, 3))
    obj = np.repeat(np.arange(n_obj), v)
    cat = np.repeat(np.arange(n_obj) % 3, v)                     # 3 categories of 4 objects
    aps = []
    for i in range(len(e)):
        idx = [j for j in range(len(e)) if j != i and cat[j] == cat[i]]
        dist = ((e[idx] - e[i]) ** 2).sum(1)
        order = [idx[j] for j in np.argsort(dist, kind="stable")]
        aps.append(average_precision(obj[order] == obj[i]))
    assert within_category_map(e, obj, cat) == pytest.approx(np.mean(aps), abs=1e-12)
    # a single category: the same as the full-gallery SV object mAP (self excluded)
    full = ranking_map(e, e, obj, obj, exclude=np.arange(len(e)))
    assert within_category_map(e, obj, np.zeros_like(cat)) == pytest.approx(full, abs=1e-12)

    # hand case on a line: category 0 = object 0 (views 0.0, 0.35) and object 1 (0.12, 0.2);
    # category 1 = object 2 (5.0, 5.1). View 0.0 ranks 0.12 (o1), 0.2 (o1), 0.35 (o0): AP 1/3;
    # 0.35 ranks 0.2, 0.12, 0.0: AP 1/3; 0.12 and 0.2 are each other's nearest: AP 1; category 1: AP 1.
    x = np.array([[0.0], [0.35], [0.12], [0.2], [5.0], [5.1]])
    o = np.array([0, 0, 1, 1, 2, 2])
    c = np.array([0, 0, 0, 0, 1, 1])
    expected = (1 / 3 + 1 / 3 + 1 + 1 + 1 + 1) / 6
    assert within_category_map(x, o, c) == pytest.approx(expected)
    with pytest.raises(Exception, match="within_category_map"):
        within_category_map(x, o[:-1], c)
