"""UNICORN's structured autoencoder: image -> (shape, texture, background, scale, K poses, p).

Modules (each usable on its own):

* :func:`ellipsoid_template` -- ``ico_sphere(level)`` stretched by ``[1, 0.7, 0.7] x scale`` and its
  spherical UVs ``u = (atan2(x, z) + pi) / 2 pi``, ``v = acos(y / r) / pi`` (faces reused as UV faces:
  the u-seam artefact of the official code is kept, reference section 3).
* :func:`progressive_mask` -- zero every latent dimension beyond the current stage's size.
* :class:`DeformationField` -- ``S(x) = x + s(x, z_sh)``: ``ReLU(W x + U z)``, 2 x (Linear, ReLU),
  zero-initialised Linear -> 3 (AtlasNet-style, official ``ProgressiveField``).
* :class:`Generator` -- GIRAFFE-style CNN: latent -> 1 x 1 -> log2(size) stages of nearest
  upsampling + conv3x3 + ReLU, an RGB skip branch accumulated with bilinear upsampling, sigmoid.
* :class:`PoseHeads` -- K candidates, each with its own rotation MLP (azimuth offset from the k-th
  reference azimuth, elevation, roll; tanh-bounded) and translation MLP, plus a probability head.
* :class:`UnicornModel` -- the encoder, the heads and :meth:`UnicornModel.render`. The code heads end in a
  zero-initialised layer (official); ``model.appearance_head_init="kaiming"`` initialises the texture and
  background heads' last layer like the hidden ones, and ``model.appearance_encoder="separate"`` gives them
  their own encoder (see the config's ``quick`` profile for what each measured).

Pose convention: the project's chain (``workbench.geometry.pose.pose_to_rt``): candidate k gives
``(azimuth, elevation, roll)`` and ``R, T = pose_to_rt(a, e, roll, d)`` with the translation offset
added, ``T = (tx, ty, d + tz)``, so ``X_view = X_object @ R + T`` (pytorch3d row vectors). The
shape in the object frame is ``(template + deformation) * scale`` (anisotropic scale per axis).
Rendering: :class:`workbench.render.LayeredShader` (texture x ambient 1, occupancy
``exp(min(0, -d / sigma))``, front-to-back compositing) over the background image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...geometry.cameras import FoVPerspectiveCameras
from ...geometry.mesh import Meshes, ico_sphere
from ...geometry.pose import pose_to_rt
from ...nn import MLP, build_backbone
from ...render import (BlendParams, LayeredShader, MeshRasterizer, MeshRenderer, RasterizationSettings,
                       TexturesUV)
from .config import UnicornConfig

__all__ = ["ellipsoid_template", "spherical_uvs", "progressive_mask", "DeformationField", "Generator",
           "PoseHeads", "UnicornOutput", "UnicornModel", "render_layered", "blur_radius"]

ELLIPSOID = (1.0, 0.7, 0.7)


# ------------------------------------------------------------------------------------ template
def spherical_uvs(verts: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` -> ``(V, 2)`` spherical UVs in [0, 1]: ``u = (atan2(x, z) + pi) / 2pi``, ``v = acos(y/r)/pi``."""
    r = verts.norm(dim=-1).clamp_min(1e-8)
    u = (torch.atan2(verts[:, 0], verts[:, 2]) + math.pi) / (2 * math.pi)
    v = torch.acos((verts[:, 1] / r).clamp(-1.0, 1.0)) / math.pi
    return torch.stack([u, v], -1)


