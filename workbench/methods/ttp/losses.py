"""TTP's training losses (weights of the official code, see :class:`~.config.LossSection`).

Every function takes batched tensors and returns a scalar (mean over the batch). Notation:
``u`` (B, N, 2) regressed points, ``proj`` (B, N, 2) reprojection of the reconstructed mesh by the
solved camera, normalised image coordinates in [-1, 1] (x right, y down); masks (B, 1, S, S).

=====================  ==========================================================================
term                   definition
=====================  ==========================================================================
texture                masked image re-synthesised through the mesh vs the masked image
                       (perceptual / SSIM / L1), averaged with the mirrored-camera render
mask                   L1 between the soft silhouette and the mask
chamfer (inside)       mask distance transform sampled at ``u`` (points must lie on the object)
chamfer (coverage)     sampled mask pixels -> squared distance to the nearest ``u``
cycle                  ``|u_i - pi(V_i)|^2`` (+ edge lengths of the u-mesh vs the projected mesh)
visibility             MSE between ``v`` and the z-buffer visibility of the reconstruction
equivariance           MSE between ``u`` of a warped image and the warped ``u``; flip consistency
keypoint               L1 between annotated keypoints and the projected keypoint vertices
shape priors           cot-Laplacian of V, uniform Laplacian of the basis meshes, ARAP(V vs T),
                       ARAP(T + B_k vs T), ``|V - T|^2``
=====================  ==========================================================================
"""
from __future__ import annotations

import logging
import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["resolve_texture_kind", "mask_l1", "chamfer_inside", "chamfer_coverage", "cycle_loss", "edge_length_loss",
           "visibility_loss", "equivariance_loss", "keypoint_loss", "rotation_angle",
           "mirror_consistency", "TextureLoss", "deformation_magnitude", "mesh_edges"]


