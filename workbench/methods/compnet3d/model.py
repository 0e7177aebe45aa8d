"""The neural mesh model of 3D-CompNets / NOVUM and the dual-head DNN baseline.

Feature extractor (``FeatureExtractor``): an image ``(B, 3, H, W)`` in [0, 1] becomes a unit feature
map ``(B, D, H/s, W/s)``:

* ``resnet50`` / ``resnet18``: NeMo's ``ResNetExt``. The trunk's last three stages (strides 8, 16,
  32) are fused by two upsampling stages (``DoubleConv`` on the stride-32 map, bilinear x2 +
  concatenation + 2 x conv-BN-ReLU, twice), then a 1x1 projection to D and L2 normalisation;
  stride 8;
* ``small_cnn``: the same decoder on :mod:`workbench.nn`'s small CNN (5 stride-2 stages; CPU
  profiles), stride 8;
* ``vit_b``: a ViT-B/14 (DINOv2's shape; input resized to a multiple of 14) whose patch tokens are
  projected to D; stride 14.

``NeuralMeshModel`` = extractor + :class:`~.bank.FeatureBank` + the padded category cuboids.
``DualHead`` = the same trunk + global pooling + class logits and 3 x ``bins`` pose logits
(azimuth, elevation, theta), the paper's ResNet/DINOv2 baselines.
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import CheckpointError, ConfigError, ShapeError
from .bank import FeatureBank
from .config import CompNet3DConfig, ModelSection
from .mesh import CategoryMeshes

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """(conv3x3-BN-ReLU) x 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__(_conv_bn_relu(cin, cout), _conv_bn_relu(cout, cout))


