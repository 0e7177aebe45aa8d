"""Cross-method views for notebooks 07-10: one object seen by four methods, the embedding spaces
side by side, every results table, and an ablation playground over any method.

This module sits at the level of :mod:`workbench.pipeline` (it uses the method packages through
their public functions and :class:`~workbench.methods.MethodSpec`); ``workbench.viz`` stays free
of method imports.

* runs: :func:`~workbench.pipeline.ensure_run` (train + evaluate once, reuse a finished run), :func:`data_summary`
  (which data each method saw).
* one object, four methods (notebook 07): :func:`compare_object` -> :class:`ObjectComparison`,
  :func:`pose_scene` (one 3D scene, frusta coloured by rotation error), :func:`meshes_figure`.
* embeddings (notebook 08): :func:`piro_points`, :func:`cmic_points`, :func:`compnet3d_points`
  -> :class:`EmbeddingPoints`; :func:`embedding_tabs` (one explorer per space, lasso selection),
  :func:`selection_table`.
* tables (notebook 09): :func:`results_tables`, :func:`tables_index`, :func:`export_tables`,
  :func:`table_figure`, :func:`results_browser` (filters by profile / method / dataset).
* ablations (notebook 10): :func:`launch_run` (train + evaluate a config with a progress callback),
  :func:`ablation_playground` (method + variant pickers, config form, curves and results).

Conventions: rotations are pytorch3d row-vector rotations (``X_view = X_world @ R + T``) unless
named otherwise; rotation errors are geodesic angles in degrees; meshes are ``(verts (V, 3),
faces (F, 3))`` numpy arrays in the object's canonical frame (+Y up, front +Z).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .core.config import resolve_profile
from .core.errors import ConfigError, DataError
from .core.paths import outputs_dir, runs_dir
from .methods import METHOD_NAMES, get_method
from .pipeline import ensure_run, find_variant, is_complete, make_config, train_config

log = logging.getLogger(__name__)

#: the category all four object methods can handle in every profile (UNICORN trains on cars at
#: smoke/quick, TTP has a ``car`` variant, CMIC a fine-grained car repository, CompNets a car class)
OBJECT_CATEGORY = "car"
#: the run (variant) of each method used for the object comparison
OBJECT_VARIANTS = {"compnet3d": "compnet3d", "unicorn": "full", "ttp": "car", "cmic": "fg_full"}
#: the colour of each method in cross-method figures
METHOD_COLORS = {"ground truth": "#111111", "compnet3d": "#1f77b4", "unicorn": "#ff7f0e", "ttp": "#2ca02c",
                 "cmic": "#9467bd", "piro": "#8c564b"}


# ============================================================================ runs
def run_config(method: str, run_dir: Path):
    """The typed config saved in a run directory."""
    return get_method(method).config_cls.load(Path(run_dir) / "config.yaml")


def data_summary(profile: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Which synthetic data each method's object-comparison run trains on (one row per method):
    the preset, the categories, the variant and its description. Reads configs only."""
    profile = resolve_profile(profile)
    rows = []
    for m, v in OBJECT_VARIANTS.items():
        spec = get_method(m)
        var = find_variant(spec, v)
        cfg = make_config(spec, profile, var, seed=seed)
        d = cfg.data
        if m == "compnet3d":
            from .data import preset_config

            cats = preset_config("views", profile).categories
            what = "views preset: several categories, random poses, backgrounds (classification + pose)"
        elif m == "unicorn":
            cats = list(d.categories)
            what = f"collection preset, {d.variant} background, object-centred crops, images only"
        elif m == "ttp":
            cats = [d.category]
            what = f"collection preset, {d.variant} background, object-centred crops, images + masks"
        else:
            cats = [OBJECT_CATEGORY]
            what = "retrieval preset, fine-grained car repository (query photos + 12 grey renders per shape)"
        rows.append({"method": m, "variant": var.name, "preset": spec.presets[0] if spec.presets else "",
                     "categories": ", ".join(cats), "training data": what, "description": var.description})
    return pd.DataFrame(rows).set_index("method")


# ============================================================================ one object, four methods
@dataclass
class ObjectComparison:
    """One test image of the ``collection`` preset (category :data:`OBJECT_CATEGORY`) seen by four methods.

    Attributes:
        index: row of the test split; instance: the object's instance name.
        image: ``(3, S, S)`` float in [0, 1] (native resolution); mask: ``(1, S, S)``.
        R_gt: ``(3, 3)`` ground-truth rotation; distance: camera distance (world units).
        gt_mesh: ``(verts, faces)`` ground-truth mesh (canonical frame).
        poses: ``{label: R (3, 3)}`` predicted rotations (UNICORN: after its global frame alignment).
        candidates: UNICORN's ``K`` candidate rotations ``(K, 3, 3)`` (aligned) and ``proba (K,)``.
        meshes: ``{label: (verts, faces)}`` predicted / retrieved meshes in the ground-truth frame.
        table: one row per method: rotation error (deg), Chamfer and voxel IoU to the GT mesh.
        notes: ``{method: text}`` what each method did with the image.
    """

    index: int
    instance: str
    image: np.ndarray
    mask: np.ndarray
    R_gt: np.ndarray
    distance: float
    gt_mesh: tuple[np.ndarray, np.ndarray]
    poses: dict = field(default_factory=dict)
    candidates: dict = field(default_factory=dict)
    meshes: dict = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: dict = field(default_factory=dict)


def rotation_error_deg(R_pred: Any, R_gt: Any) -> float:
    """Geodesic angle in degrees between two ``(3, 3)`` rotations (the project's rotation error)."""
    import torch

    from .geometry.pose import rotation_error

    a = torch.as_tensor(np.asarray(R_pred, np.float64))[None]
    b = torch.as_tensor(np.asarray(R_gt, np.float64))[None]
    return float(np.degrees(float(rotation_error(a, b)[0])))


