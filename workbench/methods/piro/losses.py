"""PiRO's losses and the pose-invariant baselines' losses (functional form + modules).

Notation (one batch of P same-category object pairs (a, b), V views each):

* ``sv_a, sv_b (P, V, D)``: unit-norm single-view embeddings; ``mv_a, mv_b (P, D)``: unit-norm
  multi-view embeddings; ``d(x, y) = ||x - y||_2``.

PiRO (Sarkar & Kak, CVPR 2024):

* :func:`large_margin_softmax` -- L-Softmax (Liu et al., ICML'16) with margin ``m``:
  target logit ``||W_y|| ||x|| psi(theta_y)``, ``psi(t) = (-1)^k cos(m t) - 2k`` for
  ``t in [k pi/m, (k+1) pi/m]``; other logits ``||W_j|| ||x|| cos(theta_j)``; cross-entropy.
* :func:`select_confusers` -- the closest pair of views of two objects (eq. 4).
* :func:`pi_object_loss` -- ``[d(o_mv^a, o_con^a) - alpha]+ + [d(o_mv^b, o_con^b) - alpha]+
  + lambda ([beta - d_con]+ + [beta - d(o_mv^a, o_mv^b)]+)`` (eqs. 5-7), mean over pairs;
  ``d_con = ||o_con^a - o_con^b||^2`` when ``squared_confuser`` (the official code) else
  ``||.||`` (the paper's text).
* :func:`pi_category_loss` -- ``[d_sm^a - theta]+ + [d_sm^b - theta]+ + [d(c_mv^a, c_mv^b) - theta]+``
  with ``d_sm^x = mean_k d(c_k^x, c_mv^x)`` (eq. 8), mean over pairs.

Pose-invariant embeddings of Ho et al. (PIEs, CVPR 2019), built from a view-to-object model
``p(s|v) ~ exp(-alpha ||v - s||^2)`` over the objects ``s`` of the batch (their MV embeddings)
and an object-to-category model ``p(y|s) ~ exp(-beta ||s - c_y||^2)`` with learned unit-norm
class centres ``c``:

* :func:`pie_nca_loss` -- PI-CNN: ``-log sum_s p(y|s) p(s|v)`` with the softmax over every
  (object, class) pair; PI-Proxy (``exclude_target=True``): the proxy-NCA form, the target
  class left out of the denominator.
* :func:`pie_triplet_center_loss` -- PI-TC: ``[alpha d2(v, s_v) + beta d2(s_v, c_y)
  - alpha min_{s != s_v} d2(v, s) - beta min_{o != y} d2(s_v, c_o) + margin]+``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...core.errors import ShapeError


# ---------------------------------------------------------------------------- L-Softmax
def _cos_m_theta(cos: torch.Tensor, m: int) -> torch.Tensor:
    """``cos(m theta)`` as a polynomial in ``cos(theta)`` (multiple-angle formula; finite gradients)."""
    sin2 = (1.0 - cos * cos).clamp_min(0.0)
    out = torch.zeros_like(cos)
    for n in range(m // 2 + 1):
        out = out + ((-1) ** n) * math.comb(m, 2 * n) * cos ** (m - 2 * n) * sin2 ** n
    return out


def large_margin_logits(x: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margin: int = 4,
                        scale: float = 1.0, lam: float = 0.0) -> torch.Tensor:
    """Logits of the large-margin softmax.

    Args:
        x: ``(N, D)`` embeddings (any norm); weight: ``(D, C)`` class weights; labels: ``(N,)``.
        lam: the L-Softmax paper's annealing weight: the target uses
            ``(lam cos(theta_y) + psi(theta_y)) / (1 + lam)`` (``lam = 0``: the plain margin loss, as
            pytorch-metric-learning; a large ``lam``: nearly the ordinary softmax).
    Returns:
        ``(N, C)``: ``scale ||W_j|| ||x|| cos(theta_j)`` with the target entry replaced by
        ``scale ||W_y|| ||x|| psi(theta_y)``.
    """
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[0]:
        raise ShapeError(f"large_margin_logits: x {tuple(x.shape)} and weight {tuple(weight.shape)} "
                         "must be (N, D) and (D, C)")
    m = int(margin)
    x_norm = x.norm(dim=1).clamp_min(1e-12)                  # (N,)
    w_norm = weight.norm(dim=0).clamp_min(1e-12)             # (C,)
    cos = (x @ weight) / (x_norm[:, None] * w_norm[None, :])
    cos_t = cos.gather(1, labels[:, None]).squeeze(1).clamp(-1.0, 1.0)
    with torch.no_grad():
        k = torch.floor(torch.acos(cos_t) / (math.pi / m))
    psi = ((-1.0) ** k) * _cos_m_theta(cos_t, m) - 2.0 * k
    if lam:
        psi = (lam * cos_t + psi) / (1.0 + lam)
    mask = F.one_hot(labels, weight.shape[1]).to(cos.dtype)
    logits = cos + mask * (psi - cos_t)[:, None]
    return logits * (x_norm[:, None] * w_norm[None, :]) * scale


def large_margin_softmax(x: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margin: int = 4,
                         sample_weights: torch.Tensor | None = None, scale: float = 1.0,
                         lam: float = 0.0) -> torch.Tensor:
    """Large-margin softmax loss: mean over samples of ``w_i * CE(logits_i, y_i)`` (scalar)."""
    ce = F.cross_entropy(large_margin_logits(x, weight, labels, margin, scale, lam), labels, reduction="none")
    if sample_weights is not None:
        ce = ce * sample_weights
    return ce.mean()


@torch.no_grad()
def hard_miner_weights(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample weights of the official L_cat (a hardest-positive/negative miner's counts).

    The official code passes ``BatchEasyHardMiner(pos='hard', neg='hard')`` tuples to a
    *classification* loss, which only turns them into weights: every anchor with a positive
    contributes itself and its farthest positive, every anchor with a negative itself and its
    closest negative (distances between L2-normalised embeddings); sample ``i`` gets
    ``count_i / max count`` (0 when never mined; all 1 when nothing can be mined).

    Shapes: ``emb (N, D)``, ``labels (N,)`` -> ``(N,)``.
    """
    n = emb.shape[0]
    e = F.normalize(emb.float(), dim=1)
    dist = torch.cdist(e, e)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    pos_mask, neg_mask = same & ~eye, ~same
    counts = torch.zeros(n, device=emb.device)
    has_pos, has_neg = pos_mask.any(1), neg_mask.any(1)
    if not has_pos.any() and not has_neg.any():
        return torch.ones(n, device=emb.device, dtype=emb.dtype)
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).argmin(1)
    ones = torch.ones(n, device=emb.device)
    counts += has_pos.float() + has_neg.float()
    counts.index_add_(0, hardest_pos[has_pos], ones[has_pos])
    counts.index_add_(0, hardest_neg[has_neg], ones[has_neg])
    return (counts / counts.max()).to(emb.dtype)


