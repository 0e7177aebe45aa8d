"""The synthetic 3D world: named everyday categories built from parts, with keypoints and cuboids.

Overview
--------
A category (:class:`CategoryDef`) is a parametric shape program. Its parameter space
(:class:`Param`: continuous ranges, integer counts, discrete styles, booleans) is sampled per
instance; ``build(params, builder)`` emits watertight parts (:mod:`workbench.data.primitives`)
tagged with a semantic part label and a material slot, plus named 3D keypoints that lie on the
surface. :func:`make_object` normalises the result into the canonical frame of DESIGN.md
(+Y up, front towards +Z, centred at the bounding-box centre, largest bounding-box side = 1) and
draws per-instance materials (colours + procedural solid textures).

Left/right in keypoint names are the **object's own** sides: facing +Z with +Y up, the object's
left is +X (a camera at azimuth 0 sees the object's left on the image's right).

Fine-grained families: :func:`sample_family` draws a prototype (all discrete choices and the
continuous parameters); :func:`family_instance` jitters the continuous parameters by a few
percent of their range, giving many near-identical instances (fine-grained retrieval).
Confusable pairs are deliberate: chair / stool / bench share seats and legs; table / desk share
tops and legs; car (van style) / bus; bottle / mug / lamp share surfaces of revolution.

Named categories: ``chair, stool, bench, table, desk, sofa, bed, car, bus, airplane, bottle,
mug, lamp, bird, monitor`` (``bird`` is articulated: neck pitch, wing spread/raise, tail pitch).
Procedural categories for scaling experiments live in :mod:`workbench.data.procedural`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import DataError
from . import primitives as P
from .materials import Material, flat_material, sample_material

__all__ = [
    "Param", "CategoryDef", "Builder", "ObjectModel", "CATEGORIES", "NAMED_CATEGORIES", "register",
    "get_category", "sample_params", "sample_family", "family_instance", "make_object", "resample_materials",
    "corner_normals",
    "category_cuboid", "reference_cuboid", "stable_seed",
]

# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    """One dimension of a category's shape space.

    ``kind`` is ``float`` (uniform in [low, high]), ``int`` (uniform integer in [low, high]),
    ``choice`` (one of ``choices`` with probabilities ``p``) or ``bool`` (True with probability ``p``).
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: Tuple[Any, ...] = ()
    p: Any = None

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "float":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "bool":
            return bool(rng.random() < (0.5 if self.p is None else self.p))
        if self.kind == "choice":
            probs = None if self.p is None else np.asarray(self.p, np.float64) / np.sum(self.p)
            return self.choices[int(rng.choice(len(self.choices), p=probs))]
        raise ValueError(f"unknown param kind {self.kind}")

    def jitter(self, value: Any, rng: np.random.Generator, amount: float) -> Any:
        """Small perturbation (fraction ``amount`` of the range) of continuous values; others unchanged."""
        if self.kind != "float":
            return value
        v = value + rng.normal() * amount * (self.high - self.low)
        return float(np.clip(v, self.low, self.high))


def F(name: str, low: float, high: float) -> Param:
    return Param(name, "float", low, high)


def I(name: str, low: int, high: int) -> Param:
    return Param(name, "int", low, high)


def C(name: str, choices: Sequence[Any], p: Optional[Sequence[float]] = None) -> Param:
    return Param(name, "choice", choices=tuple(choices), p=None if p is None else tuple(p))


def B(name: str, p: float = 0.5) -> Param:
    return Param(name, "bool", p=p)


# ----------------------------------------------------------------------------- building
@dataclass
class _Part:
    label: str
    slot: str
    verts: np.ndarray
    faces: np.ndarray
    smooth: bool


class Builder:
    """Collects parts and keypoints while a category's ``build`` runs."""

    def __init__(self, category: "CategoryDef"):
        self.category = category
        self.parts: List[_Part] = []
        self.keypoints: Dict[str, np.ndarray] = {}

    def part(self, label: str, mesh: P.Mesh, slot: Optional[str] = None, smooth: bool = True) -> None:
        if label not in self.category.part_labels:
            raise ValueError(f"{self.category.name}: unknown part label '{label}'")
        slot = slot or label
        if slot not in self.category.slots:
            raise ValueError(f"{self.category.name}: unknown material slot '{slot}'")
        v, f = mesh
        self.parts.append(_Part(label, slot, np.asarray(v, np.float64), np.asarray(f, np.int64), smooth))

    def kp(self, name: str, point: Sequence[float]) -> None:
        if name not in self.category.keypoint_names:
            raise ValueError(f"{self.category.name}: unknown keypoint '{name}'")
        self.keypoints[name] = np.asarray(point, np.float64)


@dataclass
class CategoryDef:
    """A parametric category: parameter space, part labels, keypoints, material slots, builder."""

    name: str
    params: Tuple[Param, ...]
    part_labels: Tuple[str, ...]
    keypoint_names: Tuple[str, ...]
    slots: Dict[str, Dict[str, float]]
    build: Callable[[Dict[str, Any], Builder], None]
    flip_pairs: Tuple[Tuple[str, str], ...] = ()
    slot_links: Dict[str, Tuple[str, float]] = field(default_factory=dict)  # slot -> (same-as slot, prob)
    articulated: Tuple[str, ...] = ()  # names of articulation parameters (non-rigid categories)
    procedural: bool = False
    description: str = ""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


CATEGORIES: Dict[str, CategoryDef] = {}
NAMED_CATEGORIES: List[str] = []


def register(cat: CategoryDef) -> CategoryDef:
    CATEGORIES[cat.name] = cat
    if not cat.procedural and cat.name not in NAMED_CATEGORIES:
        NAMED_CATEGORIES.append(cat.name)
    return cat


