"""Dataset generation: parallel, deterministic, atomic and cached.

``generate(preset, profile, seed, out, workers)`` plans the preset's jobs
(:mod:`workbench.data.presets`), renders them in a process pool (one object instance with all its
views per task, longest jobs first, a ``tqdm`` progress bar over tasks) and writes the dataset of
DESIGN.md into a hidden temporary directory that is renamed into place only when ``meta.yaml``
and ``index.parquet`` are complete. An interrupted run leaves only ``.<name>.partial-*``, which is
never mistaken for a dataset and is cleaned up by the next run once its owner process is gone.

Start-up (the fixed cost that dominated small runs): on Linux the pool is ``fork``-based, so the
workers inherit the parent's imports (torch, roma, open3d, opencv, the ImageNet-C package) instead
of importing them again; the occluder bank is rendered lazily, item by item, inside the workers
(no serial pre-pass); the category cuboids are computed by the parent while the workers render;
each ray-casting scene is built once per object and reused by all its renders. Elsewhere (or with
``WB_DATA_START_METHOD=forkserver``) a preloaded ``forkserver`` is used. ``generation.json`` in the
dataset records the timings (wall, CPU of the jobs and of the parent, pool start, index writing).

Determinism: every random draw comes from a generator seeded by ``(preset, seed, job/view key)``,
rows are sorted by job and view, and PNG/parquet encoding is deterministic, so the same preset +
profile + seed (+ overrides) gives byte-identical ``index.parquet`` and images for any number of
workers.

Caching: the default output is ``data_dir()/<preset>-<profile>-s<seed>-g<GENERATOR_VERSION>[-<hash>]``
(``<hash>`` of the config overrides); an existing complete dataset there is returned as is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..core.config import resolve_profile
from ..core.errors import DataError
from ..core.io import atomic_dir, file_lock, write_text
from ..core.paths import data_dir
from .presets import Job, ViewSpec, plan, preset_config
from .schema import DatasetIndex, write_index

log = logging.getLogger(__name__)

__all__ = ["GENERATOR_VERSION", "generate", "default_output", "clean_partials", "render_job"]

GENERATOR_VERSION = "1.1"
DEPTH_SCALE = 1000.0  # depth PNG: uint16 value = z * DEPTH_SCALE (0 = empty)

# ----------------------------------------------------------------------------- worker state
_STATE: Dict[str, Any] = {}


def _init_worker(root: str, preset: str, cfg_dict: dict, bank, threads: int = 1) -> None:
    """Pool initializer: one thread per worker (torch and the ray caster), the job's config and the
    (lazy) occluder bank."""
    import torch

    torch.set_num_threads(threads)
    from . import shading
    from .presets import PRESETS

    shading.RAY_THREADS = threads
    shading._SCENE.clear()  # never reuse a ray-casting scene built by the parent before a fork
    cfg = PRESETS[preset].from_dict(cfg_dict)
    _STATE.update(root=Path(root), preset=preset, cfg=cfg, bank=bank)


_DIRS: set = set()


def _save_png(path: Path, arr: np.ndarray) -> None:
    """Write a uint8 (H, W[, 3]) RGB/grey or uint16 (H, W) array as PNG (fast, deterministic)."""
    parent = path.parent
    if parent not in _DIRS:
        parent.mkdir(parents=True, exist_ok=True)
        _DIRS.add(parent)
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv comes with imagecorruptions
        from PIL import Image

        Image.fromarray(arr).save(path, compress_level=1)
        return
    a = arr[..., ::-1] if arr.ndim == 3 else arr
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover
        raise DataError(f"could not encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _bbox(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _view_material_seed(job: Job, view: int) -> int:
    """Material seed of view ``view`` of a ``materials_per_view`` job (independent of the pose draws)."""
    return int(np.random.default_rng([job.material_seed, 7919, view]).integers(2**31 - 1))


def _crop_intrinsics(model, vs: ViewSpec, size: int, focal: float) -> Tuple[float, Tuple[float, float]]:
    """Focal/principal (pixels) such that the object's projected square box (+padding) fills the image."""
    from ..geometry.pose import pose_to_rt
    from .shading import project_keypoints

    R, T = pose_to_rt(vs.azimuth, vs.elevation, vs.theta, vs.distance)
    uv, _ = project_keypoints(model.verts, R.numpy(), T.numpy(), focal, (0.0, 0.0))
    lo, hi = uv[0].min(0), uv[0].max(0)
    side = float((hi - lo).max()) * (1 + 2 * (vs.crop_padding or 0.0))
    c = (lo + hi) / 2
    k = size / side
    return focal * k, (float(size / 2 - c[0] * k), float(size / 2 - c[1] * k))