class LargeMarginSoftmaxLoss(nn.Module):
    """L-Softmax with its own class weights ``W (D, C)``.

    ``trainable=True`` (default) makes ``W`` a parameter the optimiser updates.
    ``trainable=False`` reproduces the official code, where ``W`` lives in the loss module and
    is never given to the optimiser: it stays at its ``N(0, 1)`` initialisation (so
    ``||W_j|| ~ sqrt(D)``), i.e. L_cat pulls the category embeddings towards fixed random
    prototypes. ``W`` is drawn from a generator seeded with ``seed`` either way.
    ``miner_weights`` applies :func:`hard_miner_weights` (the official per-sample weights).
    ``anneal = (base, gamma, power, min)``: the L-Softmax paper's schedule of the weight ``lam``
    of the ordinary softmax term, ``lam = max(min, base (1 + gamma step)^-power)`` with ``step``
    set by the trainer (``base = 0``: no annealing, as the official code).
    """

    def __init__(self, num_classes: int, dim: int, margin: int = 4, trainable: bool = True,
                 miner_weights: bool = True, seed: int = 0, anneal: tuple = (0.0, 0.0, 1.0, 0.0)):
        super().__init__()
        self.anneal = tuple(float(a) for a in anneal)
        self.step = 0
        g = torch.Generator().manual_seed(int(seed))
        w = torch.randn(dim, num_classes, generator=g)
        if trainable:
            self.weight = nn.Parameter(w)
        else:
            self.register_buffer("weight", w)
        self.margin, self.miner_weights = int(margin), bool(miner_weights)

    def lam(self, step: int | None = None) -> float:
        """Annealing weight at ``step``: ``max(min, base (1 + gamma step)^-power)`` (Liu et al.)."""
        base, gamma, power, lam_min = self.anneal
        if base <= 0:
            return 0.0
        step = self.step if step is None else step
        return max(lam_min, base * (1.0 + gamma * step) ** (-power))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = hard_miner_weights(x, labels) if self.miner_weights else None
        return large_margin_softmax(x, self.weight, labels, self.margin, sample_weights=w, lam=self.lam())