def _resize(x, size: int):
    """``(B, C, H, W)`` float -> ``(B, C, size, size)`` (bilinear with antialias, as the datasets do)."""
    import torch.nn.functional as F

    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _collection_test(profile: str, seed: int, run_dir: Path):
    """The test split of the car ``collection`` dataset that TTP's run uses: ``(DatasetIndex, df)``."""
    from .data.schema import DatasetIndex
    from .methods.ttp.data import dataset_root, split_name

    cfg = run_config("ttp", run_dir)
    index = DatasetIndex(dataset_root(cfg.data))
    name = split_name(cfg.eval.split, cfg.data.variant)
    if name not in set(index.df["split"]):
        name = cfg.eval.split
    return index, index.split(name)


def object_choices(profile: str | None = None, seed: int = 0, root: Path | None = None) -> list[tuple[str, int]]:
    """``[(label, index)]`` of the test images available for :func:`compare_object` (for a dropdown)."""
    profile = resolve_profile(profile)
    ttp_dir = ensure_run("ttp", profile, OBJECT_VARIANTS["ttp"], seed, root)
    _, df = _collection_test(profile, seed, ttp_dir)
    return [(f"{i}: {r['instance']} (az {math.degrees(float(r['azimuth'])):.0f} deg)", i)
            for i, (_, r) in enumerate(df.iterrows())]


def _mesh_scores(pred: tuple[np.ndarray, np.ndarray], gt: tuple[np.ndarray, np.ndarray], voxel_res: int
                 ) -> tuple[float, float]:
    """(Chamfer, voxel IoU) of two meshes after unit normalisation of each (TTP's 3D metrics)."""
    from .methods.ttp.evaluate import chamfer_meshes, voxel_iou_meshes

    ch = chamfer_meshes(pred, gt)
    try:
        iou = voxel_iou_meshes(pred, gt, voxel_res)
    except Exception as e:  # noqa: BLE001 - open3d ray casting is optional
        log.warning("voxel IoU unavailable: %s", e)
        iou = float("nan")
    return ch, iou


def compare_object(index: int = 0, profile: str | None = None, seed: int = 0, root: Path | None = None,
                   voxel_res: int = 32) -> ObjectComparison:
    """Run CompNets (render-and-compare pose), UNICORN (pose candidates + mesh), TTP (solver camera +
    mesh) and CMIC (retrieved shape) on test image ``index`` of the car ``collection`` test split.

    Each method's run (:data:`OBJECT_VARIANTS`) is trained first if needed. The image is resized to
    each method's input size; CompNets and CMIC were trained on other presets (see
    :func:`data_summary`), so for them this image is out of their training distribution.
    UNICORN learns its own object frame without pose labels: its rotations are mapped to the GT
    frame with the global offset that its evaluation uses (:func:`~workbench.methods.unicorn.evaluate.frame_offset`
    over the whole test split), and its mesh is brought to the GT frame through its own camera
    (``V R_pred R_gt^T``), as in its Chamfer evaluation.
    """
    import torch

    from .geometry import load_ply
    from .geometry.pose import pose_to_rt

    profile = resolve_profile(profile)
    runs = {m: ensure_run(m, profile, v, seed, root) for m, v in OBJECT_VARIANTS.items()}
    index_ds, df = _collection_test(profile, seed, runs["ttp"])
    if not 0 <= index < len(df):
        raise DataError(f"compare_object: index {index} out of range (the test split has {len(df)} images)")
    row_id = int(df.index[index])
    row = index_ds.df.loc[row_id]
    image = index_ds.load_image(row_id).float().clamp(0, 1)          # (3, H, W)
    mask = index_ds.load_mask(row_id).float().clamp(0, 1)            # (1, H, W)
    a, e, th, d = (torch.tensor([float(row[k])], dtype=torch.float64)
                   for k in ("azimuth", "elevation", "theta", "distance"))
    R_gt = pose_to_rt(a, e, th, d)[0][0]
    gv, gf = load_ply(index_ds.path(row["shape"]))
    gt_mesh = (gv.numpy().astype(np.float64), gf.numpy().astype(np.int64))
    comp = ObjectComparison(index=index, instance=str(row["instance"]), image=image.numpy(), mask=mask.numpy(),
                            R_gt=R_gt.numpy(), distance=float(row["distance"]), gt_mesh=gt_mesh)
    rows = []
    rows.append(_compnet_pose(comp, runs["compnet3d"], image, mask, row))   # refinement needs autograd
    with torch.no_grad():
        rows.append(_unicorn(comp, runs["unicorn"], image, voxel_res))
        rows.append(_ttp(comp, runs["ttp"], image, voxel_res))
        rows.append(_cmic(comp, runs["cmic"], image, mask, voxel_res))
    comp.table = pd.DataFrame(rows).set_index("method")
    return comp


