"""Scene effects: backgrounds, occluders (OccludedPASCAL3D-style levels) and compositing.

Backgrounds
    ``white``; ``texture`` (procedural: multi-octave value noise, stripes, checkerboard, tiles,
    gradients, wood grain, with random colours); ``clutter`` (a texture with several other objects of
    the world pasted behind the target).

Occluders
    :class:`OccluderBank` renders a bank of *procedural* (non-target) objects as RGBA cut-outs, the
    analogue of OccludedPASCAL3D's COCO object library. :func:`occlude` pastes them so that the
    occluded fraction of the object mask lands in the level's range and the occluded fraction of
    the background near its target (OccludedPASCAL3D generator: foreground 0.3 / 0.5 / 0.7 and
    background 0.1 / 0.3 / 0.5, each +-0.1). Achieved fractions are measured and returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .materials import value_noise2

__all__ = ["BACKGROUNDS", "OCCLUSION_LEVELS", "make_background", "composite", "OccluderBank", "occlude",
           "Occlusion"]

BACKGROUNDS = ("white", "texture", "clutter")
# level -> (object fraction low, object fraction high, background target); background tolerance 0.1
OCCLUSION_LEVELS: Dict[int, Tuple[float, float, float]] = {1: (0.2, 0.4, 0.1), 2: (0.4, 0.6, 0.3), 3: (0.6, 0.8, 0.5)}


def _rand_color(rng: np.random.Generator, sat: Tuple[float, float] = (0.1, 0.6), val: Tuple[float, float] = (0.25, 0.95)):
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def make_background(kind: str, H: int, W: int, rng: np.random.Generator,
                    bank: Optional["OccluderBank"] = None) -> np.ndarray:
    """``(H, W, 3)`` float32 background in [0, 1]."""
    if kind == "white":
        return np.ones((H, W, 3), np.float32)
    if kind not in ("texture", "clutter"):
        raise ValueError(f"unknown background '{kind}' (valid: {', '.join(BACKGROUNDS)})")
    c1, c2 = _rand_color(rng), _rand_color(rng)
    style = rng.choice(["noise", "stripes", "checker", "tiles", "gradient", "wood"])
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    yy = (yy + 0.5) / H
    xx = (xx + 0.5) / W
    if style == "noise":
        t = value_noise2(H, W, rng.uniform(2, 8), rng)
    elif style == "stripes":
        a = rng.uniform(0, np.pi)
        f = rng.uniform(3, 12)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(a) + yy * np.sin(a)) + rng.uniform(0, 6))
    elif style == "checker":
        f = rng.uniform(3, 10)
        a = rng.uniform(0, np.pi / 2)
        u = xx * np.cos(a) - yy * np.sin(a)
        v = xx * np.sin(a) + yy * np.cos(a)
        t = ((np.floor(u * f) + np.floor(v * f)) % 2).astype(np.float64)
    elif style == "tiles":
        f = rng.uniform(4, 10)
        gu = np.abs((xx * f) % 1 - 0.5)
        gv = np.abs((yy * f) % 1 - 0.5)
        t = ((gu > 0.45) | (gv > 0.45)).astype(np.float64) * 0.8 + 0.2 * value_noise2(H, W, 6, rng)
    elif style == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + (xx - 0.5) * np.cos(a) + (yy - 0.5) * np.sin(a), 0, 1)
        t = t * 0.8 + 0.2 * value_noise2(H, W, 4, rng)
    else:
        n = value_noise2(H, W, 3, rng)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (yy * rng.uniform(5, 15) + 2.5 * n))
    img = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    img = img * (0.85 + 0.3 * value_noise2(H, W, 2, rng)[..., None])  # low-frequency illumination
    img = np.clip(img, 0, 1).astype(np.float32)
    if kind == "clutter" and bank is not None and len(bank):
        for _ in range(int(rng.integers(2, 5))):
            item = bank.sample(rng)
            size = rng.uniform(0.3, 0.6) * min(H, W)
            cx, cy = rng.uniform(0, W), rng.uniform(0, H * 1.0)
            rgb, a = bank.place(item, (H, W), (cx, cy), size)
            dim = rng.uniform(0.6, 0.9)  # clutter is further away / less lit
            img = img * (1 - a[..., None]) + rgb * dim
    return img


def composite(rgb_premult: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``rgb_premult (H, W, 3) + (1 - alpha) * background`` -> float32 in [0, 1]."""
    return np.clip(rgb_premult + (1.0 - alpha[..., None]) * background, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- occluders
class OccluderBank:
    """RGBA cut-outs of ``n`` procedural objects (deterministic in ``seed``), rendered on first use.

    Items are ``(h, w, 4)`` float32 arrays cropped to their alpha bounding box. Item ``i`` is the
    first render of ``stable_seed("occluder", seed, i[, attempt])`` that covers at least 20 pixels;
    it depends on nothing else, so a process renders only the items it draws (dataset workers each
    fill their own copy, in parallel) and every copy holds the same items. ``lazy=False`` renders
    all of them at construction.
    """

    def __init__(self, seed: int = 0, n: int = 48, size: int = 96, n_categories: int = 24, lazy: bool = True):
        if n < 1:
            raise ValueError(f"OccluderBank: n must be >= 1, got {n}")
        self.seed, self.n, self.size, self.n_categories = int(seed), int(n), int(size), int(n_categories)
        self._items: Dict[int, np.ndarray] = {}
        self._cats = None
        if not lazy:
            self.items  # noqa: B018 - render all

    @property
    def items(self) -> List[np.ndarray]:
        """All ``n`` items (renders the missing ones)."""
        return [self.get(i) for i in range(self.n)]

    def get(self, i: int) -> np.ndarray:
        """Item ``i`` (rendered and cached on first use)."""
        item = self._items.get(i)
        if item is None:
            item = self._items[i] = self._render(i)
        return item

    def _render(self, i: int) -> np.ndarray:
        from .procedural import procedural_categories
        from .shading import render_views, sample_light
        from .world import make_object, sample_params, stable_seed

        if self._cats is None:
            self._cats = procedural_categories(self.n_categories, seed=1000 + self.seed)
        size = self.size
        cat = self._cats[i % len(self._cats)]
        for attempt in range(100):
            key = ("occluder", self.seed, i) if attempt == 0 else ("occluder", self.seed, i, attempt)
            rng = np.random.default_rng(stable_seed(*key))
            model = make_object(cat, sample_params(cat, rng), material_seed=int(rng.integers(2**31)))
            az, el = rng.uniform(0, 2 * np.pi), rng.uniform(-0.2, 0.8)
            out = render_views(model, [az], [el], [rng.uniform(-0.3, 0.3)], [2.6], 1.9 * size,
                               (size / 2, size / 2), size, supersample=1, lights=[sample_light(rng)])
            a = out["alpha"][0]
            ys, xs = np.nonzero(a > 0)
            if ys.size < 20:
                continue
            crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            rgba = np.concatenate([out["rgb"][0][crop] / np.maximum(a[crop][..., None], 1e-6), a[crop][..., None]], -1)
            return np.clip(rgba, 0, 1).astype(np.float32)
        raise RuntimeError(f"OccluderBank: occluder {i} (seed {self.seed}) never covered 20 pixels")  # pragma: no cover

    def __len__(self) -> int:
        return self.n

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.get(int(rng.integers(self.n)))

    @staticmethod
    def place(item: np.ndarray, shape: Tuple[int, int], center: Tuple[float, float], size: float
              ) -> Tuple[np.ndarray, np.ndarray]:
        """Paste ``item`` scaled so its longer side is ``size`` px, centred at ``center`` (x, y).

        Returns full-image ``(premultiplied rgb (H, W, 3), alpha (H, W))``.
        """
        H, W = shape
        (x0, y0, ww, hh), (xa, ya, xb, yb) = _placement(item.shape[:2], shape, center, size)
        rgb = np.zeros((H, W, 3), np.float32)
        a = np.zeros((H, W), np.float32)
        if xa < xb and ya < yb:
            # the same as PIL's ``Image.resize`` of the RGBA image (which resamples premultiplied RGBa)
            im = _premultiplied(item).resize((ww, hh), Image.BILINEAR).convert("RGBA")
            sub = np.asarray(im)[ya - y0:yb - y0, xa - x0:xb - x0].astype(np.float32) * np.float32(1 / 255.0)
            a[ya:yb, xa:xb] = sub[..., 3]
            rgb[ya:yb, xa:xb] = sub[..., :3] * sub[..., 3:4]
        return rgb, a


_PIL_CACHE: Dict[int, Tuple[np.ndarray, Image.Image]] = {}


def _premultiplied(item: np.ndarray) -> Image.Image:
    """The ``RGBa`` (premultiplied) PIL image of an RGBA float item, cached per item array."""
    hit = _PIL_CACHE.get(id(item))
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_PIL_CACHE) > 1024:
        _PIL_CACHE.clear()
    im = Image.fromarray((item * 255).astype(np.uint8), "RGBA").convert("RGBa")
    _PIL_CACHE[id(item)] = (item, im)
    return im


