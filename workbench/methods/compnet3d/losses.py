"""Vertex contrastive losses of 3D-CompNets (grouped, confusion-weighted) and NOVUM (full contrast).

Notation (paper eqs 2-5). An image of class ``y`` yields, for each visible mesh vertex ``k``,
the unit backbone feature ``f_k`` (D,) at the vertex's projection. ``C`` is the vertex feature
bank ``(Y, K, D)`` (classes padded to ``K`` vertices, ``valid`` marks real slots), ``B`` the
background bank ``(N_b, D)`` and ``kappa`` the vMF concentration (``1/0.07`` by default).

Grouped (3D-CompNets, ``contrast="grouped"``), per visible vertex row::

    L_in    = -log  e^{k f.C_yk} / (sum_{l in C_y} e^{k f.C_yl} + w_b sum_n e^{k f.b_n})
    L_cross = -log  e^{k f.C_yk} / (e^{k f.C_yk} + sum_{y' != y} w_{y,y'} sum_{m in S_N(y')} e^{k f.C_m})

``S_N(y')`` are ``N`` vertices drawn uniformly from class ``y'`` (resampled every step and shared
by the batch), ``w_{y,y'}`` the confusion weights (:mod:`.confusion`; a zero drops the pair) and
``w_b`` the background weight of the NOVUM code (0.005; 1 gives the paper's plain sum). Same-class
vertices whose projections lie near the target vertex can be excluded from the in-class
denominator (NOVUM's ``mask_remove_near``).

Full (NOVUM, ``contrast="full"``): one softmax per row over *every* vertex of *every* class and the
background bank, with the same near-vertex exclusion and background weight.

Both average over the visible rows and can add NOVUM's background regulariser
``reg * mean_{x in bg feats, j in vertices} x . C_j`` (computed exactly as ``x . mean_j C_j``).

:func:`loss_flops` counts the matrix-multiply FLOPs of both (what
:class:`torch.utils.flop_counter.FlopCounterMode` counts), which is where their cost differs.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from ...core.errors import ConfigError, ShapeError, check_shape

Contrast = Literal["grouped", "full"]

_NEG = -1e30  # masked logits: finite, so that an all-masked row keeps finite gradients (0, not NaN)


def sample_class_vertices(valid: torch.Tensor, n: int, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` vertex slots per class uniformly without replacement among the valid ones.

    Args:
        valid: ``(Y, K)`` bool, real (non-padded) vertex slots.
        n: vertices per class; a class with fewer than ``n`` valid vertices gets all of them and
            the remainder is flagged invalid.
        generator: optional CPU generator (reproducible sampling).

    Returns:
        ``idx (Y, n)`` long vertex slots and ``ok (Y, n)`` bool (False where the class ran out).
    """
    check_shape("valid", valid, (None, None))
    Y, K = valid.shape
    if n < 1:
        raise ConfigError(f"loss.n_sample must be >= 1, got {n}")
    n_eff = min(n, K)
    keys = torch.rand(Y, K, generator=generator).to(valid.device)
    keys = torch.where(valid, keys, torch.full_like(keys, -1.0))
    top = keys.topk(n_eff, dim=1)
    idx, ok = top.indices, top.values >= 0
    if n_eff < n:  # pad (never chosen: flagged invalid)
        pad = n - n_eff
        idx = torch.cat([idx, idx[:, :1].expand(Y, pad)], 1)
        ok = torch.cat([ok, torch.zeros(Y, pad, dtype=torch.bool, device=ok.device)], 1)
    return idx, ok


def _rows(feats: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor):
    b_idx, k_idx = visible.nonzero(as_tuple=True)
    return feats[b_idx, k_idx], labels[b_idx], b_idx, k_idx