def _compnet_pose(comp: ObjectComparison, run_dir: Path, image, mask, row) -> dict:
    import torch

    from .methods.compnet3d.data import load_task_data
    from .methods.compnet3d.evaluate import CompNetPredictor, load_trained

    cfg = run_config("compnet3d", run_dir)
    data = load_task_data(cfg)
    model = load_trained(cfg, run_dir, data, torch.device("cpu"))
    H, W = data.image_size
    x = torch.nn.functional.interpolate(image[None], size=(H, W), mode="bilinear", antialias=True,
                                        align_corners=False)
    out = {"method": "compnet3d", "run": run_dir.name}
    if not hasattr(model, "bank"):   # the dual-head baseline has no render-and-compare
        comp.notes["compnet3d"] = "dual-head baseline: no render-and-compare"
        return out
    pred = CompNetPredictor(model, cfg, cfg.pose.distance or data.median_distance)
    fmap = pred.features(x).detach()
    h, w = fmap.shape[-2:]
    s = image.shape[-1]
    focal = torch.tensor([float(row["focal"]) * w / s])
    principal = torch.tensor([[float(row["px"]) * w / s, float(row["py"]) * h / image.shape[-2]]])
    names = data.class_names
    cls = torch.tensor([names.index(OBJECT_CATEGORY)]) if OBJECT_CATEGORY in names else \
        pred.classify(fmap).argmax(1)
    scores = pred.classify(fmap)
    res = pred.pose(fmap, cls, focal, principal)
    R = res.R[0].double().numpy()
    comp.poses["compnet3d"] = R
    comp.notes["compnet3d"] = (f"classified as '{names[int(scores.argmax(1))]}'; render-and-compare pose with "
                               f"the '{names[int(cls)]}' cuboid")
    out.update({"rotation error (deg)": rotation_error_deg(R, comp.R_gt),
                "predicted class": names[int(scores.argmax(1))]})
    return out


def _unicorn(comp: ObjectComparison, run_dir: Path, image, voxel_res: int) -> dict:
    import torch

    from .methods.unicorn.evaluate import frame_offset, load_trained, predict, test_dataset

    cfg = run_config("unicorn", run_dir)
    model = load_trained(cfg, run_dir)
    x = _resize(image[None], cfg.data.image_size)
    p = predict(model, x)
    ds = test_dataset(cfg)   # the global frame offset over the test split, as in UNICORN's evaluation
    allp = predict(model, ds.images.float() / 255.0)
    Q = frame_offset(allp["R"], ds.R).double()
    R_raw = p["R"][0].double()
    R = (Q @ R_raw).numpy()
    from .methods.unicorn.model import candidates_to_rt

    Rk, _ = candidates_to_rt(p["angles"][0].double(), torch.zeros_like(p["angles"][0]).double(), 1.0)
    comp.poses["unicorn"] = R
    comp.candidates = {"R": (Q[None] @ Rk).numpy(), "proba": p["proba"][0].double().numpy()}
    R_gt = torch.as_tensor(comp.R_gt)
    verts = (p["verts"][0].double() @ R_raw @ R_gt.T).numpy()
    mesh = (verts, model.faces.cpu().numpy().astype(np.int64))
    comp.meshes["unicorn"] = mesh
    ch, iou = _mesh_scores(mesh, comp.gt_mesh, voxel_res)
    comp.notes["unicorn"] = (f"{len(comp.candidates['proba'])} pose candidates, best p = "
                             f"{float(comp.candidates['proba'].max()):.2f}; frame aligned by a global rotation")
    return {"method": "unicorn", "run": run_dir.name, "rotation error (deg)": rotation_error_deg(R, comp.R_gt),
            "rotation error raw (deg)": rotation_error_deg(R_raw.numpy(), comp.R_gt),
            "chamfer": ch, "voxel IoU": iou}


def _ttp(comp: ObjectComparison, run_dir: Path, image, voxel_res: int) -> dict:
    from .methods.ttp.evaluate import _RZ_PI, load_trained
    from .methods.ttp.train import load_template

    cfg = run_config("ttp", run_dir)
    model = load_trained(cfg, run_dir, load_template(cfg, cfg.data.category))
    x = _resize(image[None], cfg.data.image_size)
    out = model(x, rigid=model.rigid)
    R_col = out.R[0].double()
    R = (_RZ_PI.double() @ R_col).T.numpy()          # TTP's camera frame -> pytorch3d row convention
    comp.poses["ttp"] = R
    mesh = (out.verts[0].double().numpy(), model.faces.cpu().numpy().astype(np.int64))
    comp.meshes["ttp"] = mesh
    ch, iou = _mesh_scores(mesh, comp.gt_mesh, voxel_res)
    comp.notes["ttp"] = (f"weak-perspective camera from {cfg.model.solver_iterations} solver rounds, "
                         f"K = {model.shape.num_basis} deformation basis")
    return {"method": "ttp", "run": run_dir.name, "rotation error (deg)": rotation_error_deg(R, comp.R_gt),
            "chamfer": ch, "voxel IoU": iou}


def _cmic(comp: ObjectComparison, run_dir: Path, image, mask, voxel_res: int) -> dict:
    from .geometry import load_ply
    from .methods.cmic.data import load_data
    from .methods.cmic.evaluate import load_trained_model
    from .methods.cmic.retrieval import attention_scores, embed_repository

    cfg = run_config("cmic", run_dir)
    model = load_trained_model(cfg, run_dir, "cpu")
    data = load_data(cfg.data)
    s = cfg.model.image_size
    q = model.embed_queries(_resize(image[None], s), _resize(mask[None], s))
    views = embed_repository(model, data.seen.renders, cfg.model.render_size)
    scores = attention_scores(model.attention, q, views, model.normalize_shape)[0]
    best = int(scores.argmax())
    out = {"method": "cmic", "run": run_dir.name, "retrieved shape": int(data.seen.shape_ids[best])}
    path = data.seen.mesh_paths[best]
    comp.notes["cmic"] = (f"top-1 of {len(data.seen)} shapes in its repository (score {float(scores[best]):.3f}); "
                          "the query object itself is not in the repository")
    if path is not None:
        v, f = load_ply(path)
        mesh = (v.numpy().astype(np.float64), f.numpy().astype(np.int64))
        comp.meshes["cmic"] = mesh
        out["chamfer"], out["voxel IoU"] = _mesh_scores(mesh, comp.gt_mesh, voxel_res)
    return out


