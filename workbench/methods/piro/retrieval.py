"""The PiRO/PIEs evaluation protocol: kNN (faiss or torch), mAP, the eight tasks, rho.

All functions take unit-norm embeddings (numpy or torch) and integer labels. Distances are
Euclidean (faiss ``IndexFlatL2`` on L2-normalised vectors in the official code, which ranks
exactly like cosine similarity).

The eight tasks (gallery = train split, probe = test split unless noted), as the official
``InferenceUtility_large.py``:

=================  ==========================================================================
``sv_cat_acc``     10-NN majority vote of each test view's category embedding among all train views
``mv_cat_acc``     10-NN vote of each test MV category embedding among the train MV embeddings
``sv_obj_acc``     1-NN among the *other* test views (object space); correct if same object
``mv_obj_acc``     every test object's first V/2 views give a reference MV embedding, the rest a
                   query MV embedding; 1-NN of each query among the references
``sv_cat_map``     every test view ranks all test views (category space); relevant = same category;
                   the query itself stays in the ranking (official; ``exclude_self`` removes it)
``mv_cat_map``     the same with test MV embeddings
``sv_obj_map``     every test view ranks the other test views (object space); relevant = same object
``mv_obj_map``     every query MV embedding ranks the references; one relevant item
=================  ==========================================================================

AP is the mean of precision@k over the ranks k of the relevant items in the full ranking
(bwhite's ``rank_metrics.average_precision``, as PIEs and PiRO); mAP its mean over queries.
Accuracies and mAPs are reported x100.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ...core.errors import ConfigError, ShapeError

log = logging.getLogger(__name__)

TASKS = ("sv_cat_acc", "mv_cat_acc", "sv_obj_acc", "mv_obj_acc",
         "sv_cat_map", "mv_cat_map", "sv_obj_map", "mv_obj_map")


def _t(x: Any, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str = "auto") -> str:
    """``"auto"`` -> ``"faiss"`` when importable, else ``"torch"``."""
    if backend not in ("auto", "faiss", "torch"):
        raise ConfigError(f"eval.backend: '{backend}' is not one of ['auto', 'faiss', 'torch']")
    if backend == "auto":
        return "faiss" if faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise ConfigError("eval.backend: 'faiss' requested but faiss is not installed "
                          "(pip install faiss-cpu, or use backend 'torch')")
    return backend


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _chunk(n_gallery: int, budget: int = 1 << 24) -> int:
    """Queries per block so that a block's distance matrix holds about ``budget`` entries."""
    return max(1, budget // max(1, n_gallery))


def knn_search(query: Any, gallery: Any, k: int, backend: str = "auto",
               device: str | torch.device | None = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours under squared L2 distance.

    Args:
        query: ``(Q, D)``; gallery: ``(G, D)``; k: neighbours (clipped to G).
        backend: ``"faiss"`` (``IndexFlatL2``), ``"torch"`` (blocked float64 ``cdist`` + top-k,
            on ``device``: CUDA when available) or ``"auto"`` (faiss when installed).
    Returns:
        ``(dist (Q, k) squared L2, index (Q, k) int64)`` on the CPU, nearest first. The torch
        backend orders equal distances by gallery index (exactly unless more than 8 gallery items
        tie with the k-th).
    """
    q, g = _t(query), _t(gallery)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ShapeError(f"knn_search: query {tuple(q.shape)} and gallery {tuple(g.shape)} must be (Q, D), (G, D)")
    k = int(min(k, g.shape[0]))
    if resolve_backend(backend) == "faiss":
        import faiss

        index = faiss.IndexFlatL2(g.shape[1])
        index.add(np.ascontiguousarray(g.numpy(), dtype=np.float32))
        d, i = index.search(np.ascontiguousarray(q.numpy(), dtype=np.float32), k)
        return torch.from_numpy(d), torch.from_numpy(i).long()
    dev = _device(device)
    dists, idx = [], []
    g64 = g.to(dev, torch.float64)
    step = _chunk(g.shape[0])
    for s in range(0, q.shape[0], step):
        dd = torch.cdist(q[s:s + step].to(dev, torch.float64), g64).pow(2)
        # the k (+ a few, for ties) smallest, re-ordered by (distance, gallery index)
        kk = min(g.shape[0], k + 8)
        vals, cand = dd.topk(kk, dim=1, largest=False, sorted=False)
        by_index = torch.argsort(cand, dim=1)
        vals, cand = vals.gather(1, by_index), cand.gather(1, by_index)
        by_dist = torch.sort(vals, dim=1, stable=True).indices
        dists.append(vals.gather(1, by_dist)[:, :k].float().cpu())
        idx.append(cand.gather(1, by_dist)[:, :k].cpu())
    return torch.cat(dists), torch.cat(idx)


def knn_vote(query: Any, gallery: Any, gallery_labels: Any, k: int = 10, backend: str = "auto") -> torch.Tensor:
    """Majority vote of the k nearest gallery labels (ties -> the smallest label, as ``np.argmax(bincount)``).

    Returns ``(Q,)`` int64 predictions.
    """
    labels = _t(gallery_labels, torch.int64)
    _, idx = knn_search(query, gallery, k, backend)
    votes = labels[idx]                                              # (Q, k)
    n_cls = int(labels.max().item()) + 1 if labels.numel() else 1
    counts = torch.zeros(votes.shape[0], n_cls, dtype=torch.int64)
    counts.scatter_add_(1, votes, torch.ones_like(votes))
    return counts.argmax(dim=1)


def average_precision(relevance: Any) -> float:
    """AP of one ranked binary relevance list (bwhite's definition; 0 when nothing is relevant)."""
    r = np.asarray(relevance) != 0
    if not r.any():
        return 0.0
    hits = np.cumsum(r)
    ranks = np.arange(1, r.size + 1)
    return float(np.mean((hits / ranks)[r]))


def ranking_map(query: Any, gallery: Any, query_labels: Any, gallery_labels: Any,
                exclude: Any | None = None, chunk: int | None = None,
                device: str | torch.device | None = "auto") -> float:
    """mAP of ranking the whole gallery by L2 distance for every query.

    Args:
        query ``(Q, D)``, gallery ``(G, D)``, labels ``(Q,)``/``(G,)``; relevant = same label.
        exclude: optional ``(Q,)`` gallery index to drop from each query's ranking (-1: none),
            e.g. the query itself when the probe set is its own gallery.
        chunk: queries per block (default: about 16M distance entries per block).
        device: where the blocks are ranked (CUDA when available by default).
    Returns:
        mAP in [0, 1]. Ties in distance are ranked by gallery index (stable sort).
    """
    dev = _device(device)
    q, g = _t(query).to(dev, torch.float64), _t(gallery).to(dev, torch.float64)
    ql, gl = _t(query_labels, torch.int64).to(dev), _t(gallery_labels, torch.int64).to(dev)
    chunk = chunk or _chunk(g.shape[0])
    if q.shape[0] != ql.shape[0] or g.shape[0] != gl.shape[0]:
        raise ShapeError("ranking_map: embeddings and labels differ in length")
    ex = None if exclude is None else _t(exclude, torch.int64).to(dev)
    aps = []
    for s in range(0, q.shape[0], chunk):
        d = torch.cdist(q[s:s + chunk], g).pow(2)
        order = torch.sort(d, dim=1, stable=True).indices                # (c, G)
        rel = gl[order] == ql[s:s + chunk, None]                          # (c, G)
        keep = torch.ones_like(rel)
        if ex is not None:
            e = ex[s:s + chunk]
            keep = order != e[:, None]
        rel_f = (rel & keep).double()
        hits = torch.cumsum(rel_f, dim=1)
        ranks = torch.cumsum(keep.double(), dim=1)
        prec = hits / ranks.clamp_min(1)
        n_rel = rel_f.sum(1)
        ap = torch.where(n_rel > 0, (prec * rel_f).sum(1) / n_rel.clamp_min(1), torch.zeros_like(n_rel))
        aps.append(ap.cpu())
    return float(torch.cat(aps).mean()) if aps else 0.0


def nn_other_accuracy(emb: Any, labels: Any, backend: str = "auto") -> float:
    """1-NN accuracy where each item's own entry is excluded (SV object recognition).

    The official code searches k=2 and drops the first hit assuming it is the query; here the
    query's own index is removed explicitly (identical unless exact duplicates exist).
    """
    e = _t(emb)
    lab = _t(labels, torch.int64)
    _, idx = knn_search(e, e, 2, backend)
    self_first = idx[:, 0] == torch.arange(e.shape[0])
    nn = torch.where(self_first, idx[:, 1], idx[:, 0])
    return float((lab[nn] == lab).double().mean())


def within_category_nn_accuracy(emb: Any, objects: Any, categories: Any) -> float:
    """1-NN object accuracy where each view is matched only among the other views of objects of its
    own category (a diagnostic, not one of the eight tasks: it isolates the confusions PiRO's
    object loss targets from confusions across categories)."""
    e = _t(emb)
    obj, cat = _t(objects, torch.int64), _t(categories, torch.int64)
    d = torch.cdist(e.double(), e.double())
    d.fill_diagonal_(float("inf"))
    d[cat[:, None] != cat[None, :]] = float("inf")
    nn = d.argmin(1)
    valid = torch.isfinite(d.min(1).values)
    return float((obj[nn] == obj)[valid].double().mean()) if valid.any() else float("nan")


def within_category_map(emb: Any, objects: Any, categories: Any) -> float:
    """SV object retrieval mAP where each view ranks only the other views of its own category.

    The fine-grained counterpart of ``sv_obj_map`` (a diagnostic, not one of the eight tasks, like
    :func:`within_category_nn_accuracy`): it measures how well the object space orders the views of
    the query's own object before those of the *same-category* objects, ignoring where views of
    other categories fall. A space that clusters categories but cannot tell objects apart (PiRO-SE)
    scores about chance here, while it scores well above chance on the full-gallery ``sv_obj_map``
    (all positives sit among the query's own category, a fraction of the gallery).

    Args:
        emb ``(M, D)`` SV embeddings, objects ``(M,)`` and categories ``(M,)`` their labels.
    Returns:
        mAP in [0, 1] over all M queries (self excluded; relevant = same object).
    """
    e = _t(emb)
    obj, cat = _t(objects, torch.int64), _t(categories, torch.int64)
    if e.ndim != 2 or obj.shape != (e.shape[0],) or cat.shape != (e.shape[0],):
        raise ShapeError(f"within_category_map: expected emb (M, D), objects and categories (M,), got "
                         f"{tuple(e.shape)}, {tuple(obj.shape)}, {tuple(cat.shape)}")
    total, count = 0.0, 0
    for c in cat.unique():
        ids = torch.nonzero(cat == c).squeeze(1)
        m = ids.numel()
        total += m * ranking_map(e[ids], e[ids], obj[ids], obj[ids], exclude=torch.arange(m))
        count += m
    return total / count if count else float("nan")


def eight_tasks(train_cat_sv: Any, train_cat_mv: Any, train_categories: Any,
                test_cat_sv: Any, test_cat_mv: Any, test_obj_sv: Any, test_categories: Any,
                ref_obj_mv: Any, query_obj_mv: Any, k: int = 10, backend: str = "auto",
                exclude_self: bool = False) -> dict[str, float]:
    """The eight PiRO tasks (x100), see the module docstring.

    Args:
        train_cat_sv ``(Ntr, V, Dc)``, train_cat_mv ``(Ntr, Dc)``, train_categories ``(Ntr,)``;
        test_cat_sv ``(Nte, V, Dc)``, test_cat_mv ``(Nte, Dc)``, test_obj_sv ``(Nte, V, Do)``,
        test_categories ``(Nte,)``; ref_obj_mv/query_obj_mv ``(Nte, Do)``: MV object embeddings of
        the first and second half of every test object's views.
        exclude_self: drop the query from its own ranking in the category mAPs (the official
            protocol keeps it).
    """
    tr_sv, te_sv, te_osv = _t(train_cat_sv), _t(test_cat_sv), _t(test_obj_sv)
    for name, t in (("train_cat_sv", tr_sv), ("test_cat_sv", te_sv), ("test_obj_sv", te_osv)):
        if t.ndim != 3:
            raise ShapeError(f"eight_tasks: {name} must be (N, V, D), got {tuple(t.shape)}")
    ntr, v_tr = tr_sv.shape[:2]
    nte, v = te_sv.shape[:2]
    ctr, cte = _t(train_categories, torch.int64), _t(test_categories, torch.int64)
    ctr_v, cte_v = ctr.repeat_interleave(v_tr), cte.repeat_interleave(v)
    obj_v = torch.arange(nte).repeat_interleave(v)
    q_sv, o_sv = te_sv.reshape(nte * v, -1), te_osv.reshape(nte * v, -1)
    self_idx = torch.arange(nte * v) if exclude_self else None
    self_mv = torch.arange(nte) if exclude_self else None
    out = {
        "sv_cat_acc": float((knn_vote(q_sv, tr_sv.reshape(ntr * v_tr, -1), ctr_v, k, backend) == cte_v).double().mean()),
        "mv_cat_acc": float((knn_vote(test_cat_mv, train_cat_mv, ctr, k, backend) == cte).double().mean()),
        "sv_obj_acc": nn_other_accuracy(o_sv, obj_v, backend),
    }
    _, nn_idx = knn_search(query_obj_mv, ref_obj_mv, 1, backend)
    out["mv_obj_acc"] = float((nn_idx[:, 0] == torch.arange(nte)).double().mean())
    out["sv_cat_map"] = ranking_map(q_sv, q_sv, cte_v, cte_v, exclude=self_idx)
    out["mv_cat_map"] = ranking_map(test_cat_mv, test_cat_mv, cte, cte, exclude=self_mv)
    out["sv_obj_map"] = ranking_map(o_sv, o_sv, obj_v, obj_v, exclude=torch.arange(nte * v))
    out["mv_obj_map"] = ranking_map(query_obj_mv, ref_obj_mv, torch.arange(nte), torch.arange(nte))
    out = {k_: 100.0 * out[k_] for k_ in TASKS}
    out["acc_avg"] = float(np.mean([out[t] for t in TASKS[:4]]))
    out["map_avg"] = float(np.mean([out[t] for t in TASKS[4:]]))
    return out


def separation_stats(sv: Any, categories: Any) -> dict[str, float]:
    """Fig. 6 diagnostics of one embedding space over object identities of the same category.

    For every object ``i`` (views ``sv[i] (V, D)``):
    ``d_intra^max(i)`` = the largest distance between two of its views;
    ``d_inter^min(i)`` = the smallest distance between one of its views and a view of another
    object of the same category. Returned: their means over objects, ``rho`` = mean
    ``d_inter^min`` / mean ``d_intra^max`` (rho > 1 means objects of a category are separable),
    ``frac_separated`` = the share of objects with ``d_inter^min(i) > d_intra^max(i)``, and the
    official early-stop ratio ``es_ratio`` = mean_i min_j mean-view-pair-distance(i, j) / mean
    ``d_intra^max``. Objects alone in their category are skipped for the inter terms.
    """
    e = _t(sv)
    cats = _t(categories, torch.int64)
    if e.ndim != 3 or cats.shape != (e.shape[0],):
        raise ShapeError(f"separation_stats: expected sv (N, V, D) and categories (N,), got "
                         f"{tuple(e.shape)}, {tuple(cats.shape)}")
    intra = torch.stack([torch.cdist(x, x).max() for x in e]) if e.shape[0] else torch.zeros(0)
    inter_min, inter_mean, rows = [], [], []
    for c in cats.unique():
        ids = torch.nonzero(cats == c).squeeze(1)
        if ids.numel() < 2:
            continue
        x = e[ids]                                                    # (n, V, D)
        n, v, d = x.shape
        dd = torch.cdist(x.reshape(n * v, d), x.reshape(n * v, d)).view(n, v, n, v)
        dmin = dd.amin(dim=(1, 3))
        dmean = dd.mean(dim=(1, 3))
        eye = torch.eye(n, dtype=torch.bool)
        inter_min.append(dmin.masked_fill(eye, float("inf")).min(1).values)
        inter_mean.append(dmean.masked_fill(eye, float("inf")).min(1).values)
        rows.append(ids)
    if not rows:
        return {"d_intra_max": float(intra.mean()) if intra.numel() else 0.0, "d_inter_min": float("nan"),
                "rho": float("nan"), "frac_separated": float("nan"), "es_ratio": float("nan")}
    rows_t = torch.cat(rows)
    imin, imean = torch.cat(inter_min), torch.cat(inter_mean)
    intra_sel = intra[rows_t]
    d_intra = float(intra_sel.mean())
    return {"d_intra_max": d_intra, "d_inter_min": float(imin.mean()),
            "rho": float(imin.mean()) / max(d_intra, 1e-12),
            "frac_separated": float((imin > intra_sel).double().mean()),
            "es_ratio": float(imean.mean()) / max(d_intra, 1e-12)}
