"""Evaluation: classification (eq 7), pose (render-and-compare, eq 8) and robustness splits.

For every evaluated split (IID ``test``, occlusion L1-L3, corruptions, the flat CAD-style domain
shift) this reports classification accuracy and pose accuracy at pi/6 and pi/18 with the median
error, pose being estimated with the *predicted* class's mesh (``pose``) and, separately, with the
ground-truth class's (``pose_gt``). On the ``unknown`` split (categories never trained on) the
pose is zero-shot: every seen class's mesh is tried and the one with the lowest eq-8 loss is used
(reported per unknown category, with which seen class was used how often).

Not in the paper's protocol, and labelled as such: with ``eval.symmetry`` each pose summary is also
given modulo the ground-truth shape's own turns about its vertical axis (``pose_sym``,
``pose_gt_sym``; a table, stool or bottle has no defined azimuth, see
:mod:`workbench.geometry.symmetry`), and the IID split reports the prior-guess chance level
(``chance``: a random training pose as the answer), plain and modulo symmetry.

The dual-head baseline predicts the class by its logits and the pose by its three angle bins.
``eval.json`` (atomic) holds everything; ``tables.md``/``tables.json`` hold this run's rows in the
layout of the paper's Tables 2, 3 and 4 with the paper's numbers beside them.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ...core.device import get_device
from ...core.errors import CheckpointError
from ...core.io import write_json, write_text
from ...geometry.mesh_io import load_ply
from ...geometry.pose import pose_summary, pose_to_rt, rotation_error
from ...geometry.symmetry import mesh_vertical_symmetries, symmetric_rotation_error
from ...train import load_model_weights
from .classify import class_scores
from .config import CompNet3DConfig
from .data import TaskData, load_task_data
from .model import NeuralMeshModel, bins_to_angles
from .pose import RenderAndCompare, pixel_similarities, pose_grid
from .train import build_model

log = logging.getLogger(__name__)


def make_estimator(model: NeuralMeshModel, cfg: CompNet3DConfig, distance: float) -> RenderAndCompare:
    p = cfg.pose
    grid = pose_grid(p.n_azimuth, p.n_elevation, p.n_theta, tuple(p.elevation_range), tuple(p.theta_range))
    return RenderAndCompare(model.verts, model.n_verts, model.faces, grid, distance)


def feature_intrinsics(batch: dict, image_size, feat_size, device):
    """Focal ``(B,)`` and principal point ``(B, 2)`` at feature resolution."""
    H, W = image_size
    h, w = feat_size
    focal = batch["focal"].to(device).float() * (w / W)
    principal = batch["principal"].to(device).float() * torch.tensor([w / W, h / H], device=device)
    return focal, principal


class CompNetPredictor:
    """Batched classification + pose of the neural mesh model."""

    def __init__(self, model: NeuralMeshModel, cfg: CompNet3DConfig, distance: float):
        self.model = model
        self.cfg = cfg
        self.rc = make_estimator(model, cfg, distance)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    @torch.no_grad()
    def classify(self, fmap: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bank = self.model.bank
        pm = None
        if mask is not None:
            pm = torch.nn.functional.adaptive_max_pool2d(mask.float(), fmap.shape[-2:]) > 0.5
        return class_scores(fmap, bank.vertex, bank.valid, bank.background, pixel_mask=pm)

    def pose(self, fmap: torch.Tensor, classes: torch.Tensor, focal, principal, record: bool = False):
        bank = self.model.bank
        bg = bank.background if self.cfg.pose.use_background else None
        G, bgmax = pixel_similarities(fmap, bank.vertex[classes], bg)
        p = self.cfg.pose
        return self.rc.estimate(G, bgmax, classes, focal, principal, tuple(fmap.shape[-2:]), p.refine_steps,
                                p.refine_lr, tuple(p.refine_betas), record=record)

    def zero_shot_pose(self, fmap: torch.Tensor, focal, principal):
        """Best seen class by the grid's eq-8 loss, then refinement with its mesh."""
        bank = self.model.bank
        bg = bank.background if self.cfg.pose.use_background else None
        B = fmap.shape[0]
        Y = bank.n_classes
        best = torch.empty(B, Y, device=fmap.device)
        for y in range(Y):
            cls = torch.full((B,), y, dtype=torch.long, device=fmap.device)
            G, bgmax = pixel_similarities(fmap, bank.vertex[cls], bg)
            best[:, y] = self.rc.grid_search(G, bgmax, cls, focal, principal, tuple(fmap.shape[-2:])).min(1).values
        classes = best.argmin(1)
        return self.pose(fmap, classes, focal, principal), classes


