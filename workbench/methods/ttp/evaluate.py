"""Evaluation of a trained TTP run: 2D mask IoU, keypoint PCK, 3D voxel IoU, per-iteration rows.

Metrics (``eval.json``; everything per solver iteration ``k`` in ``cfg.eval.iterations`` under
``iterations.<k>``, the final ``k`` also at the top level):

* ``miou``: the official **soft** IoU of the rendered silhouette against the mask (CMR protocol,
  ``workbench.eval.metrics.mask_iou``); ``miou_hard``: the silhouette thresholded at 0.5.
* ``pck@a``: keypoint *reprojection* PCK (official): the template's keypoint vertices of the
  deformed mesh projected by the solved camera vs the annotations, threshold ``a`` x the larger
  bounding-box side; ``pck_regress@a``: the raw regressed points at those vertices.
* ``transfer_pck@a``: keypoint *transfer* between image pairs (CSM protocol): a source keypoint
  is mapped to the template vertex whose regressed point is nearest to it (among those predicted
  visible), then to that vertex's reprojection in the target image; pairs where it is visible
  in both. ``transfer_regress_pck@a`` uses the target's regressed point instead.
* ``iou3d``: voxel IoU (``voxel_res``^3) between the reconstruction and the ground-truth mesh, both
  in the canonical orientation, centred and scaled to a largest side of 1 (the world's canonical
  normalisation); solid occupancy by ray parity per closed part (the ground-truth meshes are unions
  of watertight primitives). ``chamfer3d``: symmetric mean nearest-neighbour distance between
  3000 area-weighted surface samples of the two normalised meshes (lower is better; unlike the
  voxel IoU it is not dominated by volume, which matters for thin parts such as wings and legs).
  ``iou3d_template`` / ``chamfer3d_template``: the same for the undeformed template.
* ``pose``: rotation error against the ground truth (Acc@pi/6, Acc@pi/18, median degrees).
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from ...core.errors import CheckpointError, DataError
from ...core.io import write_json
from ...eval.metrics import mask_iou, pck
from ...geometry import chamfer_l1_x10
from ...geometry.pose import pose_summary, rotation_error
from .config import TTPConfig
from .data import TTPDataset, dataset_root
from .losses import resolve_texture_kind
from .model import TTPModel, TTPOutput
from .rendering import render_silhouette
from .train import build_model, load_template, threads

log = logging.getLogger(__name__)

__all__ = ["evaluate", "evaluate_model", "load_eval_dataset", "load_trained", "predict", "voxelize",
           "voxel_iou_meshes", "chamfer_meshes", "surface_samples", "gt_rotation_ttp",
           "transfer_keypoints"]

# TTP's camera frame (x right, y down, z forward) vs pytorch3d's view frame (+X left, +Y up, +Z in)
_RZ_PI = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))


def gt_rotation_ttp(R_row: torch.Tensor) -> torch.Tensor:
    """Ground-truth pytorch3d rotations (row convention) -> TTP's column-convention rotations."""
    return _RZ_PI.to(R_row) @ R_row.transpose(-1, -2)


def load_trained(cfg: TTPConfig, run_dir: str | Path, template=None) -> TTPModel:
    """The model of a trained run (weights from ``run_dir/checkpoint.pt``)."""
    from ...train import load_model_weights

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (train the run first)")
    model = build_model(cfg, template)
    load_model_weights(model, path)
    model.eval()
    return model


@torch.no_grad()
def predict(model: TTPModel, ds: TTPDataset, batch_size: int = 32, iterations: int | None = None,
            device: torch.device | str = "cpu") -> list[TTPOutput]:
    """Run the model over a dataset (in order); returns per-batch outputs (on the CPU)."""
    from torch.utils.data import DataLoader

    model = model.to(device).eval()
    outs = []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False):
        out = model(batch["image"].to(device), iterations=iterations, rigid=model.rigid)
        outs.append(_detach(out))
    return outs


def _detach(out: TTPOutput) -> TTPOutput:
    from dataclasses import replace

    from .solver import SolverIterate

    def d(x):
        return x.detach().cpu() if isinstance(x, torch.Tensor) else x

    hist = [SolverIterate(**{k: d(getattr(h, k)) for k in ("R", "t", "coeffs", "verts", "pose_energy",
                                                             "energy")}, lm_iterations=h.lm_iterations)
            for h in out.history]
    return replace(out, **{k: d(getattr(out, k)) for k in ("u", "vis", "weights", "scale", "centre", "R",
                                                            "t", "rotvec", "coeffs", "verts", "proj",
                                                            "depth")}, history=hist)


