"""Training-pair sampling: same-category object pairs with V views each.

As the official data utility: every object is an anchor once per pass (in shuffled order);
its partner is drawn uniformly from the *other* objects of its category; both objects are seen
through the same view indices, in a random order (``n_views`` of them, all by default).
Objects alone in their category cannot be anchors (no partner exists) and are skipped.

The sampler is stateless: batch ``k`` depends only on ``(seed, k)`` (anchor order of pass ``e``
from ``default_rng([seed, e])``, partners and views from ``default_rng([seed, 1_000_003, k])``),
so a resumed run sees exactly the batches of an uninterrupted one (the contract of
:mod:`workbench.train.data`).
"""
from __future__ import annotations

import numpy as np
import torch

from ...core.errors import DataError


class PairSampler:
    """Pair batches by index.

    Args:
        categories: ``(N,)`` category id of every object.
        pairs_per_batch: pairs P per batch.
        n_views_total: views available per object; n_views: views drawn per pair (0 = all).
        seed: data-order seed.

    ``sampler[k]`` (or ``sampler.batch(k)``) returns ``(anchors (P,), partners (P,), views
    (P, n_views))`` int64 tensors with ``categories[anchors] == categories[partners]`` and
    ``anchors != partners``. Batches ``0, 1, ...`` walk through the anchors pass after pass.
    """

    def __init__(self, categories, pairs_per_batch: int, n_views_total: int, n_views: int = 0, seed: int = 0):
        cats = np.asarray(categories, dtype=np.int64)
        self.categories = cats
        self.P = int(pairs_per_batch)
        self.V = int(n_views_total)
        self.n_views = int(n_views) if n_views else self.V
        self.seed = int(seed)
        if self.P < 1:
            raise DataError(f"PairSampler: pairs_per_batch must be >= 1, got {pairs_per_batch}")
        if self.n_views > self.V or self.n_views < 1:
            raise DataError(f"PairSampler: n_views={n_views} but objects have {self.V} views")
        self.members = {int(c): np.nonzero(cats == c)[0] for c in np.unique(cats)}
        self.anchors = np.array([i for i, c in enumerate(cats) if len(self.members[int(c)]) >= 2], dtype=np.int64)
        if self.anchors.size == 0:
            raise DataError("PairSampler: no category has two objects, so no same-category pair exists")
        self._perm: tuple[int, np.ndarray] | None = None

    def _order(self, e: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != e:
            self._perm = (e, np.random.default_rng([self.seed, e]).permutation(self.anchors))
        return self._perm[1]

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        na = self.anchors.size
        rng = np.random.default_rng([self.seed, 1_000_003, int(k)])
        anchors, partners, views = [], [], []
        for j in range(self.P):
            e, i = divmod(int(k) * self.P + j, na)
            a = int(self._order(e)[i])
            others = self.members[int(self.categories[a])]
            others = others[others != a]
            anchors.append(a)
            partners.append(int(others[rng.integers(others.size)]))
            views.append(rng.permutation(self.V)[: self.n_views])
        return torch.tensor(anchors), torch.tensor(partners), torch.as_tensor(np.stack(views))

    __getitem__ = batch

    def __iter__(self):
        k = 0
        while True:
            yield self.batch(k)
            k += 1