def pose_scene(comp: ObjectComparison, *, error_max_deg: float = 90.0, colorscale: str = "RdYlGn_r",
               show_candidates: bool = True, height: int = 560):
    """One plotly 3D scene: the GT mesh at the origin, the GT camera (black) and each method's camera
    (frustum coloured by its rotation error, green = 0 to red = ``error_max_deg``), all at the GT
    distance looking at the origin; UNICORN's other candidates are thinner, faded by probability."""
    import plotly.graph_objects as go

    from .viz._util import sample_colorscale
    from .viz.cameras import camera_centers, frustum_points, frustum_trace
    from .viz.mesh import MeshData, mesh_trace, scene_layout

    d = comp.distance
    T = np.array([[0.0, 0.0, d]])
    size = comp.image.shape[-1]
    focal = 0.5 * size / math.tan(math.radians(15.0))
    depth = 0.3 * d
    fig = go.Figure()
    fig.add_trace(mesh_trace(MeshData(comp.gt_mesh[0], comp.gt_mesh[1], name="ground-truth mesh"), opacity=0.8))

    def add(R: np.ndarray, name: str, color: str, width: float, dash: str | None, hover: str) -> None:
        pts = frustum_points(R[None], T, focal, (size / 2, size / 2), (size, size), depth)[0]
        fig.add_trace(frustum_trace(pts, color, name, width=width, dash=dash, hover=hover, legendgroup=name))
        c = camera_centers(R[None], T)[0]
        fig.add_trace(go.Scatter3d(x=[c[0]], y=[c[1]], z=[c[2]], mode="markers+text", text=[name],
                                   marker=dict(size=4, color=color), textposition="top center",
                                   hovertext=hover, hoverinfo="text", legendgroup=name, showlegend=False))

    add(comp.R_gt, "ground truth", "#111111", 5, None, "ground truth")
    errs = {m: rotation_error_deg(R, comp.R_gt) for m, R in comp.poses.items()}
    for m, R in comp.poses.items():
        col = sample_colorscale([errs[m]], 0.0, error_max_deg, colorscale)[0]
        add(R, m, col, 4, "dash", f"{m}: {errs[m]:.1f} deg")
    if show_candidates and comp.candidates:
        pr = comp.candidates["proba"]
        for k, R in enumerate(comp.candidates["R"]):
            e = rotation_error_deg(R, comp.R_gt)
            col = sample_colorscale([e], 0.0, error_max_deg, colorscale)[0]
            pts = frustum_points(R[None], T, focal, (size / 2, size / 2), (size, size), 0.6 * depth)[0]
            fig.add_trace(frustum_trace(pts, col, "unicorn candidates", width=1 + 3 * float(pr[k]), dash="dot",
                                        hover=f"unicorn candidate {k}: p={pr[k]:.2f}, {e:.1f} deg",
                                        legendgroup="unicorn candidates", showlegend=(k == 0)))
    fig.add_trace(go.Scatter3d(x=[None], y=[None], z=[None], mode="markers", showlegend=False, hoverinfo="skip",
                               marker=dict(color=[0.0], cmin=0.0, cmax=error_max_deg, colorscale=colorscale,
                                           showscale=True, colorbar=dict(title=dict(text="error (deg)"), len=0.6))))
    fig.update_layout(scene=scene_layout(), height=height, margin=dict(l=0, r=0, t=40, b=0),
                      title=f"test image {comp.index} ({comp.instance}): cameras coloured by rotation error",
                      legend=dict(orientation="h", y=0.0), scene_camera=dict(up=dict(x=0, y=1, z=0),
                                                                          eye=dict(x=1.6, y=1.2, z=1.9)))
    fig.layout.meta = {"errors_deg": errs}
    return fig


def meshes_figure(comp: ObjectComparison, height: int = 340):
    """The GT mesh beside the meshes of UNICORN and TTP and the shape CMIC retrieved (each scene titled
    with its Chamfer / voxel IoU to the GT)."""
    from .viz.mesh import MeshData, mesh_figure

    ms = [MeshData(*comp.gt_mesh, name="ground truth")]
    for m, (v, f) in comp.meshes.items():
        r = comp.table.loc[m] if m in comp.table.index else {}
        ch, iou = r.get("chamfer", float("nan")), r.get("voxel IoU", float("nan"))
        label = {"cmic": "cmic (retrieved)"}.get(m, m)
        ms.append(MeshData(v, f, name=f"{label}: CD {ch:.3f}, IoU {iou:.2f}"))
    return mesh_figure(ms, layout="row", height=height,
                       colors=[METHOD_COLORS.get(k, "#888") for k in ["ground truth", *comp.meshes]])


def image_figure(comp: ObjectComparison, size: int = 200):
    """The chosen test image and its mask."""
    from .viz import image_grid

    return image_grid([comp.image, np.repeat(comp.mask, 3, 0)], titles=["image", "mask"], cell_size=size // 2 * 2,
                      ncols=2)


def object_picker(profile: str | None = None, seed: int = 0, root: Path | None = None, index: int = 0,
                  initial: ObjectComparison | None = None):
    """A dropdown of test images; choosing one re-runs :func:`compare_object` and redraws the scene,
    the meshes and the table (``initial``: an already computed comparison of image ``index``).
    Returns ``(container, handles)`` with ``index`` (Dropdown), ``scene``, ``meshes``
    (FigureWidgets), ``table`` (HTML), ``status`` (HTML) and ``comparison()``."""
    import ipywidgets as W
    import plotly.graph_objects as go

    opts = object_choices(profile, seed, root)
    dd = W.Dropdown(options=opts, value=index, description="test image", layout=W.Layout(width="420px"))
    scene, meshes = go.FigureWidget(), go.FigureWidget()
    table, status, state = W.HTML(), W.HTML(), {}

    def update(*_: Any, comp: ObjectComparison | None = None) -> None:
        status.value = f"<i>running the four methods on image {dd.value}...</i>"
        comp = comp if comp is not None else compare_object(int(dd.value), profile, seed, root)
        state["comp"] = comp
        for fw, fig in ((scene, pose_scene(comp)), (meshes, meshes_figure(comp))):
            with fw.batch_update():
                fw.data = ()
                fw.add_traces(list(fig.data))
                fw.layout = fig.layout
        table.value = comp.table.to_html(float_format=lambda v: f"{v:.3f}", na_rep="-")
        status.value = f"image {comp.index}: instance {comp.instance}"

    dd.observe(update, names="value")
    update(comp=initial if initial is not None and initial.index == index else None)
    box = W.VBox([dd, status, scene, meshes, table])
    box.add_class("wb-object-picker")
    return box, {"index": dd, "scene": scene, "meshes": meshes, "table": table, "status": status,
                 "comparison": lambda: state["comp"]}