# ---------------------------------------------------------------------------- PiRO pose-invariant losses
def _check_pair(name: str, sv_a, sv_b, mv_a, mv_b) -> None:
    if sv_a.ndim != 3 or sv_a.shape != sv_b.shape or mv_a.shape != mv_b.shape or \
            mv_a.shape != (sv_a.shape[0], sv_a.shape[2]):
        raise ShapeError(f"{name}: expected sv_a, sv_b (P, V, D) and mv_a, mv_b (P, D); got "
                         f"{tuple(sv_a.shape)}, {tuple(sv_b.shape)}, {tuple(mv_a.shape)}, {tuple(mv_b.shape)}")


def select_confusers(sv_a: torch.Tensor, sv_b: torch.Tensor):
    """The closest pair of views of objects a and b (their "confusers").

    Args:
        sv_a: ``(P, Va, D)``, sv_b: ``(P, Vb, D)``.
    Returns:
        ``(con_a (P, D), con_b (P, D), idx_a (P,), idx_b (P,), dist (P,))`` with
        ``(idx_a, idx_b) = argmin_{i, j} ||sv_a[:, i] - sv_b[:, j]||`` (first in row-major
        order on ties) and ``dist`` that (un-squared) distance.
    """
    d = torch.cdist(sv_a, sv_b)                               # (P, Va, Vb)
    p, _, vb = d.shape
    flat = d.reshape(p, -1).argmin(dim=1)
    ia, ib = flat // vb, flat % vb
    ar = torch.arange(p, device=sv_a.device)
    con_a, con_b = sv_a[ar, ia], sv_b[ar, ib]
    return con_a, con_b, ia, ib, (con_a - con_b).norm(dim=-1)


def pi_object_loss(sv_a: torch.Tensor, sv_b: torch.Tensor, mv_a: torch.Tensor, mv_b: torch.Tensor,
                   alpha: float = 0.25, beta: float = 1.0, inter_weight: float = 1.0,
                   squared_confuser: bool = True, reduce: bool = True) -> torch.Tensor:
    """L_piobj (object space), see the module docstring. Returns a scalar (or ``(P,)``)."""
    _check_pair("pi_object_loss", sv_a, sv_b, mv_a, mv_b)
    con_a, con_b, _, _, _ = select_confusers(sv_a, sv_b)
    diff = con_a - con_b
    d_con = (diff * diff).sum(-1) if squared_confuser else diff.norm(dim=-1)
    intra = F.relu((mv_a - con_a).norm(dim=-1) - alpha) + F.relu((mv_b - con_b).norm(dim=-1) - alpha)
    inter = F.relu(beta - d_con) + F.relu(beta - (mv_a - mv_b).norm(dim=-1))
    losses = intra + inter_weight * inter
    return losses.mean() if reduce else losses


def pi_category_loss(sv_a: torch.Tensor, sv_b: torch.Tensor, mv_a: torch.Tensor, mv_b: torch.Tensor,
                     theta: float = 0.25, reduce: bool = True) -> torch.Tensor:
    """L_picat (category space), see the module docstring. Returns a scalar (or ``(P,)``)."""
    _check_pair("pi_category_loss", sv_a, sv_b, mv_a, mv_b)
    d_sm_a = (sv_a - mv_a[:, None]).norm(dim=-1).mean(1)
    d_sm_b = (sv_b - mv_b[:, None]).norm(dim=-1).mean(1)
    losses = F.relu(d_sm_a - theta) + F.relu(d_sm_b - theta) + F.relu((mv_a - mv_b).norm(dim=-1) - theta)
    return losses.mean() if reduce else losses


