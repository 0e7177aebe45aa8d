"""Backbones behind one interface and a timm-like registry.

Every backbone is a :class:`Backbone`:

* ``features(x)`` -> ``(B, out_channels, H / stride, W / stride)`` spatial feature map;
* ``features(x, return_stages=True)`` -> ``{stage: map}`` for every stage, or
  ``return_stages=["layer2", "layer3", "layer4"]`` for some (computation stops after the last
  one asked for) -- the multi-scale input of an upsampling decoder such as the ResNet-50
  "ResNetExt" of neural mesh models (layer2 s8, layer3 s16, layer4 s32);
* ``forward(x)`` -> ``(B, out_channels)`` global-average-pooled vector;
* attributes ``out_channels``, ``stride``, ``in_channels``, ``stage_names``, ``stage_channels``,
  ``stage_strides``.

Input: ``(B, in_channels, H, W)`` images (float; ImageNet normalisation is the caller's choice).

Names (``list_backbones()``): ``small_cnn`` (fast CPU CNN, stride 8 or 16), ``resnet18``,
``resnet34``, ``resnet50`` (stages ``stem, layer1..layer4``), ``vgg16`` (stages ``relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3, pool5``; ``features`` ends at ``pool5`` = torchvision's
``vgg16().features``; perceptual losses use ``return_stages=["relu3_3"]``). ResNets and VGG
accept ``out_stage=`` to drop later stages (e.g. ``resnet18(out_stage="layer3")``: stride 16,
256 channels, 2.8M parameters).

Pretrained weights are never downloaded. ``pretrained=True`` (or a torchvision weight name such
as ``"IMAGENET1K_V1"``) loads torchvision's ImageNet weights from ``weights_path`` if given, else
from ``$WB_WEIGHTS_DIR/<file>`` or the torch hub cache ``<torch.hub.get_dir()>/checkpoints/<file>``
(the file names torchvision uses, e.g. ``resnet50-11ad3fa6.pth``); when none exists a
:class:`~workbench.core.errors.CheckpointError` lists the paths that were tried. ``weights_path``
alone also loads (a torchvision state dict, or this backbone's own ``state_dict()``).
With ``in_channels != 3`` the first convolution is rebuilt; pretrained RGB filters are kept for
the first three channels and extra channels start at zero (so an extra mask channel leaves
the pretrained response unchanged), while a single channel gets the sum of the RGB filters
(a grey image gives the response of the same grey replicated to RGB).

Register your own::

    @register_backbone("tiny")
    def tiny(pretrained=False, in_channels=3, weights_path=None, **kw) -> Backbone: ...
"""
from __future__ import annotations

import difflib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..core.errors import CheckpointError, ConfigError, ShapeError
from .conv import use_small_map_convs

_REGISTRY: dict[str, Callable[..., "Backbone"]] = {}