# ============================================================================ embeddings
@dataclass
class EmbeddingPoints:
    """Points of one embedding space: ``features (N, D)``, ``labels`` (DataFrame, one row per point:
    category, instance, pose, ...), optional ``images (N, 3, H, W)`` float for hover thumbnails."""

    name: str
    features: np.ndarray
    labels: pd.DataFrame
    images: np.ndarray | None = None
    color_by: str = "category"

    def __post_init__(self) -> None:
        n = len(self.features)
        if len(self.labels) != n or (self.images is not None and len(self.images) != n):
            raise DataError(f"embedding '{self.name}': {n} features but {len(self.labels)} label rows"
                            + (f" and {len(self.images)} images" if self.images is not None else ""))


def piro_points(profile: str | None = None, seed: int = 0, root: Path | None = None,
                variant: str = "piro_de") -> dict[str, EmbeddingPoints]:
    """PiRO's test single-view embeddings in its category and object spaces (``embeddings.pt`` of
    the run), labelled by category, object and view azimuth (degrees), with the view images."""
    import torch

    from .methods.piro.train import load_data

    run_dir = ensure_run("piro", profile, variant, seed, root)
    cfg = run_config("piro", run_dir)
    emb = torch.load(run_dir / "embeddings.pt", weights_only=True)["test"]
    te = load_data(cfg)["test"]
    cats, objs = emb["categories"], emb["objects"]
    n, v = emb["cat_sv"].shape[:2]
    step = 360.0 / v
    labels = pd.DataFrame({
        "category": [te.category_names[int(c)] for c in cats.repeat_interleave(v)],
        "instance": [f"obj {int(o)}" for o in objs.repeat_interleave(v)],
        "pose": np.tile(np.arange(v) * step, n)})
    ims = te.images[:n].flatten(0, 1)
    ims = (ims.float() / 255.0 if ims.dtype == torch.uint8 else ims.float()).numpy()
    return {f"piro {space} space": EmbeddingPoints(f"piro {space} space", emb[f"{key}_sv"].reshape(n * v, -1).numpy(),
                                                   labels, ims, "category" if key == "cat" else "instance")
            for space, key in (("category", "cat"), ("object", "obj"))}


def cmic_points(profile: str | None = None, seed: int = 0, root: Path | None = None, variant: str = "full",
                max_queries: int = 300) -> dict[str, EmbeddingPoints]:
    """CMIC's query embeddings (test photos) and shape embeddings (the mean of each shape's 12 view
    embeddings, re-normalised: the query-independent summary of the attention pooling), labelled by
    category and shape; the shapes' thumbnails are their first grey render."""
    import torch
    import torch.nn.functional as F

    from .methods.cmic.data import load_data
    from .methods.cmic.evaluate import embed_queries, load_trained_model
    from .methods.cmic.retrieval import embed_repository

    run_dir = ensure_run("cmic", profile, variant, seed, root)
    cfg = run_config("cmic", run_dir)
    model = load_trained_model(cfg, run_dir, "cpu")
    data = load_data(cfg.data)
    with torch.no_grad():
        q = embed_queries(model, data.test, cfg.model.image_size, limit=max_queries)
        views = embed_repository(model, data.seen.renders, cfg.model.render_size)
    n = q.shape[0]
    qi, _ = data.test.get(torch.arange(n))
    q_labels = pd.DataFrame({"category": [data.categories[int(c)] for c in data.test.categories[:n]],
                             "instance": [f"shape {int(s)}" for s in data.test.shape_ids[:n]]})
    shape = F.normalize(views.mean(1), dim=-1)
    r = data.seen.get(torch.arange(len(data.seen)))[:, 0].repeat(1, 3, 1, 1)     # (S, 3, H, W) first view
    s_labels = pd.DataFrame({"category": [data.categories[int(c)] for c in data.seen.categories],
                             "instance": [f"shape {int(s)}" for s in data.seen.shape_ids]})
    return {"cmic queries": EmbeddingPoints("cmic queries", q.numpy(), q_labels, qi.numpy()),
            "cmic shapes": EmbeddingPoints("cmic shapes", shape.numpy(), s_labels, r.numpy())}


def compnet3d_points(profile: str | None = None, seed: int = 0, root: Path | None = None,
                     variant: str = "compnet3d") -> dict[str, EmbeddingPoints]:
    """3D-CompNets' learned vertex features (the feature bank, one point per real vertex of every
    category cuboid), labelled by category, vertex id and the vertex's direction on the cuboid
    (``pose``: azimuth in degrees of the vertex around the up axis; ``height``: its y)."""
    import torch

    from .methods.compnet3d.data import load_task_data
    from .methods.compnet3d.evaluate import load_trained

    run_dir = ensure_run("compnet3d", profile, variant, seed, root)
    cfg = run_config("compnet3d", run_dir)
    data = load_task_data(cfg)
    model = load_trained(cfg, run_dir, data, torch.device("cpu"))
    if not hasattr(model, "bank"):
        raise ConfigError(f"compnet3d variant '{variant}' has no vertex features (dual-head baseline)")
    feats, rows = [], []
    for y, name in enumerate(model.class_names):
        k = int(model.n_verts[y])
        feats.append(model.bank.vertex[y, :k].detach())
        v = model.verts[y, :k].detach().numpy()
        for j in range(k):
            rows.append({"category": name, "instance": f"{name} v{j}",
                         "pose": float(np.degrees(np.arctan2(v[j, 0], v[j, 2]))), "height": float(v[j, 1])})
    return {"compnet3d vertices": EmbeddingPoints("compnet3d vertices", torch.cat(feats).numpy(),
                                                  pd.DataFrame(rows))}