def _keypoints(model, R, T, focal, pp, self_vis: np.ndarray, mask: np.ndarray,
               occluder: Optional[np.ndarray] = None):
    """Project keypoints; visible = not self-occluded (ray test), inside the image, within 1 px of
    the visible object mask, and not under an occluder."""
    from .shading import project_keypoints

    uv, z = project_keypoints(model.keypoints, R[None], T[None], focal, pp)
    uv, z = uv[0], z[0]
    H, W = mask.shape
    ix = np.floor(uv[:, 0]).astype(np.int64)
    iy = np.floor(uv[:, 1]).astype(np.int64)
    inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (z > 0)
    vis = np.zeros(len(z), bool)
    sel = np.flatnonzero(inside & self_vis)
    near = _dilate1(mask)
    ok = near[iy[sel], ix[sel]]
    if occluder is not None:
        ok &= ~occluder[iy[sel], ix[sel]]
    vis[sel] = ok
    return uv, vis


def _dilate1(m: np.ndarray) -> np.ndarray:
    """3x3 binary dilation."""
    p = np.pad(m, 1)
    out = np.zeros_like(m)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= p[dy:dy + m.shape[0], dx:dx + m.shape[1]]
    return out


def render_job(job: Job, root: Path, preset: str, cfg, bank) -> Tuple[List[dict], dict]:
    """Render one job (object instance + all its views) into ``root``.

    Returns its index rows and its ``objects.parquet`` record (3D keypoints, params, mesh path).
    """
    from ..geometry.mesh_io import save_ply
    from .corruptions import corrupt
    from .effects import composite, make_background, occlude
    from .shading import render_views, sample_light
    from .world import make_object

    rc = cfg.render
    S = rc.image_size
    model = make_object(job.category, job.params, job.material_seed)
    shape_rel = f"shapes/{job.category}/{job.instance}.ply"
    save_ply(root / shape_rel, model.verts, model.faces, vert_colors=model.vertex_colors() / 255.0,
             face_labels=model.face_part)
    focal0 = cfg.camera.focal_factor * S
    rngs = [np.random.default_rng([job.seed, v_i]) for v_i in range(len(job.views))]
    focals, pps, lights = [], [], []
    for vs, rng in zip(job.views, rngs):
        if vs.crop_padding is not None:
            f, pp = _crop_intrinsics(model, vs, S, focal0)
        else:
            f, pp = focal0, (vs.principal[0] * S, vs.principal[1] * S)
        focals.append(f)
        pps.append(pp)
        lights.append(sample_light(rng, rc.light_variation))
    A = np.array([v.azimuth for v in job.views])
    E = np.array([v.elevation for v in job.views])
    TH = np.array([v.theta for v in job.views])
    D = np.array([v.distance for v in job.views])
    rows: List[dict] = []
    # group views with equal focal to batch the ray casting (crops have per-view focal lengths)
    # (views with materials of their own are rendered one by one, with the shape's geometry)
    fresh = {i for i, vs in enumerate(job.views)
             if job.materials_per_view and (not job.materials_splits or vs.split in job.materials_splits)}
    groups: Dict[float, List[int]] = {}
    for i, f in enumerate(focals):
        if i not in fresh:
            groups.setdefault(round(f, 9), []).append(i)
    rendered: Dict[int, Dict[str, np.ndarray]] = {}
    if fresh:
        from .world import resample_materials

        for i in sorted(fresh):
            out = render_views(resample_materials(model, _view_material_seed(job, i)), A[i:i + 1], E[i:i + 1],
                               TH[i:i + 1], D[i:i + 1], focals[i], np.array([pps[i]]), S, rc.supersample,
                               [lights[i]], "shaded")
            rendered[i] = {key: val[0] for key, val in out.items()}
    for f, idx in groups.items():
        out = render_views(model, A[idx], E[idx], TH[idx], D[idx], focals[idx[0]], np.array([pps[i] for i in idx]),
                           S, rc.supersample, [lights[i] for i in idx], "shaded")
        for k, i in enumerate(idx):
            rendered[i] = {key: val[k] for key, val in out.items()}
    from .shading import keypoint_self_visibility

    self_vis = keypoint_self_visibility(model, np.stack([rendered[i]["R"] for i in range(len(job.views))]),
                                        np.stack([rendered[i]["T"] for i in range(len(job.views))]))
    need_cad = [i for i, v in enumerate(job.views) if any(kind == "style" for _, kind, _ in v.derived)]
    cad: Dict[int, Dict[str, np.ndarray]] = {}
    if need_cad:
        out = render_views(model, A[need_cad], E[need_cad], TH[need_cad], D[need_cad], focals[need_cad[0]],
                           np.array([pps[i] for i in need_cad]), S, rc.supersample, [lights[i] for i in need_cad], "cad")
        for k, i in enumerate(need_cad):
            cad[i] = {key: val[k] for key, val in out.items()}
    base = {"category": job.category, "instance": job.instance, "family": job.family, "variant": job.variant,
            "object_id": job.object_id, "shape": shape_rel, "shape_id": job.shape_id, "known": job.known,
            "width": S, "height": S}
    stem = f"{job.category}/{job.instance}"
    for i, (vs, rng) in enumerate(zip(job.views, rngs)):
        r = rendered[i]
        alpha, depth = r["alpha"], r["depth"]
        amodal = alpha >= 0.5
        bg = make_background(vs.background, S, S, rng, bank)
        img = composite(r["rgb"], alpha, bg)
        uv, vis = _keypoints(model, r["R"], r["T"], focals[i], pps[i], self_vis[i], amodal)
        name = f"{stem}_{vs.view:03d}.png"
        img_rel, mask_rel = f"images/{vs.split}/{name}", f"masks/{vs.split}/{name}"
        _save_png(root / img_rel, _u8(img))
        _save_png(root / mask_rel, (amodal * 255).astype(np.uint8))
        depth_rel = ""
        if rc.save_depth:
            depth_rel = f"depth/{vs.split}/{name}"
            dq = np.where(np.isfinite(depth), np.clip(depth * DEPTH_SCALE, 1, 65535), 0).astype(np.uint16)
            _save_png(root / depth_rel, dq)
        row = dict(base, image=img_rel, mask=mask_rel, amodal_mask=mask_rel, depth=depth_rel, split=vs.split,
                   view=vs.view, azimuth=vs.azimuth, elevation=vs.elevation, theta=vs.theta, distance=vs.distance,
                   focal=focals[i], px=pps[i][0], py=pps[i][1], bbox=_bbox(amodal),
                   keypoints_2d=uv.tolist(), keypoints_visible=vis.tolist(), background=vs.background,
                   style="shaded", light=json.dumps(lights[i].to_dict()))
        if i in fresh:
            row["material_seed"] = _view_material_seed(job, i)
        elif fresh:  # the shape's own materials
            row["material_seed"] = int(job.material_seed)
        rows.append(row)
        img_u8 = _u8(img)
        for split, kind, arg in vs.derived:
            drel = f"images/{split}/{name}"
            d = dict(row, split=split, image=drel)
            if kind == "occ":
                occ = occlude(img, amodal, int(arg), rng, bank)
                visible = amodal & ~occ.occluder_mask
                _save_png(root / drel, _u8(occ.image))
                vm_rel, om_rel = f"masks/{split}/{name}", f"occluders/{split}/{name}"
                _save_png(root / vm_rel, (visible * 255).astype(np.uint8))
                _save_png(root / om_rel, (occ.occluder_mask * 255).astype(np.uint8))
                uv2, vis2 = _keypoints(model, r["R"], r["T"], focals[i], pps[i], self_vis[i], visible,
                                       occ.occluder_mask)
                d.update(mask=vm_rel, occluder_mask=om_rel, occlusion_level=int(arg), occ_fg=occ.fg_fraction,
                         occ_bg=occ.bg_fraction, keypoints_visible=vis2.tolist())
            elif kind == "corrupt":
                sev = int(getattr(cfg, "severity", 4))
                _save_png(root / drel, corrupt(img_u8, str(arg), sev, seed=int(rng.integers(2**31))))
                d.update(corruption=str(arg), severity=sev)
            elif kind == "style":
                c = cad[i]
                _save_png(root / drel, _u8(composite(c["rgb"], c["alpha"], np.ones((S, S, 3), np.float32))))
                d.update(style=str(arg), background="white")
            elif kind == "background":
                bg2 = make_background(str(arg), S, S, rng, bank)
                _save_png(root / drel, _u8(composite(r["rgb"], alpha, bg2)))
                d.update(background=str(arg))
            else:  # pragma: no cover
                raise ValueError(kind)
            rows.append(d)
    if job.grey_renders:
        n = int(cfg.render_views)
        az = 2 * math.pi * np.arange(n) / n
        Sg = int(cfg.render_size)
        out = render_views(model, az, math.radians(cfg.render_elevation_deg), 0.0, cfg.render_distance,
                           cfg.camera.focal_factor * Sg, (Sg / 2, Sg / 2), Sg, rc.supersample, None, "grey")
        for v in range(n):
            g = out["rgb"][v][..., 0] + (1 - out["alpha"][v])
            _save_png(root / f"renders/{job.instance}/{v:03d}.png", _u8(g))
    obj = {"object_id": job.object_id, "category": job.category, "instance": job.instance, "family": job.family,
           "variant": job.variant, "known": job.known, "shape_id": job.shape_id, "mesh": shape_rel,
           "keypoints_3d": model.keypoints.astype(np.float64).tolist(),
           "extent": model.extent.astype(np.float64).tolist(), "params": json.dumps(job.params, sort_keys=True),
           "materials": json.dumps([m.to_dict() for m in model.materials]), "num_faces": int(model.faces.shape[0])}
    return rows, obj