class ShapeSymmetries:
    """Vertical-axis symmetries of the ground-truth shape of each dataset row, computed once per shape file.

    ``get(rows)`` -> one ``(S,)`` angle tensor per row (None for a row without a readable ``.ply``
    shape), or None when no row has one (real datasets without meshes): the symmetry-aware summaries
    are then left out.
    """

    def __init__(self, data: TaskData):
        self.data = data
        df = data.index.df
        self.shapes = df["shape"].astype(str).to_numpy() if "shape" in df.columns else None
        self.cache: dict[str, torch.Tensor | None] = {}

    def _of(self, rel: str) -> torch.Tensor | None:
        if rel not in self.cache:
            path = self.data.root / rel if rel and rel not in ("nan", "None") else None
            self.cache[rel] = None
            if path is not None and path.suffix.lower() == ".ply" and path.is_file():
                try:
                    self.cache[rel] = mesh_vertical_symmetries(*load_ply(path))
                except Exception as e:  # a corrupt shape only costs its symmetry-aware score
                    log.warning("compnet3d: no symmetries for %s (%s): scored without", path, e)
        return self.cache[rel]

    def get(self, rows) -> list[torch.Tensor | None] | None:
        if self.shapes is None:
            return None
        out = [self._of(self.shapes[int(r)]) for r in rows]
        return None if all(o is None for o in out) else out


def prior_chance(data: TaskData, R_gt: torch.Tensor, sym: list | None, n_guesses: int = 100,
                 seed: int = 0) -> dict[str, float]:
    """Prior-guess chance of ``R_gt (N, 3, 3)``: the mean acc@pi/6 (and the median error) when each
    image's pose is answered by ``n_guesses`` random training poses; ``acc_pi6_sym`` modulo ``sym``."""
    train = data.dataset("train")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(train), (R_gt.shape[0], n_guesses), generator=g)
    Rt = train.rotations().double()
    Rg = R_gt.double().cpu()
    acc, acc_s, errs = [], [], []
    for i in range(Rg.shape[0]):
        C = Rt[pick[i]]
        e = rotation_error(C, Rg[i].expand_as(C))
        errs.append(e)
        acc.append((e < math.pi / 6).double().mean())
        if sym is not None:
            es = symmetric_rotation_error(C, Rg[i].expand_as(C), [sym[i]] * n_guesses)
            acc_s.append((es < math.pi / 6).double().mean())
    out = {"acc_pi6": float(torch.stack(acc).mean()),
           "median_deg": float(torch.rad2deg(torch.cat(errs).median()))}
    if acc_s:
        out["acc_pi6_sym"] = float(torch.stack(acc_s).mean())
    return out


def _summ(errors: list[torch.Tensor]) -> dict[str, float]:
    if not errors:
        return {}
    e = torch.cat(errors).double()
    s = pose_summary(e)
    return {k: float(v) for k, v in s.items()}