def project(points: EmbeddingPoints, method: str = "umap", seed: int = 0) -> np.ndarray:
    """``(N, 2)`` coordinates of the features (``umap`` with cosine metric, or ``pca``)."""
    from .viz import umap_embed

    return umap_embed(points.features, 2, method=method, metric="cosine" if method == "umap" else "euclidean",
                      seed=seed)


def embedding_tabs(spaces: Mapping[str, EmbeddingPoints], method: str = "umap", seed: int = 0):
    """One :func:`workbench.viz.widgets.embedding_explorer` per space in a ``Tab`` (colour by any
    label, hover thumbnails, lasso selection). Returns ``(tab, {space: handles})``; each handles'
    ``selected()`` gives the lasso-selected point indices (see :func:`selection_table`)."""
    import ipywidgets as W

    from .viz.widgets import embedding_explorer

    boxes, handles = [], {}
    for name, pts in spaces.items():
        xy = project(pts, method, seed)
        box, h = embedding_explorer(xy, pts.labels, images=pts.images, color_by=pts.color_by, height=420)
        h["coords"] = xy
        boxes.append(box)
        handles[name] = h
    tab = W.Tab(children=boxes)
    for i, name in enumerate(spaces):
        tab.set_title(i, name)
    return tab, handles


def selection_table(points: EmbeddingPoints, indices: Sequence[int]) -> pd.DataFrame:
    """The labels of the selected points (index = point index) -- what a lasso selection picked."""
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < len(points.labels)]
    if bad:
        raise DataError(f"selection_table: indices {bad[:5]} out of range for '{points.name}' ({len(points.labels)} points)")
    out = points.labels.iloc[idx].copy()
    out.index = pd.Index(idx, name="point")
    return out


def neighbour_purity(points: EmbeddingPoints, label: str = "category", k: int = 5) -> float:
    """Fraction of each point's ``k`` nearest neighbours (cosine, in the full feature space) that
    share its ``label``: a number to read beside the picture (chance = the label's base rate)."""
    f = np.asarray(points.features, np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    k = max(1, min(k, len(f) - 1))
    nn = np.argsort(-sim, axis=1)[:, :k]
    lab = points.labels[label].to_numpy()
    return float((lab[nn] == lab[:, None]).mean())


# ============================================================================ results tables
def results_tables(profile: str | None = None, methods: Sequence[str] | None = None, root: Path | None = None
                   ) -> dict[tuple[str, str], pd.DataFrame]:
    """Every paper-layout table (each ``MethodSpec.tables``) built from the runs under ``root``,
    ``{(method, table_name): DataFrame}``. ``profile`` keeps only runs of that profile (None: all).
    A method whose tables fail to build is logged and skipped (its runs may be incomplete)."""
    from .eval.results import collect_runs

    out: dict[tuple[str, str], pd.DataFrame] = {}
    for m in methods or METHOD_NAMES:
        spec = get_method(m)
        if spec.tables is None:
            continue
        df = collect_runs(root, method=m, errors="skip")
        if profile is not None and not df.empty:
            df = df[df["profile"] == profile].reset_index(drop=True)
        if df.empty:
            continue
        try:
            tabs = spec.tables(df)
        except Exception as e:  # noqa: BLE001 - one method's table must not hide the others
            log.warning("%s: tables failed: %s: %s", m, type(e).__name__, e)
            continue
        for name, t in (tabs or {}).items():
            if isinstance(t, pd.DataFrame):
                t.attrs.setdefault("method", m)
                t.attrs.setdefault("dataset", _table_dataset(spec, t))
                out[(m, name)] = t
    return out


def _table_dataset(spec, t: pd.DataFrame) -> str:
    for k in ("dataset", "paper_dataset"):
        if t.attrs.get(k):
            return str(t.attrs[k])
    return ", ".join(spec.presets) or "-"


def tables_index(tables: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """One row per table: method, table, dataset, caption, shape and whether it has paper columns."""
    rows = []
    for (m, name), t in tables.items():
        paper = any("paper" in str(c).lower() for c in (t.columns.to_flat_index() if hasattr(t.columns, "to_flat_index") else t.columns))
        paper = paper or any("paper" in str(i).lower() for i in t.index)
        rows.append({"method": m, "table": name, "dataset": t.attrs.get("dataset", "-"),
                     "caption": t.attrs.get("caption", ""), "rows": t.shape[0], "columns": t.shape[1],
                     "paper numbers": bool(paper)})
    return pd.DataFrame(rows, columns=["method", "table", "dataset", "caption", "rows", "columns", "paper numbers"])


def filter_tables(tables: Mapping[tuple[str, str], pd.DataFrame], methods: Sequence[str] | None = None,
                  datasets: Sequence[str] | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """The tables of the given methods and datasets (None: all)."""
    return {k: t for k, t in tables.items()
            if (not methods or k[0] in methods) and (not datasets or t.attrs.get("dataset") in datasets)}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def export_tables(tables: Mapping[tuple[str, str], pd.DataFrame], out_dir: Path | None = None,
                  formats: Sequence[str] = ("csv", "tex")) -> list[Path]:
    """Write each table as ``<method>__<table>.csv`` / ``.tex`` into ``out_dir`` (default
    ``$WB_OUTPUTS_DIR/tables``); returns the written paths. The CSV round-trips the values; the
    LaTeX is a plain ``tabular`` (booktabs rules) with 3 decimals and the caption."""
    bad = [f for f in formats if f not in ("csv", "tex")]
    if bad:
        raise ConfigError(f"export_tables: unknown formats {bad} (valid: csv, tex)")
    out_dir = Path(out_dir) if out_dir is not None else outputs_dir() / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (m, name), t in tables.items():
        stem = out_dir / _safe(f"{m}__{name}")
        if "csv" in formats:
            p = stem.with_suffix(".csv")
            t.to_csv(p)
            paths.append(p)
        if "tex" in formats:
            p = stem.with_suffix(".tex")
            p.write_text(_to_latex(t, caption=t.attrs.get("caption") or f"{m}: {name}"))
            paths.append(p)
    return paths


def _to_latex(t: pd.DataFrame, caption: str = "") -> str:
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}

    def esc(x: Any) -> str:
        return "".join(special.get(ch, ch) for ch in str(x))   # one pass: replacements are not re-escaped

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "--" if math.isnan(float(v)) else f"{float(v):.3f}"
        return esc(v)

    cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in t.columns]
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
             " & ".join([esc(t.index.name or "")] + [esc(c) for c in cols]) + r" \\", r"\midrule"]
    for idx, row in t.iterrows():
        lab = " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        lines.append(" & ".join([esc(lab)] + [cell(v) for v in row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}", ""]
    return "\n".join(lines)


