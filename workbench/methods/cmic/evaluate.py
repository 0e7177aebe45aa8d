"""Evaluation (the official ``RetrievalNet_test.py`` protocol) and ``evaluate(cfg, run_dir) -> dict``.

Seen repository (every test query's ground-truth shape is in it; the paper's "seen 3D models"):

* ``top{k}``: the ground-truth shape is among the ``k`` highest-scoring shapes (top-1 = the argmax
  is the right instance, which implies the right category);
* ``category_acc``: the top-1 shape has the query's category (Table 3);
* ``d_hau``, ``iou``: modified Hausdorff distance (sampled surface points, coordinates times
  ``eval.hausdorff_scale``) and voxel IoU between the top-1 shape and the ground truth (0 and 1
  when the right shape is retrieved), averaged over the queries.

Fine-grained families (the synthetic ``fine`` repository): ``family_acc``, the top-1 shape is of the
query's family, beside ``chance_family_acc`` (:func:`family_metrics`).

Colour shift (``eval.colour_shift``): ``recolour_top{k}``, ``recolour_category_acc`` on the same
test photos, each re-coloured (Reinhard transfer) with the colours of a photo of another shape --
how much retrieval relies on colour, which the grey renders cannot explain.

Hue rotation (also with ``eval.colour_shift``): ``hue_top{k}`` on the test photos with their hue
turned by half a turn (HSV; no variant trains on that shift: the HSV ablation jitters the hue by at
most 0.1 turn, colour transfer moves the l-alpha-beta statistics), and ``colour_invariance``, the
mean cosine similarity between the embeddings of a photo and of its hue-rotated copy (1 = the query
encoder ignores hue), beside ``same_shape_similarity``, the mean cosine similarity between the
embeddings of two different test photos of the same shape, for scale.

Unseen repository (shapes the model never saw, not containing the ground truth; the paper's
ShapeNet gallery): ``unseen_d_hau``, ``unseen_iou`` of the top-1 shape. Every metric is also given
per category (``cat/<name>/<metric>``); ``chance_top1`` / ``chance_top10`` are a random ranking's.

``evaluate`` writes ``eval.json`` (atomically) and ``predictions.pt`` (top-10 per query on both
repositories, with scores) that the notebook and :mod:`.viz` read.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...core.device import get_device
from ...core.errors import CheckpointError, ShapeError
from ...core.io import save_torch, write_json
from .augment import resize
from .config import CMICConfig
from .data import QuerySet, Repository, RetrievalData, load_data
from .model import CMIC, build_model
from .retrieval import attention_scores, embed_repository, topk

log = logging.getLogger(__name__)


def recolour_sources(queries: QuerySet, n: int, seed: int = 0) -> torch.Tensor:
    """A fixed colour source for each of the first ``n`` queries: another query of another shape."""
    g = torch.Generator().manual_seed(seed)
    src = torch.empty(n, dtype=torch.long)
    ids = queries.shape_ids
    N = len(queries)
    for j in range(n):
        cand = torch.randint(0, N, (8,), generator=g)
        ok = cand[ids[cand] != ids[j]]
        src[j] = ok[0] if len(ok) else cand[0]
    return src


@torch.no_grad()
def embed_queries(model: CMIC, queries: QuerySet, image_size: int, batch_size: int = 64,
                  device: torch.device | None = None, limit: int = 0,
                  recolour: torch.Tensor | None = None, colour_space: str = "lab_reinhard",
                  hue_shift: float = 0.0) -> torch.Tensor:
    """Query embeddings ``(N, D)`` (eval mode, no augmentation, inputs resized to ``image_size``).

    ``recolour (N,)``: re-colour query ``j`` with the colour statistics of query ``recolour[j]``
    first (:func:`~.colour.colour_transfer`; the colour-shift robustness test).
    ``hue_shift``: rotate every photo's hue by this many turns first (HSV; the hue-rotation test).
    """
    from .colour import colour_transfer, rotate_hue

    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    n = len(queries) if not limit else min(limit, len(queries))
    out = []
    for i in range(0, n, batch_size):
        idx = torch.arange(i, min(i + batch_size, n))
        images, masks = queries.get(idx)
        if recolour is not None:
            images = colour_transfer(images, queries.get(recolour[idx])[0], colour_space)
        if hue_shift:
            images = rotate_hue(images, hue_shift)
        out.append(model.embed_queries(resize(images.to(device), image_size), resize(masks.to(device), image_size)))
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.dim, device=device)


def embedding_similarities(q: torch.Tensor, q_shifted: torch.Tensor, shape_ids: torch.Tensor) -> dict[str, float]:
    """``colour_invariance``: mean cosine similarity between rows of ``q (N, D)`` and ``q_shifted (N, D)``
    (the same photos, colour-shifted); ``same_shape_similarity``: mean cosine similarity between the
    embeddings of two different photos of one shape (``shape_ids (N,)``; NaN when no shape has two)."""
    if q.shape != q_shifted.shape or q.ndim != 2 or shape_ids.shape != q.shape[:1]:
        raise ShapeError(f"embedding_similarities: q {tuple(q.shape)}, q_shifted {tuple(q_shifted.shape)} and "
                         f"shape_ids {tuple(shape_ids.shape)} must be (N, D), (N, D) and (N,)")
    a = torch.nn.functional.normalize(q.float(), dim=1)
    b = torch.nn.functional.normalize(q_shifted.float(), dim=1)
    ids = shape_ids.to(a.device)
    same = (ids[:, None] == ids[None]) & ~torch.eye(len(ids), dtype=torch.bool, device=a.device)
    sim = a @ a.T
    return {"colour_invariance": float((a * b).sum(1).mean()),
            "same_shape_similarity": float(sim[same].mean()) if bool(same.any()) else float("nan")}


def family_metrics(families: Sequence[str], top1: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Family-level top-1 for repositories of fine-grained families (the synthetic ``fine`` part).

    A family is one prototype's near-identical variants (shape parameters jittered by a few per cent
    of their range), so the instance inside the right family is hardly decidable from a photo; the
    family of the top-1 shape measures the fine-grained discrimination that is.

    Args:
        families: ``S`` family names of the repository rows (``""`` = none).
        top1: ``(Q,)`` retrieved rows; gt: ``(Q,)`` ground-truth rows (``-1`` = not in the repository).

    Returns:
        ``{"family_acc", "chance_family_acc", "family_size"}`` (the chance of a uniformly random
        shape, the mean size of the query's family), or ``{}`` when no family has two shapes.
    """
    fam = list(families)
    names = sorted({f for f in fam if f})
    if not names or max(fam.count(f) for f in names) < 2:
        return {}
    code = torch.tensor([names.index(f) if f else -1 for f in fam], dtype=torch.long)
    size = torch.bincount(code[code >= 0], minlength=len(names)).float()
    ok = (gt >= 0) & (code[gt.clamp(min=0)] >= 0)
    if not ok.any():
        return {}
    g = code[gt[ok]]
    return {"family_acc": float((code[top1[ok]] == g).float().mean()),
            "chance_family_acc": float((size[g] / len(fam)).mean()), "family_size": float(size[g].mean())}


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