@dataclass
class Occlusion:
    image: np.ndarray        # (H, W, 3) float32, occluded
    occluder_alpha: np.ndarray  # (H, W) float32
    occluder_mask: np.ndarray   # (H, W) bool (alpha >= 0.5)
    fg_fraction: float       # occluded fraction of the object mask
    bg_fraction: float       # occluded fraction of the background
    n_occluders: int
    ok: bool                 # both fractions within the level's tolerance


def _fractions(occ: np.ndarray, obj: np.ndarray) -> Tuple[float, float]:
    nf = max(int(obj.sum()), 1)
    nb = max(int((~obj).sum()), 1)
    return float((occ & obj).sum()) / nf, float((occ & ~obj).sum()) / nb


class _Trial:
    """Occluded fractions of ``acc`` (the accumulated occluder alpha) with one more occluder pasted,
    computed on the occluder's patch only (the arithmetic of a full-canvas paste, elementwise)."""

    def __init__(self, a_acc: np.ndarray, obj: np.ndarray):
        self.a_acc, self.obj = a_acc, obj
        self.occ0 = a_acc >= 0.5
        self.f0 = int((self.occ0 & obj).sum())
        self.b0 = int((self.occ0 & ~obj).sum())
        self.nf = max(int(obj.sum()), 1)
        self.nb = max(int((~obj).sum()), 1)

    def fractions(self, item: np.ndarray, center: Tuple[float, float], size: float) -> Tuple[float, float]:
        H, W = self.obj.shape
        patch = _alpha_patch(item, (H, W), center, size)
        if patch is None:
            return self.f0 / self.nf, self.b0 / self.nb
        sl, a = patch
        acc = self.a_acc[sl]
        new = (a + acc * (1 - a)) >= 0.5
        old = self.occ0[sl]
        o = self.obj[sl]
        f = self.f0 - int((old & o).sum()) + int((new & o).sum())
        b = self.b0 - int((old & ~o).sum()) + int((new & ~o).sum())
        return f / self.nf, b / self.nb


