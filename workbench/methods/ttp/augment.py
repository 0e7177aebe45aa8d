"""Equivariance bookkeeping: how regressed points, cameras and poses move under image transforms.

TTP's equivariance loss regresses points on a randomly warped image and asks them to equal the
warped points of the original: ``u(T_s(I)) = T_s(u(I))``. The images are warped with
``kornia.augmentation.RandomAffine`` (the official code's augmentation, kornia >= 0.7 API: the
transform comes from ``aug.transform_matrix`` instead of ``return_transform=True``); the matrix is
in kornia's pixel coordinates (pixel centres at integers, the centre of column j is x = j) and is
conjugated here into TTP's normalised coordinates (``align_corners=False``: the centre of column
j is ``u = (2 j + 1) / W - 1``)::

    x_pix = (u + 1) W / 2 - 1/2       (per axis)      M_norm = P^-1 M_pix P

For a horizontal flip of a bilaterally symmetric object (mirror ``x -> -x`` of the canonical frame
with vertex permutation ``sigma``), every quantity of the flipped image is known in closed form
(``F2 = diag(-1, 1)``, ``M = diag(-1, 1, 1)``)::

    u'_{sigma(i)} = F2 u_i,   v'_{sigma(i)} = v_i,   s' = s,   c' = F2 c,
    R' = M R M,               t' = F2 t

(the template is symmetric, ``T_{sigma(i)} = M T_i``, so ``s (M R M T_{sigma(i)} + F2 t) + F2 c =
F2 u_i``). Keypoints swap left/right names under the flip.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["pixel_to_norm", "norm_to_pixel", "affine_norm_matrix", "transform_points",
           "EquivarianceAugment", "flip_images", "flip_points", "flip_pose", "flip_keypoints",
           "MIRROR"]

MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


def pixel_to_norm(size: int | tuple[int, int], dtype=torch.float32, device=None) -> Tensor:
    """(3, 3) homogeneous map from kornia pixel coordinates to normalised ones (x, y)."""
    H, W = (size, size) if isinstance(size, int) else size
    return torch.tensor([[2.0 / W, 0.0, 1.0 / W - 1.0],
                         [0.0, 2.0 / H, 1.0 / H - 1.0],
                         [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def norm_to_pixel(size: int | tuple[int, int], dtype=torch.float32, device=None) -> Tensor:
    """Inverse of :func:`pixel_to_norm`."""
    H, W = (size, size) if isinstance(size, int) else size
    return torch.tensor([[W / 2.0, 0.0, W / 2.0 - 0.5],
                         [0.0, H / 2.0, H / 2.0 - 0.5],
                         [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def affine_norm_matrix(M_pix: Tensor, size: int | tuple[int, int]) -> Tensor:
    """(B, 3, 3) pixel-space transform -> the same transform in normalised coordinates."""
    P = norm_to_pixel(size, M_pix.dtype, M_pix.device)
    Pinv = pixel_to_norm(size, M_pix.dtype, M_pix.device)
    return Pinv @ M_pix @ P


def transform_points(M: Tensor, u: Tensor) -> Tensor:
    """Apply (B, 3, 3) homogeneous transforms to (B, N, 2) points."""
    h = torch.cat([u, torch.ones_like(u[..., :1])], -1) @ M.transpose(1, 2)
    return h[..., :2] / h[..., 2:3]


class EquivarianceAugment:
    """Random affine warps (kornia) of images and masks, with their normalised matrices.

    Args:
        degrees: rotation range +- degrees (official 40).
        translate: fraction of the image size (official 0.15).
        scale: (low, high) scale range (official 0.7 - 1.2).
    Call: ``(images (B, C, H, W), masks (B, 1, H, W) or None) -> (images', masks', M_norm (B, 3, 3))``
    where ``M_norm`` maps normalised points of the input to the output. Randomness comes from the
    global torch RNG (so training resumes exactly).
    """

    def __init__(self, degrees: float = 40.0, translate: float = 0.15,
                 scale: Sequence[float] = (0.7, 1.2)):
        import kornia.augmentation as K

        self.aug = K.RandomAffine(degrees=degrees, translate=(translate, translate),
                                  scale=tuple(scale), p=1.0, padding_mode="zeros", align_corners=True)

    def __call__(self, images: Tensor, masks: Tensor | None = None
                 ) -> tuple[Tensor, Tensor | None, Tensor]:
        out = self.aug(images)
        params = self.aug._params
        M_pix = self.aug.transform_matrix.to(images)
        masks_out = None
        if masks is not None:
            masks_out = self.aug(masks, params=params)
        return out, masks_out, affine_norm_matrix(M_pix, tuple(images.shape[-2:]))


def flip_images(x: Tensor) -> Tensor:
    """Horizontal flip of (B, C, H, W)."""
    return x.flip(-1)


def flip_points(u: Tensor, symmetry: Tensor) -> Tensor:
    """Regressed points of the flipped image: ``u'_{sigma(i)} = F2 u_i`` (sigma an involution)."""
    return u[:, symmetry] * u.new_tensor([-1.0, 1.0])


def flip_pose(R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Pose of the flipped image: ``R' = M R M``, ``t' = F2 t``."""
    M = MIRROR.to(R)
    return M @ R @ M, t * t.new_tensor([-1.0, 1.0])


def flip_keypoints(kp: Tensor, visible: Tensor, names: Sequence[str],
                   pairs: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
    """Normalised keypoints (B, K, 2) of the flipped image: x negated, left/right names swapped."""
    perm = list(range(len(names)))
    index = {n: i for i, n in enumerate(names)}
    for a, b in pairs:
        if a in index and b in index:
            perm[index[a]], perm[index[b]] = index[b], index[a]
    p = torch.tensor(perm, device=kp.device)
    return kp[:, p] * kp.new_tensor([-1.0, 1.0]), visible[:, p]