def _pose_jobs(predictor: "CompNetPredictor", cfg: CompNet3DConfig, split: str, fmap: torch.Tensor,
               labels: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor, R_gt: torch.Tensor,
               mask: torch.Tensor | None = None, sym: list | None = None) -> dict[str, torch.Tensor | None]:
    """Classification and pose of a group of images (any number of loader batches).

    Every render-and-compare run of the group goes through one :meth:`CompNetPredictor.pose` call:
    the predicted class's pose of every image *and* the ground-truth class's pose of the
    misclassified ones (a correctly classified image reuses its prediction). Each image's pose is
    independent of the others in the call (per-image grid search, element-wise Adam on a summed
    loss), so grouping only removes per-call rasterizer overhead.

    ``fmap (N, D, h, w)``, ``labels (N,)``, ``focal (N,)`` / ``principal (N, 2)`` at feature
    resolution, ``R_gt (N, 3, 3)``; ``mask (N, 1, H, W)`` restricts eq 7 (``eval.gt_crop``); ``sym``
    the images' shape symmetries (:class:`ShapeSymmetries`), for the errors modulo symmetry.

    Returns ``{"pred": (N,), "pose", "pose_gt", "pose_sym", "pose_gt_sym": (N,) float64 errors or None}``.
    """
    N = fmap.shape[0]
    out: dict[str, torch.Tensor | None] = {"pose": None, "pose_gt": None, "pose_sym": None, "pose_gt_sym": None}

    def errors(R: torch.Tensor, R_ref: torch.Tensor, rows: torch.Tensor, key: str) -> None:
        out[key] = rotation_error(R, R_ref).cpu()
        if sym is not None:
            out[key + "_sym"] = symmetric_rotation_error(R, R_ref, [sym[i] for i in rows.tolist()]).cpu()

    if split == "unknown":
        res, out["pred"] = predictor.zero_shot_pose(fmap, focal, principal)
        errors(res.R, R_gt, torch.arange(N), "pose")
        return out
    S = predictor.classify(fmap, mask)
    pred = out["pred"] = S.argmax(1)
    if not cfg.eval.pose:
        return out
    idx = torch.arange(N, device=fmap.device)
    classes = pred
    wrong = torch.zeros(0, dtype=torch.long, device=fmap.device)
    if cfg.eval.gt_class_pose:
        wrong = (pred != labels).nonzero(as_tuple=True)[0]
        idx = torch.cat([idx, wrong])
        classes = torch.cat([pred, labels[wrong]])
    res = predictor.pose(fmap[idx], classes, focal[idx], principal[idx])
    errors(res.R, R_gt[idx], idx.cpu(), "pose")
    for key in ("pose", "pose_sym"):
        err = out[key]
        if err is None:
            continue
        out[key] = err[:N]
        if cfg.eval.gt_class_pose:
            out[key.replace("pose", "pose_gt")] = err[:N].clone()
            out[key.replace("pose", "pose_gt")][wrong.cpu()] = err[N:]
    return out


def evaluate_split(model, cfg: CompNet3DConfig, data: TaskData, split: str, device,
                   distance: float, predictor: "CompNetPredictor | None" = None,
                   symmetries: ShapeSymmetries | None = None) -> dict[str, Any]:
    """Accuracy and pose metrics of one split (``unknown`` gives zero-shot pose per category).

    The mesh model's feature maps are gathered over ``eval.pose_batch_size`` images before the
    poses of the group are estimated in one batch (see :func:`_pose_jobs`); the results do not
    depend on the grouping. Pass one ``predictor`` for several splits to reuse its cached
    grid-pose renders (they depend only on the class meshes and the camera), and one
    ``symmetries`` (with ``eval.symmetry``) to reuse the shapes' symmetries.
    """
    loader = data.loader(split, batch_size=cfg.eval.batch_size, max_images=cfg.eval.max_images)
    is_compnet = isinstance(model, NeuralMeshModel)
    if is_compnet and predictor is None:
        predictor = CompNetPredictor(model, cfg, distance)
    group = max(int(cfg.eval.pose_batch_size), 1)
    if symmetries is None and cfg.eval.symmetry:
        symmetries = ShapeSymmetries(data)
    preds, labels_all, names, R_all = [], [], [], []
    errs_by: dict[str, list[torch.Tensor]] = {"pose": [], "pose_gt": [], "pose_sym": [], "pose_gt_sym": []}
    sym_all: list | None = [] if symmetries is not None else None
    pending: list[dict] = []

    def flush() -> None:
        if not pending:
            return
        cat = {k: torch.cat([p[k] for p in pending]) for k in ("fmap", "label", "focal", "principal", "R")}
        mask = torch.cat([p["mask"] for p in pending]) if cfg.eval.gt_crop else None
        sym = sum((p["sym"] for p in pending), []) if all(p["sym"] is not None for p in pending) else None
        res = _pose_jobs(predictor, cfg, split, cat["fmap"], cat["label"], cat["focal"], cat["principal"],
                         cat["R"], mask, sym)
        preds.append(res["pred"].cpu())
        for key, lst in errs_by.items():
            if res[key] is not None:
                lst.append(res[key])
        pending.clear()

    t0 = time.perf_counter()
    n_pending = 0
    for batch in loader:
        images = batch["image"].to(device)
        labels = batch["label"].to(device)
        R_gt = batch["R"].to(device)
        labels_all.append(batch["label"].cpu())
        R_all.append(batch["R"].cpu())
        names.extend(batch["category_name"])
        sym = symmetries.get(batch["index"].tolist()) if symmetries is not None else None
        if sym_all is not None:
            sym_all = sym_all + sym if sym is not None else None
        if is_compnet:
            fmap = predictor.features(images)
            focal, principal = feature_intrinsics(batch, data.image_size, fmap.shape[-2:], device)
            item = {"fmap": fmap, "label": labels, "focal": focal, "principal": principal, "R": R_gt, "sym": sym}
            if cfg.eval.gt_crop:
                item["mask"] = batch["mask"].to(device)
            pending.append(item)
            n_pending += images.shape[0]
            if n_pending >= group:
                flush()
                n_pending = 0
        else:
            with torch.no_grad():
                logits, pose_logits = model(images)
            preds.append(logits.argmax(1).cpu())
            a, e, th = bins_to_angles(pose_logits.argmax(-1), model.bins)
            R_p, _ = pose_to_rt(a, e, th, torch.ones_like(a))
            errs_by["pose"].append(rotation_error(R_p, R_gt).cpu())
            if sym is not None:
                errs_by["pose_sym"].append(symmetric_rotation_error(R_p, R_gt, sym).cpu())
    if is_compnet:
        flush()
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
    target = torch.cat(labels_all) if labels_all else torch.zeros(0, dtype=torch.long)
    errs = torch.cat(errs_by["pose"]) if errs_by["pose"] else None
    n = int(target.shape[0])
    out: dict[str, Any] = {"n": n, "time_s": time.perf_counter() - t0}
    if split != "unknown":
        out["acc"] = int((pred == target).sum()) / max(n, 1)
    for key, lst in errs_by.items():
        if lst and (not key.endswith("_sym") or sym_all is not None):
            out[key] = _summ(lst)
    if split == "test" and errs is not None and n:
        out["chance"] = prior_chance(data, torch.cat(R_all), sym_all)
    if split != "unknown":
        per_cat: dict[str, dict] = {}
        for i, name in enumerate(names):
            d = per_cat.setdefault(name, {"errors": [], "correct": 0, "n": 0})
            d["correct"] += int(pred[i] == target[i])
            d["n"] += 1
            if errs is not None:
                d["errors"].append(float(errs[i]))
        out["per_category"] = {
            name: {"n": d["n"], "acc": d["correct"] / max(d["n"], 1),
                   **({"pose_acc_pi6": float(pose_summary(torch.tensor(d["errors"], dtype=torch.float64))["acc_pi6"])}
                      if d["errors"] else {})}
            for name, d in sorted(per_cat.items())}
    else:
        out["per_category"] = {}
        by_cat: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            by_cat.setdefault(name, []).append(i)
        for name, rows in sorted(by_cat.items()):
            s = pose_summary(errs[rows])
            cnt = Counter(data.class_names[int(pred[i])] for i in rows) if is_compnet else Counter()
            top, top_n = cnt.most_common(1)[0] if cnt else (None, 0)
            out["per_category"][name] = {
                "n": len(rows), **{k: float(v) for k, v in s.items()},
                "used_class": top if is_compnet else None,
                "used_fraction": top_n / len(rows) if is_compnet else None,
                "used_counts": dict(cnt) if is_compnet else None,
            }
    return out


