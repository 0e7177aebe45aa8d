"""Procedural category generator: any number of distinct part-based categories for scaling experiments.

``procedural_categories(n, seed)`` returns ``n`` :class:`~workbench.data.world.CategoryDef` whose
names (``"vorlen007"``; ``"s3-vorlen007"`` for seed 3) depend only on ``(seed, index)``, so they are
stable across runs and processes; :func:`resolve_procedural` rebuilds a category from its name.

Each category draws a *structure* once (core primitive and proportions, leg arrangement, top
element, side appendages, front and back features, material palettes); its instances vary
continuous proportions (>= 8 parameters) and discrete options (appendage presence, top style
variant) around that structure. Every category has >= 8 surface keypoints (6 on the core plus
feature tips) and semantic part labels ``core, leg, top, side, front, back``.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Dict, List, Optional

import numpy as np

from . import primitives as P
from .world import B, CATEGORIES, F, NAMED_CATEGORIES, Builder, CategoryDef, stable_seed

__all__ = ["procedural_categories", "resolve_procedural", "procedural_name"]

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr", "gl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]
_CODAS = ["", "", "n", "r", "l", "s", "k", "m"]
_NAME_RE = re.compile(r"^(?:s(\d+)-)?([a-z]+)(\d{3,})$")


def _word(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    parts = []
    for k in range(n):
        parts.append(_ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
                     + (_CODAS[int(rng.integers(len(_CODAS)))] if k == n - 1 else ""))
    return "".join(parts)


def procedural_name(seed: int, index: int) -> str:
    rng = np.random.default_rng(stable_seed("procedural-name", seed, index))
    w = _word(rng)
    return (f"s{seed}-" if seed else "") + f"{w}{index:03d}"


def _surface_point(core: str, radii: np.ndarray, direction) -> np.ndarray:
    """Point on the core surface (centred at 0, half extents ``radii``) along ``direction``."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    if core == "box":
        t = np.min(np.where(np.abs(d) > 1e-9, radii / np.maximum(np.abs(d), 1e-9), np.inf))
    elif core in ("ellipsoid",):
        t = 1.0 / np.linalg.norm(d / radii)
    elif core == "cyl_y":
        rad = np.linalg.norm(d[[0, 2]] / radii[[0, 2]])
        t = min(1.0 / max(rad, 1e-9), radii[1] / max(abs(d[1]), 1e-9))
    else:  # cyl_z
        rad = np.linalg.norm(d[[0, 1]] / radii[[0, 1]])
        t = min(1.0 / max(rad, 1e-9), radii[2] / max(abs(d[2]), 1e-9))
    return d * t


def _core_mesh(core: str, radii: np.ndarray, center) -> P.Mesh:
    if core == "box":
        return P.box(center, 2 * radii)
    if core == "ellipsoid":
        return P.ellipsoid(center, radii, 16, 8)
    if core == "cyl_y":
        m = P.cylinder((0, -1, 0), (0, 1, 0), 1.0, 18)
        return P.transform(m, s=radii, t=center)
    m = P.cylinder((0, 0, -1), (0, 0, 1), 1.0, 18)
    return P.transform(m, s=radii, t=center)


def _make_structure(seed: int, index: int) -> Dict[str, Any]:
    rng = np.random.default_rng(stable_seed("procedural-structure", seed, index))
    s: Dict[str, Any] = {}
    s["core"] = str(rng.choice(["box", "ellipsoid", "cyl_y", "cyl_z"], p=[0.35, 0.3, 0.2, 0.15]))
    s["radii"] = rng.uniform(0.2, 0.75, 3)
    s["legs"] = int(rng.choice([0, 2, 3, 4, 6], p=[0.35, 0.1, 0.15, 0.3, 0.1]))
    s["leg_style"] = str(rng.choice(["cyl", "box", "splay"]))
    s["leg_len"] = float(rng.uniform(0.3, 1.2))
    s["top"] = str(rng.choice(["none", "disc", "sphere", "cone", "box", "mast"], p=[0.25, 0.15, 0.15, 0.15, 0.15, 0.15]))
    s["top_size"] = float(rng.uniform(0.2, 0.6))
    s["side"] = str(rng.choice(["none", "arms", "fins", "handles", "wheels"], p=[0.25, 0.2, 0.2, 0.15, 0.2]))
    s["side_size"] = float(rng.uniform(0.3, 0.9))
    s["front"] = str(rng.choice(["none", "cone", "snout", "disc"], p=[0.3, 0.25, 0.25, 0.2]))
    s["back"] = str(rng.choice(["none", "fin", "panel", "tail"], p=[0.35, 0.2, 0.25, 0.2]))
    pals = ["wood", "metal", "plastic", "paint", "fabric", "ceramic", "matte", "feather"]
    s["pal_core"] = str(rng.choice(pals))
    s["pal_parts"] = str(rng.choice(pals))
    s["pal_accent"] = str(rng.choice(["plastic", "paint", "rubber", "metal", "beak"]))
    return s


