"""Resumable, infinite batch streams: batch ``k`` is the same batch whether or not the run resumed.

The :class:`~workbench.train.Trainer` asks for data with a *batch factory*: a callable
``batches(start) -> iterator`` that yields the micro-batches ``start, start + 1, ...`` forever.
Because batch ``k`` depends only on ``(seed, k)``, a run resumed at step ``s`` sees exactly the
batches the uninterrupted run would have seen. Two factories cover most needs:

* :class:`ResumableLoader` -- a map-style ``Dataset`` shuffled per epoch from ``(seed, epoch)``,
  batched and collated by a ``DataLoader`` (workers allowed); under ``torchrun`` each process
  takes its own slice of every global batch;
* :func:`step_batches` -- ``fn(k) -> batch`` for procedurally generated data.

Randomness: data augmentation done in ``step_fn`` or in ``Dataset.__getitem__`` with
``num_workers=0`` uses the global RNGs, which the checkpoint restores, so it is reproduced
exactly after a resume. Augmentation drawn inside DataLoader *worker processes* is seeded per
``(seed, start)`` and therefore not bit-identical across a resume; derive it from the sample
index or move it to ``step_fn`` when exactness matters.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..core.errors import DataError

BatchFactory = Callable[[int], Iterator[Any]]


def move_to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Recursively move tensors in dicts / lists / tuples (and namedtuples) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return type(batch)((k, move_to_device(v, device, non_blocking)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


def step_batches(fn: Callable[[int], Any]) -> BatchFactory:
    """Batch factory from ``fn(k) -> batch`` (k = 0, 1, 2, ... the micro-batch index).

    Example: ``step_batches(lambda k: make_batch(torch.Generator().manual_seed(1000 * seed + k)))``.
    """

    def factory(start: int) -> Iterator[Any]:
        return (fn(k) for k in itertools.count(int(start)))

    return factory


class _StepBatchSampler:
    """Infinite batch sampler yielding the index lists of micro-batches ``start, start+1, ...``."""

    def __init__(self, loader: "ResumableLoader", start: int, rank: int, world_size: int):
        self.loader, self.start, self.rank, self.world_size = loader, start, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        while True:
            yield self.loader.indices(k, self.rank, self.world_size)
            k += 1


class ResumableLoader:
    """Infinite, exactly resumable batches from a map-style dataset (see the module docstring).

    Epoch ``e`` is a permutation of ``range(len(dataset))`` drawn from ``numpy``'s
    ``default_rng([seed, e])`` (or the identity when ``shuffle=False``). Global batch ``k``
    (``k = e * steps_per_epoch + i``) takes positions ``[i*G, (i+1)*G)`` of that permutation with
    ``G = batch_size * world_size``; process ``r`` takes its ``batch_size`` slice. The incomplete
    tail of each epoch is dropped (a different tail every epoch when shuffling).

    Args:
        dataset: map-style dataset (``__len__`` and ``__getitem__``).
        batch_size: samples per process per micro-batch.
        seed: data-order seed.
        shuffle: reshuffle every epoch.
        collate_fn: as for ``DataLoader`` (default: torch's default collate).
        num_workers, pin_memory: as for ``DataLoader``.
        rank, world_size: default to the current process group / ``torchrun`` environment.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, shuffle: bool = True,
                 collate_fn: Callable | None = None, num_workers: int = 0, pin_memory: bool = False,
                 rank: int | None = None, world_size: int | None = None):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self._rank, self._world_size = rank, world_size
        self._perm_cache: tuple[int, np.ndarray] | None = None
        if self.batch_size < 1:
            raise DataError(f"ResumableLoader: batch_size must be >= 1, got {batch_size}")

    # ------------------------------------------------------------------ indexing
    def _dist(self) -> tuple[int, int]:
        from .distributed import dist_info

        info = dist_info()
        rank = info.rank if self._rank is None else self._rank
        ws = info.world_size if self._world_size is None else self._world_size
        return rank, ws

    def steps_per_epoch(self, world_size: int | None = None) -> int:
        """Global batches per pass over the dataset."""
        ws = self._dist()[1] if world_size is None else world_size
        n = len(self.dataset)
        spe = n // (self.batch_size * ws)
        if spe < 1:
            raise DataError(f"ResumableLoader: dataset has {n} items, fewer than one global batch "
                            f"({self.batch_size} x {ws} processes)")
        return spe

    def permutation(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``."""
        if self._perm_cache is not None and self._perm_cache[0] == epoch:
            return self._perm_cache[1]
        n = len(self.dataset)
        perm = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        self._perm_cache = (epoch, perm)
        return perm

    def indices(self, k: int, rank: int | None = None, world_size: int | None = None) -> list[int]:
        """Dataset indices of micro-batch ``k`` for process ``rank``."""
        if rank is None or world_size is None:
            r0, ws0 = self._dist()
            rank = r0 if rank is None else rank
            world_size = ws0 if world_size is None else world_size
        ws = world_size
        spe = self.steps_per_epoch(ws)
        epoch, i = divmod(int(k), spe)
        g = self.batch_size * ws
        lo = i * g + rank * self.batch_size
        return self.permutation(epoch)[lo:lo + self.batch_size].tolist()

    # ------------------------------------------------------------------ factory
    def __call__(self, start: int = 0) -> Iterator[Any]:
        """Iterator over micro-batches ``start, start + 1, ...`` (infinite)."""
        rank, ws = self._dist()
        self.steps_per_epoch(ws)  # fail early on a too-small dataset
        # A dedicated generator: DataLoader otherwise draws its base seed from the *global* RNG
        # when an iterator is created, which would shift the training RNG after a resume.
        gen = torch.Generator()
        gen.manual_seed(int(np.random.default_rng([self.seed, int(start), rank]).integers(2**62)))
        loader = DataLoader(self.dataset, batch_sampler=_StepBatchSampler(self, int(start), rank, ws),
                            collate_fn=self.collate_fn, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=gen,
                            persistent_workers=False)
        return iter(loader)