def get_category(name: str) -> CategoryDef:
    """A named category, or a procedural one (``proc-<seed>-<index>`` names resolve lazily)."""
    if name in CATEGORIES:
        return CATEGORIES[name]
    from .procedural import resolve_procedural

    cat = resolve_procedural(name)
    if cat is None:
        import difflib

        close = difflib.get_close_matches(name, list(CATEGORIES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(f"unknown category '{name}'{hint} (named: {', '.join(NAMED_CATEGORIES)}; "
                        f"procedural categories are named by workbench.data.procedural.procedural_categories)")
    return cat


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts, stable across runs and platforms."""
    h = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFFFFFFFFFF


# ----------------------------------------------------------------------------- sampling
def sample_params(cat: CategoryDef | str, rng: np.random.Generator) -> Dict[str, Any]:
    cat = get_category(cat) if isinstance(cat, str) else cat
    return {p.name: p.sample(rng) for p in cat.params}


def sample_family(cat: CategoryDef | str, rng: np.random.Generator) -> Dict[str, Any]:
    """A fine-grained family prototype: one full draw of the parameters."""
    return sample_params(cat, rng)


def family_instance(cat: CategoryDef | str, family: Dict[str, Any], rng: np.random.Generator,
                    jitter: float = 0.04) -> Dict[str, Any]:
    """A member of ``family``: continuous parameters jittered by ``jitter`` x range (s.d.)."""
    cat = get_category(cat) if isinstance(cat, str) else cat
    out = {}
    for p in cat.params:
        amount = jitter if p.name not in cat.articulated else 0.0
        out[p.name] = p.jitter(family[p.name], rng, amount)
    return out


# ----------------------------------------------------------------------------- the object model
@dataclass
class ObjectModel:
    """One instance in the canonical frame.

    verts (V, 3) float32, faces (F, 3) int32, face_part (F,) index into ``part_labels``,
    face_slot (F,) index into ``materials``, keypoints (K, 3) float32 (on the surface),
    corner_normals (F, 3, 3) float32 shading normals (smooth within parts, sharp at creases),
    ``scale``: the factor that was applied to the raw build (canonical = raw * scale + offset).
    """

    category: str
    params: Dict[str, Any]
    verts: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    face_slot: np.ndarray
    part_labels: Tuple[str, ...]
    slot_names: Tuple[str, ...]
    materials: List[Material]
    keypoints: np.ndarray
    keypoint_names: Tuple[str, ...]
    corner_normals: np.ndarray
    scale: float = 1.0

    @property
    def extent(self) -> np.ndarray:
        return self.verts.max(0) - self.verts.min(0)

    def face_colors(self) -> np.ndarray:
        """(F, 3) base colour of each face (for PLY export / previews)."""
        cols = np.array([m.color for m in self.materials], np.float64)
        return cols[self.face_slot]

    def vertex_colors(self) -> np.ndarray:
        """(V, 3) uint8 colours (base colour of one incident face) for PLY export."""
        vc = np.zeros((self.verts.shape[0], 3))
        vc[self.faces.reshape(-1)] = np.repeat(self.face_colors(), 3, axis=0)
        return (np.clip(vc, 0, 1) * 255).round().astype(np.uint8)


def corner_normals(verts: np.ndarray, faces: np.ndarray, smooth_face: np.ndarray,
                   crease_deg: float = 50.0) -> np.ndarray:
    """Per-corner shading normals (F, 3, 3).

    Smooth faces average the area-weighted normals of the faces around each corner vertex whose
    normal is within ``crease_deg`` of their own; other faces keep their face normal.
    """
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0)
    area2 = np.linalg.norm(fn, axis=1, keepdims=True)
    fnu = fn / np.maximum(area2, 1e-20)
    Fn = faces.shape[0]
    out = np.repeat(fnu[:, None, :], 3, axis=1).copy()
    if not smooth_face.any():
        return out.astype(np.float32)
    # corner list grouped by vertex
    cf = np.repeat(np.arange(Fn), 3)
    cv = faces.reshape(-1)
    order = np.argsort(cv, kind="stable")
    cv_s, cf_s = cv[order], cf[order]
    starts = np.flatnonzero(np.r_[True, cv_s[1:] != cv_s[:-1]])
    counts = np.diff(np.r_[starts, cv_s.size])
    # all (corner, neighbour-face) pairs sharing a vertex
    grp = np.repeat(np.arange(starts.size), counts)
    rep = counts[grp]
    pair_c = np.repeat(np.arange(cv_s.size), rep)
    offs = np.arange(pair_c.size) - np.repeat(np.cumsum(rep) - rep, rep)
    pair_n = starts[grp[pair_c]] + offs
    fa, fb = cf_s[pair_c], cf_s[pair_n]
    ok = (fnu[fa] * fnu[fb]).sum(1) > math.cos(math.radians(crease_deg))
    acc = np.zeros((cv_s.size, 3))
    np.add.at(acc, pair_c[ok], fn[fb[ok]])
    acc /= np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-20)
    corner_idx = order  # position in the flat (F*3) corner array
    smooth_corner = np.repeat(smooth_face, 3)[corner_idx]
    flat = out.reshape(-1, 3)
    flat[corner_idx[smooth_corner]] = acc[smooth_corner]
    return out.astype(np.float32)


def _sample_slots(cat: CategoryDef, rng: np.random.Generator) -> Dict[str, Material]:
    mats: Dict[str, Material] = {}
    for slot, pals in cat.slots.items():
        names = list(pals)
        probs = np.array([pals[n] for n in names], np.float64)
        pal = names[int(rng.choice(len(names), p=probs / probs.sum()))]
        mats[slot] = sample_material(pal, rng)
    for slot, (other, prob) in cat.slot_links.items():
        if rng.random() < prob:
            mats[slot] = mats[other]
    return mats


def make_object(category: CategoryDef | str, params: Dict[str, Any], material_seed: int = 0,
                untextured: bool = False, geometry_only: bool = False) -> ObjectModel:
    """Build, normalise and colour one instance (see the module docstring).

    ``geometry_only`` skips materials and shading normals (fast; for statistics such as cuboids).
    """
    cat = get_category(category) if isinstance(category, str) else category
    b = Builder(cat)
    cat.build(params, b)
    if not b.parts:
        raise DataError(f"category '{cat.name}' built no parts for params {params}")
    missing = [k for k in cat.keypoint_names if k not in b.keypoints]
    if missing:
        raise DataError(f"category '{cat.name}' did not define keypoints {missing}")
    verts, faces, fpart, fslot, smooth = [], [], [], [], []
    slot_order = list(cat.slots)
    off = 0
    for part in b.parts:
        verts.append(part.verts)
        faces.append(part.faces + off)
        off += part.verts.shape[0]
        n = part.faces.shape[0]
        fpart.append(np.full(n, cat.part_labels.index(part.label), np.int16))
        fslot.append(np.full(n, slot_order.index(part.slot), np.int16))
        smooth.append(np.full(n, part.smooth))
    V = np.concatenate(verts)
    Fc = np.concatenate(faces)
    lo, hi = V.min(0), V.max(0)
    center = (lo + hi) / 2
    scale = 1.0 / float((hi - lo).max())
    V = (V - center) * scale
    kps = (np.stack([b.keypoints[k] for k in cat.keypoint_names]) - center) * scale
    if geometry_only:
        materials = [flat_material() for _ in slot_order]
        cn = np.zeros((Fc.shape[0], 3, 3), np.float32)
    else:
        rng = np.random.default_rng(material_seed)
        mats = _sample_slots(cat, rng)
        materials = [flat_material() if untextured else mats[s] for s in slot_order]
        cn = corner_normals(V, Fc, np.concatenate(smooth))
    return ObjectModel(cat.name, dict(params), V.astype(np.float32), Fc.astype(np.int32),
                       np.concatenate(fpart), np.concatenate(fslot), cat.part_labels, tuple(slot_order),
                       materials, kps.astype(np.float32), cat.keypoint_names, cn, scale)


def resample_materials(model: ObjectModel, material_seed: int) -> ObjectModel:
    """The same instance (shared geometry arrays, keypoints, normals) with materials drawn afresh
    from its category's palettes with ``material_seed`` (as :func:`make_object` draws them)."""
    cat = get_category(model.category)
    mats = _sample_slots(cat, np.random.default_rng(material_seed))
    return dataclasses.replace(model, materials=[mats[s] for s in model.slot_names])


def category_cuboid(models: Sequence[ObjectModel], coverage: float = 0.99) -> Tuple[List[float], List[float]]:
    """Per-category cuboid from instances: for each axis the tightest interval holding ``coverage``
    of all vertex coordinates (as NOVUM's ``createCuboidMesh``). Returns (full side lengths, centre)."""
    V = np.concatenate([m.verts for m in models]).astype(np.float64)
    q = (1 - coverage) / 2
    lo = np.quantile(V, q, axis=0)
    hi = np.quantile(V, 1 - q, axis=0)
    return (hi - lo).round(5).tolist(), ((hi + lo) / 2).round(5).tolist()


@lru_cache(maxsize=None)
def reference_cuboid(category: str, n: int = 32) -> Tuple[List[float], List[float]]:
    """Category cuboid (full side lengths, centre) from ``n`` fixed reference instances.

    Independent of any dataset seed, so every dataset of the world shares the same cuboid per
    category (compnet3d's neural mesh is built on it).
    """
    models = []
    for i in range(n):
        rng = np.random.default_rng(stable_seed("cuboid", category, i))
        models.append(make_object(category, sample_params(category, rng), 0, geometry_only=True))
    return category_cuboid(models)


# ============================================================================= categories
# Small helpers used by several categories ---------------------------------------------------
def _legs4(b: Builder, w: float, d: float, h: float, t: float, style: str, slot: str, label: str = "leg",
           inset: float = 0.0, kp_names: Optional[Sequence[str]] = None, splay: float = 0.0) -> None:
    """Four legs under a rectangle (w x d) whose underside is at height ``h``.

    ``kp_names`` = (front_left, front_right, back_left, back_right) foot keypoints.
    """
    xs = w / 2 - t - inset
    zs = d / 2 - t - inset
    for sx, sz, k in ((1, 1, 0), (-1, 1, 1), (1, -1, 2), (-1, -1, 3)):
        top = np.array([sx * xs, h, sz * zs])
        foot = np.array([sx * (xs + splay * h), 0.0, sz * (zs + splay * h)])
        if style == "square":
            c0 = foot
            corners = []
            for i in range(8):
                y = (i >> 1) & 1
                base = top if y else c0
                dx = ((i & 1) * 2 - 1) * t / 2
                dz = (((i >> 2) & 1) * 2 - 1) * t / 2
                corners.append(base + [dx, 0, dz])
            b.part(label, P.hexahedron(np.array(corners)), slot, smooth=False)
        elif style == "tapered":
            b.part(label, P.frustum(foot, top, t * 0.3, t * 0.55, 10), slot)
        else:
            b.part(label, P.cylinder(foot, top, t / 2, 10), slot)
        if kp_names:
            b.kp(kp_names[k], foot)


def _slab(b: Builder, label: str, slot: str, center, size, smooth=False) -> None:
    b.part(label, P.box(center, size), slot, smooth=smooth)


# ----------------------------------------------------------------------------- chair
def _build_chair(p: Dict[str, Any], b: Builder) -> None:
    w, d, h, t = p["seat_w"], p["seat_d"], p["seat_h"], p["seat_t"]
    lt = p["leg_t"]
    top = h
    _slab(b, "seat", "seat", (0, h - t / 2, 0), (w, t, d))
    if p["cushion"]:
        b.part("seat", P.box((0, h + 0.02, 0.01), (w * 0.94, 0.04, d * 0.92)), "cushion")
        top = h + 0.04
    b.kp("seat_front_left", (w / 2, h, d / 2))
    b.kp("seat_front_right", (-w / 2, h, d / 2))
    b.kp("seat_back_left", (w / 2, h, -d / 2))
    b.kp("seat_back_right", (-w / 2, h, -d / 2))
    feet = ("leg_front_left", "leg_front_right", "leg_back_left", "leg_back_right")
    style = p["leg_style"]
    if style in ("straight", "tapered", "square"):
        _legs4(b, w, d, h - t, lt, style, "frame", kp_names=feet, inset=0.01,
               splay=0.06 if style == "tapered" else 0.0)
    elif style == "pedestal":
        col_top = h - t
        b.part("leg", P.cylinder((0, 0.08, 0), (0, col_top, 0), lt * 0.9, 12), "frame")
        n = 5
        tips = []
        for i in range(n):
            a = 2 * np.pi * i / n + np.pi / n
            tip = np.array([math.sin(a) * w * 0.55, 0.06, math.cos(a) * w * 0.55])
            b.part("leg", P.capsule((0, 0.09, 0), tip, lt * 0.6, 8, 2), "frame")
            b.part("leg", P.ellipsoid(tip - [0, 0.03, 0], (0.03, 0.03, 0.03), 8, 4), "frame")
            tips.append(tip - [0, 0.06, 0])
        tips = np.array(tips)
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            j = int(np.argmax(tips[:, 0] * sx + tips[:, 2] * sz))
            b.kp(k, tips[j])
    else:  # sled: one runner loop per side
        for sx in (1, -1):
            x = sx * (w / 2 - lt)
            path = np.array([(x, h - t, d / 2 - lt), (x, lt / 2, d / 2 - lt), (x, lt / 2, -d / 2 + lt),
                             (x, h - t, -d / 2 + lt)])
            b.part("leg", P.tube(path, lt / 2, 8), "frame")
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            b.kp(k, (sx * (w / 2 - lt), 0.0, sz * (d / 2 - lt)))
    # back
    bh, tilt, bt = p["back_h"], p["back_tilt"], 0.04
    y0 = h
    z0 = -d / 2 + bt / 2
    y1 = h + bh * math.cos(tilt)
    z1 = z0 - bh * math.sin(tilt)

    def slab_between(x0, x1, ya, yb, za, zb, th, label="back", slot="back"):
        corners = []
        for i in range(8):
            x = x1 if (i & 1) else x0
            up = (i >> 1) & 1
            y, z = (yb, zb) if up else (ya, za)
            z += ((((i >> 2) & 1) * 2) - 1) * th / 2
            corners.append((x, y, z))
        b.part(label, P.hexahedron(np.array(corners)), slot, smooth=False)

    bs = p["back_style"]
    if bs == "solid":
        slab_between(-w / 2, w / 2, y0, y1, z0, z1, bt)
    else:
        post = max(lt, 0.03)
        for sx in (1, -1):
            slab_between(sx * w / 2 - (post if sx > 0 else 0), sx * w / 2 + (0 if sx > 0 else post),
                         h - t, y1, z0 + (h - t - y0) * 0, z1, post, "back", "frame")
        rail = 0.06
        yr = y1 - rail
        zr = z0 + (z1 - z0) * (yr - y0) / max(y1 - y0, 1e-6)
        slab_between(-w / 2, w / 2, yr, y1, zr, z1, bt * 0.8, "back", "back")
        if bs == "slats":
            n = 3 + int(p["seat_w"] > 0.5)
            for i in range(n):
                xc = -w / 2 + post + (w - 2 * post) * (i + 0.5) / n
                slab_between(xc - 0.02, xc + 0.02, y0, yr, z0, zr, bt * 0.5, "back", "back")
        elif bs == "ladder":
            for fr in (0.3, 0.6):
                ya = y0 + (yr - y0) * fr
                za = z0 + (zr - z0) * fr
                yb = ya + 0.04
                zb = z0 + (zr - z0) * (yb - y0) / max(yr - y0, 1e-6)
                slab_between(-w / 2, w / 2, ya, yb, za, zb, bt * 0.6, "back", "back")
        else:  # frame with an upholstered panel
            yb = y0 + 0.05
            zb = z0 + (zr - z0) * (yb - y0) / max(yr - y0, 1e-6)
            slab_between(-w / 2 + post, w / 2 - post, yb, yr, zb, zr, bt * 1.2, "back", "cushion")
    b.kp("back_top_left", (w / 2, y1, z1))
    b.kp("back_top_right", (-w / 2, y1, z1))
    if p["arms"]:
        ah = top + p["arm_h"]
        for sx in (1, -1):
            x = sx * (w / 2 + 0.02)
            b.part("arm", P.box((x, ah, -0.02), (0.05, 0.035, d * 0.95)), "frame", smooth=False)
            b.part("arm", P.cylinder((x, h - t, d / 2 - 0.06), (x, ah, d / 2 - 0.06), 0.018, 8), "frame")


register(CategoryDef(
    name="chair",
    params=(F("seat_w", 0.40, 0.60), F("seat_d", 0.38, 0.55), F("seat_h", 0.40, 0.50), F("seat_t", 0.03, 0.07),
            F("back_h", 0.32, 0.62), F("back_tilt", 0.0, 0.28), C("back_style", ["solid", "slats", "ladder", "frame"]),
            C("leg_style", ["straight", "tapered", "square", "pedestal", "sled"], [0.25, 0.2, 0.25, 0.15, 0.15]),
            F("leg_t", 0.025, 0.05), B("arms", 0.3), F("arm_h", 0.18, 0.27), B("cushion", 0.35)),
    part_labels=("seat", "back", "leg", "arm"),
    keypoint_names=("seat_front_left", "seat_front_right", "seat_back_left", "seat_back_right", "back_top_left",
                    "back_top_right", "leg_front_left", "leg_front_right", "leg_back_left", "leg_back_right"),
    flip_pairs=(("seat_front_left", "seat_front_right"), ("seat_back_left", "seat_back_right"),
                ("back_top_left", "back_top_right"), ("leg_front_left", "leg_front_right"),
                ("leg_back_left", "leg_back_right")),
    slots={"frame": {"wood": 0.55, "metal": 0.3, "plastic": 0.15}, "seat": {"wood": 0.5, "plastic": 0.2, "fabric": 0.3},
           "back": {"wood": 0.5, "plastic": 0.2, "fabric": 0.3}, "cushion": {"fabric": 1.0}},
    slot_links={"back": ("seat", 0.85), "seat": ("frame", 0.4)},
    build=_build_chair,
    description="four-legged / pedestal / sled chair with a back, optional arms and cushion",
))


# ----------------------------------------------------------------------------- stool
def _build_stool(p: Dict[str, Any], b: Builder) -> None:
    r, h, t, lt = p["seat_r"], p["height"], p["seat_t"], p["leg_t"]
    if p["seat_shape"] == "round":
        b.part("seat", P.cylinder((0, h - t, 0), (0, h, 0), r, 20), "seat")
        rim = r
    else:
        _slab(b, "seat", "seat", (0, h - t / 2, 0), (2 * r, t, 2 * r))
        rim = r
    if p["cushion"]:
        b.part("seat", P.ellipsoid((0, h, 0), (r * 0.92, 0.035, r * 0.92), 16, 4), "cushion")
    b.kp("seat_front", (0, h, rim))
    b.kp("seat_back", (0, h, -rim))
    b.kp("seat_left", (rim, h, 0))
    b.kp("seat_right", (-rim, h, 0))
    b.kp("seat_center", (0, h + (0.035 if p["cushion"] else 0.0), 0))
    feet = ("foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right")
    if p["leg_style"] == "pedestal":
        b.part("leg", P.cylinder((0, 0.02, 0), (0, h - t, 0), lt * 1.2, 12), "frame")
        br = r * 0.9
        b.part("leg", P.frustum((0, 0, 0), (0, 0.04, 0), br, br * 0.8, 20), "frame")
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            b.kp(k, (sx * br / math.sqrt(2), 0.0, sz * br / math.sqrt(2)))
        ring_h = None
    else:
        splay = p["splay"]
        a = r * 0.75 / math.sqrt(2)
        tops, foots = [], []
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            top = np.array([sx * a, h - t, sz * a])
            foot = np.array([sx * (a + splay * h / math.sqrt(2)), 0.0, sz * (a + splay * h / math.sqrt(2))])
            b.part("leg", P.cylinder(foot, top, lt / 2, 10), "frame")
            b.kp(k, foot)
            tops.append(top)
            foots.append(foot)
        ring_h = h * p["footrest_h"]
        if p["footrest"]:
            fr = 1 - ring_h / h
            pts = [f + (tt - f) * (ring_h / h) for f, tt in zip(foots, tops)]
            order = [0, 2, 3, 1]
            loop = np.array([pts[i] for i in order])
            b.part("leg", P.tube(np.concatenate([loop, loop[:1]]), lt * 0.3, 6), "frame")
            del fr


register(CategoryDef(
    name="stool",
    params=(C("seat_shape", ["round", "square"], [0.7, 0.3]), F("seat_r", 0.15, 0.22), F("height", 0.42, 0.80),
            F("seat_t", 0.03, 0.06), C("leg_style", ["legs", "pedestal"], [0.8, 0.2]), F("leg_t", 0.025, 0.045),
            F("splay", 0.0, 0.12), B("footrest", 0.5), F("footrest_h", 0.25, 0.4), B("cushion", 0.3)),
    part_labels=("seat", "leg"),
    keypoint_names=("seat_front", "seat_back", "seat_left", "seat_right", "seat_center", "foot_front_left",
                    "foot_front_right", "foot_back_left", "foot_back_right"),
    flip_pairs=(("seat_left", "seat_right"), ("foot_front_left", "foot_front_right"),
                ("foot_back_left", "foot_back_right")),
    slots={"frame": {"wood": 0.5, "metal": 0.4, "plastic": 0.1}, "seat": {"wood": 0.6, "plastic": 0.25, "fabric": 0.15},
           "cushion": {"fabric": 1.0}},
    slot_links={"seat": ("frame", 0.5)},
    build=_build_stool,
    description="backless seat on three/four legs or a pedestal (confusable with chair and bench)",
))


# ----------------------------------------------------------------------------- bench
def _build_bench(p: Dict[str, Any], b: Builder) -> None:
    L, d, h, t = p["length"], p["depth"], p["seat_h"], p["seat_t"]
    if p["seat_style"] == "slats":
        n = 3 + int(d > 0.4)
        gap = 0.015
        sw = (d - gap * (n - 1)) / n
        for i in range(n):
            z = -d / 2 + sw / 2 + i * (sw + gap)
            _slab(b, "seat", "seat", (0, h - t / 2, z), (L, t, sw))
    else:
        _slab(b, "seat", "seat", (0, h - t / 2, 0), (L, t, d))
    b.kp("seat_front_left", (L / 2, h, d / 2))
    b.kp("seat_front_right", (-L / 2, h, d / 2))
    b.kp("seat_back_left", (L / 2, h, -d / 2))
    b.kp("seat_back_right", (-L / 2, h, -d / 2))
    b.kp("seat_front_center", (0, h, d / 2))
    feet = ("foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right")
    lt = p["leg_t"]
    if p["leg_style"] == "panels":
        for sx in (1, -1):
            x = sx * (L / 2 - 0.06)
            _slab(b, "leg", "frame", (x, (h - t) / 2, 0), (0.04, h - t, d * 0.92))
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            b.kp(k, (sx * (L / 2 - 0.06 + 0.02), 0.0, sz * d * 0.46))
    else:
        _legs4(b, L, d, h - t, lt, "square", "frame", kp_names=feet, inset=0.03)
        if p["leg_style"] == "legs6":
            for sz in (1, -1):
                _slab(b, "leg", "frame", (0, (h - t) / 2, sz * (d / 2 - lt - 0.03)), (lt, h - t, lt))
        _slab(b, "leg", "frame", (0, (h - t) * 0.3, 0), (L - 0.1, 0.03, 0.03))
    if p["back"]:
        bh = p["back_h"]
        for sx in (1, -1):
            _slab(b, "back", "frame", (sx * (L / 2 - 0.06), h + bh / 2, -d / 2 + 0.02), (0.04, bh, 0.04))
        _slab(b, "back", "seat", (0, h + bh * 0.7, -d / 2 + 0.02), (L, bh * 0.5, 0.03))
    if p["arms"]:
        for sx in (1, -1):
            x = sx * (L / 2 - 0.02)
            _slab(b, "arm", "frame", (x, h + 0.22, 0), (0.05, 0.035, d))
            _slab(b, "arm", "frame", (x, h + 0.11, d / 2 - 0.03), (0.035, 0.22, 0.035))


register(CategoryDef(
    name="bench",
    params=(F("length", 1.0, 1.8), F("depth", 0.30, 0.50), F("seat_h", 0.40, 0.50), F("seat_t", 0.03, 0.07),
            C("seat_style", ["solid", "slats"]), C("leg_style", ["legs4", "legs6", "panels"]), F("leg_t", 0.04, 0.07),
            B("back", 0.45), F("back_h", 0.3, 0.5), B("arms", 0.25)),
    part_labels=("seat", "leg", "back", "arm"),
    keypoint_names=("seat_front_left", "seat_front_right", "seat_back_left", "seat_back_right", "seat_front_center",
                    "foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right"),
    flip_pairs=(("seat_front_left", "seat_front_right"), ("seat_back_left", "seat_back_right"),
                ("foot_front_left", "foot_front_right"), ("foot_back_left", "foot_back_right")),
    slots={"frame": {"wood": 0.5, "metal": 0.5}, "seat": {"wood": 0.8, "plastic": 0.1, "fabric": 0.1}},
    slot_links={"seat": ("frame", 0.4)},
    build=_build_bench,
    description="long seat for several people, optional back/arms (confusable with chair and sofa)",
))


# ----------------------------------------------------------------------------- table
def _top_corner_points(shape: str, w: float, d: float, y: float) -> List[Tuple[float, float, float]]:
    if shape == "rect":
        return [(w / 2, y, d / 2), (-w / 2, y, d / 2), (w / 2, y, -d / 2), (-w / 2, y, -d / 2)]
    c = 1 / math.sqrt(2)
    return [(w / 2 * c, y, d / 2 * c), (-w / 2 * c, y, d / 2 * c), (w / 2 * c, y, -d / 2 * c), (-w / 2 * c, y, -d / 2 * c)]


def _build_table(p: Dict[str, Any], b: Builder) -> None:
    w = p["top_w"]
    d = w * p["depth_ratio"]
    h, t, lt = p["height"], p["top_t"], p["leg_t"]
    shape = p["top_shape"]
    if shape == "rect":
        _slab(b, "top", "top", (0, h - t / 2, 0), (w, t, d))
    else:
        dd = d if shape == "oval" else w
        d = dd
        b.part("top", P.transform(P.cylinder((0, h - t, 0), (0, h, 0), 0.5, 32), s=(w, 1, dd)), "top")
    for name, pt in zip(("top_front_left", "top_front_right", "top_back_left", "top_back_right"),
                        _top_corner_points(shape, w, d, h)):
        b.kp(name, pt)
    b.kp("top_center", (0, h, 0))
    feet = ("foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right")
    style = p["leg_style"]
    if style == "legs4":
        inset = 0.04 if shape == "rect" else min(w, d) * 0.15
        _legs4(b, w if shape == "rect" else w * 0.72, d if shape == "rect" else d * 0.72, h - t, lt,
               p["leg_shape"], "frame", kp_names=feet, inset=inset if shape == "rect" else 0.0)
        if p["apron"]:
            for sz in (1, -1):
                _slab(b, "top", "frame", (0, h - t - 0.04, sz * (d / 2 - 0.07)), (w * 0.8, 0.08, 0.02))
    elif style == "pedestal":
        b.part("leg", P.cylinder((0, 0.03, 0), (0, h - t, 0), lt * 1.5, 12), "frame")
        br = min(w, d) * 0.3
        b.part("leg", P.frustum((0, 0, 0), (0, 0.04, 0), br, br * 0.6, 20), "frame")
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            b.kp(k, (sx * br / math.sqrt(2), 0.0, sz * br / math.sqrt(2)))
    else:  # trestle: two slab ends with feet bars
        for sx in (1, -1):
            x = sx * w * 0.36
            _slab(b, "leg", "frame", (x, (h - t) / 2, 0), (0.05, h - t, 0.08))
            _slab(b, "leg", "frame", (x, 0.03, 0), (0.08, 0.06, d * 0.8))
        _slab(b, "leg", "frame", (0, (h - t) * 0.45, 0), (w * 0.72, 0.05, 0.04))
        for k, (sx, sz) in zip(feet, ((1, 1), (-1, 1), (1, -1), (-1, -1))):
            b.kp(k, (sx * w * 0.36, 0.0, sz * d * 0.4))
    if p["shelf"] and style != "pedestal":
        _slab(b, "top", "top", (0, (h - t) * 0.25, 0), (w * 0.65, 0.025, d * 0.6))


register(CategoryDef(
    name="table",
    params=(C("top_shape", ["rect", "round", "oval"], [0.6, 0.25, 0.15]), F("top_w", 0.8, 1.8),
            F("depth_ratio", 0.5, 1.0), F("top_t", 0.03, 0.07), F("height", 0.42, 0.78),
            C("leg_style", ["legs4", "pedestal", "trestle"], [0.65, 0.2, 0.15]), C("leg_shape", ["square", "round", "tapered"]),
            F("leg_t", 0.04, 0.08), B("apron", 0.4), B("shelf", 0.2)),
    part_labels=("top", "leg"),
    keypoint_names=("top_front_left", "top_front_right", "top_back_left", "top_back_right", "top_center",
                    "foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right"),
    flip_pairs=(("top_front_left", "top_front_right"), ("top_back_left", "top_back_right"),
                ("foot_front_left", "foot_front_right"), ("foot_back_left", "foot_back_right")),
    slots={"top": {"wood": 0.75, "plastic": 0.1, "metal": 0.15}, "frame": {"wood": 0.6, "metal": 0.4}},
    slot_links={"frame": ("top", 0.5)},
    build=_build_table,
    description="top on legs/pedestal/trestle (confusable with desk)",
))


# ----------------------------------------------------------------------------- desk
def _build_desk(p: Dict[str, Any], b: Builder) -> None:
    w, d, h, t = p["width"], p["depth"], p["height"], p["top_t"]
    _slab(b, "top", "top", (0, h - t / 2, 0), (w, t, d))
    b.kp("top_front_left", (w / 2, h, d / 2))
    b.kp("top_front_right", (-w / 2, h, d / 2))
    b.kp("top_back_left", (w / 2, h, -d / 2))
    b.kp("top_back_right", (-w / 2, h, -d / 2))
    pw = p["pedestal_w"]
    sides = {"left": [1], "right": [-1], "both": [1, -1]}[p["pedestal"]]
    n = p["drawers"]
    dh = (h - t - 0.06) / n
    first_drawer = None
    for sx in (1, -1):
        xc = sx * (w / 2 - pw / 2)
        if sx in sides:
            _slab(b, "pedestal", "body", (xc, (h - t) / 2, 0), (pw, h - t, d * 0.95))
            for i in range(n):
                yc = 0.06 + dh * (i + 0.5)
                _slab(b, "drawer", "front", (xc, yc, d * 0.475 + 0.008), (pw * 0.9, dh * 0.88, 0.016))
                b.part("drawer", P.box((xc, yc + dh * 0.15, d * 0.475 + 0.025), (pw * 0.3, 0.015, 0.02)), "handle")
                if i == n - 1 and first_drawer is None:
                    first_drawer = (xc, yc, d * 0.475 + 0.016)
        else:
            if p["other_side"] == "panel":
                _slab(b, "leg", "body", (sx * (w / 2 - 0.03), (h - t) / 2, 0), (0.04, h - t, d * 0.95))
            else:
                for sz in (1, -1):
                    _slab(b, "leg", "body", (sx * (w / 2 - 0.04), (h - t) / 2, sz * (d / 2 - 0.04)), (0.05, h - t, 0.05))
    b.kp("drawer_top_front", first_drawer)
    # feet keypoints: bottom outer corners of the supports
    b.kp("foot_front_left", (w / 2 - (0.0 if 1 in sides else 0.015), 0.0, d * 0.475 if 1 in sides or p["other_side"] == "panel" else d / 2 - 0.04))
    b.kp("foot_front_right", (-w / 2 + (0.0 if -1 in sides else 0.015), 0.0, d * 0.475 if -1 in sides or p["other_side"] == "panel" else d / 2 - 0.04))
    b.kp("foot_back_left", (w / 2 - (0.0 if 1 in sides else 0.015), 0.0, -(d * 0.475 if 1 in sides or p["other_side"] == "panel" else d / 2 - 0.04)))
    b.kp("foot_back_right", (-w / 2 + (0.0 if -1 in sides else 0.015), 0.0, -(d * 0.475 if -1 in sides or p["other_side"] == "panel" else d / 2 - 0.04)))
    if p["modesty"]:
        _slab(b, "pedestal", "body", (0, h - t - 0.2, -d / 2 + 0.05), (w - 0.1, 0.35, 0.02))
    if p["hutch"]:
        hh = p["hutch_h"]
        _slab(b, "hutch", "top", (0, h + hh, -d / 2 + 0.12), (w * 0.9, 0.025, 0.22))
        for sx in (1, -1):
            _slab(b, "hutch", "top", (sx * w * 0.44, h + hh / 2, -d / 2 + 0.12), (0.025, hh, 0.22))
        _slab(b, "hutch", "top", (0, h + hh / 2, -d / 2 + 0.015), (w * 0.9, hh, 0.02))


register(CategoryDef(
    name="desk",
    params=(F("width", 1.0, 1.6), F("depth", 0.5, 0.75), F("height", 0.72, 0.78), F("top_t", 0.025, 0.05),
            C("pedestal", ["left", "right", "both"], [0.3, 0.3, 0.4]), F("pedestal_w", 0.35, 0.45), I("drawers", 2, 4),
            C("other_side", ["legs", "panel"]), B("modesty", 0.5), B("hutch", 0.3), F("hutch_h", 0.3, 0.5)),
    part_labels=("top", "pedestal", "drawer", "leg", "hutch"),
    keypoint_names=("top_front_left", "top_front_right", "top_back_left", "top_back_right", "drawer_top_front",
                    "foot_front_left", "foot_front_right", "foot_back_left", "foot_back_right"),
    flip_pairs=(("top_front_left", "top_front_right"), ("top_back_left", "top_back_right"),
                ("foot_front_left", "foot_front_right"), ("foot_back_left", "foot_back_right")),
    slots={"top": {"wood": 0.7, "plastic": 0.15, "metal": 0.15}, "body": {"wood": 0.7, "plastic": 0.1, "metal": 0.2},
           "front": {"wood": 0.6, "plastic": 0.3, "metal": 0.1}, "handle": {"metal": 1.0}},
    slot_links={"body": ("top", 0.6), "front": ("body", 0.5)},
    build=_build_desk,
    description="work table with drawer pedestal(s) (confusable with table)",
))


# ----------------------------------------------------------------------------- sofa
def _build_sofa(p: Dict[str, Any], b: Builder) -> None:
    W, D = p["width"], p["depth"]
    sh, bh = p["seat_h"], p["back_h"]
    lh = 0.08 if p["legs"] else 0.0
    ct = 0.12  # cushion thickness
    aw = p["arm_w"] if p["arm_style"] != "none" else 0.0
    inner = W - 2 * aw
    base_top = sh - ct
    _slab(b, "base", "body", (0, (lh + base_top) / 2, 0.0), (W, base_top - lh, D))
    bt = p["back_t"]
    _slab(b, "back", "body", (0, (base_top + sh + bh) / 2, -D / 2 + bt / 2), (W, sh + bh - base_top, bt))
    n = p["cushions"]
    cw = inner / n
    for i in range(n):
        x = -inner / 2 + cw * (i + 0.5)
        b.part("cushion", P.box((x, sh - ct / 2, bt / 2), (cw - 0.01, ct, D - bt - 0.01)), "cushion", smooth=False)
        if p["back_cushions"]:
            b.part("cushion", P.box((x, sh + bh * 0.45, -D / 2 + bt + 0.06), (cw - 0.02, bh * 0.75, 0.12)),
                   "cushion", smooth=False)
    b.kp("seat_front_left", (inner / 2, sh, D / 2))
    b.kp("seat_front_right", (-inner / 2, sh, D / 2))
    b.kp("back_top_left", (W / 2, sh + bh, -D / 2))
    b.kp("back_top_right", (-W / 2, sh + bh, -D / 2))
    b.kp("base_front_left", (W / 2, lh, D / 2))
    b.kp("base_front_right", (-W / 2, lh, D / 2))
    b.kp("base_back_left", (W / 2, lh, -D / 2))
    b.kp("base_back_right", (-W / 2, lh, -D / 2))
    ah = sh + p["arm_h"]
    if p["arm_style"] == "box":
        for sx in (1, -1):
            _slab(b, "arm", "body", (sx * (W / 2 - aw / 2), (lh + ah) / 2, 0), (aw, ah - lh, D))
        b.kp("arm_front_left", (W / 2, ah, D / 2))
        b.kp("arm_front_right", (-W / 2, ah, D / 2))
    elif p["arm_style"] == "rolled":
        for sx in (1, -1):
            x = sx * (W / 2 - aw / 2)
            _slab(b, "arm", "body", (x, (lh + ah - aw / 2) / 2, 0), (aw, ah - aw / 2 - lh, D))
            b.part("arm", P.cylinder((x, ah - aw / 2, -D / 2), (x, ah - aw / 2, D / 2 + 0.02), aw / 2 + 0.01, 14), "body")
        b.kp("arm_front_left", (W / 2 - aw / 2, ah + 0.01, D / 2 + 0.02))
        b.kp("arm_front_right", (-W / 2 + aw / 2, ah + 0.01, D / 2 + 0.02))
    else:
        b.kp("arm_front_left", (W / 2, base_top, D / 2))
        b.kp("arm_front_right", (-W / 2, base_top, D / 2))
    if p["legs"]:
        for sx in (1, -1):
            for sz in (1, -1):
                b.part("base", P.frustum((sx * (W / 2 - 0.06), 0, sz * (D / 2 - 0.06)),
                                         (sx * (W / 2 - 0.06), lh, sz * (D / 2 - 0.06)), 0.02, 0.03, 8), "legs")


register(CategoryDef(
    name="sofa",
    params=(F("width", 1.4, 2.4), F("depth", 0.75, 1.0), F("seat_h", 0.38, 0.48), F("back_h", 0.30, 0.50),
            F("back_t", 0.15, 0.25), C("arm_style", ["box", "rolled", "none"], [0.5, 0.35, 0.15]), F("arm_w", 0.10, 0.25),
            F("arm_h", 0.12, 0.28), I("cushions", 1, 3), B("legs", 0.5), B("back_cushions", 0.5)),
    part_labels=("base", "back", "arm", "cushion"),
    keypoint_names=("seat_front_left", "seat_front_right", "back_top_left", "back_top_right", "arm_front_left",
                    "arm_front_right", "base_front_left", "base_front_right", "base_back_left", "base_back_right"),
    flip_pairs=(("seat_front_left", "seat_front_right"), ("back_top_left", "back_top_right"),
                ("arm_front_left", "arm_front_right"), ("base_front_left", "base_front_right"),
                ("base_back_left", "base_back_right")),
    slots={"body": {"fabric": 0.85, "matte": 0.15}, "cushion": {"fabric": 1.0}, "legs": {"wood": 0.6, "metal": 0.4}},
    slot_links={"cushion": ("body", 0.75)},
    build=_build_sofa,
    description="upholstered multi-seat with back and arms (confusable with bench, bed)",
))


# ----------------------------------------------------------------------------- bed
def _build_bed(p: Dict[str, Any], b: Builder) -> None:
    L, W = p["length"], p["width"]
    fh, mt = p["frame_h"], p["mattress_t"]
    _slab(b, "frame", "frame", (0, fh / 2 + 0.05, 0), (W, fh - 0.1 if fh > 0.15 else fh, L))
    if p["legs"]:
        for sx in (1, -1):
            for sz in (1, -1):
                _slab(b, "frame", "frame", (sx * (W / 2 - 0.04), 0.05, sz * (L / 2 - 0.04)), (0.06, 0.1, 0.06))
    else:
        _slab(b, "frame", "frame", (0, 0.05, 0), (W * 0.96, 0.1, L * 0.98))
    top = fh + 0.05 + mt
    b.part("mattress", P.box((0, fh + 0.05 + mt / 2, 0.0), (W * 0.97, mt, L * 0.98)), "mattress", smooth=False)
    hb = p["headboard_h"]
    hb_t = 0.06
    zh = -L / 2 - hb_t / 2
    if p["headboard_style"] == "rounded":
        _slab(b, "headboard", "frame", (0, (top + hb) / 2 - 0.1, zh), (W, top + hb - 0.2, hb_t))
        b.part("headboard", P.transform(P.cylinder((0, 0, -hb_t / 2), (0, 0, hb_t / 2), 0.5, 24),
                                       s=(W, 0.4, 1.0), t=(0, top + hb - 0.2, zh)), "frame")
        top_hb = top + hb
    else:
        _slab(b, "headboard", "frame", (0, (top + hb) / 2, zh), (W, top + hb, hb_t))
        top_hb = top + hb
        if p["headboard_style"] == "slats":
            for sx in (1, -1):
                _slab(b, "headboard", "frame", (sx * W / 2, (top + hb) / 2 + 0.02, zh), (0.07, top + hb + 0.04, hb_t + 0.02))
    if p["headboard_style"] == "rounded":  # on the elliptic crest at x = +-W/4
        hx, hy = W / 4, top + hb - 0.2 + 0.2 * math.sqrt(0.75)
    else:
        hx, hy = W / 2, top_hb
    b.kp("headboard_top_left", (hx, hy, zh))
    b.kp("headboard_top_right", (-hx, hy, zh))
    mw = W * 0.97 / 2
    b.kp("mattress_head_left", (mw, top, -L * 0.49))
    b.kp("mattress_head_right", (-mw, top, -L * 0.49))
    b.kp("mattress_foot_left", (mw, top, L * 0.49))
    b.kp("mattress_foot_right", (-mw, top, L * 0.49))
    fb = p["footboard"]
    if fb != "none":
        fbh = top + (0.05 if fb == "low" else hb * 0.5)
        _slab(b, "footboard", "frame", (0, fbh / 2, L / 2 + 0.03), (W, fbh, 0.06))
    if fb != "none":  # outer bottom corners of the footboard
        fx, fz = W / 2, L / 2 + 0.06
    elif p["legs"]:  # outer bottom corners of the foot-end legs
        fx, fz = W / 2 - 0.01, L / 2 - 0.01
    else:  # the plinth
        fx, fz = W * 0.48, L * 0.49
    b.kp("foot_left", (fx, 0.0, fz))
    b.kp("foot_right", (-fx, 0.0, fz))
    n = p["pillows"]
    pw = W * 0.8 / n
    for i in range(n):
        x = -W * 0.4 + pw * (i + 0.5)
        b.part("pillow", P.ellipsoid((x, top + 0.05, -L / 2 + 0.25), (pw * 0.45, 0.07, 0.17), 14, 6), "pillow")
    if p["blanket"]:
        b.part("mattress", P.box((0, top + 0.012, L * 0.15), (W * 0.99, 0.03, L * 0.7)), "blanket", smooth=False)


register(CategoryDef(
    name="bed",
    params=(F("length", 1.9, 2.2), F("width", 0.9, 1.8), F("frame_h", 0.15, 0.35), F("mattress_t", 0.15, 0.28),
            F("headboard_h", 0.35, 0.9), C("headboard_style", ["panel", "slats", "rounded"]),
            C("footboard", ["none", "low", "high"], [0.5, 0.3, 0.2]), B("legs", 0.5), I("pillows", 1, 2), B("blanket", 0.6)),
    part_labels=("frame", "mattress", "headboard", "footboard", "pillow"),
    keypoint_names=("headboard_top_left", "headboard_top_right", "mattress_head_left", "mattress_head_right",
                    "mattress_foot_left", "mattress_foot_right", "foot_left", "foot_right"),
    flip_pairs=(("headboard_top_left", "headboard_top_right"), ("mattress_head_left", "mattress_head_right"),
                ("mattress_foot_left", "mattress_foot_right"), ("foot_left", "foot_right")),
    slots={"frame": {"wood": 0.7, "fabric": 0.2, "metal": 0.1}, "mattress": {"bedding": 1.0},
           "pillow": {"bedding": 1.0}, "blanket": {"bedding": 0.5, "fabric": 0.5}},
    build=_build_bed,
    description="mattress on a frame with headboard and pillows (confusable with sofa)",
))


# ----------------------------------------------------------------------------- car
def _wheels(b: Builder, xs: float, zs: Sequence[float], r: float, wdt: float, names: Sequence[str]) -> None:
    """Wheels (axis X) at x = +-xs and the given z positions; hub keypoints on the outer faces."""
    k = 0
    for z in zs:
        for sx in (1, -1):
            x_out = sx * (xs + wdt / 2)
            b.part("wheel", P.cylinder((sx * (xs - wdt / 2), r, z), (x_out, r, z), r, 16), "tyre")
            b.part("wheel", P.cylinder((x_out - sx * 0.01, r, z), (x_out + sx * 0.008, r, z), r * 0.55, 12), "hub")
            if names and k < len(names):
                b.kp(names[k], (x_out + sx * 0.008, r, z))
            k += 1


def _build_car(p: Dict[str, Any], b: Builder) -> None:
    L, Wd = p["length"], p["width"]
    style = p["style"]
    r = p["wheel_r"]
    clr = r * 0.6
    bh = p["body_h"]
    y0, y1 = clr, clr + bh
    nose = p["hood_slope"]
    # lower body: hexahedron, with the top-front and top-rear edges pulled in
    zf, zb = L / 2, -L / 2
    c = []
    for i in range(8):
        x = (Wd / 2) * ((i & 1) * 2 - 1)
        up = (i >> 1) & 1
        front = (i >> 2) & 1
        y = y1 if up else y0
        z = (zf - (nose * 0.5 if up else 0.0)) if front else (zb + (0.12 if up else 0.0))
        c.append((x, y, z))
    b.part("body", P.hexahedron(np.array(c)), "paint", smooth=False)
    # cabin
    cl = L * p["cabin_len"]
    ch = p["cabin_h"]
    if style == "van":
        cl = L * 0.78
    cz = p["cabin_pos"] * L * 0.15 - (0.05 * L if style == "pickup" else 0.0)
    if style == "pickup":
        cl = L * 0.33
        cz = L * 0.08
    zc0, zc1 = cz - cl / 2, cz + cl / 2
    ws = p["windshield"] * ch
    rs = {"sedan": p["rear_slope"] * ch, "hatch": 0.15 * ch, "suv": 0.05 * ch, "van": 0.03 * ch,
          "pickup": 0.05 * ch}[style]
    if style in ("suv", "van"):
        zc0 = min(zc0, zb + 0.2)
    inset = 0.06 * Wd
    cc = []
    for i in range(8):
        up = (i >> 1) & 1
        x = (Wd / 2 - (inset if up else 0.01)) * ((i & 1) * 2 - 1)
        front = (i >> 2) & 1
        y = y1 + ch if up else y1 - 0.01
        if front:
            z = zc1 - (ws if up else 0.0)
        else:
            z = zc0 + (rs if up else 0.0)
        cc.append((x, y, z))
    cc = np.array(cc)
    b.part("cabin", P.hexahedron(cc), "window", smooth=False)
    # roof slab (paint) and pillars: a thin slab on top of the cabin
    roof = cc.copy()
    roof[[0, 1, 4, 5], 1] = y1 + ch - 0.02
    roof[[2, 3, 6, 7], 1] = y1 + ch + 0.015
    for i in (0, 1, 4, 5):
        roof[i, 0] = cc[i + 2, 0]
        roof[i, 2] = cc[i + 2, 2]
    roof[:, 0] *= 1.01
    b.part("roof", P.hexahedron(roof), "paint", smooth=False)
    b.kp("roof_front_left", (cc[7, 0] * 1.01, y1 + ch + 0.015, cc[7, 2]))
    b.kp("roof_front_right", (cc[6, 0] * 1.01, y1 + ch + 0.015, cc[6, 2]))
    b.kp("roof_back_left", (cc[3, 0] * 1.01, y1 + ch + 0.015, cc[3, 2]))
    b.kp("roof_back_right", (cc[2, 0] * 1.01, y1 + ch + 0.015, cc[2, 2]))
    if style == "pickup":
        for sx in (1, -1):
            _slab(b, "body", "paint", (sx * (Wd / 2 - 0.03), y1 + 0.12, (zb + zc0) / 2), (0.06, 0.24, zc0 - zb - 0.1))
        _slab(b, "body", "paint", (0, y1 + 0.12, zb + 0.1), (Wd, 0.24, 0.06))
    # lights
    for sx in (1, -1):
        b.part("light", P.box((sx * Wd * 0.33, y1 - 0.09, zf - nose * 0.05), (Wd * 0.22, 0.08, 0.04)), "headlight",
               smooth=False)
        b.part("light", P.box((sx * Wd * 0.36, y1 - 0.08, zb), (Wd * 0.18, 0.07, 0.04)), "taillight", smooth=False)
    b.kp("bumper_front_left", (Wd / 2, y0, zf))
    b.kp("bumper_front_right", (-Wd / 2, y0, zf))
    b.kp("bumper_back_left", (Wd / 2, y0, zb))
    b.kp("bumper_back_right", (-Wd / 2, y0, zb))
    wb = L * p["wheelbase"] / 2
    _wheels(b, Wd / 2 - p["wheel_w"] / 2 + 0.02, (wb, -wb), r, p["wheel_w"],
            ("wheel_front_left", "wheel_front_right", "wheel_back_left", "wheel_back_right"))


register(CategoryDef(
    name="car",
    params=(F("length", 3.8, 5.0), F("width", 1.65, 1.95), F("body_h", 0.45, 0.7), F("cabin_len", 0.42, 0.58),
            F("cabin_h", 0.38, 0.6), F("cabin_pos", -1.0, 0.5), F("windshield", 0.5, 1.3), F("rear_slope", 0.3, 1.2),
            F("hood_slope", 0.0, 0.5), C("style", ["sedan", "hatch", "suv", "pickup", "van"], [0.35, 0.2, 0.25, 0.1, 0.1]),
            F("wheel_r", 0.30, 0.40), F("wheel_w", 0.2, 0.3), F("wheelbase", 0.55, 0.68)),
    part_labels=("body", "cabin", "roof", "wheel", "light"),
    keypoint_names=("wheel_front_left", "wheel_front_right", "wheel_back_left", "wheel_back_right", "bumper_front_left",
                    "bumper_front_right", "bumper_back_left", "bumper_back_right", "roof_front_left", "roof_front_right",
                    "roof_back_left", "roof_back_right"),
    flip_pairs=(("wheel_front_left", "wheel_front_right"), ("wheel_back_left", "wheel_back_right"),
                ("bumper_front_left", "bumper_front_right"), ("bumper_back_left", "bumper_back_right"),
                ("roof_front_left", "roof_front_right"), ("roof_back_left", "roof_back_right")),
    slots={"paint": {"paint": 1.0}, "window": {"window": 1.0}, "tyre": {"rubber": 1.0}, "hub": {"metal": 1.0},
           "headlight": {"light": 1.0}, "taillight": {"paint": 1.0}},
    build=_build_car,
    description="passenger car: sedan, hatchback, SUV, pickup, van (fine-grained families; van confusable with bus)",
))


# ----------------------------------------------------------------------------- bus
def _build_bus(p: Dict[str, Any], b: Builder) -> None:
    L, Wd, H = p["length"], p["width"], p["height"]
    r = p["wheel_r"]
    y0 = r * 0.5
    decks = p["decks"]
    H = H * (1.45 if decks == 2 else 1.0)
    b.part("body", P.box((0, y0 + H / 2, 0), (Wd, H, L)), "paint", smooth=False)
    # window bands on both sides and the windshield
    band_h = p["window_h"] * H / decks
    for k in range(decks):
        yb = y0 + H * (0.45 if decks == 1 else (0.25 + 0.45 * k))
        for sx in (1, -1):
            b.part("window", P.box((sx * (Wd / 2 + 0.005), yb + band_h / 2, -0.1), (0.02, band_h, L * 0.85)), "window",
                   smooth=False)
    b.part("window", P.box((0, y0 + H * 0.62, L / 2 + 0.005), (Wd * 0.9, H * 0.45, 0.02)), "window", smooth=False)
    b.part("window", P.box((0, y0 + H * 0.7, -L / 2 - 0.005), (Wd * 0.8, H * 0.25, 0.02)), "window", smooth=False)
    if p["stripe"]:
        for sx in (1, -1):
            b.part("body", P.box((sx * (Wd / 2 + 0.006), y0 + H * 0.3, 0), (0.02, H * 0.06, L * 0.98)), "stripe",
                   smooth=False)
    b.part("door", P.box((-(Wd / 2 + 0.008), y0 + H * 0.42, L / 2 - 1.0), (0.02, H * 0.8, 0.9)), "window", smooth=False)
    for sx in (1, -1):
        b.part("light", P.box((sx * Wd * 0.36, y0 + 0.25, L / 2 + 0.01), (0.3, 0.15, 0.03)), "headlight", smooth=False)
    b.kp("front_top_left", (Wd / 2, y0 + H, L / 2))
    b.kp("front_top_right", (-Wd / 2, y0 + H, L / 2))
    b.kp("back_top_left", (Wd / 2, y0 + H, -L / 2))
    b.kp("back_top_right", (-Wd / 2, y0 + H, -L / 2))
    b.kp("front_bottom_left", (Wd / 2, y0, L / 2))
    b.kp("front_bottom_right", (-Wd / 2, y0, L / 2))
    b.kp("back_bottom_left", (Wd / 2, y0, -L / 2))
    b.kp("back_bottom_right", (-Wd / 2, y0, -L / 2))
    zf = L / 2 - p["front_overhang"]
    zb = -L / 2 + p["rear_overhang"]
    _wheels(b, Wd / 2 - 0.14, (zf, zb), r, 0.3,
            ("wheel_front_left", "wheel_front_right", "wheel_back_left", "wheel_back_right"))


register(CategoryDef(
    name="bus",
    params=(F("length", 8.0, 13.0), F("width", 2.4, 2.6), F("height", 2.6, 3.1), F("wheel_r", 0.45, 0.55),
            I("decks", 1, 2), F("window_h", 0.3, 0.45), B("stripe", 0.5), F("front_overhang", 1.8, 2.8),
            F("rear_overhang", 2.0, 3.5)),
    part_labels=("body", "window", "door", "wheel", "light"),
    keypoint_names=("front_top_left", "front_top_right", "back_top_left", "back_top_right", "front_bottom_left",
                    "front_bottom_right", "back_bottom_left", "back_bottom_right", "wheel_front_left", "wheel_front_right",
                    "wheel_back_left", "wheel_back_right"),
    flip_pairs=(("front_top_left", "front_top_right"), ("back_top_left", "back_top_right"),
                ("front_bottom_left", "front_bottom_right"), ("back_bottom_left", "back_bottom_right"),
                ("wheel_front_left", "wheel_front_right"), ("wheel_back_left", "wheel_back_right")),
    slots={"paint": {"paint": 1.0}, "window": {"window": 1.0}, "tyre": {"rubber": 1.0}, "hub": {"metal": 1.0},
           "headlight": {"light": 1.0}, "stripe": {"paint": 1.0}},
    build=_build_bus,
    description="single/double-decker bus (confusable with van-style car)",
))


# ----------------------------------------------------------------------------- airplane
def _build_airplane(p: Dict[str, Any], b: Builder) -> None:
    Lf, R = p["fuse_len"], p["fuse_r"]
    nose = p["nose"] * Lf
    tail = p["tail"] * Lf
    # fuselage along +Z: lathe profile (r, y) with y along the body, then rotate +Y -> +Z
    ys = np.concatenate([np.linspace(0, tail, 5)[:-1], np.linspace(tail, Lf - nose, 3)[:-1], np.linspace(Lf - nose, Lf, 6)])
    rr = np.where(ys < tail, R * (0.25 + 0.75 * np.sqrt(np.clip(ys / tail, 0, 1))), R)
    m = ys > Lf - nose
    rr = np.where(m, R * np.sqrt(np.clip(1 - ((ys - (Lf - nose)) / nose) ** 2, 0, 1)), rr)
    prof = np.stack([rr, ys], -1)
    prof = np.concatenate([[[0.0, 0.0]], prof[:-1], [[0.0, Lf]]])
    fus = P.lathe(prof, 16)
    fus = P.transform(fus, R=P.rot_x(math.pi / 2), t=(0, 0, -Lf / 2))  # +Y -> +Z
    b.part("fuselage", fus, "body")
    b.kp("nose_tip", (0, 0, Lf / 2))
    b.kp("tail_end", (0, 0, -Lf / 2))
    # wings
    span, chord = p["span"], p["chord"] * Lf
    sweep = p["sweep"]
    zw = p["wing_pos"] * Lf
    yw = {"low": -0.6 * R, "mid": 0.0, "high": 0.7 * R}[p["wing_height"]]
    th = R * 0.25
    dih = p["dihedral"]

    def wing(side, zroot, croot, ctip, semi, sw, y, t, dihedral, label, root_x=0.0, vertical=False):
        tipz = zroot - semi * math.tan(sw)
        c = []
        for i in range(8):
            tip = i & 1
            top = (i >> 1) & 1
            lead = (i >> 2) & 1
            if vertical:
                x = (t / 2) * (1 if top else -1)
                yy = y + (semi if tip else 0.0)
                zz = (tipz if tip else zroot) - (0 if lead else (ctip if tip else croot))
            else:
                x = side * (root_x + (semi if tip else 0.0))
                yy = y + (semi * math.tan(dihedral) if tip else 0.0) + (t / 2 if top else -t / 2) * (0.4 if tip else 1.0)
                zz = (tipz if tip else zroot) - (0 if lead else (ctip if tip else croot))
            c.append((x, yy, zz))
        b.part(label, P.hexahedron(np.array(c)), "wing" if label == "wing" else "body", smooth=False)
        return c

    taper = p["taper"]
    for side, kp_tip, kp_root in ((1, "wing_tip_left", "wing_root_left"), (-1, "wing_tip_right", "wing_root_right")):
        c = wing(side, zw + chord / 2, chord, chord * taper, span / 2, sweep, yw, th, dih, "wing", root_x=R * 0.5)
        b.kp(kp_tip, c[7])  # corner (tip, top, leading edge)
        b.kp(kp_root, c[6])
    # tail surfaces
    zt = -Lf / 2 + tail * 0.55
    fin_h = p["fin_h"] * Lf
    fin = wing(1, zt + tail * 0.35, tail * 0.6, tail * 0.3, fin_h, 0.6, R * 0.5, th * 0.8, 0.0, "tail", vertical=True)
    b.kp("fin_top", fin[7])
    st_y = R * 0.5 + fin_h * 0.95 if p["tail_type"] == "T" else R * 0.2
    st_span = span * 0.3
    for side, kp in ((1, "stabilizer_tip_left"), (-1, "stabilizer_tip_right")):
        c = wing(side, zt + tail * 0.25 + (-(fin_h * math.tan(0.6)) if p["tail_type"] == "T" else 0.0),
                 tail * 0.4, tail * 0.2, st_span / 2, 0.5, st_y, th * 0.7, 0.05, "tail", root_x=0.0 if p["tail_type"] == "T" else R * 0.3)
        b.kp(kp, c[7])
    ne = p["engines"]
    if ne:
        pos = [0.33] if ne == 2 else [0.25, 0.5]
        for fr in pos:
            for side in (1, -1):
                x = side * (R * 0.5 + span / 2 * fr)
                z = zw + chord / 2 - (span / 2 * fr) * math.tan(sweep) + R * 0.8
                y = yw + (span / 2 * fr) * math.tan(dih) - R * 0.55
                b.part("engine", P.frustum((x, y, z - R * 1.6), (x, y, z), R * 0.28, R * 0.38, 12), "engine")


register(CategoryDef(
    name="airplane",
    params=(F("fuse_len", 8.0, 12.0), F("fuse_r", 0.45, 0.75), F("nose", 0.08, 0.16), F("tail", 0.2, 0.3),
            F("span", 7.0, 12.0), F("chord", 0.12, 0.22), F("sweep", 0.0, 0.6), F("taper", 0.3, 0.8),
            F("wing_pos", -0.05, 0.12), C("wing_height", ["low", "mid", "high"], [0.5, 0.2, 0.3]), F("dihedral", -0.05, 0.12),
            C("engines", [0, 2, 4], [0.3, 0.5, 0.2]), C("tail_type", ["conventional", "T"], [0.7, 0.3]), F("fin_h", 0.12, 0.2)),
    part_labels=("fuselage", "wing", "tail", "engine"),
    keypoint_names=("nose_tip", "tail_end", "wing_tip_left", "wing_tip_right", "wing_root_left", "wing_root_right",
                    "fin_top", "stabilizer_tip_left", "stabilizer_tip_right"),
    flip_pairs=(("wing_tip_left", "wing_tip_right"), ("wing_root_left", "wing_root_right"),
                ("stabilizer_tip_left", "stabilizer_tip_right")),
    slots={"body": {"paint": 0.7, "metal": 0.3}, "wing": {"paint": 0.4, "metal": 0.6}, "engine": {"metal": 1.0}},
    slot_links={"wing": ("body", 0.6)},
    build=_build_airplane,
    description="fixed-wing aircraft: airliner/propeller/glider-like families",
))


# ----------------------------------------------------------------------------- bottle
def _build_bottle(p: Dict[str, Any], b: Builder) -> None:
    r, h = p["body_r"], p["body_h"]
    nr = r * p["neck_ratio"]
    sh = p["shoulder"] * h
    nh = p["neck_h"]
    ch = p["cap_h"]
    shape = p["shape"]
    segs = {"round": 20, "square": 4, "flask": 20}[shape]
    phase = math.pi / 4 if shape == "square" else 0.0
    rs = r * (math.sqrt(2) if shape == "square" else 1.0)  # circumradius for the square cross-section
    prof = [(0.0, 0.0), (rs * 0.92, 0.0), (rs, 0.02 * h)]
    if shape == "flask":
        prof += [(rs * 1.15, 0.4 * (h - sh)), (rs, h - sh)]
    else:
        prof += [(rs, h - sh)]
    t = np.linspace(0, 1, 5)[1:]
    for tt in t:
        prof.append((rs + (nr * (rs / r) - rs) * (1 - math.cos(tt * math.pi / 2)) ** 1.0 * 1.0 if False
                     else rs - (rs - nr) * math.sin(tt * math.pi / 2), h - sh + sh * tt))
    prof += [(nr, h + nh), (0.0, h + nh)]
    body = P.lathe(np.array(prof), segs, phase)
    b.part("body", body, "glass", smooth=shape != "square")
    b.part("cap", P.cylinder((0, h + nh - 0.005, 0), (0, h + nh + ch, 0), nr * 1.12, 14), "cap")
    if p["label"]:
        lh = (h - sh) * p["label_h"]
        yc = (h - sh) * 0.45
        lr = (rs * (1.15 if shape == "flask" else 1.0)) * 1.02 if shape != "square" else rs * 1.02
        lab = P.lathe(np.array([(0.0, yc - lh / 2), (lr, yc - lh / 2), (lr, yc + lh / 2), (0.0, yc + lh / 2)]), segs, phase)
        b.part("label", lab, "label", smooth=shape != "square")
    ycap = h + nh + ch
    b.kp("cap_top", (0, ycap, 0))
    nf = nr * (math.cos(math.pi / 4) if shape == "square" else 1.0)  # face centre of a square neck
    b.kp("neck_front", (0, h + nh * 0.5, nf))
    b.kp("neck_back", (0, h + nh * 0.5, -nf))
    ys = h - sh
    rr = r if shape != "square" else r  # square: face centre at distance r
    b.kp("shoulder_front", (0, ys, rr))
    b.kp("shoulder_back", (0, ys, -rr))
    b.kp("shoulder_left", (rr, ys, 0))
    b.kp("shoulder_right", (-rr, ys, 0))
    b.kp("base_front", (0, 0.0, rr * 0.9))
    b.kp("base_back", (0, 0.0, -rr * 0.9))
    b.kp("base_left", (rr * 0.9, 0.0, 0))
    b.kp("base_right", (-rr * 0.9, 0.0, 0))


register(CategoryDef(
    name="bottle",
    params=(F("body_r", 0.03, 0.05), F("body_h", 0.14, 0.28), F("shoulder", 0.1, 0.35), F("neck_ratio", 0.25, 0.5),
            F("neck_h", 0.02, 0.08), F("cap_h", 0.01, 0.03), C("shape", ["round", "square", "flask"], [0.6, 0.2, 0.2]),
            B("label", 0.7), F("label_h", 0.4, 0.8)),
    part_labels=("body", "cap", "label"),
    keypoint_names=("cap_top", "neck_front", "neck_back", "shoulder_front", "shoulder_back", "shoulder_left",
                    "shoulder_right", "base_front", "base_back", "base_left", "base_right"),
    flip_pairs=(("shoulder_left", "shoulder_right"), ("base_left", "base_right")),
    slots={"glass": {"glass": 0.6, "plastic": 0.4}, "cap": {"plastic": 0.6, "metal": 0.4},
           "label": {"ceramic": 0.5, "plastic": 0.5}},
    build=_build_bottle,
    description="bottle: round/square/flask body, neck, cap, label",
))


# ----------------------------------------------------------------------------- mug
def _build_mug(p: Dict[str, Any], b: Builder) -> None:
    rb, h = p["radius"], p["height"]
    rt = rb * p["taper"]
    wt = p["wall"]
    fl = wt * 1.5
    prof = np.array([(0.0, 0.0), (rb, 0.0), (rt, h), (rt - wt, h), (rb - wt + (rt - rb) * (fl / h), fl), (0.0, fl)])
    y_s = 0.0
    if p["saucer"]:
        sr = rb * 1.9
        b.part("saucer", P.lathe(np.array([(0.0, 0.0), (sr * 0.6, 0.0), (sr, 0.03), (sr * 0.98, 0.04),
                                           (sr * 0.6, 0.015), (0.0, 0.015)]), 24), "saucer")
        y_s = 0.015
    b.part("body", P.transform(P.lathe(prof, 24), t=(0, y_s, 0)), "body")
    # handle on +X: an arc (or a D shape) from near the top to near the bottom
    hs = p["handle_size"] * h
    y_top, y_bot = y_s + h * 0.8, y_s + h * 0.8 - hs
    r_at = lambda y: rb + (rt - rb) * ((y - y_s) / h)  # noqa: E731
    tt = np.linspace(0, 1, 9)
    if p["handle_shape"] == "round":
        ang = np.pi * tt
        ym = (y_top + y_bot) / 2
        rad = (y_top - y_bot) / 2
        ys = ym + rad * np.cos(ang)
        xs = np.array([r_at(y) for y in ys]) - wt * 0.5 + rad * np.sin(ang) * p["handle_reach"] * 1.6
    else:
        ys = np.array([y_top, y_top, y_top - hs * 0.2, y_bot + hs * 0.2, y_bot, y_bot])
        reach = hs * p["handle_reach"] * 0.8
        base = np.array([r_at(y) for y in ys]) - wt * 0.5
        xs = base + np.array([0, reach, reach * 1.1, reach * 1.1, reach, 0])
    path = np.stack([xs, ys, np.zeros_like(xs)], -1)
    hr = p["handle_t"]
    b.part("handle", P.tube(path, hr, 8), "body")
    mid = path[len(path) // 2]
    b.kp("handle_top", (path[1, 0] + (path[2, 0] - path[1, 0]) * 0.5, path[1, 1] + hr if p["handle_shape"] != "round" else path[1, 1] + hr * 0.7, 0))
    b.kp("handle_bottom", (path[-2, 0] * 0.5 + path[-3, 0] * 0.5, path[-2, 1] - hr if p["handle_shape"] != "round" else path[-2, 1] - hr * 0.7, 0))
    b.kp("handle_outer", (mid[0] + hr, mid[1], 0))
    yt = y_s + h
    b.kp("rim_front", (0, yt, rt - wt / 2))
    b.kp("rim_back", (0, yt, -(rt - wt / 2)))
    b.kp("rim_left", (rt - wt / 2, yt, 0))
    b.kp("rim_right", (-(rt - wt / 2), yt, 0))
    b.kp("base_front", (0, y_s + 0.003, rb * 0.999))
    b.kp("base_back", (0, y_s + 0.003, -rb * 0.999))
    b.kp("base_right", (-rb * 0.999, y_s + 0.003, 0))


register(CategoryDef(
    name="mug",
    params=(F("radius", 0.035, 0.05), F("height", 0.07, 0.12), F("taper", 0.9, 1.25), F("wall", 0.004, 0.008),
            C("handle_shape", ["round", "square"]), F("handle_size", 0.45, 0.75), F("handle_reach", 0.35, 0.6),
            F("handle_t", 0.004, 0.008), B("saucer", 0.2)),
    part_labels=("body", "handle", "saucer"),
    keypoint_names=("rim_front", "rim_back", "rim_left", "rim_right", "base_front", "base_back", "base_right",
                    "handle_top", "handle_bottom", "handle_outer"),
    flip_pairs=(("rim_left", "rim_right"),),
    slots={"body": {"ceramic": 0.8, "plastic": 0.1, "metal": 0.1}, "saucer": {"ceramic": 1.0}},
    slot_links={"saucer": ("body", 0.6)},
    build=_build_mug,
    description="cup with a handle on its left (+X) side (confusable with bottle, lamp base)",
))


# ----------------------------------------------------------------------------- lamp
def _build_lamp(p: Dict[str, Any], b: Builder) -> None:
    br = p["base_r"]
    bt = 0.03
    if p["base_shape"] == "round":
        b.part("base", P.frustum((0, 0, 0), (0, bt, 0), br, br * 0.85, 24), "base")
        pts = [(0, 0.0, br), (0, 0.0, -br), (br, 0.0, 0), (-br, 0.0, 0)]
    else:
        _slab(b, "base", "base", (0, bt / 2, 0), (2 * br, bt, 2 * br))
        pts = [(0, 0.0, br), (0, 0.0, -br), (br, 0.0, 0), (-br, 0.0, 0)]
    for n, pt in zip(("base_front", "base_back", "base_left", "base_right"), pts):
        b.kp(n, pt)
    sr, shh = p["shade_r"], p["shade_h"]
    style = p["shade"]
    r0 = {"cone": sr, "cylinder": sr, "dome": sr}[style]
    r1 = {"cone": sr * 0.45, "cylinder": sr * 0.95, "dome": sr * 0.1}[style]
    stem_r = p["stem_r"]
    if p["arm"] == "straight":
        top = np.array([0.0, bt + p["stem_h"], 0.0])
        b.part("stem", P.cylinder((0, bt, 0), top, stem_r, 10), "stem")
        b.kp("stem_top", top + [0, 0, stem_r])
        y_bot = top[1] - shh * 0.35
        if style == "dome":
            prof = np.array([(0.0, 0.0), (sr, 0.0)] + [(sr * math.cos(a), shh * math.sin(a)) for a in np.linspace(0.3, 1.3, 4)] + [(0.0, shh)])
            shade = P.transform(P.lathe(prof, 20), t=(0, y_bot, 0))
        else:
            shade = P.frustum((0, y_bot, 0), (0, y_bot + shh, 0), r0, r1, 20)
        b.part("shade", shade, "shade")
        b.kp("shade_top", (0, y_bot + shh, 0))
        for n, pt in zip(("shade_rim_front", "shade_rim_back", "shade_rim_left", "shade_rim_right"),
                         ((0, y_bot, r0), (0, y_bot, -r0), (r0, y_bot, 0), (-r0, y_bot, 0))):
            b.kp(n, pt)
    else:
        # desk lamp: two arm segments and a head pointing forward/down
        a1 = p["arm_angle"]
        L1 = p["stem_h"] * 0.6
        j1 = np.array([0.0, bt + 0.02, -br * 0.3])
        j2 = j1 + L1 * np.array([0.0, math.cos(a1), -math.sin(a1) * 0.6])
        j3 = j2 + L1 * 0.9 * np.array([0.0, 0.25, 1.0]) / np.linalg.norm([0, 0.25, 1.0])
        b.part("stem", P.tube(np.array([j1, j2, j3]), stem_r, 8), "stem")
        b.part("stem", P.ellipsoid(j2, (stem_r * 2,) * 3, 8, 4), "stem")
        b.kp("stem_top", j2 + [0, stem_r * 2, 0])
        axis = np.array([0.0, -0.8, 0.6])
        axis /= np.linalg.norm(axis)
        Rm = P.rotation_between(np.array([0.0, -1.0, 0.0]), axis)  # shade opening points along axis
        if style == "dome":
            prof = np.array([(0.0, 0.0), (sr, 0.0)] + [(sr * math.cos(a), shh * math.sin(a)) for a in np.linspace(0.3, 1.3, 4)] + [(0.0, shh)])
            local = P.lathe(prof, 20)
        else:
            local = P.frustum((0, 0, 0), (0, shh, 0), r0, r1, 20)
        # local shade: opening at y = 0, apex at y = shh; flip so that the apex is at the joint
        Rflip = P.rot_x(math.pi)
        Rall = P.rotation_between(np.array([0.0, 1.0, 0.0]), -axis)
        origin = j3 + axis * shh
        v, f = P.transform(local, R=Rall, t=origin)
        b.part("shade", (v, f), "shade")
        del Rm, Rflip
        b.kp("shade_top", origin + (-axis) * shh)
        # rim points: the opening circle at origin, spanned by two directions orthogonal to axis
        u = np.cross(axis, [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        for n, pt in zip(("shade_rim_front", "shade_rim_back", "shade_rim_left", "shade_rim_right"),
                         (origin - u * r0, origin + u * r0, origin + np.array([1.0, 0, 0]) * r0,
                          origin - np.array([1.0, 0, 0]) * r0)):
            b.kp(n, pt)


register(CategoryDef(
    name="lamp",
    params=(C("base_shape", ["round", "square"], [0.7, 0.3]), F("base_r", 0.08, 0.14), F("stem_h", 0.3, 0.6),
            F("stem_r", 0.008, 0.016), C("shade", ["cone", "cylinder", "dome"]), F("shade_r", 0.1, 0.2),
            F("shade_h", 0.1, 0.22), C("arm", ["straight", "desk"], [0.6, 0.4]), F("arm_angle", 0.2, 0.7)),
    part_labels=("base", "stem", "shade"),
    keypoint_names=("base_front", "base_back", "base_left", "base_right", "stem_top", "shade_top", "shade_rim_front",
                    "shade_rim_back", "shade_rim_left", "shade_rim_right"),
    flip_pairs=(("base_left", "base_right"), ("shade_rim_left", "shade_rim_right")),
    slots={"base": {"metal": 0.5, "ceramic": 0.3, "wood": 0.2}, "stem": {"metal": 0.8, "wood": 0.2},
           "shade": {"fabric": 0.5, "plastic": 0.3, "metal": 0.2}},
    slot_links={"stem": ("base", 0.5)},
    build=_build_lamp,
    description="table/floor lamp with shade, or an articulated desk lamp",
))


# ----------------------------------------------------------------------------- bird
def _build_bird(p: Dict[str, Any], b: Builder) -> None:
    """Articulated bird: neck pitch, wing spread and raise, tail pitch are the articulation params.

    Keypoints are the 15 CUB-200-2011 parts.
    """
    L = p["body_len"]
    rb = L / 2
    ry = rb * p["body_h"]
    rx = rb * p["body_w"]
    pitch = p["body_pitch"]
    leg = p["leg_len"]
    cy = leg + ry * 0.8
    Rb = P.rot_x(-pitch)  # positive pitch raises the front (+Z) of the body
    centre = np.array([0.0, cy, 0.0])
    body = P.ellipsoid((0, 0, 0), (rx, ry, rb), 16, 10)
    b.part("body", P.transform(body, R=Rb, t=centre), "feather")
    bel = P.ellipsoid((0, -ry * 0.25, rb * 0.1), (rx * 0.9, ry * 0.8, rb * 0.8), 14, 8)
    b.part("body", P.transform(bel, R=Rb, t=centre), "belly")

    def on_body(local):
        return centre + np.asarray(local) @ Rb.T

    b.kp("back", on_body((0, ry, -rb * 0.15 * 0)))
    b.kp("belly", on_body((0, -ry * 0.25 - ry * 0.8, rb * 0.1)))
    b.kp("breast", on_body((0, -ry * 0.1, rb * 0.86)))
    # neck + head
    hr = p["head_r"] * L
    nl = p["neck_len"] * L
    na = p["neck_pitch"]  # 0 = straight up-forward, positive = more forward
    neck_base = on_body((0, ry * 0.5, rb * 0.7))
    ndir = np.array([0.0, math.cos(na), math.sin(na)])
    head_c = neck_base + ndir * (nl + hr * 0.6)
    b.part("head", P.capsule(neck_base, head_c, hr * 0.6, 10, 3), "feather")
    b.part("head", P.ellipsoid(head_c, (hr * 0.9, hr, hr), 14, 8), "head")
    b.kp("crown", head_c + (0, hr, 0))
    b.kp("forehead", head_c + np.array([0, math.sin(0.7), math.cos(0.7)]) * np.array([0, hr, hr]))
    b.kp("nape", head_c + np.array([0, math.sin(2.3), math.cos(2.3)]) * np.array([0, hr, hr]))
    b.kp("throat", head_c + np.array([0, -math.sin(0.8), math.cos(0.8)]) * np.array([0, hr, hr]))
    # beak pointing +Z with a slight downward tilt
    bl = p["beak_len"] * L
    bdir = np.array([0.0, -0.25 if p["beak_shape"] == "hooked" else -0.08, 1.0])
    bdir /= np.linalg.norm(bdir)
    b0 = head_c + np.array([0, -hr * 0.1, hr * 0.85])
    btip = b0 + bdir * bl
    b.part("beak", P.frustum(b0 - bdir * hr * 0.2, btip, hr * (0.45 if p["beak_shape"] == "thick" else 0.3), 0.0, 10), "beak")
    b.kp("beak", btip)
    # eyes (separate small spheres, label head)
    for sx, name in ((1, "left_eye"), (-1, "right_eye")):
        d = np.array([sx * 0.78, 0.3, 0.55])
        d /= np.linalg.norm(d)
        ec = head_c + d * np.array([hr * 0.9, hr, hr]) * 0.92
        b.part("head", P.ellipsoid(ec, (hr * 0.2,) * 3, 8, 4), "eye")
        b.kp(name, ec + d * hr * 0.2)
    # tail: a flat wedge behind the body, pitched by tail_pitch
    tl = p["tail_len"] * L
    tp = p["tail_pitch"] + pitch
    t0 = on_body((0, ry * 0.2, -rb * 0.8))
    tdir = np.array([0.0, -math.sin(tp), -math.cos(tp)])
    side = np.array([1.0, 0.0, 0.0])
    up = np.cross(tdir, side)
    tw0, tw1 = rx * 0.5, rx * p["tail_fan"]
    th = ry * 0.12
    corners = []
    for i in range(8):
        x = (i & 1) * 2 - 1
        upb = ((i >> 1) & 1) * 2 - 1
        far = (i >> 2) & 1
        base = t0 + tdir * (tl if far else -rb * 0.1)
        wdt = tw1 if far else tw0
        corners.append(base + side * x * wdt + up * upb * th / 2)
    b.part("tail", P.hexahedron(np.array(corners)), "wing")
    b.kp("tail", t0 + tdir * tl + up * th / 2)
    # wings: flattened ellipsoids hinged at the shoulders; spread rotates about the body axis, raise lifts
    wl = p["wing_len"] * L
    spread = max(0.0, (p["wing_spread"] - 0.55) / 0.45)  # ~55% of birds perch with folded wings
    for sx, name in ((1, "left_wing"), (-1, "right_wing")):
        shoulder = on_body((sx * rx * 0.75, ry * 0.45, rb * 0.3))
        # folded: wing lies along the body (pointing -Z); spread: sideways (+-X) and raised
        ang = spread * (math.pi / 2 - 0.1)
        direction = np.array([sx * math.sin(ang), math.sin(p["wing_raise"] * spread) + 0.05,
                              -math.cos(ang)])
        direction /= np.linalg.norm(direction)
        wc = shoulder + direction * wl / 2
        Rw = P.rotation_between(np.array([0.0, 0.0, -1.0]), direction)
        # flat in the wing's local Y after rotation; roll so that the flat side faces up/outwards
        wing = P.ellipsoid((0, 0, 0), (rx * 0.55 if spread < 0.4 else wl * 0.22, ry * 0.12, wl / 2), 12, 6)
        if spread < 0.4:
            Rroll = P.rot_z(-sx * 0.35)
            Rw = Rw @ Rroll
        b.part("wing", P.transform(wing, R=Rw, t=wc), "wing")
        top_local = np.array([0.0, ry * 0.12, 0.0])
        b.kp(name, wc + Rw @ top_local)
    # legs and feet
    for sx, name in ((1, "left_leg"), (-1, "right_leg")):
        hip = on_body((sx * rx * 0.4, -ry * 0.7, rb * 0.05))
        foot = np.array([hip[0], 0.012, hip[2] + 0.02 * L])
        b.part("leg", P.cylinder(foot, hip, L * 0.02, 6), "legs")
        b.part("leg", P.box(foot + (0, -0.006, L * 0.05), (L * 0.05, 0.012, L * 0.16)), "legs", smooth=False)
        b.kp(name, foot + (0, 0.0, L * 0.05 + L * 0.08))


register(CategoryDef(
    name="bird",
    params=(F("body_len", 0.12, 0.3), F("body_h", 0.55, 0.8), F("body_w", 0.55, 0.75), F("body_pitch", 0.0, 0.5),
            F("head_r", 0.16, 0.24), F("neck_len", 0.02, 0.15), F("neck_pitch", 0.1, 0.9), F("beak_len", 0.08, 0.35),
            C("beak_shape", ["thin", "thick", "hooked"]), F("tail_len", 0.3, 0.8), F("tail_pitch", -0.3, 0.4),
            F("tail_fan", 0.4, 1.0), F("wing_len", 0.55, 1.1), F("wing_spread", 0.0, 1.0), F("wing_raise", 0.0, 0.6),
            F("leg_len", 0.04, 0.12)),
    part_labels=("body", "head", "beak", "tail", "wing", "leg"),
    keypoint_names=("back", "beak", "belly", "breast", "crown", "forehead", "left_eye", "left_leg", "left_wing",
                    "nape", "right_eye", "right_leg", "right_wing", "tail", "throat"),
    flip_pairs=(("left_eye", "right_eye"), ("left_leg", "right_leg"), ("left_wing", "right_wing")),
    slots={"feather": {"feather": 1.0}, "belly": {"belly": 1.0}, "head": {"feather": 1.0}, "wing": {"feather": 1.0},
           "beak": {"beak": 1.0}, "eye": {"rubber": 1.0}, "legs": {"beak": 0.6, "rubber": 0.4}},
    slot_links={"head": ("feather", 0.6), "wing": ("feather", 0.5)},
    articulated=("wing_spread", "wing_raise", "neck_pitch", "tail_pitch", "body_pitch"),
    build=_build_bird,
    description="articulated bird (CUB's 15 keypoints): wing spread/raise, neck, tail and body pitch",
))


# ----------------------------------------------------------------------------- monitor
def _build_monitor(p: Dict[str, Any], b: Builder) -> None:
    W = p["screen_w"]
    H = W / p["aspect"]
    t = p["thickness"]
    bz = p["bezel"]
    sh = p["stand_h"]
    y0 = sh + 0.02
    b.part("frame", P.box((0, y0 + H / 2, 0), (W, H, t)), "frame", smooth=False)
    b.part("screen", P.box((0, y0 + H / 2, t / 2 + 0.002), (W - 2 * bz, H - 2 * bz, 0.006)), "screen", smooth=False)
    if p["back_box"]:
        b.part("frame", P.box((0, y0 + H / 2, -t / 2 - t * 0.6), (W * 0.6, H * 0.6, t * 1.2)), "frame", smooth=False)
    zf = t / 2 + 0.005
    b.kp("screen_top_left", (W / 2 - bz, y0 + H - bz, zf))
    b.kp("screen_top_right", (-(W / 2 - bz), y0 + H - bz, zf))
    b.kp("screen_bottom_left", (W / 2 - bz, y0 + bz, zf))
    b.kp("screen_bottom_right", (-(W / 2 - bz), y0 + bz, zf))
    b.kp("frame_top_center", (0, y0 + H, 0))
    if p["stand"] == "neck":
        b.part("stand", P.box((0, (y0 + H * 0.3) / 2, -t / 2 - 0.02), (0.06, y0 + H * 0.3, 0.03)), "frame", smooth=False)
        bw, bd = W * 0.35, W * 0.22
        b.part("stand", P.box((0, 0.01, -0.02), (bw, 0.02, bd)), "frame", smooth=False)
        b.kp("base_front", (0, 0.02, -0.02 + bd / 2))
        b.kp("base_left", (bw / 2, 0.02, -0.02))
        b.kp("base_right", (-bw / 2, 0.02, -0.02))
    else:  # two feet
        for sx in (1, -1):
            x = sx * W * 0.35
            b.part("stand", P.hexahedron(np.array([
                (x - 0.015, 0, -0.08), (x + 0.015, 0, -0.08), (x - 0.015, y0 + 0.02, -0.01), (x + 0.015, y0 + 0.02, -0.01),
                (x - 0.015, 0, 0.08), (x + 0.015, 0, 0.08), (x - 0.015, y0 + 0.02, 0.01), (x + 0.015, y0 + 0.02, 0.01)])),
                "frame", smooth=False)
        b.kp("base_front", (0, y0, t / 2))
        b.kp("base_left", (W * 0.35, 0.0, 0.08))
        b.kp("base_right", (-W * 0.35, 0.0, 0.08))


register(CategoryDef(
    name="monitor",
    params=(F("screen_w", 0.45, 0.8), F("aspect", 1.3, 2.2), F("thickness", 0.02, 0.06), F("bezel", 0.008, 0.03),
            F("stand_h", 0.05, 0.15), C("stand", ["neck", "feet"], [0.7, 0.3]), B("back_box", 0.4)),
    part_labels=("frame", "screen", "stand"),
    keypoint_names=("screen_top_left", "screen_top_right", "screen_bottom_left", "screen_bottom_right",
                    "frame_top_center", "base_front", "base_left", "base_right"),
    flip_pairs=(("screen_top_left", "screen_top_right"), ("screen_bottom_left", "screen_bottom_right"),
                ("base_left", "base_right")),
    slots={"frame": {"plastic": 0.5, "metal": 0.5}, "screen": {"window": 1.0}},
    build=_build_monitor,
    description="flat-panel monitor / TV on a stand",
))