def compnet_loss(
    feats: torch.Tensor,
    visible: torch.Tensor,
    labels: torch.Tensor,
    vertex_bank: torch.Tensor,
    vertex_valid: torch.Tensor,
    background: torch.Tensor,
    *,
    kappa: float = 1.0 / 0.07,
    contrast: Contrast = "grouped",
    omega: torch.Tensor | None = None,
    n_sample: int = 32,
    sampled: tuple[torch.Tensor, torch.Tensor] | None = None,
    exclude: torch.Tensor | None = None,
    bg_weight: float = 0.005,
    bg_feats: torch.Tensor | None = None,
    bg_reg_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Vertex contrastive loss of one batch (module docstring for the equations).

    Args:
        feats: ``(B, K, D)`` unit features at the vertex projections of each image's own class
            mesh (padded to ``K`` slots), with gradient.
        visible: ``(B, K)`` bool, ``o_k`` (False on padded slots).
        labels: ``(B,)`` long class of each image.
        vertex_bank: ``(Y, K, D)`` vertex features ``C`` (no gradient is taken through it).
        vertex_valid: ``(Y, K)`` bool real vertex slots.
        background: ``(N_b, D)`` background bank.
        kappa: vMF concentration (inverse temperature).
        contrast: ``"grouped"`` (eqs 2-5) or ``"full"`` (NOVUM).
        omega: ``(Y, Y)`` confusion weights (grouped only); ``None`` = all ones.
        n_sample: ``N``, vertices sampled per other class (grouped only).
        sampled: optional ``(idx (Y, N), ok (Y, N))`` from :func:`sample_class_vertices`.
        exclude: optional ``(B, K, K)`` bool, True where slot ``l`` is dropped from the in-class
            denominator of row ``k`` (near-vertex exclusion; the diagonal is ignored).
        bg_weight: ``w_b`` multiplying the background terms of the denominator (> 0).
        bg_feats: ``(M_b, D)`` background pixel features with gradient, for the regulariser.
        bg_reg_weight: weight of the background regulariser.
        generator: used to sample ``S_N`` when ``sampled`` is not given.

    Returns:
        dict with ``loss`` (scalar), ``loss_in``, ``loss_cross``, ``loss_bg_reg`` (detached
        scalars; ``loss_in`` is the whole softmax term in full mode) and ``n_rows``.
    """
    if feats.ndim != 3:
        raise ShapeError(f"feats: expected shape (B, K, D), got {tuple(feats.shape)}")
    Bsz, K, D = feats.shape
    Y = vertex_bank.shape[0]
    check_shape("visible", visible, (Bsz, K))
    check_shape("labels", labels, (Bsz,))
    check_shape("vertex_bank", vertex_bank, (None, K, D))
    check_shape("vertex_valid", vertex_valid, (Y, K))
    check_shape("background", background, (None, D))
    if contrast not in ("grouped", "full"):
        raise ConfigError(f"loss.contrast must be 'grouped' or 'full', got {contrast!r}")
    if bg_weight <= 0:
        raise ConfigError(f"loss.bg_weight must be > 0, got {bg_weight}")
    if exclude is not None:
        check_shape("exclude", exclude, (Bsz, K, K))
    bank = vertex_bank.detach()
    bg = background.detach()
    log_wb = math.log(bg_weight)
    visible = visible & vertex_valid[labels]
    f, y, b_idx, k_idx = _rows(feats, visible, labels)
    M = f.shape[0]
    zero = feats.sum() * 0.0
    out = {"n_rows": torch.tensor(M)}
    if M == 0:
        out.update(loss=zero, loss_in=zero.detach(), loss_cross=zero.detach(), loss_bg_reg=zero.detach())
        return out
    pos = kappa * (f * bank[y, k_idx]).sum(-1)                                    # (M,)
    own_excl = None
    if exclude is not None:
        own_excl = exclude[b_idx, k_idx].clone()                                  # (M, K)
        own_excl[torch.arange(M, device=f.device), k_idx] = False

    if contrast == "grouped":
        nll_in = torch.empty(M, dtype=f.dtype, device=f.device)
        lb = kappa * (f @ bg.T) + log_wb                                          # (M, N_b)
        lse_bg = torch.logsumexp(lb, dim=1)
        for c in torch.unique(y).tolist():
            sel = (y == c).nonzero(as_tuple=True)[0]
            lo = kappa * (f[sel] @ bank[c].T)                                     # (M_c, K)
            drop = ~vertex_valid[c].unsqueeze(0).expand_as(lo)
            if own_excl is not None:
                drop = drop | own_excl[sel]
            lo = lo.masked_fill(drop, _NEG)
            lse = torch.logaddexp(torch.logsumexp(lo, dim=1), lse_bg[sel])
            nll_in = nll_in.index_put((sel,), lse - pos[sel])
        if sampled is None:
            sampled = sample_class_vertices(vertex_valid, n_sample, generator)
        s_idx, s_ok = sampled
        N = s_idx.shape[1]
        check_shape("sampled idx", s_idx, (Y, N))
        S = bank[torch.arange(Y, device=bank.device)[:, None], s_idx]             # (Y, N, D)
        lc = kappa * (f @ S.reshape(Y * N, D).T)                                  # (M, Y*N)
        w = torch.ones(Y, Y, dtype=f.dtype, device=f.device) if omega is None else omega.to(f)
        check_shape("omega", w, (Y, Y))
        wy = w[y]                                                                 # (M, Y)
        pair_off = (wy <= 0) | F.one_hot(y, Y).bool()                              # dropped pairs + own class
        logw = torch.log(torch.where(pair_off, torch.ones_like(wy), wy))
        lc = lc.view(M, Y, N) + logw[:, :, None]
        lc = lc.masked_fill(pair_off[:, :, None] | ~s_ok[None], _NEG)
        lse_c = torch.logaddexp(pos, torch.logsumexp(lc.view(M, Y * N), dim=1))
        nll_cross = lse_c - pos
        loss_in, loss_cross = nll_in.mean(), nll_cross.mean()
    else:
        cols = torch.cat([bank.reshape(Y * K, D), bg], 0)
        logits = kappa * (f @ cols.T)                                              # (M, Y*K + N_b)
        vdrop = (~vertex_valid).reshape(1, Y * K).expand(M, Y * K)
        if own_excl is not None:
            o = torch.zeros(M, Y, K, dtype=torch.bool, device=f.device)
            o[torch.arange(M, device=f.device), y] = own_excl
            vdrop = vdrop | o.view(M, Y * K)
        lv = logits[:, : Y * K].masked_fill(vdrop, _NEG)
        lse = torch.logaddexp(torch.logsumexp(lv, 1), torch.logsumexp(logits[:, Y * K:] + log_wb, 1))
        loss_in = (lse - pos).mean()
        loss_cross = zero.detach()
    loss = loss_in + loss_cross
    reg = zero.detach()
    if bg_feats is not None and bg_reg_weight != 0 and bg_feats.shape[0] > 0:
        check_shape("bg_feats", bg_feats, (None, D))
        mean_c = bank[vertex_valid].mean(0)                                       # (D,)
        reg = bg_reg_weight * (bg_feats @ mean_c[:, None]).mean()
        loss = loss + reg
    out.update(loss=loss, loss_in=loss_in.detach(), loss_cross=loss_cross.detach(),
               loss_bg_reg=reg.detach())
    return out


def loss_flops(n_rows: int, n_vertices: int, n_background: int, n_classes: int, dim: int,
               contrast: Contrast = "grouped", n_sample: int = 32, n_bg_feats: int = 0, backward: bool = True) -> dict[str, int]:
    """Matrix-multiply FLOPs of :func:`compnet_loss` for one batch (2 per multiply-add).

    Args:
        n_rows: visible vertex rows ``M`` in the batch.
        n_vertices: ``K`` (padded) vertices per class.
        n_background: ``N_b``.
        n_classes: ``Y``.
        dim: ``D``.
        contrast: ``"grouped"`` or ``"full"``.
        n_sample: ``N`` (grouped).
        n_bg_feats: background features entering the regulariser (0 = regulariser off).
        backward: add the backward pass (gradients flow to the features only: one more
            product of the same size per forward product).

    Returns:
        ``{"forward": ..., "backward": ..., "total": ...}`` and ``columns`` (softmax width per row).
    """
    M, K, Nb, Y, D, N = n_rows, n_vertices, n_background, n_classes, dim, n_sample
    if contrast == "grouped":
        cols = K + Nb + Y * N
    elif contrast == "full":
        cols = Y * K + Nb
    else:
        raise ConfigError(f"contrast must be 'grouped' or 'full', got {contrast!r}")
    fwd = 2 * M * D * cols + 2 * n_bg_feats * D
    bwd = fwd if backward else 0
    return {"forward": fwd, "backward": bwd, "total": fwd + bwd, "columns": cols}