def table_figure(t: pd.DataFrame, max_metrics: int = 6, title: str | None = None):
    """Grouped bars of a table's numeric columns (one group per row; ``(paper)`` columns hatched
    beside ours), for a quick visual read and for export."""
    import plotly.graph_objects as go

    num = [c for c in t.columns if pd.api.types.is_numeric_dtype(t[c]) and t[c].notna().any()]
    ours = [c for c in num if "paper" not in str(c).lower()][:max_metrics]
    fig = go.Figure()
    labels = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in t.index]
    for c in ours:
        name = " / ".join(map(str, c)) if isinstance(c, tuple) else str(c)
        fig.add_bar(x=labels, y=t[c].astype(float), name=name)
        pc = [p for p in num if str(p).lower().startswith(str(c).lower()) and "paper" in str(p).lower()]
        if pc:
            fig.add_bar(x=labels, y=t[pc[0]].astype(float), name=f"{name} (paper)", marker_pattern_shape="/",
                        opacity=0.6)
    fig.update_layout(barmode="group", height=360, title=title or t.attrs.get("caption", ""),
                      margin=dict(l=40, r=10, t=40, b=80), legend=dict(orientation="h", y=-0.3))
    return fig


def results_browser(root: Path | None = None, profile: str | None = None):
    """Widgets over :func:`results_tables`: profile / method / dataset filters, the matching tables
    (ours beside the paper's numbers), and buttons exporting them to CSV + LaTeX and a figure.

    Returns ``(container, handles)``: ``profile`` (Dropdown, ``(all)`` or a profile), ``methods``,
    ``datasets`` (SelectMultiple), ``tables`` (HTML), ``status`` (HTML), ``export`` (Button),
    ``current()`` (the shown tables dict), ``exported`` (list of written paths).
    """
    import html as _html

    import ipywidgets as W

    from .eval.results import collect_runs

    runs = collect_runs(root, errors="skip")
    profiles = sorted(p for p in runs["profile"].dropna().unique()) if not runs.empty else []
    prof = W.Dropdown(options=["(all)", *profiles], value=profile if profile in profiles else "(all)",
                      description="profile")
    state: dict[str, Any] = {"all": {}, "shown": {}}
    meth = W.SelectMultiple(description="methods", rows=5)
    dsets = W.SelectMultiple(description="datasets", rows=5)
    out, status, exported = W.HTML(), W.HTML(), []
    export_btn = W.Button(description="export CSV + LaTeX + figures", icon="download",
                          layout=W.Layout(width="240px"))

    def reload(*_: Any) -> None:
        state["all"] = results_tables(None if prof.value == "(all)" else prof.value, root=root)
        ms = sorted({k[0] for k in state["all"]})
        ds = sorted({t.attrs.get("dataset", "-") for t in state["all"].values()})
        meth.options, meth.value = ms, tuple(ms)
        dsets.options, dsets.value = ds, tuple(ds)
        draw()

    def draw(*_: Any) -> None:
        shown = filter_tables(state["all"], list(meth.value), list(dsets.value))
        state["shown"] = shown
        parts = []
        for (m, name), t in shown.items():
            cap = _html.escape(str(t.attrs.get("caption", "")))
            parts.append(f"<h4>{_html.escape(m)}: {_html.escape(name)}</h4><p><i>{cap}</i></p>"
                         + t.to_html(float_format=lambda v: f"{v:.3f}", na_rep="–"))
        out.value = "".join(parts) or "<i>no tables match the filters</i>"
        status.value = f"{len(shown)} of {len(state['all'])} tables shown"

    def on_export(_: Any = None) -> None:
        from .viz import export

        paths = export_tables(state["shown"])
        for (m, name), t in state["shown"].items():
            try:
                res = export(table_figure(t), outputs_dir() / "tables" / _safe(f"{m}__{name}"), formats=["html"])
                paths += list(res)
            except Exception as e:  # noqa: BLE001 - figures are a bonus, tables are written
                log.warning("figure export of %s/%s failed: %s", m, name, e)
        exported.clear()
        exported.extend(paths)
        status.value = f"exported {len(paths)} files to {outputs_dir() / 'tables'}"

    prof.observe(reload, names="value")
    meth.observe(draw, names="value")
    dsets.observe(draw, names="value")
    export_btn.on_click(on_export)
    reload()
    box = W.VBox([W.HBox([prof, meth, dsets]), W.HBox([export_btn, status]), out])
    box.add_class("wb-results-browser")
    return box, {"profile": prof, "methods": meth, "datasets": dsets, "tables": out, "status": status,
                 "export": export_btn, "current": lambda: state["shown"], "exported": exported}