# ---------------------------------------------------------------------------- PIE baselines (Ho et al.)
def _sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def _check_pie(sv, mv, centers, labels):
    if sv.ndim != 3 or mv.shape != (sv.shape[0], sv.shape[2]) or centers.ndim != 2 or \
            centers.shape[1] != sv.shape[2] or labels.shape != (sv.shape[0],):
        raise ShapeError(f"PIE loss: expected sv (B, V, D), mv (B, D), centers (C, D), labels (B,); got "
                         f"{tuple(sv.shape)}, {tuple(mv.shape)}, {tuple(centers.shape)}, {tuple(labels.shape)}")


def pie_nca_loss(sv: torch.Tensor, mv: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor,
                 alpha: float = 1.0, beta: float = 1.0, exclude_target: bool = False) -> torch.Tensor:
    """PI-CNN (``exclude_target=False``) / PI-Proxy (``True``) loss of Ho et al.

    For every view ``v`` (of object ``i``, class ``y``) and every object ``s`` of the batch and
    class ``o``: ``z(v, s, o) = -alpha ||v - mv_s||^2 - beta ||mv_s - c_o||^2``;
    loss_v = ``-log sum_s exp z(v,s,y) + log sum_{s, o (!= y if exclude_target)} exp z(v,s,o)``;
    mean over views. Shapes: ``sv (B, V, D)``, ``mv (B, D)``, ``centers (C, D)``, ``labels (B,)``.
    """
    _check_pie(sv, mv, centers, labels)
    b, v, d = sv.shape
    views = sv.reshape(b * v, d)
    y = labels.repeat_interleave(v)                            # (BV,)
    z_vs = -alpha * _sq_dist(views, mv)                        # (BV, B)
    z_so = -beta * _sq_dist(mv, centers)                       # (B, C)
    z = z_vs[:, :, None] + z_so[None, :, :]                    # (BV, B, C)
    target = torch.logsumexp(z.gather(2, y[:, None, None].expand(-1, b, 1)).squeeze(2), dim=1)
    if exclude_target:
        mask = F.one_hot(y, centers.shape[0]).bool()[:, None, :].expand_as(z)
        z = z.masked_fill(mask, float("-inf"))
    denom = torch.logsumexp(z.reshape(b * v, -1), dim=1)
    return (denom - target).mean()


def pie_triplet_center_loss(sv: torch.Tensor, mv: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor,
                            alpha: float = 1.0, beta: float = 1.0, margin: float = 1.0) -> torch.Tensor:
    """PI-TC loss of Ho et al. (mean over views; see the module docstring).

    Needs at least two objects in the batch and two classes. Shapes as :func:`pie_nca_loss`.
    """
    _check_pie(sv, mv, centers, labels)
    b, v, d = sv.shape
    views = sv.reshape(b * v, d)
    own = torch.arange(b, device=sv.device).repeat_interleave(v)
    y = labels.repeat_interleave(v)
    d_vs = _sq_dist(views, mv)                                 # (BV, B)
    d_sc = _sq_dist(mv, centers)                               # (B, C)
    d_pos_obj = d_vs.gather(1, own[:, None]).squeeze(1)
    d_neg_obj = d_vs.masked_fill(F.one_hot(own, b).bool(), float("inf")).min(1).values
    d_pos_cls = d_sc[own, y]
    d_neg_cls = d_sc[own].masked_fill(F.one_hot(y, centers.shape[0]).bool(), float("inf")).min(1).values
    return F.relu(alpha * d_pos_obj + beta * d_pos_cls - alpha * d_neg_obj - beta * d_neg_cls + margin).mean()