class ShapeMetrics:
    """Modified Hausdorff distance and voxel IoU between shapes, cached per mesh and per pair.

    * ``d_hau``: :func:`workbench.geometry.modified_hausdorff` between ``n_points`` surface samples
      of each mesh (drawn once per mesh with a fixed seed), coordinates times ``scale`` (the official
      code's 0.5).
    * ``iou``: :func:`workbench.geometry.voxel_iou` of solid occupancy grids of side ``resolution``
      over one common box (:meth:`set_bounds`: the bounding box of every mesh involved, padded by
      half a voxel; the shapes share the canonical frame, so the grids are comparable and cached
      per mesh). The synthetic shapes are unions of closed, *intersecting* parts, where a parity
      inside test marks the overlaps as outside; the occupancy is therefore the union of the solid
      occupancies of the mesh's connected components.
    """

    def __init__(self, n_points: int = 10000, resolution: int = 128, scale: float = 0.5, seed: int = 0):
        self.n_points, self.resolution, self.scale, self.seed = n_points, resolution, scale, seed
        self.bounds: torch.Tensor | None = None
        self._points: dict[str, torch.Tensor] = {}
        self._voxels: dict[str, torch.Tensor] = {}
        self._meshes: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pairs: dict[tuple[str, str], tuple[float, float]] = {}

    def mesh(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        if path not in self._meshes:
            from ... import geometry as G

            p = Path(path)
            loader = G.load_obj if p.suffix.lower() == ".obj" else G.load_ply
            out = loader(p)
            self._meshes[path] = (torch.as_tensor(out[0]).float(), torch.as_tensor(out[1]).long())
        return self._meshes[path]

    def set_bounds(self, paths) -> None:
        """The common voxel box: bounding box of the meshes at ``paths``, padded by half a voxel."""
        lo = torch.full((3,), float("inf"))
        hi = -lo
        for p in dict.fromkeys(paths):
            v = self.mesh(p)[0]
            lo, hi = torch.minimum(lo, v.min(0).values), torch.maximum(hi, v.max(0).values)
        pad = float((hi - lo).max()) / (2 * self.resolution) + 1e-6
        self.bounds = torch.stack([lo - pad, hi + pad]).double()
        self._voxels.clear()

    def points(self, path: str) -> torch.Tensor:
        if path not in self._points:
            from ... import geometry as G

            verts, faces = self.mesh(path)
            g = torch.Generator().manual_seed(self.seed)
            pts = G.sample_points_from_meshes(G.Meshes([verts], [faces]), self.n_points, generator=g)
            self._points[path] = pts.reshape(-1, 3)
        return self._points[path]

    def voxels(self, path: str) -> torch.Tensor:
        if path not in self._voxels:
            from scipy.sparse import coo_matrix
            from scipy.sparse.csgraph import connected_components

            from ... import geometry as G

            if self.bounds is None:
                raise ShapeError("ShapeMetrics.set_bounds(paths) must be called before voxel IoU")
            verts, faces = self.mesh(path)
            f = faces.numpy()
            n = verts.shape[0]
            adj = coo_matrix((np.ones(2 * len(f)), (np.r_[f[:, 0], f[:, 1]], np.r_[f[:, 1], f[:, 2]])), shape=(n, n))
            _, label = connected_components(adj, directed=False)
            face_label = torch.from_numpy(label[f[:, 0]])
            occ = torch.zeros((self.resolution,) * 3, dtype=torch.bool)
            for c in torch.unique(face_label).tolist():
                occ |= G.voxelize_mesh(verts, faces[face_label == c], self.resolution, self.bounds, "solid")
            self._voxels[path] = occ
        return self._voxels[path]

    def pair(self, a: str, b: str) -> tuple[float, float]:
        """``(d_hau, iou)`` between the meshes at paths ``a`` and ``b``."""
        if a == b:
            return 0.0, 1.0
        key = (a, b) if a < b else (b, a)
        if key not in self._pairs:
            from ... import geometry as G

            pa, pb = self.points(a), self.points(b)
            d = float(G.modified_hausdorff(pa[None] * self.scale, pb[None] * self.scale).reshape(-1)[0])
            iou = float(G.voxel_iou(self.voxels(a), self.voxels(b)).reshape(-1)[0])
            self._pairs[key] = (d, iou)
        return self._pairs[key]


_GEOMETRY_NEEDS = ("sample_points_from_meshes", "modified_hausdorff", "voxel_iou", "voxelize_mesh", "load_ply",
                   "Meshes")


def shape_metrics_available() -> bool:
    """Whether :mod:`workbench.geometry` provides what :class:`ShapeMetrics` needs."""
    from ... import geometry as G

    missing = [n for n in _GEOMETRY_NEEDS if not hasattr(G, n)]
    if missing:
        log.warning("cmic: workbench.geometry lacks %s: shape metrics (d_HAU, IoU) skipped", ", ".join(missing))
    return not missing


@torch.no_grad()
def retrieval_metrics(model: CMIC, data: RetrievalData, cfg: CMICConfig, max_queries: int = 0,
                      shape_metrics: bool | None = None, device: torch.device | None = None,
                      progress: bool = False) -> dict:
    """Retrieve every test query from the seen (and unseen) repository and compute the metrics.

    Returns:
        ``{"metrics": {...}, "predictions": {...}}``; predictions hold ``seen_topk (Q, K)`` /
        ``seen_scores (Q, K)`` repository rows and scores, ``gt (Q,)`` the ground-truth row (-1 if
        absent), the same for ``unseen_*`` and ``query_index (Q,)``.
    """
    model = _unwrap(model)
    ec = cfg.eval
    shape_metrics = ec.shape_metrics if shape_metrics is None else shape_metrics
    device = device or next(model.parameters()).device
    limit = max_queries or ec.max_queries
    q = embed_queries(model, data.test, cfg.model.image_size, ec.batch_size, device, limit)
    n = q.shape[0]
    qcat = data.test.categories[:n]
    gt = data.seen.positions(data.test.shape_ids[:n])
    kmax = max(max(ec.topk), 10)
    views = embed_repository(model, data.seen.renders, cfg.model.render_size, device=device, progress=progress)
    scores = attention_scores(model.attention, q, views, model.normalize_shape, ec.query_chunk, ec.shape_chunk)
    ranked = topk(scores, kmax).cpu()
    top_scores = scores.gather(1, ranked.to(scores.device)).cpu()
    valid = gt >= 0
    S = len(data.seen)
    m: dict[str, float] = {"queries": int(n), "queries_with_gt": int(valid.sum()), "seen_shapes": S}
    hits = {k: (ranked[:, :k] == gt[:, None]).any(1) for k in ec.topk + [10]}
    cat_hit = data.seen.categories[ranked[:, 0]] == qcat
    for k in sorted(set(ec.topk)):
        m[f"top{k}"] = float(hits[k][valid].float().mean()) if valid.any() else float("nan")
        m[f"chance_top{k}"] = min(k, S) / S
    m["category_acc"] = float(cat_hit.float().mean()) if n else float("nan")
    names = data.categories
    present = sorted(set(qcat.tolist()))
    for c in present:
        sel = (qcat == c) & valid
        for k in sorted(set(ec.topk)):
            m[f"cat/{names[c]}/top{k}"] = float(hits[k][sel].float().mean()) if sel.any() else float("nan")
        m[f"cat/{names[c]}/category_acc"] = float(cat_hit[qcat == c].float().mean())
    m.update(family_metrics(data.seen.families, ranked[:, 0], gt))
    preds = {"query_index": torch.arange(n), "gt": gt, "seen_topk": ranked, "seen_scores": top_scores}

    if ec.colour_shift and n:
        def shifted_ranking(qs: torch.Tensor, prefix: str) -> torch.Tensor:
            """Rank the seen repository for colour-shifted query embeddings; ``{prefix}_top{k}`` into m."""
            sranked = topk(attention_scores(model.attention, qs, views, model.normalize_shape, ec.query_chunk,
                                            ec.shape_chunk), kmax).cpu()
            for k in sorted(set(ec.topk)):
                hit = (sranked[:, :k] == gt[:, None]).any(1)
                m[f"{prefix}_top{k}"] = float(hit[valid].float().mean()) if valid.any() else float("nan")
            return sranked

        # the same test photos re-coloured with another photo's colours: does retrieval rely on colour?
        src = recolour_sources(data.test, n, cfg.seed)
        qr = embed_queries(model, data.test, cfg.model.image_size, ec.batch_size, device, limit, recolour=src)
        rranked = shifted_ranking(qr, "recolour")
        m["recolour_category_acc"] = float((data.seen.categories[rranked[:, 0]] == qcat).float().mean())
        preds["recolour_source"], preds["recolour_topk"] = src, rranked
        # hue turned by half a turn: a colour shift that no variant trains on
        qh = embed_queries(model, data.test, cfg.model.image_size, ec.batch_size, device, limit, hue_shift=0.5)
        preds["hue_topk"] = shifted_ranking(qh, "hue")
        m.update(embedding_similarities(q, qh, data.test.shape_ids[:n]))

    metric_fn = None
    if shape_metrics and all(p is not None for p in data.seen.mesh_paths) and shape_metrics_available():
        metric_fn = ShapeMetrics(ec.n_points, ec.voxel_resolution, ec.hausdorff_scale, cfg.seed)
    if metric_fn is not None:
        paths = list(data.seen.mesh_paths)
        if data.unseen is not None and all(p is not None for p in data.unseen.mesh_paths):
            paths += list(data.unseen.mesh_paths)
        metric_fn.set_bounds(paths)
        preds["seen_d_hau"], preds["seen_iou"] = _retrieved_shape_metrics(
            metric_fn, data.seen.mesh_paths, ranked[:, 0], data.seen.mesh_paths, gt, qcat, names, m, "")

    if data.unseen is not None:
        uviews = embed_repository(model, data.unseen.renders, cfg.model.render_size, device=device)
        us = attention_scores(model.attention, q, uviews, model.normalize_shape, ec.query_chunk, ec.shape_chunk)
        uranked = topk(us, kmax).cpu()
        preds["unseen_topk"], preds["unseen_scores"] = uranked, us.gather(1, uranked.to(us.device)).cpu()
        m["unseen_shapes"] = len(data.unseen)
        m["unseen_category_acc"] = float((data.unseen.categories[uranked[:, 0]] == qcat).float().mean())
        if metric_fn is not None and all(p is not None for p in data.unseen.mesh_paths):
            preds["unseen_d_hau"], preds["unseen_iou"] = _retrieved_shape_metrics(
                metric_fn, data.unseen.mesh_paths, uranked[:, 0], data.seen.mesh_paths, gt, qcat, names, m, "unseen_")
    return {"metrics": m, "predictions": preds}


def _retrieved_shape_metrics(metric_fn: "ShapeMetrics", repo_paths, top1: torch.Tensor, gt_paths, gt: torch.Tensor,
                             qcat: torch.Tensor, names, m: dict, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Modified Hausdorff and voxel IoU of each query's top-1 shape (``repo_paths[top1]``) against its ground
    truth (``gt_paths[gt]``; NaN where ``gt < 0``); writes ``{prefix}d_hau`` / ``{prefix}iou`` overall and per
    category into ``m`` and returns the per-query ``(d_hau (Q,), iou (Q,))``."""
    d, iou = [], []
    for j in range(len(gt)):
        if gt[j] < 0:
            d.append(math.nan), iou.append(math.nan)
            continue
        dj, ij = metric_fn.pair(repo_paths[int(top1[j])], gt_paths[int(gt[j])])
        d.append(dj), iou.append(ij)
    d_t, i_t = torch.tensor(d), torch.tensor(iou)
    ok = ~torch.isnan(d_t)
    m[f"{prefix}d_hau"], m[f"{prefix}iou"] = float(d_t[ok].mean()), float(i_t[ok].mean())
    for c in sorted(set(qcat.tolist())):
        sel = (qcat == c) & ok
        m[f"cat/{names[c]}/{prefix}d_hau"] = float(d_t[sel].mean()) if sel.any() else float("nan")
        m[f"cat/{names[c]}/{prefix}iou"] = float(i_t[sel].mean()) if sel.any() else float("nan")
    return d_t, i_t


def load_trained_model(cfg: CMICConfig, run_dir: str | Path, device: torch.device | str | None = None) -> CMIC:
    """The model of a run, with the weights of ``run_dir/checkpoint.pt``, in eval mode."""
    from ...train import load_model_weights

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train the run first")
    model = build_model(cfg.model)
    load_model_weights(model, path)
    return model.to(get_device(device or cfg.train.device)).eval()


def evaluate(cfg: CMICConfig, run_dir: str | Path, data: RetrievalData | None = None) -> dict:
    """Evaluate a trained run: writes ``eval.json`` and ``predictions.pt``; returns the metrics."""
    run_dir = Path(run_dir)
    data = data if data is not None else load_data(cfg.data)
    model = load_trained_model(cfg, run_dir)
    res = retrieval_metrics(model, data, cfg)
    metrics = dict(res["metrics"])
    metrics.update({f"data/{k}": v for k, v in data.summary().items()})
    save_torch(run_dir / "predictions.pt", res["predictions"])
    if cfg.eval.figures:
        try:
            from .viz import save_run_figures

            save_run_figures(cfg, run_dir, data, res["predictions"])
        except Exception as e:  # noqa: BLE001 -- figures are optional, metrics are not
            log.warning("cmic: could not write figures for %s: %s", run_dir, e)
    write_json(run_dir / "eval.json", metrics)
    return metrics