def _placement(item_hw: Tuple[int, int], shape: Tuple[int, int], center: Tuple[float, float], size: float):
    """Where an item lands: ``(x0, y0, w, h)`` of the item scaled so its longer side is ``size`` px
    and centred at ``center`` (x, y), and its clipped box ``(xa, ya, xb, yb)`` in an image of ``shape``."""
    H, W = shape
    h0, w0 = item_hw
    k = size / max(h0, w0)
    hh, ww = max(1, int(round(h0 * k))), max(1, int(round(w0 * k)))
    x0 = int(round(center[0] - ww / 2))
    y0 = int(round(center[1] - hh / 2))
    return (x0, y0, ww, hh), (max(x0, 0), max(y0, 0), min(x0 + ww, W), min(y0 + hh, H))


def _alpha_patch(item: np.ndarray, shape: Tuple[int, int], center: Tuple[float, float], size: float):
    """Alpha of :meth:`OccluderBank.place` on its (clipped) patch: ``((row slice, col slice), alpha)``
    or ``None`` when the item falls outside the image."""
    (x0, y0, ww, hh), (xa, ya, xb, yb) = _placement(item.shape[:2], shape, center, size)
    if not (xa < xb and ya < yb):
        return None
    im = _premultiplied(item).resize((ww, hh), Image.BILINEAR).convert("RGBA")
    a = np.asarray(im)[ya - y0:yb - y0, xa - x0:xb - x0, 3].astype(np.float32) * np.float32(1 / 255.0)
    return (slice(ya, yb), slice(xa, xb)), a


