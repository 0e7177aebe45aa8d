"""CMIC's view of the retrieval data: in-memory query sets, shape repositories, batch sampling.

Queries (:class:`QuerySet`) and repositories (:class:`Repository`) are loaded once from the data
layer's ``RetrievalDataset`` / ``ShapeRepository`` (or built from tensors, for tests) and kept in
memory as ``uint8`` (images, masks, renders), which is what a 2-core CPU run needs (no PNG decoding
per step). Category labels are re-indexed to positions in :attr:`RetrievalData.categories` (names).

Training batches (:class:`BatchSampler`) follow the official code: ``B`` query images, their shapes
merged (duplicates share one column), then filled up with random other shapes of the repository
to ``shapes_per_batch`` *distinct* shapes. Batch ``k`` depends only on ``(seed, k)`` (resumable):
queries are drawn epoch by epoch from a per-epoch permutation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...core.errors import ConfigError, DataError, check_shape

log = logging.getLogger(__name__)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@dataclass
class QuerySet:
    """Query images of one split.

    Attributes:
        images: ``(N, 3, H, W)`` uint8; masks: ``(N, 1, H, W)`` uint8.
        shape_ids: ``(N,)`` long, the dataset's shape id of each query.
        categories: ``(N,)`` long, index into :attr:`RetrievalData.categories`.
    """

    images: torch.Tensor
    masks: torch.Tensor
    shape_ids: torch.Tensor
    categories: torch.Tensor

    def __post_init__(self):
        n = self.images.shape[0]
        check_shape("query images", self.images, (n, 3, None, None))
        check_shape("query masks", self.masks, (n, 1, self.images.shape[2], self.images.shape[3]))
        check_shape("query shape ids", self.shape_ids, (n,))
        check_shape("query categories", self.categories, (n,))
        self.images, self.masks = _to_uint8(self.images), _to_uint8(self.masks)
        self.shape_ids, self.categories = self.shape_ids.long(), self.categories.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def get(self, idx: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (n, 3, H, W), masks (n, 1, H, W))`` float in [0, 1]."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return _to_float(self.images[idx]), _to_float(self.masks[idx])

    def subset(self, keep: torch.Tensor) -> "QuerySet":
        keep = torch.as_tensor(keep)
        return QuerySet(self.images[keep], self.masks[keep], self.shape_ids[keep], self.categories[keep])


@dataclass
class Repository:
    """A shape repository: ``M`` grey renders per shape.

    Attributes:
        renders: ``(S, M, 1, H, W)`` uint8 (white background).
        shape_ids: ``(S,)`` long dataset shape ids; categories: ``(S,)`` long category indices.
        mesh_paths: ``S`` paths of the shapes' meshes (``None`` where unknown).
        families: ``S`` fine-grained family names (the synthetic preset's near-identical variants
            of one prototype; ``""`` where unknown).
    """

    renders: torch.Tensor
    shape_ids: torch.Tensor
    categories: torch.Tensor
    mesh_paths: list = field(default_factory=list)
    families: list = field(default_factory=list)

    def __post_init__(self):
        s = self.renders.shape[0]
        check_shape("renders", self.renders, (s, None, 1, None, None))
        check_shape("repository shape ids", self.shape_ids, (s,))
        check_shape("repository categories", self.categories, (s,))
        self.renders = _to_uint8(self.renders)
        self.shape_ids, self.categories = self.shape_ids.long(), self.categories.long()
        if not self.mesh_paths:
            self.mesh_paths = [None] * s
        if len(self.mesh_paths) != s:
            raise DataError(f"repository has {s} shapes but {len(self.mesh_paths)} mesh paths")
        self.families = [f if isinstance(f, str) else "" for f in self.families] if self.families else [""] * s
        if len(self.families) != s:
            raise DataError(f"repository has {s} shapes but {len(self.families)} family names")
        if len(set(self.shape_ids.tolist())) != s:
            raise DataError("repository shape ids are not unique")
        self._pos = {int(k): i for i, k in enumerate(self.shape_ids.tolist())}

    def __len__(self) -> int:
        return self.renders.shape[0]

    def positions(self, shape_ids: torch.Tensor) -> torch.Tensor:
        """Row of each shape id in this repository, ``-1`` where it is not in it."""
        return torch.tensor([self._pos.get(int(k), -1) for k in shape_ids.tolist()], dtype=torch.long)

    def get(self, idx: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """``(n, M, 1, H, W)`` float renders in [0, 1]."""
        return _to_float(self.renders[torch.as_tensor(idx, dtype=torch.long)])

    def subset(self, keep: torch.Tensor) -> "Repository":
        keep = torch.as_tensor(keep)
        idx = keep.nonzero().flatten().tolist() if keep.dtype == torch.bool else keep.tolist()
        return Repository(self.renders[keep], self.shape_ids[keep], self.categories[keep],
                          [self.mesh_paths[i] for i in idx], [self.families[i] for i in idx])


@dataclass
class RetrievalData:
    """Everything a CMIC run needs: training / test queries, the seen and unseen repositories."""

    train: QuerySet
    test: QuerySet
    seen: Repository
    unseen: Repository | None
    categories: list[str]
    root: Path | None = None
    name: str = "tensors"

    def restrict(self, names: Sequence[str]) -> "RetrievalData":
        """Keep only the categories ``names`` (a fine-grained single-category run for one name)."""
        if not names:
            return self
        unknown = [n for n in names if n not in self.categories]
        if unknown:
            raise ConfigError(f"data.categories: unknown categories {unknown} (available: {self.categories})")
        ids = torch.tensor([self.categories.index(n) for n in names])

        def keep(c):
            return torch.isin(c, ids)

        unseen = self.unseen.subset(keep(self.unseen.categories)) if self.unseen is not None else None
        if unseen is not None and len(unseen) == 0:
            unseen = None
        out = RetrievalData(self.train.subset(keep(self.train.categories)), self.test.subset(keep(self.test.categories)),
                            self.seen.subset(keep(self.seen.categories)), unseen, self.categories, self.root,
                            f"{self.name}[{','.join(names)}]")
        if len(out.train) == 0 or len(out.seen) == 0:
            raise DataError(f"no training queries or shapes left for categories {list(names)}")
        return out

    def hold_out(self, per_category: int) -> "RetrievalData":
        """Hold out the last ``per_category`` shapes (by id) of every category as the unseen gallery.

        The held-out shapes leave the seen gallery, and their training and test queries are
        dropped, so the model never sees them and no test query has its ground truth among them.
        A category keeps at least one seen shape. Returns ``self`` for ``per_category <= 0``.
        """
        if per_category <= 0:
            return self
        held = torch.zeros(len(self.seen), dtype=torch.bool)
        for c in sorted(set(self.seen.categories.tolist())):
            rows = (self.seen.categories == c).nonzero().flatten()
            rows = rows[self.seen.shape_ids[rows].argsort()]
            k = min(per_category, len(rows) - 1)
            if k > 0:
                held[rows[-k:]] = True
        if not held.any():
            return self
        unseen = self.seen.subset(held)
        held_ids = unseen.shape_ids

        def keep(qs: QuerySet) -> QuerySet:
            return qs.subset(~torch.isin(qs.shape_ids, held_ids))

        return RetrievalData(keep(self.train), keep(self.test), self.seen.subset(~held), unseen, self.categories,
                             self.root, f"{self.name}+holdout{per_category}")

    def summary(self) -> dict:
        return {"dataset": self.name, "train_queries": len(self.train), "test_queries": len(self.test),
                "seen_shapes": len(self.seen), "unseen_shapes": 0 if self.unseen is None else len(self.unseen),
                "categories": len(set(self.seen.categories.tolist()))}


# ------------------------------------------------------------------ loading from the data layer
_CACHE: dict = {}


def _resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    from .augment import resize

    return resize(x.float()[None], size)[0]


def _load_queries(ds, split: str, cat_map: dict[int, int], size: int = 0) -> QuerySet:
    """All queries of ``split`` in memory (uint8), resized to ``size`` x ``size`` when ``size > 0``."""
    from ...data import RetrievalDataset

    qs = RetrievalDataset(ds, split)
    n = len(qs)
    if n == 0:
        raise DataError(f"{_where(ds)}: split '{split}' has no retrieval queries")
    first = qs[0]
    H, W = (size, size) if size > 0 else tuple(first["image"].shape[-2:])
    images = torch.empty(n, 3, H, W, dtype=torch.uint8)
    masks = torch.empty(n, 1, H, W, dtype=torch.uint8)
    shapes = torch.empty(n, dtype=torch.long)
    cats = torch.empty(n, dtype=torch.long)
    for i in range(n):
        item = first if i == 0 else qs[i]
        img, mask = item["image"], item["mask"]
        if size > 0:
            img, mask = _resize_to(img, size), _resize_to(mask, size)
        elif tuple(img.shape[-2:]) != (H, W):
            raise DataError(f"{_where(ds)}: query {i} of split '{split}' is {tuple(img.shape[-2:])}, the first is "
                            f"{(H, W)}; set data.load_size to resize every query")
        images[i], masks[i] = _to_uint8(img), _to_uint8(mask)
        shapes[i] = int(item["shape"])
        cats[i] = cat_map[int(item["category"])]
    return QuerySet(images, masks, shapes, cats)


def _load_repository(ds, split: str, cat_map: dict[int, int], size: int = 0) -> Repository:
    from ...data import ShapeRepository

    repo = ShapeRepository(ds, split)
    renders = torch.as_tensor(repo.renders)
    if size > 0:
        from .augment import resize

        renders = torch.cat([resize(renders[i:i + 64].float(), size) for i in range(0, len(renders), 64)])
    cats = torch.as_tensor(repo.categories).long()
    return Repository(renders, torch.as_tensor(repo.shape_ids).long(),
                      torch.tensor([cat_map[int(c)] for c in cats.tolist()], dtype=torch.long),
                      [str(p) if p else None for p in list(repo.mesh_paths)],
                      list(repo.families))


def _where(ds) -> str:
    return str(getattr(ds, "root", ds))


def open_dataset(dcfg):
    """The dataset of a :class:`~.config.DataConfig`: a directory in the workbench schema, or the
    in-memory index a real-dataset adapter (``pix3d``, ``compcars``, ``stanford_cars``) reads from
    ``dcfg.root``; the synthetic preset is generated on first use."""
    if dcfg.source == "synthetic":
        if dcfg.root:
            root = Path(dcfg.root).expanduser()
            if not root.is_dir():
                raise DataError(f"data.root {root} is not a directory")
            return root
        from ...data import generate

        return Path(generate(dcfg.preset, profile=dcfg.profile, seed=dcfg.seed,
                             overrides=list(dcfg.preset_overrides) or None))
    if not dcfg.root:
        raise ConfigError(f"data.source '{dcfg.source}' needs data.root (the dataset's official layout)")
    from ...data import read_dataset

    return read_dataset(dcfg.source, Path(dcfg.root).expanduser())


def load_data(dcfg) -> RetrievalData:
    """Load (cached per process) the queries and repositories of a :class:`~.config.DataConfig`.

    Order: load the splits, restrict to ``dcfg.categories``, then hold out ``dcfg.unseen_holdout``
    shapes per category as the unseen gallery unless the dataset has ``dcfg.unseen_repository``.
    """
    key = (dcfg.source, dcfg.root, dcfg.preset, dcfg.profile, dcfg.seed, dcfg.train_split, dcfg.test_split,
           dcfg.repository, dcfg.unseen_repository, dcfg.load_size)
    if key not in _CACHE:
        ds = open_dataset(dcfg)
        from ...data import DatasetIndex

        meta = ds.meta if isinstance(ds, DatasetIndex) else DatasetIndex(ds).meta
        names = [str(c) for c in meta.get("categories", [])]
        cat_map = {i: i for i in range(len(names))}
        size = dcfg.load_size
        train = _load_queries(ds, dcfg.train_split, cat_map, size)
        test = _load_queries(ds, dcfg.test_split, cat_map, size)
        seen = _load_repository(ds, dcfg.repository, cat_map, size)
        unseen = _load_repository(ds, dcfg.unseen_repository, cat_map, size) if dcfg.unseen_repository else None
        if unseen is not None and len(unseen) == 0:
            unseen = None
        name = str(meta.get("name") or Path(_where(ds)).name)
        _CACHE.clear()  # keep one dataset in memory
        _CACHE[key] = RetrievalData(train, test, seen, unseen, names, Path(_where(ds)), f"{name}/{dcfg.repository}")
    data = _CACHE[key].restrict(list(dcfg.categories))
    if data.unseen is None:
        data = data.hold_out(dcfg.unseen_holdout)
    return data


# ------------------------------------------------------------------ batches
class BatchSampler:
    """Training batches of queries + distinct shapes (see the module docstring).

    Args:
        queries: the training :class:`QuerySet`; repository: the :class:`Repository` the query
            shapes live in (queries whose shape is missing from it are dropped, with a warning).
        batch_size: queries per batch; shapes_per_batch: distinct shapes per batch (>= batch_size).
        seed: seed of the query order and of the filler shapes.
    """

    def __init__(self, queries: QuerySet, repository: Repository, batch_size: int, shapes_per_batch: int,
                 seed: int = 0):
        pos = repository.positions(queries.shape_ids)
        ok = pos >= 0
        if not bool(ok.all()):
            log.warning("%d of %d training queries show shapes outside the repository: dropped",
                        int((~ok).sum()), len(queries))
        self.query_index = ok.nonzero().flatten()
        if len(self.query_index) == 0:
            raise DataError("no training query has its shape in the repository")
        self.query_pos = pos
        self.queries, self.repository = queries, repository
        self.batch_size = min(batch_size, len(self.query_index))
        self.shapes_per_batch = min(max(shapes_per_batch, self.batch_size), len(repository))
        self.seed = int(seed)

    def __len__(self) -> int:
        """Batches per epoch."""
        return max(1, len(self.query_index) // self.batch_size)

    def indices(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Query rows ``(B,)`` and repository rows of the batch's shapes ``(S_b,)`` of batch ``k``."""
        per_epoch = len(self)
        epoch, j = divmod(int(k), per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.query_index))
        q = self.query_index[torch.from_numpy(perm[j * self.batch_size:(j + 1) * self.batch_size])]
        own = torch.unique(self.query_pos[q], sorted=False)
        rng = np.random.default_rng([self.seed, 1_000_003, int(k)])
        need = self.shapes_per_batch - len(own)
        if need > 0:
            taken = np.zeros(len(self.repository), bool)
            taken[own.numpy()] = True
            others = np.flatnonzero(~taken)
            fill = torch.from_numpy(rng.choice(others, size=min(need, len(others)), replace=False)).long()
            shapes = torch.cat([own, fill])
        else:
            shapes = own
        return q, shapes

    def batch(self, k: int) -> dict:
        """Batch ``k``: ``images (B,3,H,W)``, ``masks (B,1,H,W)``, ``renders (S_b,M,1,h,w)`` float in
        [0, 1]; ``target (B,)`` column of each query's shape; ``query_cat (B,)``, ``shape_cat (S_b,)``;
        ``query_index (B,)`` and ``shape_index (S_b,)`` rows in the query set / repository."""
        q, shapes = self.indices(k)
        lookup = torch.full((len(self.repository),), -1, dtype=torch.long)
        lookup[shapes] = torch.arange(len(shapes))
        images, masks = self.queries.get(q)
        return {"images": images, "masks": masks, "renders": self.repository.get(shapes),
                "target": lookup[self.query_pos[q]], "query_cat": self.queries.categories[q],
                "shape_cat": self.repository.categories[shapes], "query_index": q, "shape_index": shapes}
