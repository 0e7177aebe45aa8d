"""Evaluation of a trained UNICORN run on the ``collection`` test split(s), per category.

Protocol (``shared/reference/unicorn.md`` section 4, adapted to object-centred crops):

* The reconstruction is put in the predicted camera's view frame (``v R + T`` with the most likely
  candidate) and mapped to the ground-truth canonical frame by the GT rotation (``v_view R_gt^T``),
  as in the official ``(v R + T - T_gt) R_gt^T``. Because the crops change the intrinsics, the
  predicted and GT translations/scales are not comparable, so both point sets are then centred
  and scaled to a unit largest bounding-box side (the world's canonical normalisation, and the
  official ICP pre-normalisation). ``n_points`` points are sampled on each surface
  (``workbench.geometry.sample_points_from_meshes``; Chamfer and ICP are ``workbench.geometry``'s too).
* ``chamfer_l1``: Chamfer-L1 x 10 (OccNet/DVR convention, Euclidean distances) without ICP;
  ``chamfer_l1_icp``: after rigid point-to-point ICP (Besl-McKay, the paper's variant).
* ``template_*``: the same numbers for the undeformed, unscaled ellipsoid template seen with the same
  predicted pose (the baseline the learned shapes must beat).
* ``mask_iou``: the hard visualisation render (sigma 0) thresholded at 0.5 vs the GT mask.
* ``pose``: geodesic error of the chosen candidate's rotation vs the GT (``pose_raw``, meaningful only
  if the learned canonical frame matches the world's) and after the best global frame offset
  ``Q`` (``pose_aligned``: ``Q R_pred`` vs ``R_gt``, Q chosen among the per-image offsets and their
  chordal mean to minimise the median error; an unsupervised model's frame is arbitrary).
* ``mse``/``psnr``: reconstruction of the input image by the layered render.
* ``colour_l1``: does the reconstruction take the input's colours? Per image, on the pixels covered by
  both the object (GT mask) and the reconstruction (its hard silhouette), the mean absolute difference
  (over RGB, in [0, 1]) between the mean colour of the input and that of the render;
  ``colour_l1_mean_baseline`` is the same for a constant prediction, the mean colour of those pixels
  over the evaluated images (a model that ignores the input's colours scores about this);
  ``colour_corr``: Pearson correlation across images of the two mean colours, averaged over RGB
  (brightness dominates it); ``chroma_corr``: the same for the chroma, each mean colour minus its grey
  level (``c - mean_RGB(c)``): does the render take the input's hue (blue car -> blue)? 0 for renders
  whose hue ignores the input.
  ``silhouette_overshoot``: the fraction of the silhouette outside the GT mask (where the texture
  learns to paint the background colour while the shape does not fit).

``eval.json`` holds one dict per category, their mean under ``mean``, the flat headline numbers at
the top level, ``perceptual_kind`` and ``n_images``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...core.errors import CheckpointError
from ...core.io import write_json
from ...eval.metrics import mask_iou
from ...geometry.mesh import load_ply
from ...geometry.pose import pose_summary, rotation_error
from .config import UnicornConfig
from .data import UnicornDataset, dataset_roots
from .model import UnicornModel, ellipsoid_template
from .shape_metrics import chamfer_scores, normalize_unit_cube, surface_points
from .train import build_model, threads

log = logging.getLogger(__name__)

__all__ = ["evaluate", "load_trained", "predict", "shape_scores", "frame_offset", "test_dataset"]

HEADLINE = ("chamfer_l1", "chamfer_l1_icp", "template_chamfer_l1", "template_chamfer_l1_icp", "mask_iou",
            "mse", "psnr", "colour_l1", "colour_l1_mean_baseline", "colour_corr", "chroma_corr",
            "silhouette_overshoot")


def load_trained(cfg: UnicornConfig, run_dir: str | Path) -> UnicornModel:
    """The model of a trained run (weights from ``run_dir/checkpoint.pt``), in eval mode."""
    from ...train import load_model_weights

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (train the run first)")
    model = build_model(cfg)
    load_model_weights(model, path)
    return model.eval()


def test_dataset(cfg: UnicornConfig) -> UnicornDataset:
    return UnicornDataset(dataset_roots(cfg.data), cfg.eval.split, cfg.data.variant, cfg.data.image_size,
                          cfg.eval.max_images)


@torch.no_grad()
def predict(model: UnicornModel, images: torch.Tensor, batch_size: int = 32, device="cpu") -> dict:
    """Run the model over ``images (N, 3, S, S)`` -> dict of CPU tensors.

    ``verts (N, V, 3)``, ``R (N, 3, 3)``, ``T (N, 3)`` (chosen candidate), ``proba (N, K)``,
    ``angles (N, K, 3)``, ``rgb (N, 3, S, S)`` (training renderer), ``alpha_hard (N, 1, S, S)``.
    """
    model = model.to(device).eval()
    keys = ("verts", "R", "T", "proba", "angles", "rgb", "alpha_hard", "scale")
    acc: dict[str, list] = {k: [] for k in keys}
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size].to(device)
        rgb, _, out = model.reconstruct(x)
        R, T = out.best_rt()
        _, alpha_h = model.render(out.verts, out.texture, R, T, out.background, sigma=0.0)
        for k, v in (("verts", out.verts), ("R", R), ("T", T), ("proba", out.proba), ("angles", out.angles),
                     ("rgb", rgb), ("alpha_hard", alpha_h), ("scale", out.scale)):
            acc[k].append(v.cpu())
    return {k: torch.cat(v) for k, v in acc.items()}


def shape_scores(verts: torch.Tensor, faces: torch.Tensor, R: torch.Tensor, R_gt: torch.Tensor,
                 gt_points: torch.Tensor, n_points: int, icp_iters: int, generator: torch.Generator,
                 batch_size: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chamfer_l1 (N,), chamfer_l1_icp (N,))`` of N object-frame meshes ``verts (N, V, 3)`` seen with
    rotations ``R (N, 3, 3)``, mapped to the GT canonical frame by ``R_gt (N, 3, 3)``, against GT points
    ``(N, Q, 3)`` (canonical frame, already unit-normalised); see the module docstring."""
    cd, cd_icp = [], []
    for s in range(0, verts.shape[0], batch_size):
        sl = slice(s, s + batch_size)
        pts = normalize_unit_cube(surface_points(verts[sl] @ R[sl] @ R_gt[sl].transpose(1, 2), faces, n_points,
                                                 generator))
        a, b = chamfer_scores(pts, gt_points[sl], icp_iters)
        cd.append(a)
        cd_icp.append(b)
    return torch.cat(cd), torch.cat(cd_icp)


