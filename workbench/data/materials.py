"""Per-instance colours and procedural solid textures (evaluated at 3D surface points).

A :class:`Material` is a base colour, a secondary colour and a pattern evaluated in the object's
canonical frame, so textures stick to the object under any pose without UV maps. Patterns:
``plain``, ``stripes``, ``checker``, ``noise`` (value noise, 3 octaves), ``wood`` (rings about an
axis with noise), ``dots`` and ``marble``. Palettes (``wood``, ``fabric``, ``paint``...) give
plausible colour distributions per kind of part.

All colours are linear RGB floats in [0, 1].
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["PATTERNS", "Material", "PALETTES", "sample_material", "flat_material", "evaluate_materials",
           "value_noise3", "value_noise2"]

PATTERNS = ("plain", "stripes", "checker", "noise", "wood", "dots", "marble")


@dataclass
class Material:
    """Colour + pattern of a surface. ``scale`` is the pattern frequency per canonical unit."""

    color: Tuple[float, float, float]
    color2: Tuple[float, float, float]
    pattern: str = "plain"
    scale: float = 6.0
    direction: Tuple[float, float, float] = (0.0, 1.0, 0.0)
    seed: int = 0

    def to_dict(self) -> dict:
        return {"color": [round(float(c), 4) for c in self.color],
                "color2": [round(float(c), 4) for c in self.color2],
                "pattern": self.pattern, "scale": round(float(self.scale), 4),
                "direction": [round(float(c), 4) for c in self.direction], "seed": int(self.seed)}


@dataclass
class Palette:
    """Base colours (RGB 0-255) with HSV jitter, and a pattern distribution."""

    colors: List[Tuple[int, int, int]]
    patterns: Dict[str, float] = field(default_factory=lambda: {"plain": 1.0})
    jitter: Tuple[float, float, float] = (0.03, 0.12, 0.12)  # hue, saturation, value
    scale: Tuple[float, float] = (4.0, 10.0)
    contrast: Tuple[float, float] = (0.15, 0.35)


PALETTES: Dict[str, Palette] = {
    "wood": Palette([(150, 100, 60), (120, 75, 40), (185, 140, 90), (95, 60, 35), (205, 170, 120)],
                    {"wood": 0.7, "plain": 0.2, "noise": 0.1}, (0.02, 0.1, 0.12), (5.0, 12.0), (0.15, 0.3)),
    "fabric": Palette([(170, 40, 40), (40, 70, 150), (60, 120, 70), (200, 170, 60), (120, 120, 125),
                       (90, 60, 120), (220, 210, 190), (40, 40, 45), (200, 110, 50), (60, 150, 160)],
                      {"plain": 0.45, "noise": 0.25, "checker": 0.15, "stripes": 0.15}, (0.03, 0.12, 0.15),
                      (6.0, 16.0), (0.1, 0.3)),
    "metal": Palette([(170, 172, 178), (110, 112, 118), (60, 62, 66), (200, 190, 160)],
                     {"plain": 0.7, "noise": 0.3}, (0.01, 0.05, 0.15), (10.0, 20.0), (0.05, 0.15)),
    "paint": Palette([(190, 20, 25), (20, 60, 160), (235, 235, 230), (25, 25, 28), (150, 155, 160),
                      (240, 190, 20), (30, 120, 60), (230, 110, 20), (90, 20, 40), (80, 160, 210)],
                     {"plain": 0.85, "stripes": 0.15}, (0.02, 0.08, 0.1), (2.0, 4.0), (0.2, 0.4)),
    "plastic": Palette([(220, 50, 50), (40, 110, 220), (250, 200, 40), (60, 180, 90), (240, 240, 240),
                        (30, 30, 30), (240, 130, 170), (120, 80, 200)],
                       {"plain": 0.8, "dots": 0.1, "stripes": 0.1}, (0.03, 0.1, 0.1), (5.0, 12.0), (0.2, 0.4)),
    "ceramic": Palette([(240, 238, 230), (200, 60, 50), (50, 90, 170), (230, 200, 80), (70, 140, 110),
                        (40, 40, 45), (220, 150, 160)],
                       {"plain": 0.6, "stripes": 0.15, "dots": 0.15, "checker": 0.1}, (0.02, 0.1, 0.08),
                       (5.0, 14.0), (0.2, 0.45)),
    "glass": Palette([(60, 110, 70), (110, 70, 40), (70, 110, 150), (200, 210, 215), (40, 40, 50)],
                     {"plain": 0.9, "noise": 0.1}, (0.02, 0.1, 0.1), (4.0, 8.0), (0.05, 0.15)),
    "window": Palette([(40, 55, 70), (25, 30, 40), (60, 80, 100)], {"plain": 1.0}, (0.01, 0.05, 0.1)),
    "rubber": Palette([(30, 30, 32), (45, 45, 48)], {"plain": 1.0}, (0.0, 0.02, 0.08)),
    "light": Palette([(250, 240, 200), (255, 250, 235)], {"plain": 1.0}, (0.01, 0.05, 0.03)),
    "bedding": Palette([(240, 240, 235), (170, 190, 220), (220, 180, 180), (190, 210, 180), (230, 220, 170)],
                       {"plain": 0.5, "stripes": 0.2, "checker": 0.15, "dots": 0.15}, (0.02, 0.1, 0.06),
                       (6.0, 14.0), (0.1, 0.25)),
    "feather": Palette([(130, 90, 55), (60, 60, 65), (190, 40, 35), (230, 200, 60), (70, 100, 170),
                        (160, 150, 130), (40, 35, 30)],
                       {"noise": 0.5, "plain": 0.3, "stripes": 0.2}, (0.03, 0.12, 0.12), (10.0, 20.0), (0.15, 0.35)),
    "belly": Palette([(225, 215, 190), (240, 230, 210), (200, 170, 120), (230, 120, 60), (240, 220, 90)],
                     {"plain": 0.6, "noise": 0.4}, (0.02, 0.1, 0.08), (10.0, 18.0), (0.1, 0.2)),
    "beak": Palette([(230, 150, 40), (60, 55, 50), (220, 190, 110)], {"plain": 1.0}, (0.02, 0.1, 0.1)),
    "matte": Palette([(200, 200, 200), (60, 60, 60), (180, 140, 100), (120, 40, 40), (40, 80, 120),
                      (80, 120, 60), (210, 190, 150)],
                     {"plain": 0.5, "noise": 0.3, "stripes": 0.1, "checker": 0.1}, (0.05, 0.15, 0.15),
                     (4.0, 12.0), (0.1, 0.35)),
}


def _jitter_color(rgb255: Sequence[int], rng: np.random.Generator, jitter: Tuple[float, float, float]) -> np.ndarray:
    r, g, b = (np.asarray(rgb255, np.float64) / 255.0).tolist()
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h = (h + rng.uniform(-jitter[0], jitter[0])) % 1.0
    s = float(np.clip(s + rng.uniform(-jitter[1], jitter[1]), 0, 1))
    v = float(np.clip(v + rng.uniform(-jitter[2], jitter[2]), 0.03, 1))
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def sample_material(palette: str, rng: np.random.Generator, base: np.ndarray | None = None) -> Material:
    """Draw a material from a named palette (``base`` forces the base colour before jitter)."""
    pal = PALETTES[palette]
    rgb = pal.colors[int(rng.integers(len(pal.colors)))] if base is None else np.asarray(base) * 255
    c1 = _jitter_color(rgb, rng, pal.jitter)
    names = list(pal.patterns)
    probs = np.array([pal.patterns[n] for n in names], np.float64)
    pattern = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    contrast = rng.uniform(*pal.contrast)
    if pattern in ("checker", "stripes", "dots") and rng.random() < 0.5:
        c2 = _jitter_color(pal.colors[int(rng.integers(len(pal.colors)))], rng, pal.jitter)
        c2 = c1 * (1 - 2 * contrast) + c2 * 2 * contrast
    else:
        c2 = np.clip(c1 * (1 - contrast) + (0.0 if c1.mean() > 0.5 else 1.0) * contrast * 0.6, 0, 1)
        if c1.mean() > 0.5:
            c2 = c1 * (1 - contrast)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    return Material(tuple(c1.tolist()), tuple(np.clip(c2, 0, 1).tolist()), pattern,
                    float(rng.uniform(*pal.scale)), tuple(d.tolist()), int(rng.integers(2**31 - 1)))


def flat_material(grey: float = 0.8) -> Material:
    return Material((grey,) * 3, (grey,) * 3, "plain")


# ----------------------------------------------------------------------------- noise
def _hash3(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (iz.astype(np.int64) * 83492791)
    h = h ^ (seed * 2654435761 & 0x7FFFFFFF)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 65535.0


def value_noise3(p: np.ndarray, seed: int = 0, octaves: int = 3) -> np.ndarray:
    """Smooth value noise in [0, 1] at ``(M, 3)`` points (lattice spacing 1 at octave 0)."""
    out = np.zeros(p.shape[0])
    amp, tot = 1.0, 0.0
    q = p.astype(np.float64)
    for o in range(octaves):
        i = np.floor(q)
        f = q - i
        f = f * f * (3 - 2 * f)
        i = i.astype(np.int64)
        acc = 0.0
        for dx in (0, 1):
            wx = f[:, 0] if dx else 1 - f[:, 0]
            for dy in (0, 1):
                wy = f[:, 1] if dy else 1 - f[:, 1]
                for dz in (0, 1):
                    wz = f[:, 2] if dz else 1 - f[:, 2]
                    acc = acc + wx * wy * wz * _hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed + o)
        out += amp * acc
        tot += amp
        amp *= 0.5
        q = q * 2.0
    return out / tot


def value_noise2(h: int, w: int, cells: float, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """(h, w) smooth 2D noise in [0, 1] (bilinear-upsampled random lattices, ``cells`` across)."""
    ys = (np.arange(h) + 0.5) / h
    xs = (np.arange(w) + 0.5) / w
    out = np.zeros((h, w))
    amp, tot = 1.0, 0.0
    c = cells
    for _ in range(octaves):
        n = int(np.ceil(c)) + 2
        lat = rng.random((n, n))
        # smoothstep-weighted bilinear interpolation of the lattice as Wy @ lat @ Wx^T
        out += amp * (_interp_matrix(ys * c, n) @ lat @ _interp_matrix(xs * c, n).T)
        tot += amp
        amp *= 0.5
        c *= 2
    return out / tot


def _interp_matrix(g: np.ndarray, n: int) -> np.ndarray:
    """``(len(g), n)`` weights of smoothstep interpolation between lattice nodes floor(g), floor(g)+1."""
    i0 = np.floor(g).astype(int)
    f = g - i0
    f = f * f * (3 - 2 * f)
    m = np.zeros((g.shape[0], n))
    r = np.arange(g.shape[0])
    m[r, i0] = 1 - f
    m[r, i0 + 1] = f
    return m


# ----------------------------------------------------------------------------- evaluation
def _pattern_mix(m: Material, p: np.ndarray) -> np.ndarray:
    """Mixing weight in [0, 1] towards ``color2`` at object-frame points ``p (M, 3)``."""
    s = m.scale
    d = np.asarray(m.direction)
    if m.pattern == "plain":
        return np.zeros(p.shape[0])
    if m.pattern == "stripes":
        return (np.sin(2 * np.pi * s * (p @ d)) > 0.3).astype(np.float64)
    if m.pattern == "checker":
        q = np.floor(p * s).astype(np.int64)
        return ((q.sum(1)) % 2).astype(np.float64)
    if m.pattern == "noise":
        return value_noise3(p * s, m.seed)
    if m.pattern == "wood":
        # grain: stretched stripes across ``direction`` warped by low-frequency noise
        t = (p @ d) * s * 1.5 + 1.2 * value_noise3(p * np.array([2.0, 6.0, 2.0]), m.seed, 2)
        return 0.5 + 0.5 * np.sin(2 * np.pi * t)
    if m.pattern == "dots":
        q = p * s
        f = q - np.floor(q) - 0.5
        return (np.linalg.norm(f, axis=1) < 0.28).astype(np.float64)
    if m.pattern == "marble":
        t = p @ d * s + 4 * value_noise3(p * 2, m.seed, 3)
        return 0.5 + 0.5 * np.sin(2 * np.pi * t)
    raise ValueError(f"unknown pattern '{m.pattern}' (valid: {', '.join(PATTERNS)})")


def evaluate_materials(materials: Sequence[Material], mat_index: np.ndarray, points: np.ndarray,
                       textured: bool = True) -> np.ndarray:
    """Albedo ``(M, 3)`` at points ``(M, 3)`` given each point's material index ``(M,)``."""
    out = np.empty((points.shape[0], 3))
    for k, m in enumerate(materials):
        sel = mat_index == k
        if not sel.any():
            continue
        c1 = np.asarray(m.color)
        if not textured or m.pattern == "plain":
            out[sel] = c1
            continue
        w = _pattern_mix(m, points[sel])[:, None]
        out[sel] = c1 * (1 - w) + np.asarray(m.color2) * w
    return out
