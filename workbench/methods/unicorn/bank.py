"""The swap-reconstruction memory bank (FIFO of past instances) and its neighbour selection.

The bank keeps, for the last M training instances, the image (uint8), the shape and texture codes
and the rotation of the chosen candidate, all detached. For a query with rotation ``R_q`` and a
target viewpoint bin ``v`` (V bins splitting the relative rotation angle range, default
[20, 180] deg), the candidates are the bank items whose geodesic angle to ``R_q`` falls in bin v;
among them the nearest by texture code (L2) and the nearest by shape code are returned. A query
with no candidate in its bin is marked invalid and its swap loss is skipped (reference quirk 7).
The neighbours' parameters are recomputed from the stored images with the *current* network by
the caller (``train.py``), as in the official code.
"""
from __future__ import annotations

import math

import torch

__all__ = ["MemoryBank", "relative_angle", "bin_edges"]


def relative_angle(Ra: torch.Tensor, Rb: torch.Tensor) -> torch.Tensor:
    """Geodesic angles (radians) between every ``Ra (B, 3, 3)`` and every ``Rb (M, 3, 3)`` -> ``(B, M)``."""
    tr = torch.einsum("bij,mij->bm", Ra, Rb)           # trace(Ra^T Rb)
    return torch.arccos(((tr - 1.0) / 2.0).clamp(-1.0, 1.0))


def bin_edges(bins: int, angle_range=(20.0, 180.0)) -> torch.Tensor:
    """``(bins + 1,)`` bin edges in radians over ``angle_range`` degrees."""
    return torch.linspace(math.radians(angle_range[0]), math.radians(angle_range[1]), bins + 1)


class MemoryBank:
    """FIFO memory of ``size`` instances (see the module docstring).

    Args:
        size: M.
        shape_dim, texture_dim: code sizes (the full, unmasked sizes).
        image_shape: ``(3, H, W)``.
        bins, angle_range: viewpoint bins over the relative rotation angle (degrees).
    """

    def __init__(self, size: int, shape_dim: int, texture_dim: int, image_shape=(3, 64, 64), bins: int = 5,
                 angle_range=(20.0, 180.0)):
        self.size = int(size)
        self.bins = int(bins)
        self.angle_range = tuple(float(a) for a in angle_range)
        self.images = torch.zeros(self.size, *image_shape, dtype=torch.uint8)
        self.z_sh = torch.zeros(self.size, max(shape_dim, 1))
        self.z_tx = torch.zeros(self.size, texture_dim)
        self.R = torch.eye(3).repeat(self.size, 1, 1)
        self.ptr = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def push(self, images: torch.Tensor, z_sh: torch.Tensor, z_tx: torch.Tensor, R: torch.Tensor) -> None:
        """Append a batch (``images (B, 3, H, W)`` in [0, 1], codes, ``R (B, 3, 3)``); the oldest go first."""
        B = images.shape[0]
        if z_sh.shape[1] == 0:
            z_sh = z_sh.new_zeros(B, 1)
        idx = (self.ptr + torch.arange(B)) % self.size
        self.images[idx] = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        self.z_sh[idx] = z_sh.detach().float().cpu()
        self.z_tx[idx] = z_tx.detach().float().cpu()
        self.R[idx] = R.detach().float().cpu()
        self.ptr = int((self.ptr + B) % self.size)
        self.count = min(self.count + B, self.size)

    def get_images(self, idx: torch.Tensor) -> torch.Tensor:
        return self.images[idx.cpu()].float() / 255.0

    def select(self, R: torch.Tensor, z_sh: torch.Tensor, z_tx: torch.Tensor, bins: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neighbours of each query in its viewpoint bin.

        Args: ``R (B, 3, 3)``, ``z_sh (B, Ds)``, ``z_tx (B, Dt)``, ``bins (B,)`` int in ``[0, V)``.
        Returns: ``(idx_tx (B,), idx_sh (B,), valid (B,) bool)`` bank indices (CPU) of the nearest
        item by texture code and by shape code within the bin; invalid queries get index 0.
        """
        B = R.shape[0]
        if self.count == 0:
            z = torch.zeros(B, dtype=torch.int64)
            return z, z.clone(), torch.zeros(B, dtype=torch.bool)
        n = self.count
        R, z_sh, z_tx = R.detach().float().cpu(), z_sh.detach().float().cpu(), z_tx.detach().float().cpu()
        if z_sh.shape[1] == 0:
            z_sh = z_sh.new_zeros(B, 1)
        ang = relative_angle(R, self.R[:n])                                  # (B, n)
        edges = bin_edges(self.bins, self.angle_range)
        b = bins.cpu().long()
        lo, hi = edges[b][:, None], edges[b + 1][:, None]
        last = (b == self.bins - 1)[:, None]
        inside = (ang >= lo) & ((ang < hi) | (last & (ang <= hi)))
        valid = inside.any(1)
        inf = torch.tensor(float("inf"))
        d_tx = torch.where(inside, torch.cdist(z_tx, self.z_tx[:n]), inf)
        d_sh = torch.where(inside, torch.cdist(z_sh, self.z_sh[:n]), inf)
        idx_tx = torch.where(valid, d_tx.argmin(1), torch.zeros_like(b))
        idx_sh = torch.where(valid, d_sh.argmin(1), torch.zeros_like(b))
        return idx_tx, idx_sh, valid

    # checkpointing (workbench.train.Trainer ``state=``) -----------------------------------------
    def state_dict(self) -> dict:
        return {"images": self.images.clone(), "z_sh": self.z_sh.clone(), "z_tx": self.z_tx.clone(),
                "R": self.R.clone(), "ptr": self.ptr, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        for k in ("images", "z_sh", "z_tx", "R"):
            if state[k].shape != getattr(self, k).shape:
                from ...core.errors import CheckpointError

                raise CheckpointError(f"memory bank '{k}': checkpoint has shape {tuple(state[k].shape)}, "
                                      f"the config expects {tuple(getattr(self, k).shape)}")
            setattr(self, k, state[k].clone())
        self.ptr, self.count = int(state["ptr"]), int(state["count"])
