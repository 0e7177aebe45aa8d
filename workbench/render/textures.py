"""Textures with pytorch3d semantics: ``TexturesVertex`` (colours or C-channel features) and
``TexturesUV`` (UV maps), plus :func:`sample_image_at_points` (colours from an image at 2D points).

``sample_textures(fragments, faces_packed)`` returns texels ``(N, H, W, K, C)``; empty slots are 0.

UV conventions (pytorch3d): uv origin at the **bottom-left** of the map, so ``(u, v)`` samples the
map at ``grid = (2u - 1, 1 - 2v)`` with ``grid_sample(bilinear, align_corners=True,
padding_mode="border")``; maps are given channels-last ``(N, Hm, Wm, C)``.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
import torch.nn.functional as F

from ..core.errors import ShapeError
from .interp import interpolate_vertex_attributes, interpolate_vertex_attributes_packed

__all__ = ["TexturesVertex", "TexturesUV", "sample_image_at_points"]


def _to_list(x: Union[torch.Tensor, Sequence[torch.Tensor]], name: str, width: int = 0) -> List[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        if x.dim() != 3:
            raise ShapeError(f"{name}: expected a padded (N, *, C) tensor or a list, got {tuple(x.shape)}")
        return list(x.unbind(0))
    out = list(x)
    for i, t in enumerate(out):
        if t.dim() != 2 or (width and t.shape[-1] != width):
            raise ShapeError(f"{name}[{i}]: expected (*, {width or 'C'}), got {tuple(t.shape)}")
    return out


class TexturesVertex:
    """Per-vertex features: a list of ``(V_i, C)`` tensors or a padded ``(N, V, C)`` tensor."""

    def __init__(self, verts_features: Union[torch.Tensor, Sequence[torch.Tensor]]):
        self._padded = verts_features if isinstance(verts_features, torch.Tensor) else None
        self._list = _to_list(verts_features, "verts_features")
        if not self._list:
            raise ShapeError("TexturesVertex: empty feature list")

    def __len__(self) -> int:
        return len(self._list)

    @property
    def device(self):
        return self._list[0].device

    def verts_features_list(self) -> List[torch.Tensor]:
        return list(self._list)

    def verts_features_packed(self) -> torch.Tensor:
        if self._padded is not None:
            return self._padded.reshape(-1, self._padded.shape[-1])
        return torch.cat(self._list, 0)

    def verts_features_padded(self) -> torch.Tensor:
        if self._padded is not None:
            return self._padded
        n = max(t.shape[0] for t in self._list)
        return torch.stack([F.pad(t, (0, 0, 0, n - t.shape[0])) for t in self._list])

    def sample_textures(self, fragments, faces_packed: torch.Tensor) -> torch.Tensor:
        """Interpolated features ``(N, H, W, K, C)``."""
        feats = self.verts_features_packed()
        return interpolate_vertex_attributes(fragments.pix_to_face, fragments.bary_coords, faces_packed, feats)

    def sample_textures_packed(self, packed, faces_packed: torch.Tensor, idx=None) -> torch.Tensor:
        """Features ``(m, C)`` at the packed slots ``idx`` (all if None)."""
        feats = self.verts_features_packed()
        face = packed.face if idx is None else packed.face.index_select(0, idx)
        return interpolate_vertex_attributes_packed(faces_packed, face, packed.terms(idx)[0].to(feats.dtype), feats)

    # batch plumbing used by Meshes
    def extend(self, N: int) -> "TexturesVertex":
        if self._padded is not None:
            return TexturesVertex(self._padded.repeat_interleave(N, 0))
        return TexturesVertex([t for t in self._list for _ in range(N)])

    def __getitem__(self, index) -> "TexturesVertex":
        if isinstance(index, int):
            index = [index]
        return TexturesVertex([self._list[i] for i in index])

    def to(self, device) -> "TexturesVertex":
        return TexturesVertex([t.to(device) for t in self._list])

    def clone(self) -> "TexturesVertex":
        return TexturesVertex([t.clone() for t in self._list])

    def detach(self) -> "TexturesVertex":
        return TexturesVertex([t.detach() for t in self._list])

    def join_batch(self, others: Sequence["TexturesVertex"]) -> "TexturesVertex":
        return TexturesVertex(self._list + [t for o in others for t in o._list])


class TexturesUV:
    """UV-mapped textures (pytorch3d ``TexturesUV``).

    Args:
        maps: ``(N, Hm, Wm, C)`` channels-last texture images (or a list of ``(Hm, Wm, C)`` of one size).
        faces_uvs: ``(N, F, 3)`` or list of ``(F_i, 3)`` indices into ``verts_uvs`` (may reuse the faces).
        verts_uvs: ``(N, T, 2)`` or list of ``(T_i, 2)`` uv coordinates in [0, 1] (origin bottom-left).
    """

    def __init__(self, maps, faces_uvs, verts_uvs, padding_mode: str = "border", align_corners: bool = True,
                 sampling_mode: str = "bilinear"):
        if isinstance(maps, torch.Tensor):
            if maps.dim() != 4:
                raise ShapeError(f"TexturesUV: maps must be (N, Hm, Wm, C), got {tuple(maps.shape)}")
            self._maps = maps
        else:
            ms = list(maps)
            if len({tuple(m.shape) for m in ms}) != 1:
                raise ShapeError("TexturesUV: all maps must have the same size in the torch backend")
            self._maps = torch.stack(ms)
        self._faces_uvs = [f.to(torch.int64) for f in _to_list(faces_uvs, "faces_uvs", 3)]
        self._verts_uvs = _to_list(verts_uvs, "verts_uvs", 2)
        n = self._maps.shape[0]
        if len(self._faces_uvs) != n or len(self._verts_uvs) != n:
            raise ShapeError(f"TexturesUV: got {n} maps, {len(self._faces_uvs)} faces_uvs and "
                             f"{len(self._verts_uvs)} verts_uvs; they must match")
        self.padding_mode = padding_mode
        self.align_corners = align_corners
        self.sampling_mode = sampling_mode

    def __len__(self) -> int:
        return self._maps.shape[0]

    def maps_padded(self) -> torch.Tensor:
        return self._maps

    def faces_uvs_list(self) -> List[torch.Tensor]:
        return list(self._faces_uvs)

    def verts_uvs_list(self) -> List[torch.Tensor]:
        return list(self._verts_uvs)

    def _packed_uvs(self):
        offs, off = [], 0
        for v in self._verts_uvs:
            offs.append(off)
            off += v.shape[0]
        faces = torch.cat([f + o for f, o in zip(self._faces_uvs, offs)], 0)
        return faces, torch.cat(self._verts_uvs, 0)

    def sample_textures(self, fragments, faces_packed: torch.Tensor = None) -> torch.Tensor:
        """Bilinear texels ``(N, H, W, K, C)`` (0 in empty slots)."""
        p2f = fragments.pix_to_face
        N, H, W, K = p2f.shape
        faces_uvs, verts_uvs = self._packed_uvs()
        if faces_packed is not None and faces_uvs.shape[0] != faces_packed.shape[0]:
            raise ShapeError(f"TexturesUV: {faces_uvs.shape[0]} uv faces but the meshes have "
                             f"{faces_packed.shape[0]} faces")
        uv = interpolate_vertex_attributes(p2f, fragments.bary_coords, faces_uvs, verts_uvs.to(self._maps.dtype))
        grid = torch.stack([uv[..., 0] * 2.0 - 1.0, 1.0 - uv[..., 1] * 2.0], -1).reshape(N, H * W, K, 2)
        maps = self._maps.permute(0, 3, 1, 2)
        out = F.grid_sample(maps, grid, mode=self.sampling_mode, padding_mode=self.padding_mode,
                            align_corners=self.align_corners)  # (N, C, H*W, K)
        out = out.permute(0, 2, 3, 1).reshape(N, H, W, K, -1)
        return out * (p2f >= 0)[..., None].to(out.dtype)

    def sample_textures_packed(self, packed, faces_packed: torch.Tensor = None, idx=None) -> torch.Tensor:
        """Bilinear texels ``(m, C)`` at the packed slots ``idx`` (all if None); same sampling as
        :meth:`sample_textures` (align_corners=True, border padding, bilinear)."""
        if self.sampling_mode != "bilinear" or self.padding_mode != "border" or not self.align_corners:
            raise ShapeError("TexturesUV.sample_textures_packed supports bilinear/border/align_corners=True only")
        faces_uvs, verts_uvs = self._packed_uvs()
        face = packed.face if idx is None else packed.face.index_select(0, idx)
        pix = packed.pix if idx is None else packed.pix.index_select(0, idx)
        bary = packed.terms(idx)[0].to(self._maps.dtype)
        corner = faces_uvs.index_select(0, face)
        vu = verts_uvs.to(self._maps.dtype)
        uv = bary[:, 0:1] * vu.index_select(0, corner[:, 0])
        uv = uv + bary[:, 1:2] * vu.index_select(0, corner[:, 1]) + bary[:, 2:3] * vu.index_select(0, corner[:, 2])
        Nm, Hm, Wm, C = self._maps.shape
        n_img = torch.div(pix, packed.H * packed.W, rounding_mode="floor")
        x = (uv[:, 0] * (Wm - 1)).clamp(0, Wm - 1)
        y = ((1.0 - uv[:, 1]) * (Hm - 1)).clamp(0, Hm - 1)
        x0 = torch.floor(x).detach().long().clamp_max(Wm - 1)
        y0 = torch.floor(y).detach().long().clamp_max(Hm - 1)
        x1 = (x0 + 1).clamp_max(Wm - 1)
        y1 = (y0 + 1).clamp_max(Hm - 1)
        wx = (x - x0.to(x.dtype))[:, None]
        wy = (y - y0.to(y.dtype))[:, None]
        flat = self._maps.reshape(-1, C)
        base = n_img * (Hm * Wm)

        def at(yy, xx):
            return flat.index_select(0, base + yy * Wm + xx)

        top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
        bot = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
        return top * (1 - wy) + bot * wy

    def extend(self, N: int) -> "TexturesUV":
        return TexturesUV(self._maps.repeat_interleave(N, 0), [f for f in self._faces_uvs for _ in range(N)],
                          [v for v in self._verts_uvs for _ in range(N)], self.padding_mode, self.align_corners,
                          self.sampling_mode)

    def __getitem__(self, index) -> "TexturesUV":
        if isinstance(index, int):
            index = [index]
        index = list(index)
        return TexturesUV(self._maps[index], [self._faces_uvs[i] for i in index], [self._verts_uvs[i] for i in index],
                          self.padding_mode, self.align_corners, self.sampling_mode)

    def to(self, device) -> "TexturesUV":
        return TexturesUV(self._maps.to(device), [f.to(device) for f in self._faces_uvs],
                          [v.to(device) for v in self._verts_uvs], self.padding_mode, self.align_corners,
                          self.sampling_mode)

    def clone(self) -> "TexturesUV":
        return TexturesUV(self._maps.clone(), [f.clone() for f in self._faces_uvs], [v.clone() for v in self._verts_uvs],
                          self.padding_mode, self.align_corners, self.sampling_mode)

    def detach(self) -> "TexturesUV":
        return TexturesUV(self._maps.detach(), self._faces_uvs, [v.detach() for v in self._verts_uvs],
                          self.padding_mode, self.align_corners, self.sampling_mode)

    def join_batch(self, others: Sequence["TexturesUV"]) -> "TexturesUV":
        return TexturesUV(torch.cat([self._maps] + [o._maps for o in others]),
                          self._faces_uvs + [f for o in others for f in o._faces_uvs],
                          self._verts_uvs + [v for o in others for v in o._verts_uvs],
                          self.padding_mode, self.align_corners, self.sampling_mode)


def sample_image_at_points(image: torch.Tensor, points_px: torch.Tensor, mode: str = "bilinear",
                           padding_mode: str = "border") -> torch.Tensor:
    """Bilinearly sample ``image (N, C, H, W)`` at pixel coordinates ``points_px (N, P, 2)``.

    Points are image coordinates (x right, y down, origin at the top-left corner; the centre of
    pixel (i, j) is ``(j + 0.5, i + 0.5)``, which returns that pixel's value exactly). Returns
    ``(N, P, C)``; differentiable w.r.t. the image and the points.
    """
    if image.dim() != 4 or points_px.dim() != 3 or points_px.shape[-1] != 2 or points_px.shape[0] != image.shape[0]:
        raise ShapeError(f"sample_image_at_points: image (N, C, H, W) and points (N, P, 2) expected, got "
                         f"{tuple(image.shape)} and {tuple(points_px.shape)}")
    H, W = image.shape[-2:]
    gx = points_px[..., 0] * (2.0 / W) - 1.0
    gy = points_px[..., 1] * (2.0 / H) - 1.0
    grid = torch.stack([gx, gy], -1)[:, :, None, :].to(image.dtype)
    out = F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out[..., 0].transpose(1, 2)