#: start method of the generation pool: ``fork`` on Linux (the workers inherit this process's imports:
#: no re-import of torch/open3d per pool), ``forkserver`` elsewhere; ``WB_DATA_START_METHOD`` overrides.
_PRELOAD = ["workbench.data.generate", "workbench.data.shading", "workbench.data.effects",
            "workbench.data.corruptions", "workbench.data.procedural", "workbench.geometry.mesh_io"]


def _start_method() -> str:
    env = os.environ.get("WB_DATA_START_METHOD")
    methods = mp.get_all_start_methods()
    if env:
        if env not in methods:
            raise DataError(f"WB_DATA_START_METHOD={env!r} is not available here (valid: {', '.join(methods)})")
        return env
    if sys.platform.startswith("linux") and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"  # pragma: no cover - not Linux


def _mp_context():
    """The pool's context (see :func:`_start_method`).

    ``fork``: the rendering stack (torch, open3d, opencv, the ImageNet-C package) is imported here
    first, so the workers start warm; the parent never ray-casts during a pooled generation, and
    each worker sets one thread and drops any ray-casting scene it inherited. ``forkserver``: the
    server imports the stack once and forks clean workers; it is reused by later pools."""
    import importlib

    method = _start_method()
    ctx = mp.get_context(method)
    if method == "fork":
        for m in _PRELOAD:
            importlib.import_module(m)
        from ..render.raycast import _o3d

        _o3d()
    elif method == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _preload_corruptions(cfg) -> None:
    """Import the ImageNet-C package before forking when the preset corrupts images."""
    if getattr(cfg, "corruptions", None):
        from .corruptions import _imagecorruptions

        _imagecorruptions()