# ---------------------------------------------------------------------------------------- registry
def register_backbone(name: str | None = None) -> Callable:
    """Decorator registering ``fn(pretrained, in_channels, weights_path, **kwargs) -> Backbone``."""

    def deco(fn: Callable[..., "Backbone"]) -> Callable[..., "Backbone"]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"backbone '{key}' is already registered")
        _REGISTRY[key] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def build_backbone(name: str, pretrained: bool | str = False, in_channels: int = 3,
                   weights_path: str | os.PathLike | None = None, **kwargs) -> "Backbone":
    """Build a registered backbone (see the module docstring); unknown names raise ``ConfigError``."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown backbone '{name}'{hint} (available: {', '.join(list_backbones())})")
    if in_channels < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
    model = _REGISTRY[name](pretrained=pretrained, in_channels=in_channels, weights_path=weights_path, **kwargs)
    # small late-stage maps (2x2-4x4 at the quick profiles' 48-64 px) convolve as one GEMM on the CPU
    return use_small_map_convs(model)


# ---------------------------------------------------------------------------------------- base
class Backbone(nn.Module):
    """Base class: subclasses fill the stage tables and implement ``_run_stage``."""

    in_channels: int
    out_channels: int
    stride: int
    stage_names: tuple[str, ...]
    stage_channels: dict[str, int]
    stage_strides: dict[str, int]

    def _run_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _truncate(self, out_stage: str | None) -> None:
        """Keep the stages up to ``out_stage``; set ``out_channels``/``stride``."""
        if out_stage is not None and out_stage not in self.stage_names:
            raise ConfigError(f"{type(self).__name__}: unknown out_stage '{out_stage}' "
                              f"(stages: {', '.join(self.stage_names)})")
        last = out_stage or self.stage_names[-1]
        keep = self.stage_names[: self.stage_names.index(last) + 1]
        self._drop_stages([s for s in self.stage_names if s not in keep])
        self.stage_names = tuple(keep)
        self.stage_channels = {k: self.stage_channels[k] for k in keep}
        self.stage_strides = {k: self.stage_strides[k] for k in keep}
        self.out_channels = self.stage_channels[last]
        self.stride = self.stage_strides[last]

    def _drop_stages(self, names: Sequence[str]) -> None:
        for n in names:
            if hasattr(self, n) and isinstance(getattr(self, n), nn.Module):
                delattr(self, n)

    def features(self, x: torch.Tensor, return_stages: bool | Iterable[str] = False):
        """``(B, C_in, H, W)`` -> ``(B, out_channels, H/stride, W/stride)`` or a dict of stage maps."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{type(self).__name__}.features: expected (B, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        if return_stages is False:
            want: set[str] = set()
        elif return_stages is True:
            want = set(self.stage_names)
        else:
            want = set(return_stages)
            unknown = want - set(self.stage_names)
            if unknown:
                raise ConfigError(f"{type(self).__name__}: unknown stages {sorted(unknown)} "
                                  f"(stages: {', '.join(self.stage_names)})")
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for name in self.stage_names:
            x = self._run_stage(name, x)
            if name in want:
                out[name] = x
                if len(out) == len(want):
                    break
        return out if want else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features ``(B, out_channels)``."""
        return self.features(x).mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------- small CNN
def _norm(kind: str, c: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(c)
    if kind == "gn":
        return nn.GroupNorm(min(8, c), c)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"small_cnn: unknown norm '{kind}' (expected bn, gn or none)")


def _conv(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=norm == "none"), _norm(norm, cout),
                         nn.ReLU(inplace=True))


class SmallCNN(Backbone):
    """A fast CPU CNN: a 3x3 stem, then ``log2(stride)`` stages of (3x3 stride-2 conv + ``blocks``
    3x3 convs), channels ``width * 2**i`` capped at ``8 * width``; BN (or GN/none) + ReLU.

    ``small_cnn(width=32, stride=8)``: 128 output channels, ~0.3M parameters.
    """

    def __init__(self, in_channels: int = 3, width: int = 32, stride: int = 8, blocks: int = 1, norm: str = "bn"):
        super().__init__()
        if stride not in (4, 8, 16, 32):
            raise ConfigError(f"small_cnn: stride must be 4, 8, 16 or 32, got {stride}")
        self.in_channels = in_channels
        n = stride.bit_length() - 1
        self.stem = _conv(in_channels, width, 1, norm)
        names, chans, strides = ["stem"], {"stem": width}, {"stem": 1}
        cin = width
        for i in range(1, n + 1):
            cout = width * min(2 ** (i - 1), 8)
            layers = [_conv(cin, cout, 2, norm)] + [_conv(cout, cout, 1, norm) for _ in range(blocks)]
            setattr(self, f"stage{i}", nn.Sequential(*layers))
            names.append(f"stage{i}")
            chans[f"stage{i}"], strides[f"stage{i}"] = cout, 2 ** i
            cin = cout
        self.stage_names, self.stage_channels, self.stage_strides = tuple(names), chans, strides
        self.out_channels, self.stride = cin, stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _run_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, name)(x)


@register_backbone("small_cnn")
def small_cnn(pretrained: bool | str = False, in_channels: int = 3, weights_path=None, width: int = 32,
              stride: int = 8, blocks: int = 1, norm: str = "bn") -> SmallCNN:
    """Fast CPU CNN (no pretrained weights; ``weights_path`` loads its own saved ``state_dict``)."""
    if pretrained and weights_path is None:
        raise ConfigError("small_cnn has no pretrained weights; pass weights_path= to load a saved state_dict")
    model = SmallCNN(in_channels, width, stride, blocks, norm)
    if weights_path is not None:
        state = _read_state_dict(Path(weights_path))
        _load_checked(model, state, Path(weights_path))
    return model


# ---------------------------------------------------------------------------------------- weights
def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a dict of tensors)")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor], path: Path,
                  ignore_prefixes: tuple[str, ...] = ()) -> None:
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def short(xs):
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")
        parts = [f"missing {short(missing)}" if missing else "", f"unexpected {short(unexpected)}" if unexpected else "",
                 f"shape mismatch {short(shapes)}" if shapes else ""]
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: " + "; ".join(p for p in parts if p))
    module.load_state_dict(state)


def _weight_candidates(arch: str, pretrained: bool | str) -> list[str]:
    """torchvision file names for ``arch``: the requested variant, or DEFAULT first then the others."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    if isinstance(pretrained, str) and pretrained not in ("DEFAULT", "default"):
        try:
            variants = [enum[pretrained]]
        except KeyError:
            raise ConfigError(f"{arch}: unknown weights '{pretrained}' (available: "
                              f"{', '.join(w.name for w in enum)})") from None
    else:
        variants = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    return [w.url.rsplit("/", 1)[-1] for w in variants]


