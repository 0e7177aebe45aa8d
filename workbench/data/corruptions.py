"""ImageNet-C corruptions (brightness, frost, snow, fog) through the ``imagecorruptions`` package.

``imagecorruptions`` 1.1.2 implements Hendrycks & Dietterich's reference code (frost uses its
bundled frost photographs, so it works offline) but has two incompatibilities with current
environments, handled here without patching the package on disk:

* it imports ``pkg_resources`` (removed from recent setuptools) only for ``resource_filename``;
  a stub providing that one function is put in ``sys.modules`` for the duration of the import
  and removed again afterwards;
* its ``fog`` uses ``np.float_`` (removed in NumPy 2); :func:`fog` below is a faithful port of
  the reference function (diamond-square plasma fractal, same severity table);
* its ``frost`` re-reads and resizes a frost photograph on every call (~50 ms); :func:`frost` is
  the same formula with the package's bundled photographs cached per process.

The package draws from NumPy's global RNG; :func:`corrupt` seeds it per call and restores the
previous global state, so corruptions are deterministic per (image, seed).
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Callable, Dict

import numpy as np

from ..core.errors import DataError

__all__ = ["CORRUPTIONS", "corrupt", "fog", "plasma_fractal"]

CORRUPTIONS = ("brightness", "frost", "snow", "fog")
_FOG = [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)]
_module = None


def _imagecorruptions():
    global _module
    if _module is not None:
        return _module
    stub_added = False
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        stub = types.ModuleType("pkg_resources")

        def resource_filename(package: str, name: str) -> str:
            mod = sys.modules[package]
            return os.path.join(os.path.dirname(mod.__file__), name)

        stub.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stub
        stub_added = True
    try:
        import warnings

        with warnings.catch_warnings():  # it imports the deprecated scipy.ndimage.interpolation namespace
            warnings.simplefilter("ignore", DeprecationWarning)
            _module = importlib.import_module("imagecorruptions.corruptions")
    except ImportError as e:
        raise DataError(f"corruptions need the 'imagecorruptions' package (pip install imagecorruptions): {e}") from e
    finally:
        if stub_added:
            sys.modules.pop("pkg_resources", None)
    return _module


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1], ``(mapsize, mapsize)``; mapsize a power of two."""
    assert mapsize & (mapsize - 1) == 0
    m = np.empty((mapsize, mapsize), dtype=np.float64)
    m[0, 0] = 0
    step = mapsize
    wibble = 100.0

    def wibbledmean(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        corner = m[0:mapsize:step, 0:mapsize:step]
        sq = corner + np.roll(corner, shift=-1, axis=0)
        sq += np.roll(sq, shift=-1, axis=1)
        m[step // 2:mapsize:step, step // 2:mapsize:step] = wibbledmean(sq)
        dr = m[step // 2:mapsize:step, step // 2:mapsize:step]
        ul = m[0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        m[0:mapsize:step, step // 2:mapsize:step] = wibbledmean(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        m[step // 2:mapsize:step, 0:mapsize:step] = wibbledmean(tt)
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """ImageNet-C fog on a uint8 ``(H, W, 3)`` image -> float in [0, 255]."""
    c = _FOG[severity - 1]
    h, w = x.shape[:2]
    size = 1 << (int(max(h, w)) - 1).bit_length()
    x = x.astype(np.float64) / 255.0
    max_val = x.max()
    x = x + c[0] * plasma_fractal(size, c[1], rng)[:h, :w][..., None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


_FROST = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
_frost_cache: Dict[int, np.ndarray] = {}
_frost_scaled: Dict[tuple, np.ndarray] = {}


def _frost_image(idx: int) -> np.ndarray:
    """The package's bundled frost photograph ``idx`` as RGB uint8 (cached per process)."""
    if idx not in _frost_cache:
        import importlib.util

        from PIL import Image

        spec = importlib.util.find_spec("imagecorruptions")
        if spec is None or not spec.submodule_search_locations:
            raise DataError("frost needs the frost photographs bundled with 'imagecorruptions' (pip install imagecorruptions)")
        path = os.path.join(list(spec.submodule_search_locations)[0], "frost", _FROST_FILES[idx])
        if not os.path.isfile(path):
            raise DataError(f"frost image missing: {path} (expected in the imagecorruptions package)")
        with Image.open(path) as im:
            _frost_cache[idx] = np.asarray(im.convert("RGB"))
    return _frost_cache[idx]


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """ImageNet-C frost (reference formula ``c0 * x + c1 * frost_crop``) with cached frost photos."""
    import cv2

    c = _FROST[severity - 1]
    idx = int(rng.integers(5))  # the reference draws from the first five photographs
    h, w = x.shape[:2]
    key = (idx, h, w)
    if key not in _frost_scaled:
        fr = _frost_image(idx)
        fh, fw = fr.shape[:2]
        scale = 1.0
        if fh < h or fw < w:
            scale = max(h / fh, w / fw)
        scale *= 1.1
        new = (int(np.ceil(fw * scale)), int(np.ceil(fh * scale)))
        _frost_scaled[key] = cv2.resize(fr, dsize=new, interpolation=cv2.INTER_CUBIC)
    frs = _frost_scaled[key]
    y0 = int(rng.integers(0, frs.shape[0] - h))
    x0 = int(rng.integers(0, frs.shape[1] - w))
    crop = frs[y0:y0 + h, x0:x0 + w].astype(np.float64)
    return np.clip(c[0] * x.astype(np.float64) + c[1] * crop, 0, 255)


def corrupt(image: np.ndarray, name: str, severity: int = 4, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1-5) to a uint8 ``(H, W, 3)`` image (H, W >= 32)."""
    if name not in CORRUPTIONS:
        raise DataError(f"unknown corruption '{name}' (valid: {', '.join(CORRUPTIONS)})")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"corrupt: expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 32:
        raise DataError(f"corrupt: ImageNet-C corruptions need images of at least 32x32, got {image.shape[:2]}")
    if not 1 <= int(severity) <= 5:
        raise DataError(f"corrupt: severity must be in 1..5, got {severity}")
    if name == "fog":
        out = fog(image, int(severity), np.random.default_rng(seed))
    elif name == "frost":
        out = frost(image, int(severity), np.random.default_rng(seed))
    else:
        mod = _imagecorruptions()
        fn: Callable = getattr(mod, name)
        state = np.random.get_state()
        try:
            np.random.seed(seed % (2**32))
            from PIL import Image

            out = fn(Image.fromarray(image), int(severity))
        finally:
            np.random.set_state(state)
    return np.clip(np.asarray(out), 0, 255).astype(np.uint8)


CORRUPTION_FUNCS: Dict[str, str] = {"brightness": "imagecorruptions", "snow": "imagecorruptions",
                                    "frost": "workbench port (bundled imagecorruptions photos)", "fog": "workbench port"}