class UpsampleDecoder(nn.Module):
    """NeMo's upsampling decoder: the coarsest trunk map is refined by ``DoubleConv``, then, for
    each finer stage, upsampled x2 (bilinear, ``align_corners=True``), concatenated with that
    stage and passed through a ``DoubleConv``.

    ``channels`` lists the trunk stages from fine to coarse, e.g. ``(c8, c16, c32)`` (output stride
    8, NeMo's ``ResNetExt``: 2048 -> 1024 -> 512 -> 256 for ResNet-50) or ``(c4, c8, c16, c32)``
    (stride 4). Stage ``i`` outputs the channels of the next finer stage; the finest outputs half
    of its own. ``out_channels`` is the finest output width.
    """

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        ch = list(channels)
        if len(ch) < 2:
            raise ConfigError(f"UpsampleDecoder needs >= 2 trunk stages, got {ch}")
        self.top = DoubleConv(ch[-1], ch[-2])
        ups, cin = [], ch[-2]
        for i in range(len(ch) - 2, -1, -1):
            cout = ch[i - 1] if i > 0 else ch[0] // 2
            ups.append(DoubleConv(ch[i] + cin, cout))
            cin = cout
        self.ups = nn.ModuleList(ups)
        self.out_channels = cin

    @staticmethod
    def _up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh or dw:  # pad/crop to the skip's size (odd inputs)
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return torch.cat([skip, x], 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """``feats`` fine to coarse -> ``(B, out_channels, H_fine, W_fine)``."""
        x = self.top(feats[-1])
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(self._up_cat(x, skip))
        return x


class StageTrunk(nn.Module):
    """A :mod:`workbench.nn` backbone returning its stage maps from stride ``stride`` to 32."""

    def __init__(self, backbone: nn.Module, stages: Sequence[str]):
        super().__init__()
        self.backbone = backbone
        self.stages = tuple(stages)
        strides = [backbone.stage_strides[s] for s in self.stages]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ConfigError(f"trunk stages {self.stages} have strides {strides}, expected doubling strides")
        self.stride = strides[0]
        self.channels = tuple(backbone.stage_channels[s] for s in self.stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.backbone.features(x, return_stages=list(self.stages))
        return [out[s] for s in self.stages]


def build_trunk(cfg: ModelSection) -> StageTrunk:
    """ResNet (``layer1..4``) or the small CNN (``stage2..5``) of ``workbench.nn``, keeping the
    stages from ``cfg.stride`` (8 as NeMo, or 4) to 32."""
    from ...nn import build_backbone

    if cfg.stride not in (4, 8):
        raise ConfigError(f"model.stride must be 4 or 8 for {cfg.backbone}, got {cfg.stride}")
    if cfg.backbone == "small_cnn":
        if cfg.top_stride not in (8, 16, 32) or cfg.top_stride <= cfg.stride:
            raise ConfigError(f"model.top_stride must be 8, 16 or 32 and above model.stride ({cfg.stride}), "
                              f"got {cfg.top_stride}")
        bb = build_backbone("small_cnn", width=cfg.width, stride=cfg.top_stride)
        stages = ("stage2", "stage3", "stage4", "stage5")[: {8: 2, 16: 3, 32: 4}[cfg.top_stride]]
    else:
        try:
            bb = build_backbone(cfg.backbone, pretrained=cfg.pretrained)
        except CheckpointError as e:
            if not cfg.pretrained:
                raise
            log.warning("model.pretrained=True but no local ImageNet weights for %s (%s): training %s from "
                        "random initialisation (the paper starts from ImageNet weights)", cfg.backbone, e,
                        cfg.backbone)
            bb = build_backbone(cfg.backbone, pretrained=False)
        stages = ("layer1", "layer2", "layer3", "layer4")
    return StageTrunk(bb, stages[1:] if cfg.stride == 8 else stages)


class ViTTrunk(nn.Module):
    """ViT-B/14 (DINOv2-shaped) over an input resized to a multiple of 14; returns patch tokens
    as a ``(B, 768, H/14, W/14)`` map."""

    def __init__(self, image_size: tuple[int, int], patch: int = 14, layers: int = 12, heads: int = 12,
                 hidden: int = 768, mlp: int = 3072):
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer

        H, W = image_size
        self.size = (max(patch, round(H / patch) * patch), max(patch, round(W / patch) * patch))
        side = max(self.size)
        self.vit = VisionTransformer(image_size=side, patch_size=patch, num_layers=layers, num_heads=heads,
                                     hidden_dim=hidden, mlp_dim=mlp)
        self.patch = patch
        self.channels = (hidden,)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        side = self.vit.image_size
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        t = self.vit.conv_proj(x)                                            # (B, C, s, s)
        B, C, h, w = t.shape
        t = t.flatten(2).transpose(1, 2)
        t = torch.cat([self.vit.class_token.expand(B, -1, -1), t], 1)
        t = self.vit.encoder(t)[:, 1:]
        return [t.transpose(1, 2).reshape(B, C, h, w)]


class FeatureExtractor(nn.Module):
    """Image ``(B, 3, H, W)`` in [0, 1] -> unit features ``(B, D, h, w)`` (see module docstring)."""

    def __init__(self, cfg: ModelSection, image_size: tuple[int, int] = (128, 128)):
        super().__init__()
        self.kind = cfg.backbone
        self.input_size = int(cfg.input_size)
        self.image_size = tuple(image_size) if not self.input_size else (
            self.input_size, max(1, round(self.input_size * image_size[1] / image_size[0])))
        if cfg.backbone in ("small_cnn", "resnet18", "resnet50"):
            self.trunk = build_trunk(cfg)
            self.decoder = UpsampleDecoder(self.trunk.channels)
            cout = self.decoder.out_channels
        elif cfg.backbone == "vit_b":
            self.trunk = ViTTrunk(self.image_size)
            self.decoder = None
            cout = self.trunk.channels[0]
        else:  # pragma: no cover - Literal-checked by the config
            raise ConfigError(f"unknown backbone {cfg.backbone!r}")
        self.head = nn.Conv2d(cout, cfg.feature_dim, 1)
        self.pool_channels = self.trunk.channels[-1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # CNNs run in channels-last memory layout (oneDNN/cuDNN's native layout: no reorders around
        # every convolution; ~10% less CPU time for the small CNN's training step). Same values up
        # to float rounding; checkpoints are layout-independent.
        self.channels_last = self.decoder is not None
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def trunk_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"images: expected (B, 3, H, W), got {tuple(images.shape)}")
        if self.input_size and images.shape[-2] != self.input_size:
            H, W = images.shape[-2:]
            size = (self.input_size, max(1, round(self.input_size * W / H)))
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        x = (images - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.trunk_features(images)
        x = self.decoder(feats) if self.decoder is not None else feats[-1]
        return F.normalize(self.head(x), dim=1).contiguous()

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Feature-map size for an input size (by a dry run on a zero image)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            out = self(torch.zeros(1, 3, *image_size, device=self.mean.device))
            self.train(was)
        return tuple(out.shape[-2:])


class NeuralMeshModel(nn.Module):
    """Extractor + vertex/background banks + padded class cuboids (3D-CompNets and NOVUM).

    Buffers: ``verts (Y, K, 3)``, ``n_verts (Y,)``; faces are kept as a list (``faces``), rebuilt
    from the dataset's cuboids (deterministic) and moved with the module.
    """

    def __init__(self, cfg: CompNet3DConfig, meshes: CategoryMeshes, image_size: tuple[int, int]):
        super().__init__()
        self.cfg = cfg
        self.class_names = list(meshes.names)
        self.extractor = FeatureExtractor(cfg.model, image_size)
        self.bank = FeatureBank(meshes.n_vertices, cfg.model.feature_dim, cfg.bank.n_background)
        self.register_buffer("verts", meshes.padded_verts())
        self.register_buffer("n_verts", torch.tensor(meshes.n_vertices))
        self.faces = [f.clone() for f in meshes.faces]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.faces = [fn(f) if f.is_floating_point() else f.to(self.verts.device) for f in self.faces]
        return self

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> unit feature map ``(B, D, h, w)``."""
        return self.extractor(images)


class DualHead(nn.Module):
    """The DNN baseline: trunk + global average pool + class logits + 3 x ``bins`` pose logits."""

    def __init__(self, cfg: CompNet3DConfig, n_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.cfg = cfg
        self.extractor = FeatureExtractor(cfg.model, image_size)
        c = self.extractor.pool_channels
        self.bins = cfg.model.pose_bins
        self.cls = nn.Linear(c, n_classes)
        self.pose = nn.Linear(c, 3 * self.bins)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``class logits (B, Y)``, ``pose logits (B, 3, bins)`` (azimuth, elevation, theta)."""
        x = self.extractor.trunk_features(images)[-1].mean((-2, -1))
        return self.cls(x), self.pose(x).view(-1, 3, self.bins)


# ---------------------------------------------------------------------------- pose bins (dual head)
POSE_RANGES = ((0.0, 2 * math.pi), (-math.pi / 2, math.pi / 2), (-math.pi, math.pi))


def angles_to_bins(azimuth: torch.Tensor, elevation: torch.Tensor, theta: torch.Tensor, bins: int) -> torch.Tensor:
    """Angles (radians) -> ``(B, 3)`` long bin indices over :data:`POSE_RANGES` (azimuth and theta wrap)."""
    out = []
    for x, (lo, hi), wrap in zip((azimuth, elevation, theta), POSE_RANGES, (True, False, True)):
        span = hi - lo
        u = (x - lo) / span
        u = torch.remainder(u, 1.0) if wrap else u.clamp(0.0, 1.0 - 1e-6)
        out.append((u * bins).long().clamp(0, bins - 1))
    return torch.stack(out, 1)


def bins_to_angles(idx: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3)`` bin indices -> bin-centre angles (azimuth, elevation, theta)."""
    outs = []
    for j, (lo, hi) in enumerate(POSE_RANGES):
        outs.append(lo + (idx[:, j].float() + 0.5) * (hi - lo) / bins)
    return outs[0], outs[1], outs[2]