def occlude(image: np.ndarray, obj_mask: np.ndarray, level: int, rng: np.random.Generator, bank: OccluderBank,
            levels: Dict[int, Tuple[float, float, float]] = OCCLUSION_LEVELS, bg_tol: float = 0.1,
            attempts: int = 12) -> Occlusion:
    """Paste occluders over ``image`` to reach occlusion ``level`` (see module docs).

    ``obj_mask (H, W)`` bool is the un-occluded object mask. Background occluders go first, centred
    on background pixels; then one or two foreground occluders whose size is found by bisection so
    that the object fraction hits a target drawn inside the level's range. The best attempt is
    returned (``ok`` tells whether it met both tolerances).
    """
    H, W = obj_mask.shape
    lo, hi, bg_t = levels[int(level)]
    obj = obj_mask.astype(bool)
    bg_pix = np.argwhere(~obj)
    obj_pix = np.argwhere(obj)
    best: Optional[Occlusion] = None
    best_err = np.inf
    for _ in range(attempts):
        rgb_acc = np.zeros((H, W, 3), np.float32)
        a_acc = np.zeros((H, W), np.float32)
        n = 0

        def add(rgb, a):
            nonlocal rgb_acc, a_acc
            rgb_acc = rgb + rgb_acc * (1 - a[..., None])
            a_acc = a + a_acc * (1 - a)

        # background occluders: grow until the background fraction reaches its target
        for _k in range(6):
            _, bf = _fractions(a_acc >= 0.5, obj)
            if bf >= bg_t - bg_tol * 0.5 or bg_pix.size == 0:
                break
            item = bank.sample(rng)
            cy, cx = bg_pix[int(rng.integers(len(bg_pix)))] + 0.5
            trial = _Trial(a_acc, obj)
            best_s, best_d = None, np.inf
            s_lo, s_hi = 0.08 * min(H, W), 1.2 * min(H, W)
            for _it in range(7):
                s = 0.5 * (s_lo + s_hi)
                ff, bb = trial.fractions(item, (cx, cy), s)
                if ff > lo:  # background occluders must leave room for the foreground target
                    s_hi = s
                    continue
                d = abs(bb - bg_t)
                if d < best_d:
                    best_s, best_d = s, d
                if bb < bg_t:
                    s_lo = s
                else:
                    s_hi = s
            if best_s is None:
                continue
            add(*bank.place(item, (H, W), (cx, cy), best_s))
            n += 1
        # foreground occluders: bisection on size to hit the object-fraction target
        target = rng.uniform(lo + 0.02, hi - 0.02)
        for _k in range(3):
            ff, _ = _fractions(a_acc >= 0.5, obj)
            if lo <= ff <= hi or obj_pix.size == 0:
                break
            item = bank.sample(rng)
            cy, cx = obj_pix[int(rng.integers(len(obj_pix)))] + 0.5
            trial = _Trial(a_acc, obj)
            s_lo, s_hi = 0.05 * min(H, W), 1.5 * min(H, W)
            best_s, best_d = s_lo, np.inf
            for _it in range(9):
                s = 0.5 * (s_lo + s_hi)
                f2, _ = trial.fractions(item, (cx, cy), s)
                if abs(f2 - target) < best_d:
                    best_s, best_d = s, abs(f2 - target)
                if f2 < target:
                    s_lo = s
                else:
                    s_hi = s
            add(*bank.place(item, (H, W), (cx, cy), best_s))
            n += 1
        occ_mask = a_acc >= 0.5
        ff, bf = _fractions(occ_mask, obj)
        ok = (lo <= ff <= hi) and abs(bf - bg_t) <= bg_tol
        err = max(0.0, lo - ff, ff - hi) * 10 + max(0.0, abs(bf - bg_t) - bg_tol)
        img = rgb_acc + image * (1 - a_acc[..., None])
        cand = Occlusion(np.clip(img, 0, 1).astype(np.float32), a_acc, occ_mask, ff, bf, n, ok)
        if err < best_err:
            best, best_err = cand, err
        if ok:
            break
    assert best is not None
    return best