def _job_cost(job: Job) -> int:
    """Images a job writes (a proxy for its render time; the pool takes the longest jobs first)."""
    return len(job.views) * (1 + max((len(v.derived) for v in job.views), default=0)) + (12 if job.grey_renders else 0)


def _worker(job: Job) -> Tuple[int, Tuple[List[dict], dict], float]:
    c0 = time.process_time()
    res = render_job(job, _STATE["root"], _STATE["preset"], _STATE["cfg"], _STATE["bank"])
    return job.index, res, time.process_time() - c0


# ----------------------------------------------------------------------------- driver
# Preset fields added after generator 1.1 whose default value leaves the output unchanged: at that value
# they are left out of the config hash, so that datasets generated before they existed stay valid.
_NEUTRAL_DEFAULTS = {"materials_per_photo_splits": []}


def _config_hash(cfg) -> str:
    d = {k: v for k, v in cfg.to_dict().items() if not (k in _NEUTRAL_DEFAULTS and v == _NEUTRAL_DEFAULTS[k])}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def default_output(preset: str, profile: str, seed: int, overrides=None) -> Path:
    name = f"{preset}-{profile}-s{seed}-g{GENERATOR_VERSION}"
    if overrides:
        cfg = preset_config(preset, profile, overrides)
        name += f"-{_config_hash(cfg)}"
    return data_dir() / name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def clean_partials(out: Path) -> List[Path]:
    """Remove ``.<name>.partial-*`` directories left by dead generations of ``out``."""
    removed = []
    for p in out.parent.glob(f".{out.name}.partial-*"):
        owner = p / ".owner"
        pid = None
        try:
            pid = int(owner.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            # no owner file yet: only treat as stale if it is old
            if time.time() - p.stat().st_mtime < 600:
                continue
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _is_complete(out: Path, cfg_hash: str) -> bool:
    try:
        ds = DatasetIndex(out)
    except DataError:
        return False
    return ds.meta.get("generator_version") == GENERATOR_VERSION and ds.meta.get("config_hash") == cfg_hash


def _keypoint_meta(categories: Iterable[str]) -> Tuple[dict, dict, dict]:
    from .world import get_category

    kps, flips, parts = {}, {}, {}
    for c in categories:
        cat = get_category(c)
        kps[c] = list(cat.keypoint_names)
        flips[c] = [list(p) for p in cat.flip_pairs]
        parts[c] = list(cat.part_labels)
    return kps, flips, parts


def _cuboids(categories: Sequence[str], seed: int) -> Tuple[dict, dict]:
    """Per-category cuboids (see :func:`workbench.data.world.reference_cuboid`)."""
    from .world import reference_cuboid

    sizes, centres = {}, {}
    for c in categories:
        sizes[c], centres[c] = reference_cuboid(c)
    return sizes, centres


def generate(preset: str, profile: str = "quick", seed: int = 0, out: str | os.PathLike | None = None,
             workers: Optional[int] = None, overrides=None, force: bool = False, progress: bool = True) -> Path:
    """Generate (or reuse) a synthetic dataset and return its root.

    Args:
        preset: ``views`` | ``multiview`` | ``collection`` | ``retrieval``.
        profile: ``smoke`` | ``quick`` | ``full`` | ``auto``.
        seed: generation seed (same preset + profile + seed + overrides = identical dataset).
        out: output directory (default: :func:`default_output`, under ``$WB_DATA_DIR``).
        workers: processes (default: available CPUs, or this process for small datasets of < 400
            images; ``0`` or ``1`` renders in this process). Workers are forked (Linux) or come from
            a ``forkserver``; see the module docstring.
        overrides: config overrides, e.g. ``["render.image_size=128", "train_instances=4"]``.
        force: regenerate even if a complete dataset exists at ``out``.

    Concurrent calls for the same ``out`` (e.g. parallel workers of ``workbench run``) are serialised
    by a lock file next to it: the first generates, the others wait and reuse its result.
    """
    c_main = time.process_time()
    profile = resolve_profile(profile)
    cfg = preset_config(preset, profile, overrides)
    out = Path(out) if out is not None else default_output(preset, profile, seed, overrides)
    out = out.resolve()
    chash = _config_hash(cfg) + f"-s{seed}"

    def cached() -> bool:
        if out.exists() and not force:
            if _is_complete(out, chash):
                log.info("using cached dataset %s", out)
                return True
            raise DataError(f"{out} exists but is not a complete '{preset}' dataset for this config/seed "
                            f"(generator {GENERATOR_VERSION}); delete it or pass force=True")
        return False

    if cached():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # one generator per dataset across processes (parallel runs of `workbench run` may need the same
    # derived dataset): the others wait here, then reuse what the first one wrote
    with file_lock(out.parent / f".{out.name}.lock"):
        if cached():
            return out
        return _generate_into(preset, profile, seed, cfg, out, chash, workers, force, progress, c_main)


def _generate_into(preset: str, profile: str, seed: int, cfg, out: Path, chash: str, workers: Optional[int],
                   force: bool, progress: bool, c_main: float) -> Path:
    """:func:`generate`'s work once the dataset directory is known to need (re)generating."""
    from tqdm.auto import tqdm

    for p in clean_partials(out):
        log.warning("removed stale partial dataset %s", p)
    jobs, extra = plan(preset, cfg, seed)
    n_images = sum(_job_cost(j) for j in jobs)
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            workers = os.cpu_count() or 1
        if n_images < 400:  # starting worker processes costs more than it saves
            workers = 0
    workers = max(0, min(int(workers), len(jobs)))
    t0 = time.time()
    from .effects import OccluderBank

    cats_all = list(dict.fromkeys(list(extra["categories"]) + list(extra.get("unknown_categories", []))))
    # rendered lazily, item by item, by whichever process draws it (the same items everywhere)
    bank = OccluderBank(seed=seed, n=cfg.render.occluder_bank, size=max(64, cfg.render.image_size))
    method = "in-process"
    with atomic_dir(out, overwrite=force) as tmp:
        write_text(tmp / ".owner", f"{os.getpid()} {time.time():.0f}\n")
        results: Dict[int, Tuple[List[dict], dict]] = {}
        bar = tqdm(total=len(jobs), desc=f"generate {preset} ({profile})", unit="obj", disable=not progress)
        t_render = time.time()
        first: List[Tuple[float, int]] = []  # (time, rows) of the first finished job
        cpu = 0.0  # CPU seconds spent rendering jobs (all processes)
        t_pool = math.nan
        cpu_main_pool = 0.0  # CPU of this process while the workers render (overlaps them)
        if workers <= 1:
            import torch

            old_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in jobs:
                    c0 = time.process_time()
                    results[job.index] = render_job(job, tmp, preset, cfg, bank)
                    cpu += time.process_time() - c0
                    if not first:
                        first.append((time.time(), len(results[job.index][0])))
                    bar.update(1)
            finally:
                torch.set_num_threads(old_threads)
            cuboids = _cuboids(cats_all, seed)
        else:
            ctx = _mp_context()
            method = ctx.get_start_method()
            if method == "fork":
                _preload_corruptions(cfg)
            order = sorted(jobs, key=lambda j: (-_job_cost(j), j.index))  # longest first: balanced finish
            with ctx.Pool(workers, initializer=_init_worker,
                          initargs=(str(tmp), preset, cfg.to_dict(), bank, 1)) as pool:
                t_pool = time.time() - t_render
                c_pool = time.process_time()
                it = pool.imap_unordered(_worker, order, chunksize=1)
                cuboids = _cuboids(cats_all, seed)  # geometry only; overlaps the workers' first jobs
                for idx, res, c in it:
                    results[idx] = res
                    cpu += c
                    if not first:
                        first.append((time.time(), len(res[0])))
                    bar.update(1)
                cpu_main_pool = time.process_time() - c_pool
        bar.close()
        t_done = time.time()
        rows = [r for i in sorted(results) for r in results[i][0]]
        df = pd.DataFrame(rows)
        objects = pd.DataFrame([results[i][1] for i in sorted(results)])
        from ..core.io import atomic_path

        with atomic_path(tmp / "objects.parquet") as otmp:
            objects.to_parquet(otmp, index=False)
        meta = _meta(preset, profile, seed, cfg, chash, extra, df, jobs, cuboids)
        if preset == "retrieval":
            _write_shapes(tmp, jobs, cfg)
        write_index(tmp, meta, df)
        steady = ((len(df) - first[0][1]) / max(t_done - first[0][0], 1e-9)) if first and len(jobs) > 1 else math.nan
        from ..core.io import write_json

        t_end = time.time()
        write_json(tmp / "generation.json", {  # timings: not part of the deterministic content
            "images": int(len(df)), "objects": len(jobs), "workers": int(workers), "start_method": method,
            "seconds_total": round(t_end - t0, 3), "seconds_render": round(t_done - t_render, 3),
            "seconds_pool_start": round(t_pool, 3) if t_pool == t_pool else None,
            "seconds_index": round(t_end - t_done, 3),
            "images_per_s_total": round(len(df) / max(t_end - t0, 1e-9), 2),
            "images_per_s": round(len(df) / max(t_done - t_render, 1e-9), 2),
            "images_per_s_steady": round(steady, 2) if steady == steady else None,
            "cpu_seconds_jobs": round(cpu, 3), "images_per_cpu_s": round(len(df) / max(cpu, 1e-9), 2),
            "cpu_seconds_main": round(time.process_time() - c_main, 3),
            "cpu_seconds_main_during_pool": round(cpu_main_pool, 3),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None})
        (tmp / ".owner").unlink()
    dt = time.time() - t0
    log.info("generated %s: %d images in %.1f s (%.1f images/s) -> %s", preset, len(df), dt, len(df) / dt, out)
    return out


def _write_shapes(root: Path, jobs: List[Job], cfg) -> None:
    recs = [{"shape_id": j.shape_id, "variant": j.variant, "category": j.category, "instance": j.instance,
             "family": j.family, "mesh": f"shapes/{j.category}/{j.instance}.ply", "renders": f"renders/{j.instance}",
             "split": "fine" if j.variant == "fine" else "multi"} for j in jobs if j.grey_renders]
    from ..core.io import atomic_path

    with atomic_path(root / "shapes.parquet") as tmp:
        pd.DataFrame(recs).sort_values("shape_id").to_parquet(tmp, index=False)


def _meta(preset: str, profile: str, seed: int, cfg, chash: str, extra: dict, df: pd.DataFrame,
          jobs: List[Job], cuboids: Optional[Tuple[dict, dict]] = None) -> dict:
    S = cfg.render.image_size
    cats_all = list(dict.fromkeys(list(extra["categories"]) + list(extra.get("unknown_categories", []))))
    kps, flips, parts = _keypoint_meta(cats_all)
    sizes, centres = cuboids if cuboids is not None else _cuboids(cats_all, seed)
    counts = df["split"].value_counts().to_dict() if len(df) else {}
    meta = {
        "name": f"{preset}-{profile}-s{seed}",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "preset": preset,
        "profile": profile,
        "config_hash": chash,
        "config": cfg.to_dict(),
        "categories": list(extra["categories"]),
        "unknown_categories": list(extra.get("unknown_categories", [])),
        "families": list(extra.get("families", [])),
        "keypoint_names": kps,
        "flip_pairs": flips,
        "part_labels": parts,
        "cuboids": sizes,
        "cuboid_centers": centres,
        "image_size": [S, S],
        "camera": {"model": "pinhole", "focal_px": float(cfg.camera.focal_factor * S), "principal_px": [S / 2, S / 2],
                   "convention": "u = px - f X/Z, v = py - f Y/Z; X_view = X_world @ R + T; "
                                 "R, T = workbench.geometry.pose.pose_to_rt(azimuth, elevation, theta, distance)"},
        "splits": {s: int(counts.get(s, 0)) for s in extra["splits"]},
        "objects": len(jobs),
        "depth_scale": DEPTH_SCALE,
        "source": "synthetic (workbench.data world)",
        "licence": "CC0-1.0 (procedurally generated)",
    }
    if preset == "views":
        from .effects import OCCLUSION_LEVELS

        meta["occlusion_levels"] = {int(k): {"fg": [v[0], v[1]], "bg": v[2], "bg_tolerance": 0.1}
                                    for k, v in OCCLUSION_LEVELS.items()}
        meta["corruption_severity"] = int(cfg.severity)
    if preset == "retrieval":
        meta["renders"] = {"views": int(cfg.render_views), "elevation": math.radians(cfg.render_elevation_deg),
                           "distance": float(cfg.render_distance), "size": int(cfg.render_size),
                           "focal_px": float(cfg.camera.focal_factor * cfg.render_size), "style": "flat grey, white bg",
                           "azimuths": "2 pi k / views"}
        meta["shapes"] = int(sum(1 for j in jobs if j.grey_renders))
    if preset == "multiview":
        meta["views"] = int(cfg.views)
    return meta