def _cat(outs: list[TTPOutput], k: int | None) -> TTPOutput:
    parts = [o.at_iteration(k) if k is not None else o for o in outs]
    fields = ("u", "vis", "weights", "scale", "centre", "R", "t", "rotvec", "coeffs", "verts", "proj", "depth")
    return TTPOutput(**{f: torch.cat([getattr(p, f) for p in parts]) for f in fields}, history=[])


# ----------------------------------------------------------------------------------- 3D IoU
def _normalise_unit(verts: np.ndarray) -> np.ndarray:
    lo, hi = verts.min(0), verts.max(0)
    return (verts - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-9)


def voxelize(verts: np.ndarray, faces: np.ndarray, res: int = 32, normalise: bool = True,
             per_component: bool = True) -> np.ndarray:
    """Solid occupancy (res, res, res) bool of a mesh in the cube [-0.5, 0.5]^3 (voxel centres).

    Ray parity (open3d, 3 rays, majority vote) per connected component, OR-ed (robust for unions
    of intersecting closed parts, see :mod:`.occupancy`); ``normalise`` first centres the mesh and
    scales its largest side to 1.
    """
    from .occupancy import grid_points, occupancy

    v = _normalise_unit(np.asarray(verts, np.float64)) if normalise else np.asarray(verts, np.float64)
    return occupancy(v, faces, grid_points(res, 0.5), per_component=per_component).reshape(res, res, res)


def _voxel_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def voxel_iou_meshes(pred: tuple[np.ndarray, np.ndarray], gt: tuple[np.ndarray, np.ndarray],
                     res: int = 32) -> float:
    """Voxel IoU of two meshes ``(verts, faces)`` after the unit normalisation of each."""
    return _voxel_iou(voxelize(*pred, res=res, per_component=False), voxelize(*gt, res=res, per_component=True))