def _build_factory(s: Dict[str, Any]):
    core = s["core"]

    def build(p: Dict[str, Any], b: Builder) -> None:
        radii = s["radii"] * np.array([p["scale_x"], p["scale_y"], p["scale_z"]])
        leg_len = s["leg_len"] * p["leg_len"] * (1 if s["legs"] else 0)
        cy = leg_len + radii[1]
        center = np.array([0.0, cy, 0.0])
        b.part("core", _core_mesh(core, radii, center), "core", smooth=core != "box")
        for name, d in (("core_front", (0, 0, 1)), ("core_back", (0, 0, -1)), ("core_left", (1, 0, 0)),
                        ("core_right", (-1, 0, 0)), ("core_top", (0, 1, 0)), ("core_top_front", (0, 1, 1)),
                        ("core_top_back", (0, 1, -1)), ("core_bottom_front", (0, -1, 1))):
            b.kp(name, center + _surface_point(core, radii, d))
        lt = p["leg_t"] * min(radii) * 0.35
        # legs under the core
        nl = s["legs"]
        if nl:
            if nl == 2:
                for sx in (1, -1):
                    x = sx * radii[0] * 0.6
                    y_top = cy - _bottom_depth(core, radii, x, 0.0)
                    b.part("leg", P.box((x, y_top / 2, 0), (lt * 1.2, y_top, radii[2] * 1.4)), "parts", smooth=False)
                feet = [(radii[0] * 0.6, 0.0, radii[2] * 0.7), (-radii[0] * 0.6, 0.0, -radii[2] * 0.7)]
            else:
                if nl == 3:
                    angs = [0.0, 2 * math.pi / 3, 4 * math.pi / 3]
                    pos = [(math.sin(a) * radii[0] * 0.6, math.cos(a) * radii[2] * 0.6) for a in angs]
                elif nl == 4:
                    pos = [(sx * radii[0] * 0.6, sz * radii[2] * 0.6) for sx in (1, -1) for sz in (1, -1)]
                else:
                    pos = [(sx * radii[0] * 0.6, sz * radii[2] * 0.65) for sx in (1, -1) for sz in (1, 0, -1)]
                feet = []
                for x, z in pos:
                    y_top = cy - _bottom_depth(core, radii, x, z) + 0.02
                    spl = 0.25 if s["leg_style"] == "splay" else 0.0
                    foot = np.array([x * (1 + spl), 0.0, z * (1 + spl)])
                    if s["leg_style"] == "box":
                        b.part("leg", P.box(((foot[0] + x) / 2, y_top / 2, (foot[2] + z) / 2), (lt * 1.5, y_top, lt * 1.5)),
                               "parts", smooth=False)
                    else:
                        b.part("leg", P.cylinder(foot, (x, y_top, z), lt, 8), "parts")
                    feet.append(tuple(foot))
            b.kp("foot_a", feet[0])
            b.kp("foot_b", feet[-1])
        else:
            b.kp("foot_a", center + _surface_point(core, radii, (1, -1, 1)))
            b.kp("foot_b", center + _surface_point(core, radii, (-1, -1, -1)))
        # top element
        ytop = cy + radii[1]
        ts = s["top_size"] * p["top_size"] * max(radii[0], radii[2])
        top = s["top"] if p["top_on"] else "none"
        if top == "disc":
            b.part("top", P.cylinder((0, ytop - 0.01, 0), (0, ytop + ts * 0.25, 0), ts, 16), "accent")
            tip = (0, ytop + ts * 0.25, 0)
        elif top == "sphere":
            b.part("top", P.ellipsoid((0, ytop + ts * 0.7, 0), (ts, ts, ts), 14, 7), "accent")
            tip = (0, ytop + ts * 1.7, 0)
        elif top == "cone":
            b.part("top", P.frustum((0, ytop - 0.01, 0), (0, ytop + ts * 1.5, 0), ts, 0.0, 14), "accent")
            tip = (0, ytop + ts * 1.5, 0)
        elif top == "box":
            b.part("top", P.box((0, ytop + ts * 0.4, 0), (ts * 1.5, ts * 0.8, ts)), "accent", smooth=False)
            tip = (0, ytop + ts * 0.8, 0)
        elif top == "mast":
            b.part("top", P.cylinder((0, ytop - 0.01, 0), (0, ytop + ts * 2.5, 0), ts * 0.08, 8), "parts")
            b.part("top", P.ellipsoid((0, ytop + ts * 2.5, 0), (ts * 0.2,) * 3, 8, 4), "accent")
            tip = (0, ytop + ts * 2.7, 0)
        else:
            tip = tuple(center + _surface_point(core, radii, (1, 1, 0)))
        b.kp("top_tip", tip)
        # side appendages (symmetric pair)
        ss = s["side_size"] * p["side_size"]
        side = s["side"] if p["side_on"] else "none"
        tips = []
        for sx in (1, -1):
            attach = center + _surface_point(core, radii, (sx, 0.2, 0))
            if side == "arms":
                ang = p["side_angle"]
                path = np.array([attach - [sx * 0.02, 0, 0], attach + [sx * ss * 0.5, ss * 0.3 * ang, 0],
                                 attach + [sx * ss * 0.8, ss * (0.3 * ang + 0.5), 0]])
                b.part("side", P.tube(path, lt * 0.8, 8), "parts")
                tips.append(path[-1])  # centre of the end cap
            elif side == "fins":
                c = []
                for i in range(8):
                    far = i & 1
                    up = (i >> 1) & 1
                    fr = (i >> 2) & 1
                    x = attach[0] + sx * (ss if far else -0.02)
                    y = attach[1] + (ss * 0.3 * p["side_angle"] if far else 0) + (0.01 if up else -0.01)
                    z = attach[2] + (radii[2] * 0.5 if fr else -radii[2] * 0.3) - (ss * 0.6 if far else 0) * (0 if fr else 1)
                    if far and fr:
                        z = attach[2] - ss * 0.3
                    c.append((x, y, z))
                b.part("side", P.hexahedron(np.array(c)), "parts", smooth=False)
                tips.append(np.array(c[7]))
            elif side == "handles":
                r_ = ss * 0.35
                arc = np.linspace(0, math.pi, 9)
                path = np.stack([attach[0] - sx * 0.01 + sx * r_ * np.sin(arc), attach[1] + r_ * np.cos(arc),
                                 np.zeros_like(arc)], -1)
                b.part("side", P.tube(path, lt * 0.6, 8), "parts")
                tips.append(path[4] + [sx * lt * 0.6, 0, 0])
            elif side == "wheels":
                wr = ss * 0.35
                for z in (radii[2] * 0.55, -radii[2] * 0.55):
                    wc = np.array([sx * (radii[0] + 0.02), wr, z])
                    b.part("side", P.cylinder(wc - [sx * 0.05, 0, 0], wc + [sx * 0.05, 0, 0], wr, 14), "accent")
                tips.append(np.array([sx * (radii[0] + 0.07), wr, radii[2] * 0.55]))
            else:
                tips.append(center + _surface_point(core, radii, (sx, -0.5, 0.5)))
        b.kp("side_left_tip", tips[0])
        b.kp("side_right_tip", tips[1])
        # front and back features
        fs = p["front_size"] * min(radii) * 0.8
        fpos = center + _surface_point(core, radii, (0, 0, 1))
        front = s["front"]
        if front == "cone":
            b.part("front", P.frustum(fpos - [0, 0, 0.02], fpos + [0, 0, fs * 1.5], fs, 0.0, 12), "accent")
            ftip = fpos + [0, 0, fs * 1.5]
        elif front == "snout":
            b.part("front", P.box(fpos + [0, -fs * 0.2, fs * 0.5], (fs * 1.2, fs * 0.8, fs * 1.0)), "accent", smooth=False)
            ftip = fpos + [0, -fs * 0.2, fs * 1.0]
        elif front == "disc":
            b.part("front", P.cylinder(fpos - [0, 0, 0.02], fpos + [0, 0, fs * 0.3], fs * 1.2, 16), "accent")
            ftip = fpos + [0, 0, fs * 0.3]
        else:
            ftip = fpos
        b.kp("front_tip", ftip)
        bpos = center + _surface_point(core, radii, (0, 0, -1))
        back = s["back"]
        bs = p["back_size"] * max(radii[1], 0.2)
        if back == "fin":
            c = [(-0.01, 0, 0.02), (0.01, 0, 0.02), (-0.01, bs, -bs * 0.6), (0.01, bs, -bs * 0.6),
                 (-0.01, 0, 0.3 * radii[2]), (0.01, 0, 0.3 * radii[2]), (-0.01, bs, -bs * 0.3), (0.01, bs, -bs * 0.3)]
            c = np.array([[x, y, z] for x, y, z in c]) + bpos + [0, radii[1] * 0.2, 0]
            c = c[[0, 1, 2, 3, 4, 5, 6, 7]]
            b.part("back", P.hexahedron(c), "parts", smooth=False)
            btip = c[3]
        elif back == "panel":
            y0 = cy
            b.part("back", P.box((0, y0 + bs * 0.8, -radii[2] + 0.02), (radii[0] * 1.8, bs * 1.6 + radii[1], 0.04)),
                   "parts", smooth=False)
            btip = np.array([0, y0 + bs * 1.6 + radii[1] / 2, -radii[2] + 0.04])
        elif back == "tail":
            path = np.array([bpos + [0, 0, 0.03], bpos + [0, bs * 0.3, -bs * 0.5], bpos + [0, bs * 0.8, -bs * 0.8]])
            b.part("back", P.tube(path, lt * 0.7, 8), "parts")
            btip = path[-1]  # centre of the end cap
        else:
            btip = bpos
        b.kp("back_tip", btip)

    return build


