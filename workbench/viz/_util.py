"""Small helpers shared by the viz modules: array conversion, images as PNG data URIs, colours."""
from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from ..core.errors import ShapeError

#: A qualitative palette (plotly's "Plotly" + "D3" colours), used for runs, categories, instances.
PALETTE = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
    "#FF97FF", "#FECB52", "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B",
)


def to_numpy(x: Any, dtype=None) -> np.ndarray:
    """A numpy copy of a tensor/array/list (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    return a.astype(dtype) if dtype is not None else a


def palette_color(i: int) -> str:
    return PALETTE[int(i) % len(PALETTE)]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` or ``"rgb(r,g,b)"`` -> ``(r, g, b)`` in 0..255."""
    c = color.strip()
    if c.startswith("#") and len(c) == 7:
        return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)
    if c.startswith("rgb"):
        parts = c[c.index("(") + 1: c.index(")")].split(",")
        return tuple(int(float(p)) for p in parts[:3])  # type: ignore[return-value]
    raise ValueError(f"unsupported colour '{color}'")


def rgb_strings(colors: np.ndarray) -> list[str]:
    """``(N, 3)`` colours in [0, 1] -> plotly ``"rgb(r,g,b)"`` strings."""
    c = np.clip(np.round(to_numpy(colors, np.float64) * 255.0), 0, 255).astype(int)
    return [f"rgb({r},{g},{b})" for r, g, b in c]


def to_hwc_image(img: Any, name: str = "image") -> np.ndarray:
    """Any image layout -> ``(H, W, 3)`` float in [0, 1].

    Accepts ``(3, H, W)``/``(1, H, W)`` tensors or arrays (the library's layout), ``(H, W, 3)``,
    ``(H, W, 4)`` (alpha dropped), ``(H, W)`` greyscale, and uint8 arrays (divided by 255).
    """
    a = to_numpy(img)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ShapeError(f"{name}: expected (C,H,W), (H,W,C) or (H,W), got shape {tuple(a.shape)}")
    if a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    elif a.shape[0] in (1, 3, 4) and a.shape[-1] in (1, 3, 4) and a.shape[0] < a.shape[-1]:
        # ambiguous tiny image, e.g. (3, 4, 4): the library's layout is channels first
        a = np.moveaxis(a, 0, -1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:
        a = a[..., :3]
    elif a.shape[-1] != 3:
        raise ShapeError(f"{name}: expected 1, 3 or 4 channels, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(a, 0.0, 1.0)


def to_mask(m: Any, name: str = "mask") -> np.ndarray:
    """``(1, H, W)``, ``(H, W)`` or ``(H, W, 1)`` -> ``(H, W)`` float in [0, 1]."""
    a = to_numpy(m).astype(np.float32)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ShapeError(f"{name}: expected (1,H,W) or (H,W), got shape {tuple(to_numpy(m).shape)}")
    if a.max(initial=0.0) > 1.0:
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


def as_image_list(images: Any, name: str = "images") -> list[np.ndarray]:
    """A batch ``(B, C, H, W)`` or a sequence of images -> list of ``(H, W, 3)`` floats."""
    if hasattr(images, "ndim") and getattr(images, "ndim") == 4:
        return [to_hwc_image(images[i], f"{name}[{i}]") for i in range(images.shape[0])]
    if hasattr(images, "ndim") and getattr(images, "ndim") in (2, 3):
        return [to_hwc_image(images, name)]
    return [to_hwc_image(im, f"{name}[{i}]") for i, im in enumerate(images)]


def png_bytes(img_hwc: np.ndarray) -> bytes:
    """``(H, W, 3)`` float [0, 1] (or uint8) -> PNG bytes."""
    from PIL import Image

    a = img_hwc
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(img_hwc: np.ndarray) -> str:
    """``(H, W, 3)`` image -> ``data:image/png;base64,...`` (compact in figures and HTML)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(img_hwc)).decode("ascii")


def decode_data_uri(uri: str) -> np.ndarray:
    """Inverse of :func:`png_data_uri`: ``(H, W, 3)`` uint8."""
    from PIL import Image

    payload = uri.split(",", 1)[1]
    img = Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")
    return np.asarray(img)


def thumbnail(img_hwc: np.ndarray, size: int = 64) -> np.ndarray:
    """Downscale (area) so that the longer side is at most ``size`` pixels."""
    from PIL import Image

    h, w = img_hwc.shape[:2]
    s = size / max(h, w)
    if s >= 1:
        return img_hwc
    a = (np.clip(img_hwc, 0, 1) * 255 + 0.5).astype(np.uint8)
    out = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX)
    return np.asarray(out).astype(np.float32) / 255.0


def colormap(values: Any, vmin: float, vmax: float, colorscale: str = "Viridis") -> np.ndarray:
    """Map scalars to RGB in [0, 1] with a named plotly colorscale: ``(N,)`` -> ``(N, 3)`` (vectorised)."""
    from plotly.colors import get_colorscale, hex_to_rgb as _hex, unlabel_rgb

    scale = get_colorscale(colorscale)
    pos = np.array([float(p) for p, _ in scale])
    rgb = np.array([_hex(c) if c.startswith("#") else unlabel_rgb(c) for _, c in scale], np.float64) / 255.0
    v = to_numpy(values, np.float64).reshape(-1)
    span = vmax - vmin if vmax > vmin else 1.0
    t = np.nan_to_num(np.clip((v - vmin) / span, 0.0, 1.0), nan=0.0)
    return np.stack([np.interp(t, pos, rgb[:, c]) for c in range(3)], axis=-1)


def sample_colorscale(values: Any, vmin: float, vmax: float, colorscale: str = "Viridis") -> list[str]:
    """Map scalars to ``"rgb(r,g,b)"`` strings of a named plotly colorscale."""
    return rgb_strings(colormap(values, vmin, vmax, colorscale))


def check_len(name: str, seq: Sequence | None, n: int) -> None:
    if seq is not None and len(seq) != n:
        raise ShapeError(f"{name}: expected {n} entries, got {len(seq)}")