def load_trained(cfg: CompNet3DConfig, run_dir: Path, data: TaskData, device) -> torch.nn.Module:
    model = build_model(cfg, data)
    ckpt = Path(run_dir) / "checkpoint.pt"
    if not ckpt.is_file():
        raise CheckpointError(f"no checkpoint at {ckpt}: train the run first")
    load_model_weights(model, ckpt)
    return model.to(device).eval()


def evaluate(cfg: CompNet3DConfig, run_dir: Path, data: TaskData | None = None,
             splits: list[str] | None = None) -> dict:
    """Evaluate a trained run on every configured split; writes ``eval.json`` and the tables."""
    from .tables import run_tables, tables_markdown

    run_dir = Path(run_dir)
    data = data or load_task_data(cfg)
    device = get_device(cfg.train.device)
    model = load_trained(cfg, run_dir, data, device)
    distance = cfg.pose.distance or data.median_distance
    wanted = splits or list(cfg.eval.splits)
    results: dict[str, Any] = {"splits": {}, "skipped": []}
    predictor = CompNetPredictor(model, cfg, distance) if isinstance(model, NeuralMeshModel) else None
    symmetries = ShapeSymmetries(data) if cfg.eval.symmetry else None
    for split in wanted:
        if split not in data.available_splits:
            log.warning("split '%s' is not in the dataset (%s); skipped", split, ", ".join(data.available_splits))
            results["skipped"].append(split)
            continue
        log.info("evaluating %s on %s", run_dir.name, split)
        results["splits"][split] = evaluate_split(model, cfg, data, split, device, distance, predictor, symmetries)
    metrics = flat_metrics(results)
    summary_path = run_dir / "train_summary.json"
    if summary_path.is_file():
        import json

        results["train"] = json.loads(summary_path.read_text())
    results["metrics"] = metrics
    results["model_kind"] = cfg.model.kind
    results["contrast"] = cfg.loss.contrast
    results["profile"] = cfg.data.profile
    if predictor is not None and cfg.eval.figures:
        write_run_figures(predictor, data, run_dir, distance)
    tabs = run_tables(results, cfg)
    write_json(run_dir / "tables.json", {k: v.to_dict(orient="records") for k, v in tabs.items()})
    write_text(run_dir / "tables.md", tables_markdown(tabs, title=f"{run_dir.name}"))
    write_json(run_dir / "eval.json", results)
    return metrics