def locate_pretrained(arch: str, pretrained: bool | str = True,
                      weights_path: str | os.PathLike | None = None) -> Path:
    """Path of local pretrained weights for a torchvision ``arch``; ``CheckpointError`` lists where it looked."""
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if p.is_file():
            return p
        raise CheckpointError(f"{arch}: weights_path {p} does not exist")
    tried = []
    dirs = []
    if os.environ.get("WB_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["WB_WEIGHTS_DIR"]).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    for fname in _weight_candidates(arch, pretrained):
        for d in dirs:
            p = d / fname
            tried.append(str(p))
            if p.is_file():
                return p
    raise CheckpointError(f"pretrained weights for {arch} not found locally (no download is attempted); looked in: "
                          f"{', '.join(tried)}. Copy the torchvision weight file there, set $WB_WEIGHTS_DIR, or pass "
                          f"weights_path=..., or use pretrained=False")


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int, keep_weights: bool) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs (see the module docstring for the weight rule)."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    if keep_weights:
        with torch.no_grad():
            w = conv.weight
            new.weight.zero_()
            if in_channels >= w.shape[1]:
                new.weight[:, : w.shape[1]] = w
            else:
                new.weight[:, :1] = w.sum(1, keepdim=True)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    return new


def _file_in_channels(state: dict[str, torch.Tensor], key: str, path: Path) -> int:
    if key not in state:
        raise CheckpointError(f"{path}: no '{key}' in the state_dict (keys: {', '.join(list(state)[:5])}, ...)")
    return int(state[key].shape[1])


# ---------------------------------------------------------------------------------------- ResNet
_RESNET_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
                    "resnet50": (256, 512, 1024, 2048)}