def ellipsoid_template(level: int = 3, scale: float = 0.6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(verts (V, 3), faces (F, 3), uvs (V, 2))`` of the ellipsoid template (object frame)."""
    sphere = ico_sphere(level)
    v = sphere.verts_list()[0]
    uvs = spherical_uvs(v)
    verts = v * torch.tensor(ELLIPSOID) * scale
    return verts, sphere.faces_list()[0], uvs


def progressive_mask(code: torch.Tensor, size: int) -> torch.Tensor:
    """Zero the dimensions ``>= size`` of a ``(B, D)`` latent (``size = 0`` gives zeros)."""
    if size >= code.shape[-1]:
        return code
    keep = (torch.arange(code.shape[-1], device=code.device) < size).to(code.dtype)
    return code * keep


def _zero_last(mlp: nn.Sequential) -> nn.Sequential:
    last = [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return mlp


def _head(in_dim: int, width: int, layers: int, out: int, zero: bool = True) -> nn.Sequential:
    mlp = MLP(in_dim, [width] * layers, out, act="relu")
    for m in mlp.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return _zero_last(mlp) if zero else mlp


# ------------------------------------------------------------------------------ deformation
class DeformationField(nn.Module):
    """``(V, 3)`` template points + ``(B, D)`` code -> ``(B, V, 3)`` displacements (0 at init)."""

    def __init__(self, code_dim: int, width: int = 128):
        super().__init__()
        self.code_dim = code_dim
        self.point = nn.Linear(3, width)
        self.code = nn.Linear(max(code_dim, 1), width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, 3))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, points: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if self.code_dim == 0:
            code = code.new_zeros(code.shape[0], 1)
        h = F.relu(self.point(points)[None] + self.code(code)[:, None])     # (B, V, W)
        return self.mlp(h)


# -------------------------------------------------------------------------------- generator
class Generator(nn.Module):
    """GIRAFFE-style image generator: ``(B, D)`` latent -> ``(B, 3, S, S)`` in (0, 1).

    Channels of stage i: ``max(features / 2**i, min_features)``; every stage doubles the size with
    nearest upsampling then conv3x3 + ReLU; an RGB skip branch (1x1 conv to 3 channels at each
    scale) is accumulated with bilinear upsampling; a sigmoid ends it. No normalisation layers.
    """

    def __init__(self, latent_dim: int, size: int = 64, features: int = 128, min_features: int = 16,
                 input_fan_in: int | None = None):
        """``input_fan_in``: if given, the 1 x 1 input conv is initialised as PyTorch's default for that
        fan-in (uniform, bound ``1 / sqrt(input_fan_in)``) instead of ``latent_dim``: with progressive
        conditioning only the first ``sizes[0]`` code dimensions are non-zero at first, so the default
        (fan-in = the full latent) makes the texture nearly insensitive to its code."""
        super().__init__()
        self.latent_dim = latent_dim
        self.size = size
        n = int(round(math.log2(size)))
        chans = [max(features // 2 ** i, min_features) for i in range(n + 1)]
        self.inp = nn.Conv2d(max(latent_dim, 1), chans[0], 1)
        if input_fan_in is not None:
            if input_fan_in < 1:
                raise ValueError(f"Generator: input_fan_in must be >= 1, got {input_fan_in}")
            bound = 1.0 / math.sqrt(input_fan_in)
            nn.init.uniform_(self.inp.weight, -bound, bound)
        self.blocks = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(n))
        self.rgb = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in chans)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_dim == 0:
            z = z.new_zeros(z.shape[0], 1)
        x = self.inp(z[:, :, None, None])
        rgb = self.rgb[0](x)
        for i, conv in enumerate(self.blocks):
            x = F.relu(conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))
            rgb = F.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False) + self.rgb[i + 1](x)
        return torch.sigmoid(rgb)


# ------------------------------------------------------------------------------------- pose
class PoseHeads(nn.Module):
    """K pose candidates with probabilities from a ``(B, C)`` feature.

    Candidate k: azimuth ``2 pi k / K + margin (2 pi / K) tanh(.)``, elevation
    ``mid + margin (range) tanh(.)``, roll ``margin (range) tanh(.)``, translation
    ``T_range tanh(.)``; each candidate has its own rotation MLP and translation MLP (zero-init last
    layer, so every candidate starts at its reference azimuth). Probabilities: MLP (kaiming init, last
    layer not zeroed, as the official ``proba_regressor``) + softmax.
    Angles in radians.
    """

    def __init__(self, in_dim: int, K: int = 6, width: int = 128, layers: int = 3, margin: float = 0.52,
                 elevation_range=(-10.0, 40.0), roll_range=(-30.0, 30.0),
                 translation_range=(0.3, 0.3, 0.3)):
        super().__init__()
        self.K = K
        self.rot = nn.ModuleList(_head(in_dim, width, layers, 3) for _ in range(K))
        self.trans = nn.ModuleList(_head(in_dim, width, layers, 3) for _ in range(K))
        self.proba = _head(in_dim, width, layers, K, zero=False)    # official: kaiming, not zero-initialised
        e0, e1 = (math.radians(x) for x in elevation_range)
        r0, r1 = (math.radians(x) for x in roll_range)
        self.register_buffer("az_ref", torch.arange(K, dtype=torch.float32) * (2 * math.pi / K))
        self.register_buffer("rot_mid", torch.tensor([0.0, (e0 + e1) / 2, (r0 + r1) / 2]))
        az_half = margin * 2 * math.pi / K if K > 1 else math.pi
        self.register_buffer("rot_half", torch.tensor([az_half, margin * (e1 - e0), margin * (r1 - r0)]))
        self.register_buffer("t_range", torch.tensor(list(translation_range), dtype=torch.float32))

    def forward(self, feat: torch.Tensor, use_translation: bool = True):
        """-> ``angles (B, K, 3)`` (azimuth, elevation, roll), ``trans (B, K, 3)``, ``proba (B, K)``."""
        rot = torch.stack([h(feat) for h in self.rot], 1)                    # (B, K, 3)
        angles = self.rot_mid + self.rot_half * torch.tanh(rot)
        angles = angles + torch.stack([self.az_ref, torch.zeros_like(self.az_ref),
                                       torch.zeros_like(self.az_ref)], -1)
        if use_translation:
            trans = self.t_range * torch.tanh(torch.stack([h(feat) for h in self.trans], 1))
        else:
            trans = feat.new_zeros(feat.shape[0], self.K, 3)
        proba = torch.softmax(self.proba(feat), -1)
        return angles, trans, proba


def candidates_to_rt(angles: torch.Tensor, trans: torch.Tensor, distance: float):
    """``(..., 3)`` angles + ``(..., 3)`` offsets -> ``R (..., 3, 3)``, ``T (..., 3)``."""
    shape = angles.shape[:-1]
    a = angles.reshape(-1, 3)
    R, T = pose_to_rt(a[:, 0], a[:, 1], a[:, 2], torch.full_like(a[:, 0], distance))
    T = T + trans.reshape(-1, 3)
    return R.reshape(*shape, 3, 3), T.reshape(*shape, 3)


# ------------------------------------------------------------------------------------ model
@dataclass
class UnicornOutput:
    """Everything one forward pass predicts (batch B, K candidates, V vertices).

    ``z_sh (B, Ds)``, ``z_tx (B, Dt)``, ``z_bg (B, Db)`` (masked codes), ``scale (B, 3)``,
    ``verts (B, V, 3)`` object-frame shape (deformed and scaled), ``deform (B, V, 3)``,
    ``texture (B, 3, St, St)`` UV map, ``background (B, 3, H, W)`` or None (white),
    ``angles (B, K, 3)`` radians, ``trans (B, K, 3)``, ``R (B, K, 3, 3)``, ``T (B, K, 3)``,
    ``proba (B, K)``, ``best (B,)`` argmax candidate.
    """

    z_sh: torch.Tensor
    z_tx: torch.Tensor
    z_bg: torch.Tensor
    scale: torch.Tensor
    verts: torch.Tensor
    deform: torch.Tensor
    texture: torch.Tensor
    background: Optional[torch.Tensor]
    angles: torch.Tensor
    trans: torch.Tensor
    R: torch.Tensor
    T: torch.Tensor
    proba: torch.Tensor
    best: torch.Tensor = field(default=None)

    def best_rt(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``R (B, 3, 3)``, ``T (B, 3)`` of the most likely candidate."""
        i = torch.arange(self.R.shape[0], device=self.R.device)
        return self.R[i, self.best], self.T[i, self.best]

    def detach(self) -> "UnicornOutput":
        return replace(self, **{f.name: (getattr(self, f.name).detach() if isinstance(getattr(self, f.name),
                                                                                    torch.Tensor) else None)
                                for f in fields(self)})


def blur_radius(sigma: float) -> float:
    """pytorch3d blur radius (squared NDC) beyond which the occupancy is below 1e-4: ``ln(1/1e-4 - 1) sigma``."""
    return math.log(1.0 / 1e-4 - 1.0) * sigma


def render_layered(verts: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor, texture: torch.Tensor,
                   R: torch.Tensor, T: torch.Tensor, image_size: int, background: Optional[torch.Tensor] = None,
                   sigma: float = 1e-4, faces_per_pixel: int = 25, fov: float = 30.0):
    """Render B textured meshes with the layered shader -> ``(rgb (B, 3, H, W), alpha (B, 1, H, W))``.

    Args:
        verts: ``(B, V, 3)`` object-frame vertices; faces ``(F, 3)``; uvs ``(V, 2)`` (faces reused as
            UV faces); texture ``(B, 3, St, St)``; ``R (B, 3, 3)``, ``T (B, 3)``.
        background: ``(B, 3, H, W)`` image composited behind (``C + T_K bg``), or None for white.
        sigma: occupancy sharpness (0: hard visualisation renderer, one face per pixel).
    """
    B = verts.shape[0]
    fb = faces[None].expand(B, -1, -1)
    maps = texture.permute(0, 2, 3, 1)
    tex = TexturesUV(maps, fb, uvs[None].expand(B, -1, -1).to(verts.dtype))
    meshes = Meshes(verts, fb, textures=tex)
    cams = FoVPerspectiveCameras(fov=fov, R=R, T=T, device=verts.device)
    K = faces_per_pixel if sigma > 0 else 1
    rs = RasterizationSettings(image_size=image_size, blur_radius=blur_radius(sigma) if sigma > 0 else 0.0,
                               faces_per_pixel=K, perspective_correct=False)
    # black background inside the shader, composited here: C + T_K bg (exact; the packed blend
    # path only takes per-channel constant backgrounds)
    shader = LayeredShader(BlendParams(sigma=sigma, background_color=(0.0, 0.0, 0.0)))
    out = MeshRenderer(MeshRasterizer(cams, rs), shader)(meshes).permute(0, 3, 1, 2)
    rgb, alpha = out[:, :3], out[:, 3:4]
    bg = background if background is not None else torch.ones_like(rgb)
    return rgb + (1.0 - alpha) * bg, alpha


class UnicornModel(nn.Module):
    """The structured autoencoder (see the module docstring).

    ``forward(x, step)`` -> :class:`UnicornOutput`; the stage of progressive conditioning and the
    curriculum switches follow ``step`` (iterations) and the config. ``render(...)`` renders meshes.
    """

    def __init__(self, cfg: UnicornConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        kw = {"width": m.backbone_width} if m.backbone == "small_cnn" else {}
        self.encoder = build_backbone(m.backbone, pretrained=False, **kw)
        self.appearance_encoder = (build_backbone(m.backbone, pretrained=False, **kw)
                                   if m.appearance_encoder == "separate" else None)
        C = self.encoder.out_channels
        self.dims = (m.shape_sizes[-1], m.texture_sizes[-1], m.background_sizes[-1])
        self.shape_head = _head(C, m.head_width, m.head_layers, max(self.dims[0], 1))
        zero_app = m.appearance_head_init == "zero"
        self.texture_head = _head(C, m.head_width, m.head_layers, self.dims[1], zero=zero_app)
        self.background_head = _head(C, m.head_width, m.head_layers, self.dims[2], zero=zero_app)
        self.scale_head = _head(C, m.head_width, m.head_layers, 3)
        self.pose = PoseHeads(C, m.n_candidates, m.head_width, m.head_layers, m.angle_margin, m.elevation_range,
                              m.roll_range, m.translation_range)
        self.field = DeformationField(self.dims[0], m.field_width)
        active = m.generator_input_init == "active"
        self.tex_gen = Generator(self.dims[1], m.texture_size, m.generator_features, m.generator_min_features,
                                 input_fan_in=m.texture_sizes[0] if active else None)
        self.with_background = cfg.data.variant == "textured"
        self.bg_gen = (Generator(self.dims[2], cfg.data.image_size, m.generator_features, m.generator_min_features,
                                 input_fan_in=m.background_sizes[0] if active else None)
                       if self.with_background else None)
        verts, faces, uvs = ellipsoid_template(m.template_level, m.template_scale)
        self.register_buffer("template", verts)
        self.register_buffer("faces", faces)
        self.register_buffer("uvs", uvs)

    # parameter groups of the alternate optimisation ------------------------------------------
    def pose_parameters(self) -> list[nn.Parameter]:
        """Updated by the P-step only (rotation, translation and probability heads)."""
        return list(self.pose.parameters())

    def shape_parameters(self) -> list[nn.Parameter]:
        """Updated by the 3D-step only (code/scale heads, deformation field, generators, and the separate
        appearance encoder when there is one)."""
        mods = [self.shape_head, self.texture_head, self.background_head, self.scale_head, self.field,
                self.tex_gen] + ([self.bg_gen] if self.bg_gen is not None else []) + \
            ([self.appearance_encoder] if self.appearance_encoder is not None else [])
        return [p for mod in mods for p in mod.parameters()]

    # schedules ---------------------------------------------------------------------------------
    def sizes_at(self, step: int) -> tuple[int, int, int]:
        """Latent sizes (shape, texture, background) of the progressive stage at ``step``."""
        m = self.cfg.model
        s = self.cfg.stage_at(step) if m.progressive else 3
        return m.shape_sizes[s], m.texture_sizes[s], m.background_sizes[s]

    def switches_at(self, step: int) -> dict:
        t = self.cfg.train
        return {"translation": step >= t.translation_from, "deformation": step >= t.deformation_from,
                "scale": step >= t.scale_from}

    # forward -------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` -> ``(B, C)`` features, or the pair (geometry, appearance) of ``(B, C)``
        features with a separate appearance encoder (kept apart, so that a P-step leaves the
        appearance encoder without gradients)."""
        if self.appearance_encoder is None:
            return self.encoder(x)
        return self.encoder(x), self.appearance_encoder(x)

    def forward(self, x: torch.Tensor, step: int = 10 ** 12) -> UnicornOutput:
        """``x (B, 3, H, W)`` in [0, 1] -> :class:`UnicornOutput` at training iteration ``step``."""
        feat = self.encode(x)
        return self.decode(feat, step)

    def decode(self, feat: torch.Tensor | tuple[torch.Tensor, torch.Tensor], step: int = 10 ** 12
               ) -> UnicornOutput:
        ns, nt, nb = self.sizes_at(step)
        sw = self.switches_at(step)
        feat, app = feat if isinstance(feat, tuple) else (feat, feat)
        z_sh = progressive_mask(self.shape_head(feat), ns)[:, :self.dims[0]]
        z_tx = progressive_mask(self.texture_head(app), nt)
        z_bg = progressive_mask(self.background_head(app), nb)
        if sw["scale"]:
            scale = 1.0 + self.cfg.model.scale_range * torch.tanh(self.scale_head(feat))
        else:
            scale = feat.new_ones(feat.shape[0], 3)
        if sw["deformation"] and self.dims[0] >= 0:
            deform = self.field(self.template, z_sh)
        else:
            deform = feat.new_zeros(feat.shape[0], *self.template.shape)
        verts = (self.template[None] + deform) * scale[:, None]
        texture = self.tex_gen(z_tx)
        background = self.bg_gen(z_bg) if self.bg_gen is not None else None
        angles, trans, proba = self.pose(feat, use_translation=sw["translation"])
        R, T = candidates_to_rt(angles, trans, self.cfg.model.distance)
        return UnicornOutput(z_sh, z_tx, z_bg, scale, verts, deform, texture, background, angles, trans, R, T,
                             proba, proba.argmax(-1))

    def render(self, verts, texture, R, T, background=None, sigma: float | None = None,
               image_size: int | None = None, faces_per_pixel: int | None = None):
        """Render ``(B, V, 3)`` meshes -> ``(rgb (B, 3, H, W), alpha (B, 1, H, W))`` with the config's settings."""
        r = self.cfg.render
        return render_layered(verts, self.faces, self.uvs, texture, R, T,
                              image_size or self.cfg.data.image_size, background,
                              r.sigma if sigma is None else sigma,
                              faces_per_pixel or r.faces_per_pixel, self.cfg.model.fov)

    def reconstruct(self, x: torch.Tensor, step: int = 10 ** 12, sigma: float | None = None):
        """Encode and render with the most likely candidate -> ``(rgb, alpha, UnicornOutput)``."""
        out = self.forward(x, step)
        R, T = out.best_rt()
        rgb, alpha = self.render(out.verts, out.texture, R, T, out.background, sigma=sigma)
        return rgb, alpha, out