# ---------------------------------------------------------------------------- the training objective
class PiroCriterion(nn.Module):
    """The training objective of a config's ``loss`` section, with its own parameters.

    ``forward(out_a, out_b, labels)`` takes the model outputs (dicts of :class:`~.model.PiroNet`)
    of the anchor and partner objects of P same-category pairs and their category ``labels (P,)``,
    and returns a dict of scalar tensors: ``loss`` (the total) and each term.

    * ``piro``: ``L_cat^a + L_cat^b + L_picat + L_piobj`` (eq. 10; each term averaged over the
      pairs, L_cat over the pairs' views), with the terms switched by ``use_*``.
    * ``pi_cnn``/``pi_proxy``/``pi_tc``: the PIE loss on the category-space embeddings of all
      2P objects of the batch (the baselines use a single space).
    * ``mvcnn``: cross-entropy of a linear classifier on the mean of the raw view embeddings.

    Parameters it owns: the L-Softmax weights (``class_weights``, trainable or a buffer), the PIE
    class centres (``centers``, used unit-normalised) or the MV-CNN classifier.
    """

    def __init__(self, loss_cfg, num_classes: int, cat_dim: int, seed: int = 0):
        super().__init__()
        self.cfg = loss_cfg
        self.objective = loss_cfg.objective
        self.lsoftmax = None
        if self.objective == "piro" and loss_cfg.use_cat:
            self.lsoftmax = LargeMarginSoftmaxLoss(num_classes, cat_dim, margin=loss_cfg.margin,
                                                   trainable=loss_cfg.train_class_weights,
                                                   miner_weights=loss_cfg.miner_weights, seed=seed,
                                                   anneal=tuple(loss_cfg.lsoftmax_anneal))
        if self.objective in ("pi_cnn", "pi_proxy", "pi_tc"):
            g = torch.Generator().manual_seed(int(seed))
            self.centers = nn.Parameter(torch.randn(num_classes, cat_dim, generator=g))
        if self.objective == "mvcnn":
            self.classifier = nn.Linear(cat_dim, num_classes)

    def set_step(self, step: int) -> None:
        """The training iteration (drives the L-Softmax annealing)."""
        if self.lsoftmax is not None:
            self.lsoftmax.step = int(step)

    def forward(self, out_a: dict, out_b: dict, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if self.objective == "piro":
            p, v = out_a["cat_sv"].shape[:2]
            if self.lsoftmax is not None:
                lv = labels.repeat_interleave(v)
                terms["l_cat"] = (self.lsoftmax(out_a["cat_sv"].reshape(p * v, -1), lv)
                                  + self.lsoftmax(out_b["cat_sv"].reshape(p * v, -1), lv))
            if c.use_picat:
                terms["l_picat"] = pi_category_loss(out_a["cat_sv"], out_b["cat_sv"], out_a["cat_mv"],
                                                    out_b["cat_mv"], theta=c.theta)
            if c.use_piobj:
                terms["l_piobj"] = pi_object_loss(out_a["obj_sv"], out_b["obj_sv"], out_a["obj_mv"],
                                                  out_b["obj_mv"], alpha=c.alpha, beta=c.beta,
                                                  inter_weight=c.inter_weight,
                                                  squared_confuser=c.squared_confuser)
        else:
            sv = torch.cat([out_a["cat_sv"], out_b["cat_sv"]])
            mv = torch.cat([out_a["cat_mv"], out_b["cat_mv"]])
            y = torch.cat([labels, labels])
            if self.objective == "mvcnn":
                raw = torch.cat([out_a["cat_raw"], out_b["cat_raw"]]).mean(1)
                terms["l_mvcnn"] = F.cross_entropy(self.classifier(raw), y)
            else:
                centers = F.normalize(self.centers, dim=1)
                if self.objective == "pi_tc":
                    terms["l_pitc"] = pie_triplet_center_loss(sv, mv, centers, y, c.pie_alpha, c.pie_beta,
                                                              c.pie_margin)
                else:
                    terms[f"l_{self.objective.replace('_', '')}"] = pie_nca_loss(
                        sv, mv, centers, y, c.pie_alpha, c.pie_beta,
                        exclude_target=self.objective == "pi_proxy")
        terms["loss"] = sum(terms.values())
        return terms