def frame_offset(R_pred: torch.Tensor, R_gt: torch.Tensor, max_candidates: int = 200) -> torch.Tensor:
    """Global rotation ``Q`` minimising the median geodesic error of ``Q R_pred`` vs ``R_gt`` among
    the per-image offsets ``R_gt R_pred^T`` and their chordal mean."""
    Qs = R_gt.double() @ R_pred.double().transpose(1, 2)
    U, _, Vt = torch.linalg.svd(Qs.mean(0))
    d = torch.sign(torch.det(U @ Vt))
    mean = U @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64)) @ Vt
    cands = torch.cat([mean[None], Qs[:max_candidates]])
    best, best_err = cands[0], float("inf")
    for Q in cands:
        err = float(rotation_error(Q[None] @ R_pred.double(), R_gt.double()).median())
        if err < best_err:
            best, best_err = Q, err
    return best.to(R_pred.dtype)


def object_colours(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean colour ``(N, 3)`` of the pixels of ``images (N, 3, H, W)`` where ``masks (N, 1 | -, H, W) > 0.5``
    (the whole image's mean where a mask is empty)."""
    m = (masks.reshape(masks.shape[0], 1, *images.shape[-2:]) > 0.5).to(images.dtype)
    n = m.flatten(1).sum(1, keepdim=True)
    fg = (images * m).flatten(2).sum(2) / n.clamp_min(1.0)
    return torch.where(n > 0, fg, images.flatten(2).mean(2))


def colour_errors(rgb: torch.Tensor, alpha: torch.Tensor, images: torch.Tensor, gt_masks: torch.Tensor
                  ) -> dict[str, np.ndarray]:
    """Per image ``colour_l1``, ``colour_l1_mean_baseline`` and ``silhouette_overshoot`` ``(N,)`` and the
    scalars ``colour_corr`` and ``chroma_corr`` (see the module docstring) of renders ``rgb (N, 3, H, W)`` with hard
    silhouettes ``alpha (N, 1, H, W)`` against ``images`` and their GT masks ``(N, [1,] H, W)``."""
    gt = gt_masks.reshape(alpha.shape) > 0.5
    sil = alpha > 0.5
    both = (gt & sil).to(images.dtype)
    target, pred = object_colours(images, both), object_colours(rgb, both)
    base = target.mean(0, keepdim=True)
    over = (sil & ~gt).flatten(1).sum(1) / sil.flatten(1).sum(1).clamp_min(1)
    return {"colour_l1": (pred - target).abs().mean(1).numpy(),
            "colour_l1_mean_baseline": (base - target).abs().mean(1).numpy(),
            "silhouette_overshoot": over.numpy(), **colour_correlations(pred, target),
            "pred_colour": pred, "target_colour": target}


def chroma(colours: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` colours minus their grey level (the mean over RGB): the hue and saturation part."""
    return colours - colours.mean(1, keepdim=True)


def colour_correlations(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``colour_corr`` and ``chroma_corr`` (see the module docstring) of mean colours ``(N, 3)``."""
    return {"colour_corr": colour_corr(pred, target), "chroma_corr": colour_corr(chroma(pred), chroma(target))}


def colour_corr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Pearson correlation across images of mean colours ``(N, 3)``, averaged over the channels that vary
    (NaN for fewer than two images)."""
    if pred.shape[0] < 2:
        return float("nan")
    corr = np.array([float(torch.corrcoef(torch.stack([pred[:, c], target[:, c]]))[0, 1])
                     for c in range(pred.shape[1])])
    return float(np.nanmean(corr)) if np.isfinite(corr).any() else float("nan")


def _gt_points(path: Path, n: int, generator: torch.Generator) -> torch.Tensor:
    v, f = load_ply(path)
    return normalize_unit_cube(surface_points(v.float()[None], f.long(), n, generator))[0]


def evaluate(cfg: UnicornConfig, run_dir: str | Path, model: UnicornModel | None = None,
             ds: UnicornDataset | None = None, write: bool = True) -> dict:
    """Evaluate a trained run (see the module docstring); writes ``run_dir/eval.json`` atomically."""
    run_dir = Path(run_dir)
    with threads(cfg.train.num_threads):
        model = model if model is not None else load_trained(cfg, run_dir)
        ds = ds if ds is not None else test_dataset(cfg)
        device = next(model.parameters()).device
        pred = predict(model, ds.images.float() / 255.0, cfg.eval.batch_size, device)
        faces = model.faces.cpu()
        tmpl, _, _ = ellipsoid_template(cfg.model.template_level, cfg.model.template_scale)
        gen = torch.Generator().manual_seed(cfg.seed)
        n = len(ds)
        gt_cache: dict[str, torch.Tensor] = {}
        gts = []
        for k in range(n):
            key = str(ds.mesh_path(k))
            if key not in gt_cache:
                gt_cache[key] = _gt_points(ds.mesh_path(k), cfg.eval.n_points, gen)
            gts.append(gt_cache[key])
        gt = torch.stack(gts)
        cd, cd_icp = (t.numpy() for t in shape_scores(pred["verts"], faces, pred["R"], ds.R, gt, cfg.eval.n_points,
                                                      cfg.eval.icp_iters, gen))
        tcd, tcd_icp = (t.numpy() for t in shape_scores(tmpl[None].expand(n, -1, -1), faces, pred["R"], ds.R, gt,
                                                        cfg.eval.n_points, cfg.eval.icp_iters, gen))
        images = ds.images.float() / 255.0
        mse = (pred["rgb"] - images).pow(2).flatten(1).mean(1).numpy()
        iou = mask_iou(pred["alpha_hard"], ds.masks.float() / 255.0, threshold=0.5).numpy()
        colour = colour_errors(pred["rgb"], pred["alpha_hard"], images, ds.masks.float() / 255.0)
        out: dict = {"profile": cfg.profile, "categories": list(ds.categories), "n_images": n}
        per_cat = []
        for ci, cat in enumerate(ds.categories):
            sel = (ds.category == ci).numpy()
            if not sel.any():
                continue
            Rp, Rg = pred["R"][sel], ds.R[sel]
            err_raw = rotation_error(Rp, Rg)
            Q = frame_offset(Rp, Rg)
            err_al = rotation_error(Q[None] @ Rp, Rg)
            m = {"chamfer_l1": float(cd[sel].mean()), "chamfer_l1_icp": float(cd_icp[sel].mean()),
                 "template_chamfer_l1": float(tcd[sel].mean()), "template_chamfer_l1_icp": float(tcd_icp[sel].mean()),
                 "mask_iou": float(iou[sel].mean()), "mse": float(mse[sel].mean()),
                 **{k: float(colour[k][sel].mean()) for k in ("colour_l1", "colour_l1_mean_baseline",
                                                               "silhouette_overshoot")},
                 **colour_correlations(colour["pred_colour"][sel], colour["target_colour"][sel]),
                 "psnr": float(np.mean(-10 * np.log10(np.maximum(mse[sel], 1e-10)))),
                 "pose_raw": pose_summary(err_raw), "pose_aligned": pose_summary(err_al),
                 "p_max": float(pred["proba"][sel].max(1).values.mean()), "n_images": int(sel.sum())}
            out[cat] = m
            per_cat.append(m)
        mean = {k: float(np.mean([m[k] for m in per_cat])) for k in HEADLINE}
        for pk in ("pose_raw", "pose_aligned"):
            mean[pk] = {k: float(np.mean([m[pk][k] for m in per_cat])) for k in per_cat[0][pk]}
        out["mean"] = mean
        out.update({k: mean[k] for k in HEADLINE})
        out["pose_aligned_median_deg"] = mean["pose_aligned"]["median_deg"]
        out["improvement_over_template_icp"] = mean["template_chamfer_l1_icp"] - mean["chamfer_l1_icp"]
        ckpt_step = None
        try:
            from ...train import load_checkpoint

            ckpt_step = int(load_checkpoint(run_dir).get("step", -1)) if (run_dir / "checkpoint.pt").is_file() else None
        except Exception:  # noqa: BLE001 - informative only
            ckpt_step = None
        out["train_step"] = ckpt_step
        out["perceptual_kind"] = _perceptual_kind(cfg)
        out["variant"] = {"swap": cfg.loss.swap > 0, "progressive": cfg.model.progressive}
        if write and cfg.eval.figures:
            write_run_figures(model, images, run_dir)
    if write:
        write_json(run_dir / "eval.json", out)
    log.info("UNICORN eval: CD-L1 %.3f (ICP %.3f) vs template %.3f (ICP %.3f), mask IoU %.3f",
             out["chamfer_l1"], out["chamfer_l1_icp"], out["template_chamfer_l1"], out["template_chamfer_l1_icp"],
             out["mask_iou"])
    return out


def write_run_figures(model: UnicornModel, images: torch.Tensor, run_dir: Path, n: int = 8) -> list[Path]:
    """``figures/reconstructions.png`` and ``.pdf`` (see :func:`.viz.reconstruction_grid`) of the first
    ``n`` images ``(N, 3, H, W)`` in [0, 1]; a failure (e.g. no figure exporter) is logged, not raised."""
    try:
        from ...viz import export
        from .viz import reconstruction_grid

        device = next(model.parameters()).device
        fig = reconstruction_grid(model, images[:n].to(device), n=min(n, len(images)))
        return list(export(fig, Path(run_dir) / "figures" / "reconstructions", formats=("png", "pdf")))
    except Exception as e:  # noqa: BLE001 -- figures are optional, metrics are not
        log.warning("unicorn: could not write figures for %s: %s", run_dir, e)
        return []


def _perceptual_kind(cfg: UnicornConfig) -> str:
    if cfg.loss.perceptual_kind != "auto":
        return cfg.loss.perceptual_kind
    try:
        from ...nn import locate_pretrained

        locate_pretrained("vgg16")
        return "vgg"
    except Exception:  # noqa: BLE001
        return "ssim"

