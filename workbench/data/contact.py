"""Contact sheets: a quick visual check of a dataset (one labelled row per split or category).

``contact_sheet(root)`` returns a ``PIL.Image``; rows show up to ``per_row`` images of each split
(``by="split"``) or each category (``by="category"``), optionally with visible keypoints (green) and
invisible ones (red) drawn, and the mask outline. For retrieval datasets the grey renders of a
few shapes are added. ``category_sheet()`` renders every named category of the world directly.
``write_contact_sheets(out_dir)`` writes ``categories.png`` and one ``<preset>-<profile>.png`` per
preset (generating the presets' datasets if needed); on the command line::

    workbench data contact-sheets [--out outputs/contact_sheets] [--profile smoke]
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .schema import DatasetIndex, read_image_file, read_mask_file

__all__ = ["contact_sheet", "category_sheet", "write_contact_sheets"]


def _tile(ds: DatasetIndex, i: int, size: int, keypoints: bool, outline: bool) -> np.ndarray:
    img = read_image_file(ds.path(ds.df.at[i, "image"]), "image")
    H, W = img.shape[:2]
    im = Image.fromarray(img).convert("RGB")
    if outline and ds.df.at[i, "mask"]:
        m = read_mask_file(ds.path(ds.df.at[i, "mask"]))
        if m.shape == (H, W):
            edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
            arr = np.asarray(im).copy()
            arr[edge] = (arr[edge] * 0.3 + np.array([0, 160, 255]) * 0.7).astype(np.uint8)
            im = Image.fromarray(arr)
    k = size / max(H, W)
    im = im.resize((max(1, int(W * k)), max(1, int(H * k))), Image.NEAREST if k >= 1 else Image.BILINEAR)
    if keypoints:
        kp, vis = ds.keypoints(i)
        d = ImageDraw.Draw(im)
        for (x, y), v in zip(kp, vis):
            x, y = x * k, y * k
            c = (40, 230, 40) if v else (230, 40, 40)
            r = max(1.5, size / 64)
            d.ellipse([x - r, y - r, x + r, y + r], fill=c if v else None, outline=c)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(im, (0, 0))
    return np.asarray(canvas)


def contact_sheet(root: str | os.PathLike | DatasetIndex, by: str = "split", per_row: int = 10, size: int = 96,
                  keypoints: bool = True, outline: bool = False, rows: Optional[Sequence[str]] = None,
                  seed: int = 0) -> Image.Image:
    """A labelled grid of images of the dataset at ``root`` (see the module docstring)."""
    ds = root if isinstance(root, DatasetIndex) else DatasetIndex(root)
    df = ds.df
    keys = list(rows) if rows is not None else list(dict.fromkeys(df[by].tolist()))
    rng = np.random.default_rng(seed)
    label_w = 150
    lines: List[np.ndarray] = []
    labels: List[str] = []
    for key in keys:
        sub = df.index[df[by] == key].to_numpy()
        if sub.size == 0:
            continue
        pick = sub if sub.size <= per_row else np.sort(rng.choice(sub, per_row, replace=False))
        tiles = [_tile(ds, int(i), size, keypoints, outline) for i in pick]
        tiles += [np.full((size, size, 3), 255, np.uint8)] * (per_row - len(tiles))
        lines.append(np.concatenate(tiles, 1))
        labels.append(f"{key} ({sub.size})")
    renders_dir = ds.root / "renders"
    if renders_dir.is_dir():
        for inst in sorted(p.name for p in renders_dir.iterdir())[:3]:
            files = sorted((renders_dir / inst).glob("*.png"))[:per_row]
            tiles = []
            for f in files:
                g = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
                tiles.append(np.asarray(g))
            tiles += [np.full((size, size, 3), 255, np.uint8)] * (per_row - len(tiles))
            lines.append(np.concatenate(tiles, 1))
            labels.append(f"renders {inst}")
    if not lines:
        return Image.new("RGB", (label_w + per_row * size, size), (255, 255, 255))
    grid = np.concatenate(lines, 0)
    sheet = Image.new("RGB", (label_w + grid.shape[1], grid.shape[0] + 20), (255, 255, 255))
    sheet.paste(Image.fromarray(grid), (label_w, 20))
    d = ImageDraw.Draw(sheet)
    d.text((4, 4), f"{ds.name}  ({len(df)} images)", fill=(0, 0, 0))
    for r, lab in enumerate(labels):
        d.text((4, 20 + r * size + size // 2 - 6), lab[:24], fill=(0, 0, 0))
    return sheet


def category_sheet(categories: Optional[Sequence[str]] = None, per_row: int = 8, size: int = 96, seed: int = 0,
                   background: str = "white") -> Image.Image:
    """Render ``per_row`` random instances of each category (named ones by default)."""
    from .effects import composite, make_background
    from .shading import render_views, sample_light
    from .world import NAMED_CATEGORIES, make_object, sample_params, stable_seed

    cats = list(categories or NAMED_CATEGORIES)
    label_w = 90
    sheet = Image.new("RGB", (label_w + per_row * size, len(cats) * size), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for r, c in enumerate(cats):
        for k in range(per_row):
            rng = np.random.default_rng(stable_seed("sheet", seed, c, k))
            m = make_object(c, sample_params(c, rng), int(rng.integers(2**31)))
            a = rng.uniform(0, 2 * np.pi)
            out = render_views(m, [a], [np.radians(rng.uniform(5, 35))], [0.0], [3.2], 2.2 * size, (size / 2, size / 2),
                               size, 2, [sample_light(rng, 0.5)])
            img = composite(out["rgb"][0], out["alpha"][0], make_background(background, size, size, rng))
            sheet.paste(Image.fromarray((img * 255).astype(np.uint8)), (label_w + k * size, r * size))
        d.text((4, r * size + size // 2 - 6), c[:14], fill=(0, 0, 0))
    return sheet


def write_contact_sheets(out_dir: str | os.PathLike | None = None, profile: str = "smoke", seed: int = 0,
                         presets: Optional[Sequence[str]] = None, overrides: Optional[dict] = None,
                         categories: bool = True) -> List[str]:
    """Write ``categories.png`` (every named category) and ``<preset>-<profile>.png`` for each preset
    (rows by split, plus ``<preset>-<profile>-categories.png`` rows by category) into ``out_dir``
    (default ``<outputs>/contact_sheets``). Returns the written paths. ``overrides``: per-preset
    config overrides, e.g. ``{"retrieval": ["materials_per_photo=true"]}``."""
    from pathlib import Path

    from ..core.paths import outputs_dir
    from .generate import generate
    from .presets import PRESETS

    out = Path(out_dir) if out_dir is not None else outputs_dir() / "contact_sheets"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if categories:
        path = out / "categories.png"
        category_sheet(seed=seed).save(path)
        written.append(str(path))
    for preset in presets or list(PRESETS):
        ov = (overrides or {}).get(preset)
        root = generate(preset, profile, seed=seed, overrides=ov, progress=False)
        tag = f"{preset}-{profile}" + ("-" + "-".join(o.split("=")[0] for o in ov) if ov else "")
        for by, suffix in (("split", ""), ("category", "-categories")):
            path = out / f"{tag}{suffix}.png"
            contact_sheet(root, by=by, per_row=10, size=80, outline=by == "category", seed=seed).save(path)
            written.append(str(path))
    return written