FIGURE_SPLITS = ("test", "occ_l2", "occ_l3", "corrupt_fog")


def prediction_tiles(predictor: CompNetPredictor, data: TaskData, split: str, n: int, distance: float
                     ) -> tuple[list, list]:
    """The first ``n`` images of ``split`` with the predicted class's cuboid drawn at the estimated pose
    (green: class right, red: wrong) and titles ``"pred (true) err deg"``."""
    from ...geometry import rotation_error
    from .viz import pose_overlay

    model = predictor.model
    dev = model.verts.device
    batch = next(iter(data.loader(split, batch_size=n, max_images=n)))
    images = batch["image"].to(dev)
    fmap = predictor.features(images)
    focal, principal = feature_intrinsics(batch, data.image_size, fmap.shape[-2:], dev)
    classes = predictor.classify(fmap).argmax(1)
    res = predictor.pose(fmap, classes, focal, principal)
    err = torch.rad2deg(rotation_error(res.R, batch["R"].to(dev))).cpu()
    tiles, titles = [], []
    for i in range(images.shape[0]):
        y, t = int(classes[i]), int(batch["label"][i])
        verts, faces = model.verts[y, : int(model.n_verts[y])], model.faces[y]
        ok = y == t
        tiles.append(pose_overlay(batch["image"][i], verts, faces, res.R[i], res.T[i], float(batch["focal"][i]),
                                  batch["principal"][i].tolist(), color=(0.1, 0.9, 0.3) if ok else (0.95, 0.2, 0.2)))
        titles.append(f"{model.class_names[y]}" + ("" if ok else f" ({batch['category_name'][i]})")
                      + f" {float(err[i]):.0f} deg")
    return tiles, titles


def write_run_figures(predictor: CompNetPredictor, data: TaskData, run_dir: Path, distance: float,
                      n: int = 6) -> list[Path]:
    """``figures/predictions.png`` (+ ``.pdf``): one row per split of :data:`FIGURE_SPLITS` present in the
    data, the predicted class's cuboid at the render-and-compare pose over each image."""
    from ...viz import export, image_grid

    try:
        tiles, titles, rows = [], [], []
        for split in FIGURE_SPLITS:
            if split not in data.available_splits:
                continue
            t, ti = prediction_tiles(predictor, data, split, n, distance)
            t, ti = t + [t[-1] * 0 + 1] * (n - len(t)), ti + [""] * (n - len(ti))  # pad short splits
            tiles += t
            titles += ti
            rows.append(split)
        if not tiles:
            return []
        fig = image_grid(tiles, titles=titles, ncols=n, row_titles=rows, cell_size=150,
                         title="compnet3d: predicted class and pose (green right class, red wrong; "
                               "title: class (true) rotation error)")
        return list(export(fig, Path(run_dir) / "figures" / "predictions", formats=("png", "pdf")))
    except Exception as e:  # noqa: BLE001 -- figures are optional, metrics are not
        log.warning("compnet3d: could not write figures for %s: %s", run_dir, e)
        return []


def flat_metrics(results: dict) -> dict[str, float]:
    """``{split}.acc``, ``{split}.pose_acc_pi6``... as one flat dict of floats."""
    out: dict[str, float] = {}
    for split, r in results["splits"].items():
        if "acc" in r:
            out[f"{split}.acc"] = r["acc"]
        for key in ("pose", "pose_gt", "pose_sym", "pose_gt_sym", "chance"):
            for k, v in r.get(key, {}).items():
                out[f"{split}.{key}_{k}"] = v
        if split == "unknown" and r.get("per_category"):
            pc = r["per_category"]
            out["unknown.pose_acc_pi6_mean"] = sum(d["acc_pi6"] for d in pc.values()) / len(pc)
    return out
