"""Retrieval against a whole shape repository: cached view embeddings, chunked attention scores.

CMIC's score of query ``j`` against shape ``i`` depends on the pair (the attention is
query-conditioned), so retrieval costs ``O(Q x S x M)``. The view embeddings ``(S, M, D)`` are
computed once per repository (:func:`embed_repository`); the scores are then computed for blocks
of ``query_chunk x shape_chunk`` pairs at a time with two einsums and a softmax, using::

    s_ij = sum_m softmax_m(r_im . k_j / T) (v_j . r_im)                (no (Q, S, D) tensor)

With ``normalize_shape`` the norm of the shape embedding comes from the per-shape Gram matrix of
its views: ``|v_ij^r|^2 = a_ij^T G_i a_ij``, ``G_i = R_i R_i^T`` ``(M, M)``.

:func:`brute_force_scores` is the pair-by-pair reference (Python loops) used by the tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...core.errors import ShapeError, check_shape
from .model import CMIC, ViewAttention


@torch.no_grad()
def attention_scores(attention: ViewAttention, queries: torch.Tensor, views: torch.Tensor,
                     normalize_shape: bool = False, query_chunk: int = 256, shape_chunk: int = 2048,
                     return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scores of every query against every shape, chunked.

    Args:
        attention: the model's :class:`~.model.ViewAttention`.
        queries: ``(Q, D)`` query embeddings; views: ``(S, M, D)`` view embeddings.
        normalize_shape: the model's ``normalize_shape``.
        query_chunk, shape_chunk: block size (memory ~ ``query_chunk * shape_chunk * M`` floats).
        return_weights: also return the attention weights ``(Q, S, M)`` (memory ``Q * S * M``).

    Returns:
        ``scores (Q, S)`` (and ``weights (Q, S, M)``).
    """
    check_shape("queries", queries, (None, attention.dim))
    check_shape("views", views, (None, None, attention.dim))
    if query_chunk < 1 or shape_chunk < 1:
        raise ShapeError(f"chunk sizes must be >= 1, got {query_chunk}, {shape_chunk}")
    keys = attention.keys(queries)
    gram = torch.einsum("smd,snd->smn", views, views) if normalize_shape else None
    Q, S = queries.shape[0], views.shape[0]
    out = queries.new_empty(Q, S)
    weights = queries.new_empty(Q, S, views.shape[1]) if return_weights else None
    for q0 in range(0, Q, query_chunk):
        q, k = queries[q0:q0 + query_chunk], keys[q0:q0 + query_chunk]
        for s0 in range(0, S, shape_chunk):
            r = views[s0:s0 + shape_chunk]
            w = torch.softmax(torch.einsum("qd,smd->qsm", k, r) / attention.temperature, dim=-1)
            s = (w * torch.einsum("qd,smd->qsm", q, r)).sum(-1)
            if gram is not None:
                g = gram[s0:s0 + shape_chunk]
                norm2 = (torch.einsum("qsm,smn->qsn", w, g) * w).sum(-1)
                s = s / norm2.clamp_min(1e-24).sqrt()
            out[q0:q0 + q.shape[0], s0:s0 + r.shape[0]] = s
            if weights is not None:
                weights[q0:q0 + q.shape[0], s0:s0 + r.shape[0]] = w
    return (out, weights) if return_weights else out


@torch.no_grad()
def brute_force_scores(attention: ViewAttention, queries: torch.Tensor, views: torch.Tensor,
                       normalize_shape: bool = False) -> torch.Tensor:
    """Reference: one (query, shape) pair at a time through :meth:`ViewAttention.forward`."""
    Q, S = queries.shape[0], views.shape[0]
    out = queries.new_empty(Q, S)
    for j in range(Q):
        for i in range(S):
            emb, _ = attention(queries[j:j + 1], views[i:i + 1])
            v = emb[0, 0]
            if normalize_shape:
                v = F.normalize(v, dim=0)
            out[j, i] = queries[j] @ v
    return out


@torch.no_grad()
def embed_repository(model: CMIC, renders: torch.Tensor, image_size: int, batch_shapes: int = 64,
                     device: torch.device | str | None = None, progress: bool = False) -> torch.Tensor:
    """View embeddings ``(S, M, D)`` of a repository's renders ``(S, M, 1, H, W)`` (eval mode).

    Renders (float in [0, 1], or uint8 in [0, 255]) are moved to ``device`` ``batch_shapes``
    shapes at a time and resized to ``image_size``.
    """
    from .augment import resize

    check_shape("renders", renders, (None, None, 1, None, None))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    it = range(0, renders.shape[0], batch_shapes)
    for s0 in tqdm(it, desc="embed shapes", disable=not progress, leave=False):
        r = renders[s0:s0 + batch_shapes].to(device)
        r = r.float() / 255.0 if r.dtype == torch.uint8 else r.float()
        r = resize(r, image_size)
        chunks.append(model.embed_views(r))
    model.train(was_training)
    return torch.cat(chunks) if chunks else renders.new_zeros(0, renders.shape[1], model.dim)


def topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(Q, min(k, S))`` of the highest scores, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    # stable: sort descending with a stable sort so ties keep the lower index
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