def mask_l1(silhouette: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute difference between (B, 1, S, S) soft silhouettes and masks."""
    if silhouette.shape[-1] != mask.shape[-1]:
        mask = F.interpolate(mask, size=silhouette.shape[-2:], mode="bilinear", align_corners=False)
    return (silhouette - mask).abs().mean()


def chamfer_inside(u: Tensor, dist_transform: Tensor) -> Tensor:
    """Mean distance (normalised units) from each regressed point to the mask.

    ``dist_transform`` (B, 1, H, W): Euclidean distance of every pixel to the nearest mask pixel,
    in normalised units (pixels x 2 / W), 0 inside the mask; sampled bilinearly at ``u``.
    """
    d = F.grid_sample(dist_transform, u[:, :, None, :], mode="bilinear", padding_mode="border",
                      align_corners=False)
    return d[:, 0, :, 0].mean()


def mask_points(mask: Tensor, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample ``n`` foreground pixel centres per mask (with replacement), normalised coordinates.

    Returns points (B, n, 2) and a (B,) bool telling which masks were non-empty.
    """
    B, _, H, W = mask.shape
    fg = (mask[:, 0] > 0.5).flatten(1).to(mask.dtype)                       # (B, H*W)
    nonempty = fg.sum(1) > 0
    probs = torch.where(nonempty[:, None], fg, torch.ones_like(fg))
    idx = torch.multinomial(probs, n, replacement=True, generator=generator)  # (B, n)
    rows, cols = idx // W, idx % W
    pts = torch.stack([(2 * cols.to(mask.dtype) + 1) / W - 1, (2 * rows.to(mask.dtype) + 1) / H - 1], -1)
    return pts, nonempty


def chamfer_coverage(u: Tensor, mask_pts: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean over sampled mask points of the squared distance to the nearest regressed point.

    The nearest point is found without a graph and the squared distance to it recomputed directly:
    the value and gradient of ``cdist(...).pow(2).amin(-1)`` (which sends the gradient to the
    minimiser) without backpropagating through the (B, n, N) distance matrix.
    """
    with torch.no_grad():
        idx = torch.cdist(mask_pts, u.detach()).argmin(-1)                    # (B, n)
    nearest = torch.gather(u, 1, idx[..., None].expand(-1, -1, u.shape[-1]))   # (B, n, 2)
    d2 = (mask_pts - nearest).pow(2).sum(-1)                                  # (B, n)
    if valid is not None:
        d2 = d2 * valid[:, None].to(d2.dtype)
    return d2.mean()


def mesh_edges(faces: Tensor) -> Tensor:
    """(E, 2) unique undirected edges of (F, 3) faces."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def edge_length_loss(u: Tensor, proj: Tensor, edges: Tensor) -> Tensor:
    """Squared difference of edge lengths between the u-mesh and the projected mesh."""
    lu = (u[:, edges[:, 0]] - u[:, edges[:, 1]]).norm(dim=-1)
    lp = (proj[:, edges[:, 0]] - proj[:, edges[:, 1]]).norm(dim=-1)
    return (lu - lp).pow(2).mean()


def cycle_loss(u: Tensor, proj: Tensor, weights: Tensor | None = None) -> Tensor:
    """``mean_i |u_i - pi(V_i)|^2`` (optionally weighted per point)."""
    d = (u - proj).pow(2).sum(-1)
    if weights is not None:
        return (weights * d).sum() / weights.sum().clamp_min(1e-8)
    return d.mean()


def visibility_loss(vis: Tensor, target: Tensor) -> Tensor:
    """MSE between predicted visibility (B, N) and the z-buffer target (official MSE)."""
    return (vis - target.detach()).pow(2).mean()


def equivariance_loss(u_warped: Tensor, u: Tensor, M: Tensor, inside_only: bool = True) -> Tensor:
    """MSE between points regressed on the warped image and the warped points (B, N, 2).

    Points warped outside the image (|x| > 1 or |y| > 1) cannot be regressed (tanh range) and
    are ignored when ``inside_only``.
    """
    from .augment import transform_points

    target = transform_points(M, u)
    d = (u_warped - target).pow(2).sum(-1)
    if inside_only:
        keep = (target.abs() <= 1).all(-1).to(d.dtype)
        return (d * keep).sum() / keep.sum().clamp_min(1.0)
    return d.mean()


def keypoint_loss(proj_kp: Tensor, kp: Tensor, visible: Tensor) -> Tensor:
    """L1 between projected keypoint vertices and annotations (B, K, 2), visible ones only."""
    d = (proj_kp - kp).abs().sum(-1)
    v = visible.to(d.dtype)
    return (d * v).sum() / v.sum().clamp_min(1.0)


def rotation_angle(R1: Tensor, R2: Tensor, eps: float = 1e-6) -> Tensor:
    """Geodesic angle (B,) between rotations, differentiable (clamped away from +-1)."""
    tr = (R1.transpose(1, 2) @ R2).diagonal(dim1=1, dim2=2).sum(-1)
    return torch.acos(((tr - 1) / 2).clamp(-1 + eps, 1 - eps))


def mirror_consistency(out_a, out_b) -> Tensor:
    """Flip consistency of camera and pose between an image (a) and its horizontal flip (b).

    ``|s_b - s_a|^2 + |c_b - F2 c_a|^2 + angle(R_b, M R_a M) + |t_b - F2 t_a|^2`` (mean over B).
    """
    from .augment import flip_pose

    F2 = out_a.centre.new_tensor([-1.0, 1.0])
    R_m, t_m = flip_pose(out_a.R, out_a.t)
    return ((out_b.scale - out_a.scale).pow(2) + (out_b.centre - F2 * out_a.centre).pow(2).sum(-1)
            + rotation_angle(out_b.R, R_m) + (out_b.t - t_m).pow(2).sum(-1)).mean()


def deformation_magnitude(verts: Tensor, template: Tensor) -> Tensor:
    """``mean |V - T|^2`` (the paper's term against flattening/drift)."""
    return (verts - template).pow(2).sum(-1).mean()


# ----------------------------------------------------------------------------------- texture
def resolve_texture_kind(kind: str = "auto") -> str:
    """``auto`` -> ``perceptual`` when ImageNet VGG-16 weights are present locally, else ``ssim``."""
    if kind != "auto":
        return kind
    try:
        from ...nn import locate_pretrained

        locate_pretrained("vgg16")
        return "perceptual"
    except Exception:  # noqa: BLE001 - CheckpointError when absent
        return "ssim"


class TextureLoss(torch.nn.Module):
    """Distance between two masked images (B, 3, S, S) in [0, 1].

    ``kind``: ``perceptual`` (VGG-16 relu1_2..relu3_3 features, unit-normalised per position,
    squared differences averaged -- LPIPS without its learned calibration; needs ImageNet VGG-16
    weights present locally), ``ssim`` (1 - SSIM, kornia, 5 x 5 window) or ``l1``; ``auto`` picks
    perceptual when the weights exist and SSIM otherwise. ``self.kind`` tells which was chosen.
    """

    def __init__(self, kind: str = "auto"):
        super().__init__()
        if kind not in ("auto", "perceptual", "ssim", "l1"):
            raise ConfigError(f"loss.texture_kind: unknown '{kind}' (auto, perceptual, ssim, l1)")
        self.vgg = None
        if kind == "auto":
            kind = resolve_texture_kind(kind)
        if kind == "perceptual":
            try:
                from ...nn import build_backbone

                self.vgg = build_backbone("vgg16", pretrained=True)
                self.vgg.eval()
                for p in self.vgg.parameters():
                    p.requires_grad_(False)
                kind = "perceptual"
            except Exception as e:  # noqa: BLE001 - weights absent or unreadable
                raise ConfigError(f"loss.texture_kind=perceptual needs local VGG-16 weights: {e}") from None
        if kind == "ssim":
            log.info("TTP texture loss: SSIM (no local VGG-16 weights for the perceptual loss)")
        self.kind = kind
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()
        return self

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.kind == "l1":
            return (a - b).abs().mean()
        if self.kind == "ssim":
            import kornia

            return kornia.losses.ssim_loss(a, b, window_size=5, reduction="mean")
        fa = self.vgg.features((a - self.mean) / self.std, return_stages=["relu1_2", "relu2_2", "relu3_3"])
        fb = self.vgg.features((b - self.mean) / self.std, return_stages=["relu1_2", "relu2_2", "relu3_3"])
        total = a.new_zeros(())
        for k in fa:
            na = fa[k] / (fa[k].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb[k] / (fb[k].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + (na - nb).pow(2).sum(1).mean()
        return total