# ============================================================================ ablation playground
def _config_hash(cfg) -> str:
    return hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:8]


def launch_run(method: str, cfg, variant: str = "custom", progress: Callable | None = None,
               root: Path | None = None, name: str | None = None) -> dict:
    """Train + evaluate ``cfg`` into ``runs/<method>/<name>`` (default ``playground-<profile>-<variant>-<hash>``,
    so one config = one run and a finished one is reused). Writes ``config.yaml`` and ``run.json``
    (method, variant, profile, seed, ``playground: true``) so that :func:`collect_runs` and the
    tables see it. ``progress(step, total)`` is called after every training step. Returns the eval
    metrics (nested dicts flattened, numbers only) plus ``run_dir``."""
    from .eval.results import flatten
    from .train import Callback

    spec = get_method(method)
    profile = getattr(cfg, "profile", None) or resolve_profile(None)
    run_dir = Path(root or runs_dir()) / spec.name / (name or f"playground-{profile}-{variant}-{_config_hash(cfg)}")
    info = {"method": spec.name, "variant": variant, "profile": profile, "seed": getattr(cfg, "seed", 0),
            "playground": True}
    total = int(getattr(getattr(cfg, "train", None), "iterations", 0) or 0)

    class _Progress(Callback):
        def on_step_end(self, trainer, step, logs) -> None:   # noqa: D102
            if progress is not None:
                progress(step, total or None)

    if not is_complete(run_dir):
        metrics = train_config(spec, cfg, run_dir, info, callbacks=[_Progress()])
    else:
        metrics = json.loads((run_dir / "eval.json").read_text())
    if progress is not None:
        progress(1.0)
    flat = {k: float(v) for k, v in flatten(metrics).items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}
    return {**flat, "run_dir": str(run_dir)}


def ablation_playground(method: str = "ttp", variant: str | None = None, profile: str | None = None,
                        seed: int = 0, root: Path | None = None, exclude: Sequence[str] = ("profile",)):
    """Pick a method and a variant; its config becomes a form (one widget per dataclass field, by
    :func:`workbench.viz.widgets.ablation_panel`); "run" trains a short run with a live progress bar
    (:func:`launch_run`), appends a row to the results table and redraws the training curves of
    every run launched here (beside the variant's reference run when it exists).

    Returns ``(container, handles)``: ``method``, ``variant`` (Dropdowns), ``panel()`` (the current
    ablation panel's handles: ``fields``, ``run``, ``progress``, ``history``, ``table()``...),
    ``curves`` (FigureWidget), ``runs`` (list of run dirs launched), ``status`` (HTML).
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    from .viz.widgets import ablation_panel

    profile = resolve_profile(profile)
    m_dd = W.Dropdown(options=list(METHOD_NAMES), value=method, description="method")
    v_dd = W.Dropdown(description="variant")
    holder = W.VBox()
    curves = go.FigureWidget(go.Figure(layout=dict(height=320, margin=dict(l=50, r=10, t=30, b=40),
                                                   xaxis=dict(title="step"), yaxis=dict(title="loss"),
                                                   title="training loss of the runs launched here")))
    status = W.HTML()
    state: dict[str, Any] = {"panel": None, "runs": []}

    def redraw_curves() -> None:
        from .viz.curves import load_metrics

        traces = []
        for label, rd in state["runs"]:
            try:
                df = load_metrics(rd)
            except DataError:
                continue
            if "loss" not in df.columns:
                continue
            sub = df.dropna(subset=["loss"])
            traces.append(go.Scatter(x=sub["step"], y=sub["loss"], mode="lines+markers", name=label))
        with curves.batch_update():
            curves.data = ()
            if traces:
                curves.add_traces(traces)

    def build(*_: Any) -> None:
        spec = get_method(m_dd.value)
        if v_dd.value not in [v.name for v in spec.variants]:
            return
        var = find_variant(spec, v_dd.value)
        cfg = make_config(spec, profile, var, seed=seed)

        def launch(new_cfg, progress) -> dict:
            res = launch_run(spec.name, new_cfg, variant=var.name, progress=progress, root=root)
            rd = res.pop("run_dir")
            state["runs"].append((f"{spec.name}/{Path(rd).name}", rd))
            redraw_curves()
            keep = [col for _, col in spec.headline if col in res] or list(res)[:6]
            return {k: res[k] for k in keep}

        panel, handles = ablation_panel(cfg, launch, title=f"{spec.name}: {var.name} ({profile})",
                                        exclude=[e for e in exclude])
        state["panel"] = handles
        holder.children = [panel]
        status.value = f"<i>{var.description or var.name}</i>"

    def on_method(*_: Any) -> None:
        spec = get_method(m_dd.value)
        v_dd.unobserve(build, names="value")
        v_dd.options = [v.name for v in spec.variants]
        v_dd.value = spec.variants[0].name
        v_dd.observe(build, names="value")
        build()

    m_dd.observe(on_method, names="value")
    v_dd.options = [v.name for v in get_method(method).variants]
    v_dd.value = variant or get_method(method).variants[0].name
    v_dd.observe(build, names="value")
    build()
    box = W.VBox([W.HBox([m_dd, v_dd]), status, holder, curves])
    box.add_class("wb-ablation-playground")
    return box, {"method": m_dd, "variant": v_dd, "panel": lambda: state["panel"], "curves": curves,
                 "runs": state["runs"], "status": status}