def _bottom_depth(core: str, radii: np.ndarray, x: float, z: float) -> float:
    """Distance from the core centre down to its underside at horizontal offset (x, z)."""
    if core == "box":
        return radii[1]
    if core == "ellipsoid":
        q = 1 - (x / radii[0]) ** 2 - (z / radii[2]) ** 2
        return radii[1] * math.sqrt(max(q, 0.05))
    if core == "cyl_y":
        return radii[1]
    q = 1 - (x / radii[0]) ** 2
    return radii[1] * math.sqrt(max(q, 0.05))


_KEYPOINTS = ("core_front", "core_back", "core_left", "core_right", "core_top", "core_top_front", "core_top_back",
              "core_bottom_front", "foot_a", "foot_b", "top_tip", "side_left_tip", "side_right_tip", "front_tip", "back_tip")


@lru_cache(maxsize=4096)
def _procedural_category(seed: int, index: int) -> CategoryDef:
    s = _make_structure(seed, index)
    name = procedural_name(seed, index)
    params = (F("scale_x", 0.8, 1.2), F("scale_y", 0.8, 1.2), F("scale_z", 0.8, 1.2), F("leg_len", 0.75, 1.25),
              F("leg_t", 0.7, 1.3), F("top_size", 0.7, 1.3), B("top_on", 0.85), F("side_size", 0.7, 1.3),
              B("side_on", 0.85), F("side_angle", -0.5, 1.0), F("front_size", 0.6, 1.4), F("back_size", 0.6, 1.4))
    slots = {"core": {s["pal_core"]: 1.0}, "parts": {s["pal_parts"]: 1.0}, "accent": {s["pal_accent"]: 1.0}}
    desc = (f"procedural: {s['core']} core, {s['legs']} legs ({s['leg_style']}), top {s['top']}, sides {s['side']}, "
            f"front {s['front']}, back {s['back']}")
    return CategoryDef(name=name, params=params, part_labels=("core", "leg", "top", "side", "front", "back"),
                       keypoint_names=_KEYPOINTS, slots=slots, build=_build_factory(s),
                       flip_pairs=(("core_left", "core_right"), ("side_left_tip", "side_right_tip")),
                       procedural=True, description=desc)


def procedural_categories(n: int, seed: int = 0, start: int = 0) -> List[CategoryDef]:
    """``n`` procedural categories (indices ``start .. start+n-1``) for ``seed``; registered by name."""
    out = []
    for i in range(start, start + n):
        cat = _procedural_category(int(seed), int(i))
        if cat.name in NAMED_CATEGORIES:  # pragma: no cover - words never equal the named ones (digits)
            raise RuntimeError(cat.name)
        CATEGORIES.setdefault(cat.name, cat)
        out.append(cat)
    return out


def resolve_procedural(name: str) -> Optional[CategoryDef]:
    """The procedural category called ``name`` (``word###`` or ``s<seed>-word###``), else None."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    seed = int(m.group(1) or 0)
    index = int(m.group(3))
    if procedural_name(seed, index) != name:
        return None
    cat = _procedural_category(seed, index)
    CATEGORIES.setdefault(cat.name, cat)
    return cat
