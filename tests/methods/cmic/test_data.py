"""Batch sampling (distinct shapes, targets, determinism), hold-out of unseen shapes, restriction."""
import torch

from workbench.methods.cmic.data import BatchSampler, QuerySet, Repository, RetrievalData


def _data(S=12, N=60, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.arange(100, 100 + S)  # dataset ids are not row numbers
    cats = torch.arange(S) % C
    repo = Repository(torch.rand(S, 12, 1, 8, 8, generator=g), ids, cats, [f"m{i}.ply" for i in range(S)])
    rows = torch.randint(0, S, (N,), generator=g)
    q = QuerySet(torch.rand(N, 3, 8, 8, generator=g), torch.rand(N, 1, 8, 8, generator=g), ids[rows], cats[rows])
    rows_t = torch.randint(0, S, (N // 3,), generator=g)
    qt = QuerySet(torch.rand(N // 3, 3, 8, 8, generator=g), torch.rand(N // 3, 1, 8, 8, generator=g), ids[rows_t],
                  cats[rows_t])
    return RetrievalData(q, qt, repo, None, ["a", "b", "c"])


def test_batches_hold_distinct_shapes_with_correct_targets_and_are_deterministic():
    d = _data()
    s = BatchSampler(d.train, d.seen, batch_size=6, shapes_per_batch=9, seed=3)
    seen_queries = []
    for k in range(2 * len(s)):
        b = s.batch(k)
        shapes = b["shape_index"]
        assert len(shapes) == 9 and len(set(shapes.tolist())) == 9
        # the target column holds the query's own shape; categories line up
        assert torch.equal(d.seen.shape_ids[shapes[b["target"]]], d.train.shape_ids[b["query_index"]])
        assert torch.equal(b["shape_cat"][b["target"]], b["query_cat"])
        assert b["images"].shape == (6, 3, 8, 8) and b["renders"].shape == (9, 12, 1, 8, 8)
        assert 0 <= b["images"].min() and b["images"].max() <= 1
        if k < len(s):
            seen_queries += b["query_index"].tolist()
    assert len(set(seen_queries)) == len(seen_queries) == len(s) * 6  # one epoch: no query twice
    assert all(torch.equal(a, b) for a, b in zip(s.indices(7), s.indices(7)))
    other = BatchSampler(d.train, d.seen, 6, 9, seed=4)
    assert not torch.equal(s.indices(0)[0], other.indices(0)[0])


def test_hold_out_unseen_shapes_and_restrict():
    d = _data()
    h = d.hold_out(1)
    assert len(h.seen) == 9 and len(h.unseen) == 3
    assert sorted(h.unseen.shape_ids.tolist()) == [109, 110, 111]  # the last id of each category
    for qs in (h.train, h.test):
        assert not torch.isin(qs.shape_ids, h.unseen.shape_ids).any()
        assert torch.isin(qs.shape_ids, h.seen.shape_ids).all()
    assert h.unseen.mesh_paths == ["m9.ply", "m10.ply", "m11.ply"]
    r = d.restrict(["b"])
    assert set(r.seen.categories.tolist()) == {1} and set(r.train.categories.tolist()) == {1}
    assert len(r.seen) == 4