def surface_samples(verts: np.ndarray, faces: np.ndarray, n: int = 3000, seed: int = 0) -> np.ndarray:
    """(n, 3) area-weighted uniform samples of a mesh surface (fixed seed)."""
    rng = np.random.default_rng(seed)
    v = np.asarray(verts, np.float64)
    f = np.asarray(faces, np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    idx = rng.choice(len(f), n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    return (1 - r1)[:, None] * a[idx] + (r1 * (1 - r2))[:, None] * b[idx] + (r1 * r2)[:, None] * c[idx]


def _chamfer_samples(mesh: tuple[np.ndarray, np.ndarray], n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(surface_samples(_normalise_unit(mesh[0]), mesh[1], n, seed))


def _chamfer(p: torch.Tensor, q: torch.Tensor) -> float:
    """Half the sum of both directions' mean nearest-neighbour distances between (n, 3) point sets
    (:func:`workbench.geometry.chamfer_l1_x10` without its x10; exact nearest neighbours by k-d tree)."""
    return float(chamfer_l1_x10(p[None].double(), q[None].double())[0]) / 10.0


def chamfer_meshes(pred: tuple[np.ndarray, np.ndarray], gt: tuple[np.ndarray, np.ndarray], n: int = 3000) -> float:
    """Symmetric mean nearest-neighbour distance between surface samples of the two unit-normalised
    meshes (half the sum of both directions)."""
    return _chamfer(_chamfer_samples(pred, n, 0), _chamfer_samples(gt, n, 1))


# ----------------------------------------------------------------------------------- transfer
def transfer_keypoints(src_u: torch.Tensor, src_vis: torch.Tensor, src_kp: torch.Tensor,
                       tgt_points: torch.Tensor, vis_threshold: float = 0.5) -> torch.Tensor:
    """Map source keypoints (P, K, 2) to target positions via the nearest visible template vertex.

    src_u (P, N, 2), src_vis (P, N): the source's regressed points and visibility;
    tgt_points (P, N, 2): where every vertex lands in the target (reprojection or regression).
    """
    d = torch.cdist(src_kp, src_u)                                           # (P, K, N)
    hidden = (src_vis < vis_threshold)[:, None, :]
    all_hidden = hidden.all(-1, keepdim=True)
    d = torch.where(hidden & ~all_hidden, torch.full_like(d, float("inf")), d)
    idx = d.argmin(-1)                                                       # (P, K)
    return torch.gather(tgt_points, 1, idx[..., None].expand(-1, -1, 2))


# ----------------------------------------------------------------------------------- evaluate
def _metrics_at(out: TTPOutput, ds: TTPDataset, model: TTPModel, cfg: TTPConfig) -> dict:
    S = cfg.render.size
    m = {}
    sils = []
    for sl in torch.arange(len(ds)).split(cfg.eval.batch_size):
        sils.append(render_silhouette(out.proj[sl], out.depth[sl], model.faces.cpu(), S, cfg.render.sigma_px,
                                      cfg.render.faces_per_pixel))
    sil = torch.cat(sils)
    gt = ds.masks.float() / 255.0
    if gt.shape[-1] != S:
        gt = torch.nn.functional.interpolate(gt, size=(S, S), mode="area")
    m["miou"] = float(mask_iou(sil, gt).mean())
    m["miou_hard"] = float(mask_iou(sil, gt, threshold=0.5).mean())
    ids = model.shape.keypoint_ids.cpu()
    if ids.numel() and ds.keypoints_visible.any() and ids.numel() == ds.keypoints.shape[1]:
        for a in cfg.eval.pck_alphas:
            m[f"pck@{a:g}"] = pck(out.proj[:, ids], ds.keypoints, ds.keypoints_visible, alpha=a,
                                  scale=ds.bbox_size)
            m[f"pck_regress@{a:g}"] = pck(out.u[:, ids], ds.keypoints, ds.keypoints_visible, alpha=a,
                                          scale=ds.bbox_size)
    Rgt = gt_rotation_ttp(ds.R)
    m["pose"] = pose_summary(rotation_error(out.R.double(), Rgt.double()))
    return m


def _transfer(out: TTPOutput, ds: TTPDataset, cfg: TTPConfig) -> dict:
    P = cfg.eval.transfer_pairs
    n = len(ds)
    if P <= 0 or n < 2 or not ds.keypoints_visible.any():
        return {}
    g = torch.Generator().manual_seed(cfg.seed + 7)
    src = torch.randint(0, n, (P,), generator=g)
    tgt = (src + torch.randint(1, n, (P,), generator=g)) % n
    kp_s, kp_t = ds.keypoints[src], ds.keypoints[tgt]
    vis = ds.keypoints_visible[src] & ds.keypoints_visible[tgt]
    if not vis.any():
        return {}
    res = {}
    for name, pts in (("transfer", out.proj), ("transfer_regress", out.u)):
        pred = transfer_keypoints(out.u[src], out.vis[src], kp_s, pts[tgt])
        for a in cfg.eval.pck_alphas:
            res[f"{name}_pck@{a:g}"] = pck(pred, kp_t, vis, alpha=a, scale=ds.bbox_size[tgt])
    return res


def _iou3d(out: TTPOutput, ds: TTPDataset, model: TTPModel, cfg: TTPConfig) -> dict:
    from ...geometry import load_ply

    n = min(len(ds), cfg.eval.voxel_max_images) if cfg.eval.voxel_max_images else len(ds)
    if n == 0:
        return {}
    faces = model.faces.cpu().numpy()
    res = cfg.eval.voxel_res
    vals, vals_t, ch, ch_t = [], [], [], []
    T = (model.shape.template.cpu().numpy(), faces)
    # the template's voxels and samples are computed once, each ground-truth mesh's once per
    # instance (the test views share instances); the values are those of voxel_iou_meshes /
    # chamfer_meshes per image
    t_vox, t_pts = voxelize(*T, res=res, per_component=False), _chamfer_samples(T, 3000, 0)
    gt_cache: dict[str, tuple[np.ndarray, torch.Tensor]] = {}
    for k in range(n):
        try:
            path = ds.mesh_path(k)
            if str(path) not in gt_cache:
                gv, gf = load_ply(path)
                gt = (gv.numpy(), gf.numpy())
                gt_cache[str(path)] = (voxelize(*gt, res=res, per_component=True), _chamfer_samples(gt, 3000, 1))
        except DataError:
            return {}
        g_vox, g_pts = gt_cache[str(path)]
        pred = (out.verts[k].numpy(), faces)
        vals.append(_voxel_iou(voxelize(*pred, res=res, per_component=False), g_vox))
        vals_t.append(_voxel_iou(t_vox, g_vox))
        ch.append(_chamfer(_chamfer_samples(pred, 3000, 0), g_pts))
        ch_t.append(_chamfer(t_pts, g_pts))
    return {"iou3d": float(np.mean(vals)), "iou3d_template": float(np.mean(vals_t)),
            "chamfer3d": float(np.mean(ch)), "chamfer3d_template": float(np.mean(ch_t)), "iou3d_n": n}


def evaluate_model(model: TTPModel, cfg: TTPConfig, ds: TTPDataset) -> dict:
    """All metrics of ``model`` on ``ds`` (see the module docstring); nothing is written."""
    iters = sorted(set(cfg.eval.iterations) | {cfg.model.solver_iterations})
    outs = predict(model, ds, cfg.eval.batch_size, iterations=max(iters))
    result: dict = {"profile": cfg.profile, "category": ds.category, "split": ds.split, "n_images": len(ds),
                    "num_basis": model.shape.num_basis, "rigid": bool(model.rigid),
                    "keypoint_supervision": cfg.loss.keypoint > 0, "gamma": float(model.gamma.detach()),
                    "texture_loss": resolve_texture_kind(cfg.loss.texture_kind) if cfg.loss.texture > 0 else "none"}
    per_iter = {}
    final = None
    prev = None
    for k in iters:
        out_k = _cat(outs, k)
        if prev is not None and all(torch.equal(getattr(out_k, f), getattr(prev[0], f))
                                    for f in ("R", "t", "verts", "proj", "depth")):
            # the same reconstruction as the previous row (a rigid solve repeats its one round)
            per_iter[str(k)] = copy.deepcopy(prev[1])
        else:
            per_iter[str(k)] = _metrics_at(out_k, ds, model, cfg)
        prev = (out_k, per_iter[str(k)])
        if k == cfg.model.solver_iterations:
            final = out_k
    result["iterations"] = per_iter
    result.update(per_iter[str(cfg.model.solver_iterations)])
    result.update(_transfer(final, ds, cfg))
    result.update(_iou3d(final, ds, model, cfg))
    result["reprojection_rmse"] = float((final.u - final.proj).pow(2).sum(-1).mean().sqrt())
    return result


def load_eval_dataset(cfg: TTPConfig) -> TTPDataset:
    """The evaluation split of ``cfg`` (``eval.split``, ``data.variant``, capped at ``eval.max_images``)."""
    return TTPDataset(dataset_root(cfg.data), cfg.eval.split, cfg.data.variant, cfg.data.image_size,
                      cfg.eval.max_images)


def evaluate(cfg: TTPConfig, run_dir: str | Path, write: bool = True) -> dict:
    """Evaluate the run in ``run_dir`` on ``cfg.eval.split``; writes ``eval.json`` atomically."""
    run_dir = Path(run_dir)
    with threads(cfg.train.num_threads):
        ds = load_eval_dataset(cfg)
        template = load_template(cfg, ds.category or cfg.data.category)
        model = load_trained(cfg, run_dir, template)
        result = evaluate_model(model, cfg, ds)
        if write and cfg.eval.figures:
            write_run_figures(model, cfg, ds, run_dir)
    if write:
        write_json(run_dir / "eval.json", result)
    return result


def write_run_figures(model: TTPModel, cfg: TTPConfig, ds: TTPDataset, run_dir: str | Path, n: int = 6) -> list[Path]:
    """``figures/correspondences.png`` and ``.pdf`` (:func:`.viz.correspondence_grid`) of the first ``n``
    images of ``ds``; a failure (e.g. no figure exporter) is logged, not raised."""
    try:
        from ...viz import export
        from .viz import correspondence_grid

        n = min(n, len(ds))
        images = torch.stack([ds[i]["image"] for i in range(n)])
        with torch.no_grad():
            out = _detach(model.eval()(images.to(next(model.parameters()).device),
                                       iterations=cfg.model.solver_iterations, rigid=model.rigid))
        fig = correspondence_grid(images, out, n=n)
        return list(export(fig, Path(run_dir) / "figures" / "correspondences", formats=("png", "pdf")))
    except Exception as e:  # noqa: BLE001 -- figures are optional, metrics are not
        log.warning("ttp: could not write figures for %s: %s", run_dir, e)
        return []