class ResNetBackbone(Backbone):
    """torchvision ResNet trunk (no avgpool/fc); parameter names equal torchvision's."""

    def __init__(self, arch: str, in_channels: int = 3, pretrained: bool | str = False,
                 weights_path: str | os.PathLike | None = None, out_stage: str | None = None):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        state, path = None, None
        if pretrained or weights_path is not None:
            path = locate_pretrained(arch, pretrained or True, weights_path)
            state = _read_state_dict(path)
        file_in = _file_in_channels(state, "conv1.weight", path) if state is not None else 3
        if state is not None and file_in != 3:
            if file_in != in_channels:
                raise CheckpointError(f"{path}: conv1 takes {file_in} channels, in_channels={in_channels}")
            net.conv1 = _adapt_first_conv(net.conv1, in_channels, keep_weights=False)
        if state is not None:
            if any(k.startswith("fc.") for k in state):
                _load_checked(net, state, path)  # a full torchvision state dict
            else:
                _load_checked(_WithoutFC(net), state, path)  # a ResNetBackbone's own state_dict
        if net.conv1.in_channels != in_channels:
            net.conv1 = _adapt_first_conv(net.conv1, in_channels, keep_weights=state is not None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.arch, self.in_channels, self.weights_file = arch, in_channels, str(path) if path else None
        ch = _RESNET_CHANNELS[arch]
        self.stage_names = ("stem", "layer1", "layer2", "layer3", "layer4")
        self.stage_channels = {"stem": 64, "layer1": ch[0], "layer2": ch[1], "layer3": ch[2], "layer4": ch[3]}
        self.stage_strides = {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
        self._truncate(out_stage)

    def _drop_stages(self, names: Sequence[str]) -> None:
        for n in names:
            if n != "stem":
                delattr(self, n)

    def _run_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name == "stem":
            return self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return getattr(self, name)(x)


class _WithoutFC(nn.Module):
    """View of a torchvision ResNet whose state_dict lacks ``fc`` (to load a backbone's own state)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def state_dict(self, *a, **k):
        return OrderedDict((k2, v) for k2, v in self.net.state_dict().items() if not k2.startswith("fc."))

    def load_state_dict(self, state, strict: bool = True, **k):
        return self.net.load_state_dict(state, strict=False)


def _resnet_factory(arch: str) -> Callable[..., ResNetBackbone]:
    def factory(pretrained: bool | str = False, in_channels: int = 3, weights_path=None,
                out_stage: str | None = None) -> ResNetBackbone:
        return ResNetBackbone(arch, in_channels, pretrained, weights_path, out_stage)

    factory.__name__ = arch
    factory.__doc__ = f"torchvision {arch} trunk (stages stem, layer1..layer4; stride 32)."
    return factory


for _arch in ("resnet18", "resnet34", "resnet50"):
    register_backbone(_arch)(_resnet_factory(_arch))


# ---------------------------------------------------------------------------------------- VGG16
# (stage name, last index of torchvision vgg16().features in that stage, channels, stride)
_VGG16_STAGES = (("relu1_2", 3, 64, 1), ("relu2_2", 8, 128, 2), ("relu3_3", 15, 256, 4),
                 ("relu4_3", 22, 512, 8), ("relu5_3", 29, 512, 16), ("pool5", 30, 512, 32))


class VGG16Backbone(Backbone):
    """torchvision VGG-16 convolutional part (``vgg16().features``, held as ``body``); no classifier."""

    def __init__(self, in_channels: int = 3, pretrained: bool | str = False,
                 weights_path: str | os.PathLike | None = None, out_stage: str | None = None):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        body = make_layers(cfgs["D"], batch_norm=False)
        for m in body.modules():  # torchvision's VGG init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        path = None
        if pretrained or weights_path is not None:
            path = locate_pretrained("vgg16", pretrained or True, weights_path)
            raw = _read_state_dict(path)
            state = {}
            for k, v in raw.items():
                if k.startswith("features."):
                    state[k[len("features."):]] = v
                elif k.startswith("body."):
                    state[k[len("body."):]] = v
                elif not k.startswith("classifier."):
                    state[k] = v
            file_in = _file_in_channels(state, "0.weight", path)
            if file_in != 3:
                if file_in != in_channels:
                    raise CheckpointError(f"{path}: the first conv takes {file_in} channels, in_channels={in_channels}")
                body[0] = _adapt_first_conv(body[0], in_channels, keep_weights=False)
            _load_checked(body, state, path)
        if body[0].in_channels != in_channels:
            body[0] = _adapt_first_conv(body[0], in_channels, keep_weights=path is not None)
        self.body = body
        self.in_channels, self.weights_file = in_channels, str(path) if path else None
        self.stage_names = tuple(s[0] for s in _VGG16_STAGES)
        self.stage_channels = {s[0]: s[2] for s in _VGG16_STAGES}
        self.stage_strides = {s[0]: s[3] for s in _VGG16_STAGES}
        self._bounds = {}
        start = 0
        for name, last, _, _ in _VGG16_STAGES:
            self._bounds[name] = (start, last + 1)
            start = last + 1
        self._truncate(out_stage)

    def _drop_stages(self, names: Sequence[str]) -> None:
        if names:
            cut = min(self._bounds[n][0] for n in names)
            self.body = self.body[:cut]

    def _run_stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self._bounds[name]
        for i in range(lo, hi):
            x = self.body[i](x)
        return x


@register_backbone("vgg16")
def vgg16(pretrained: bool | str = False, in_channels: int = 3, weights_path=None,
          out_stage: str | None = None) -> VGG16Backbone:
    """torchvision VGG-16 convolutional trunk (stride 32 at ``pool5``)."""
    return VGG16Backbone(in_channels, pretrained, weights_path, out_stage)


def global_pool(x: torch.Tensor, kind: str = "avg") -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C)`` by ``avg``, ``max`` or ``avgmax`` (mean of both)."""
    if kind == "avg":
        return x.mean(dim=(2, 3))
    if kind == "max":
        return x.amax(dim=(2, 3))
    if kind == "avgmax":
        return 0.5 * (x.mean(dim=(2, 3)) + x.amax(dim=(2, 3)))
    raise ConfigError(f"unknown pooling '{kind}' (expected avg, max or avgmax)")


__all__ = ["Backbone", "SmallCNN", "ResNetBackbone", "VGG16Backbone", "register_backbone", "list_backbones",
           "build_backbone", "locate_pretrained", "global_pool"]
