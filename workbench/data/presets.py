"""Dataset presets: typed configs with smoke/quick/full profiles and the job plans they produce.

=============  ==================================================================================
preset         contents
=============  ==================================================================================
``views``      single images for classification + 3D pose. Splits ``train``, ``val``, ``test`` (L0),
               ``occ_l1..occ_l3`` (the test scenes with occluders), ``corrupt_<name>`` (the test
               images with ImageNet-C corruptions at severity 4), ``style_cad`` (the test scenes as
               flat untextured CAD-like renders on white) and ``unknown`` (held-out categories).
``multiview``  objects x V views on an azimuth circle (MVCNN-like, 30 deg steps for V = 12) with object
               identities. ``train``/``test`` over coarse categories; ``fine_train``/``fine_test`` over
               fine-grained families of a few categories (FG3D-like; label = family).
``collection`` one category (default ``bird``), object-centred square crops (5% padding, CMR-style),
               GT meshes, masks, keypoints; ``train``/``test`` on white and ``train_textured``/
               ``test_textured`` (the same scenes on procedural backgrounds).
``retrieval``  query images + masks, a shape repository (``shapes.parquet``, PLY meshes) and 12 flat
               grey renders per shape; ``train``/``test`` multi-category (Pix3D-like) and
               ``fine_train``/``fine_test`` single-category fine-grained (cars, CompCars-like: from
               ``quick`` on, ~40 training photos per car as CompCars' 3,798 / 94). The cars come in
               ``fine_families`` families: one prototype each, its members jittered by
               ``family_jitter`` x range (s.d.) per parameter, so that members of a family are
               near-identical variants (as a model's trim levels and years).
               ``materials_per_photo=true`` draws the object's colours/textures afresh for every
               photo (same geometry, pose and background draws), so that colour is no shortcut to
               shape identity (default ``false``: one set of materials per shape).
=============  ==================================================================================

A plan is a list of :class:`Job` (one object instance each, with all its views), drawn
deterministically from ``(preset, seed)``; the writer (:mod:`workbench.data.generate`) executes
jobs in parallel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import numpy as np

from ..core.config import Config
from ..core.errors import ConfigError
from .corruptions import CORRUPTIONS
from .world import family_instance, get_category, sample_family, sample_params, stable_seed

__all__ = ["CameraConfig", "RenderConfig", "ViewsConfig", "MultiViewConfig", "CollectionConfig",
           "RetrievalConfig", "PRESETS", "ViewSpec", "Job", "plan", "preset_config"]

DEFAULT_KNOWN = ["chair", "stool", "bench", "table", "desk", "sofa", "bed", "car", "airplane", "bottle", "mug",
                 "lamp", "bird"]
DEFAULT_UNKNOWN = ["bus", "monitor"]


@dataclass
class CameraConfig(Config):
    """Pose distribution (degrees in the config, radians on disk) and pinhole intrinsics."""

    focal_factor: float = 2.0          # focal_px = focal_factor * image_size
    distance: List[float] = field(default_factory=lambda: [3.0, 4.0])
    elevation_deg: List[float] = field(default_factory=lambda: [-5.0, 45.0])
    theta_deg: List[float] = field(default_factory=lambda: [-10.0, 10.0])
    principal_jitter: float = 0.04     # fraction of the image size

    def validate(self) -> None:
        for k in ("distance", "elevation_deg", "theta_deg"):
            v = getattr(self, k)
            if len(v) != 2 or v[0] > v[1]:
                raise ConfigError(f"camera.{k}: expected [low, high], got {v}")
        if self.distance[0] <= 0.8:
            raise ConfigError(f"camera.distance: the camera must stay outside the unit object, got {self.distance}")


@dataclass
class RenderConfig(Config):
    image_size: int = 64
    supersample: int = 2
    light_variation: float = 1.0
    save_depth: bool = False
    occluder_bank: int = 48

    def validate(self) -> None:
        if self.image_size < 32:
            raise ConfigError(f"render.image_size must be >= 32 (ImageNet-C corruptions), got {self.image_size}")
        if not 1 <= self.supersample <= 4:
            raise ConfigError(f"render.supersample must be in 1..4, got {self.supersample}")


def _check_categories(names: List[str], where: str) -> None:
    for n in names:
        get_category(n)  # raises DataError with a hint
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: duplicate categories in {names}")


@dataclass
class ViewsConfig(Config):
    categories: List[str] = field(default_factory=lambda: list(DEFAULT_KNOWN))
    n_procedural: int = 0            # extra procedural categories (scaling experiments)
    procedural_seed: int = 0
    unknown_categories: List[str] = field(default_factory=lambda: list(DEFAULT_UNKNOWN))
    unknown_procedural: int = 0
    train_instances: int = 16
    train_views: int = 8
    val_instances: int = 2
    val_views: int = 4
    test_instances: int = 4
    test_views: int = 5
    unknown_instances: int = 4
    unknown_views: int = 5
    backgrounds: Dict[str, float] = field(default_factory=lambda: {"white": 0.2, "texture": 0.5, "clutter": 0.3})
    test_backgrounds: Dict[str, float] = field(default_factory=lambda: {"texture": 0.6, "clutter": 0.4})
    occlusion_levels: List[int] = field(default_factory=lambda: [1, 2, 3])
    corruptions: List[str] = field(default_factory=lambda: list(CORRUPTIONS))
    severity: int = 4
    style_split: bool = True
    camera: CameraConfig = field(default_factory=CameraConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    PROFILES = {
        "smoke": {"categories": ["chair", "stool", "car", "mug"], "unknown_categories": ["bus"],
                  "train_instances": 3, "train_views": 3, "val_instances": 1, "val_views": 1,
                  "test_instances": 1, "test_views": 2, "unknown_instances": 1, "unknown_views": 2,
                  "render": {"occluder_bank": 12}},
        "quick": {},
        "full": {"train_instances": 100, "train_views": 12, "val_instances": 5, "val_views": 10,
                 "test_instances": 20, "test_views": 10, "unknown_instances": 20, "unknown_views": 10,
                 "render": {"image_size": 128}},
    }

    def validate(self) -> None:
        _check_categories(self.categories + self.unknown_categories, "views.categories")
        if set(self.categories) & set(self.unknown_categories):
            raise ConfigError(f"views: categories and unknown_categories overlap: "
                              f"{sorted(set(self.categories) & set(self.unknown_categories))}")
        bad = [c for c in self.corruptions if c not in CORRUPTIONS]
        if bad:
            raise ConfigError(f"views.corruptions: unknown {bad} (valid: {', '.join(CORRUPTIONS)})")
        if any(lv not in (1, 2, 3) for lv in self.occlusion_levels):
            raise ConfigError(f"views.occlusion_levels: expected a subset of [1, 2, 3], got {self.occlusion_levels}")


@dataclass
class MultiViewConfig(Config):
    categories: List[str] = field(default_factory=lambda: list(DEFAULT_KNOWN))
    n_procedural: int = 0
    procedural_seed: int = 0
    train_objects: int = 12          # per category
    test_objects: int = 4
    fine_categories: List[str] = field(default_factory=lambda: ["airplane", "car", "chair"])
    families: int = 6                # per fine category
    fine_train_objects: int = 6      # per family
    fine_test_objects: int = 2
    family_jitter: float = 0.05
    views: int = 12
    elevation_deg: float = 30.0
    distance: float = 3.2
    random_start: bool = False       # random azimuth offset per object (else 0: MVCNN)
    background: str = "white"
    camera: CameraConfig = field(default_factory=CameraConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    PROFILES = {
        "smoke": {"categories": ["chair", "car", "mug"], "train_objects": 2, "test_objects": 1,
                  "fine_categories": ["car"], "families": 2, "fine_train_objects": 2, "fine_test_objects": 1,
                  "render": {"occluder_bank": 8}},
        # 8 fine-grained test objects per family: enough positives for object retrieval (piro)
        "quick": {"fine_test_objects": 8},
        "full": {"train_objects": 60, "test_objects": 20, "families": 12, "fine_train_objects": 20,
                 "fine_test_objects": 5, "render": {"image_size": 128}},
    }

    def validate(self) -> None:
        _check_categories(self.categories, "multiview.categories")
        _check_categories(self.fine_categories, "multiview.fine_categories")
        if self.views < 2:
            raise ConfigError(f"multiview.views must be >= 2, got {self.views}")


@dataclass
class CollectionConfig(Config):
    category: str = "bird"
    train_instances: int = 1200
    test_instances: int = 200
    views_per_instance: int = 1
    crop_padding: Optional[float] = 0.05
    """Square object-centred crop with this padding (CMR-style; the crop's zoom varies with the view:
    a car seen from the front is magnified ~2.5x against one seen from the side). ``None``: no crop,
    the camera's own focal length and principal point (ShapeNet-NMR-style renders: with a fixed
    ``camera.distance`` the object's image size depends on its pose only)."""
    textured_variant: bool = True
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(elevation_deg=[-10.0, 40.0],
                                                                      theta_deg=[-8.0, 8.0], principal_jitter=0.0))
    render: RenderConfig = field(default_factory=lambda: RenderConfig(save_depth=True))

    PROFILES = {
        "smoke": {"train_instances": 24, "test_instances": 8, "render": {"occluder_bank": 8}},
        "quick": {},
        "full": {"train_instances": 6000, "test_instances": 1000, "render": {"image_size": 128}},
    }

    def validate(self) -> None:
        _check_categories([self.category], "collection.category")


@dataclass
class RetrievalConfig(Config):
    categories: List[str] = field(default_factory=lambda: ["bed", "chair", "sofa", "table"])
    shapes_per_category: int = 25
    train_images_per_shape: int = 8
    test_images_per_shape: int = 2
    fine_category: str = "car"
    fine_families: int = 10
    fine_shapes: int = 60
    fine_train_images_per_shape: int = 8
    fine_test_images_per_shape: int = 2
    family_jitter: float = 0.05
    materials_per_photo: bool = False  # True: new colours/textures for every photo of a shape
    materials_per_photo_splits: List[str] = field(default_factory=list)
    """With ``materials_per_photo``: only the photos of these splits get new materials, the others share
    the shape's one set (e.g. ``[test, fine_test]``: training photos keep each shape's colours and test
    photos have colours never seen with that shape, as real photos against their training set).
    Empty: every split."""
    render_views: int = 12
    render_elevation_deg: float = 30.0
    render_distance: float = 2.8
    render_size: int = 64
    backgrounds: Dict[str, float] = field(default_factory=lambda: {"texture": 0.6, "clutter": 0.4})
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(elevation_deg=[0.0, 40.0]))
    render: RenderConfig = field(default_factory=RenderConfig)

    PROFILES = {
        "smoke": {"shapes_per_category": 3, "train_images_per_shape": 3, "test_images_per_shape": 1,
                  "fine_families": 2, "fine_shapes": 6, "fine_train_images_per_shape": 3,
                  "fine_test_images_per_shape": 1, "render": {"occluder_bank": 8}},
        # CompCars has ~40 training photos per car model (3,798 / 94): with 8, the small quick encoders
        # cannot learn car shape at all (cmic's fine-grained runs at chance); 4 test photos per car
        "quick": {"fine_train_images_per_shape": 40, "fine_test_images_per_shape": 4},
        "full": {"shapes_per_category": 80, "train_images_per_shape": 16, "test_images_per_shape": 16,
                 "fine_families": 20, "fine_shapes": 134, "fine_train_images_per_shape": 60,
                 "fine_test_images_per_shape": 60, "render_size": 128, "render": {"image_size": 128}},
    }

    def validate(self) -> None:
        _check_categories(self.categories + [self.fine_category], "retrieval.categories")
        if self.fine_shapes < self.fine_families:
            raise ConfigError("retrieval.fine_shapes must be >= retrieval.fine_families")


PRESETS: Dict[str, Type[Config]] = {"views": ViewsConfig, "multiview": MultiViewConfig,
                                    "collection": CollectionConfig, "retrieval": RetrievalConfig}


def preset_config(preset: str, profile: str = "quick", overrides=None) -> Config:
    if preset not in PRESETS:
        import difflib

        close = difflib.get_close_matches(preset, list(PRESETS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset '{preset}'{hint} (valid: {', '.join(PRESETS)})")
    return PRESETS[preset].for_profile(profile, overrides)


# ============================================================================= plans
@dataclass
class ViewSpec:
    """One rendered view of a job's object and the images derived from it.

    ``derived``: list of ``(split, kind, arg)`` with kind ``occ`` (arg level), ``corrupt`` (arg
    name), ``style`` (arg ``cad``) or ``background`` (arg background kind; same render, new background).
    """

    split: str
    view: int
    azimuth: float
    elevation: float
    theta: float
    distance: float
    background: str = "white"
    principal: Tuple[float, float] = (0.5, 0.5)   # fraction of the image size
    crop_padding: Optional[float] = None
    derived: List[Tuple[str, str, Any]] = field(default_factory=list)


@dataclass
class Job:
    index: int
    category: str
    instance: str
    object_id: int
    params: Dict[str, Any]
    material_seed: int
    seed: int
    views: List[ViewSpec]
    family: str = ""
    variant: str = ""
    known: bool = True
    shape_id: int = -1
    grey_renders: bool = False
    materials_per_view: bool = False  # draw the materials afresh for every view (seed: material_seed, view)
    materials_splits: Tuple[str, ...] = ()  # with materials_per_view: only the views of these splits (empty: all)


def _choice(d: Dict[str, float], rng: np.random.Generator) -> str:
    names = list(d)
    p = np.array([d[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pose(cam: CameraConfig, rng: np.random.Generator) -> Tuple[float, float, float, float, Tuple[float, float]]:
    a = float(rng.uniform(0, 2 * math.pi))
    e = math.radians(float(rng.uniform(*cam.elevation_deg)))
    t = math.radians(float(rng.uniform(*cam.theta_deg)))
    d = float(rng.uniform(*cam.distance))
    j = cam.principal_jitter
    pp = (0.5 + float(rng.uniform(-j, j)), 0.5 + float(rng.uniform(-j, j)))
    return a, e, t, d, pp


class _Planner:
    def __init__(self, preset: str, seed: int):
        self.preset, self.seed = preset, seed
        self.jobs: List[Job] = []
        self.counter: Dict[str, int] = {}

    def rng(self, *key) -> np.random.Generator:
        return np.random.default_rng(stable_seed(self.preset, self.seed, *key))

    def new_instance(self, category: str, params: Dict[str, Any], views: List[ViewSpec], rng: np.random.Generator,
                     **kw) -> Job:
        k = self.counter.get(category, 0)
        self.counter[category] = k + 1
        job = Job(index=len(self.jobs), category=category, instance=f"{category}_{k:05d}", object_id=len(self.jobs),
                  params=params, material_seed=int(rng.integers(2**31 - 1)), seed=int(rng.integers(2**62)),
                  views=views, **kw)
        self.jobs.append(job)
        return job


def _procedural_names(n: int, seed: int) -> List[str]:
    if n <= 0:
        return []
    from .procedural import procedural_categories

    return [c.name for c in procedural_categories(n, seed)]


def plan_views(cfg: ViewsConfig, seed: int) -> Tuple[List[Job], Dict[str, Any]]:
    pl = _Planner("views", seed)
    known = list(cfg.categories) + _procedural_names(cfg.n_procedural, cfg.procedural_seed)
    unknown = list(cfg.unknown_categories) + _procedural_names(cfg.unknown_procedural, cfg.procedural_seed + 10_000)
    derived_test: List[Tuple[str, str, Any]] = [(f"occ_l{lv}", "occ", lv) for lv in cfg.occlusion_levels]
    derived_test += [(f"corrupt_{c}", "corrupt", c) for c in cfg.corruptions]
    if cfg.style_split:
        derived_test.append(("style_cad", "style", "cad"))
    groups = [("train", known, cfg.train_instances, cfg.train_views, cfg.backgrounds, [], True),
              ("val", known, cfg.val_instances, cfg.val_views, cfg.test_backgrounds, [], True),
              ("test", known, cfg.test_instances, cfg.test_views, cfg.test_backgrounds, derived_test, True),
              ("unknown", unknown, cfg.unknown_instances, cfg.unknown_views, cfg.test_backgrounds, [], False)]
    for split, cats, n_inst, n_views, bgs, derived, is_known in groups:
        for cat in cats:
            for i in range(n_inst):
                rng = pl.rng(split, cat, i)
                params = sample_params(cat, rng)
                views = []
                for v in range(n_views):
                    a, e, t, d, pp = _pose(cfg.camera, rng)
                    views.append(ViewSpec(split, v, a, e, t, d, _choice(bgs, rng), pp, None, list(derived)))
                pl.new_instance(cat, params, views, rng, known=is_known)
    splits = ["train", "val", "test"] + [s for s, _, _ in derived_test] + (["unknown"] if unknown else [])
    extra = {"categories": known, "unknown_categories": unknown, "splits": splits}
    return pl.jobs, extra


def plan_multiview(cfg: MultiViewConfig, seed: int) -> Tuple[List[Job], Dict[str, Any]]:
    pl = _Planner("multiview", seed)
    cats = list(cfg.categories) + _procedural_names(cfg.n_procedural, cfg.procedural_seed)
    V = cfg.views
    e = math.radians(cfg.elevation_deg)

    def ring(split: str, rng) -> List[ViewSpec]:
        a0 = float(rng.uniform(0, 2 * math.pi)) if cfg.random_start else 0.0
        return [ViewSpec(split, v, (a0 + 2 * math.pi * v / V) % (2 * math.pi), e, 0.0, cfg.distance, cfg.background)
                for v in range(V)]

    for split, n in (("train", cfg.train_objects), ("test", cfg.test_objects)):
        for cat in cats:
            for i in range(n):
                rng = pl.rng(split, cat, i)
                pl.new_instance(cat, sample_params(cat, rng), ring(split, rng), rng, variant="coarse")
    families: List[str] = []
    for cat in cfg.fine_categories:
        for f in range(cfg.families):
            frng = pl.rng("family", cat, f)
            proto = sample_family(cat, frng)
            fam = f"{cat}.f{f:02d}"
            families.append(fam)
            for split, n in (("fine_train", cfg.fine_train_objects), ("fine_test", cfg.fine_test_objects)):
                for i in range(n):
                    rng = pl.rng(split, fam, i)
                    params = family_instance(cat, proto, rng, cfg.family_jitter)
                    pl.new_instance(cat, params, ring(split, rng), rng, family=fam, variant="fine")
    splits = ["train", "test"] + (["fine_train", "fine_test"] if families else [])
    return pl.jobs, {"categories": cats, "families": families, "fine_categories": list(cfg.fine_categories),
                     "splits": splits}


def plan_collection(cfg: CollectionConfig, seed: int) -> Tuple[List[Job], Dict[str, Any]]:
    pl = _Planner("collection", seed)
    cat = cfg.category
    for split, n in (("train", cfg.train_instances), ("test", cfg.test_instances)):
        for i in range(n):
            rng = pl.rng(split, cat, i)
            params = sample_params(cat, rng)
            views = []
            for v in range(cfg.views_per_instance):
                a, e, t, d, _ = _pose(cfg.camera, rng)
                derived = [(f"{split}_textured", "background", "texture" if rng.random() < 0.6 else "clutter")] \
                    if cfg.textured_variant else []
                views.append(ViewSpec(split, v, a, e, t, d, "white", (0.5, 0.5), cfg.crop_padding, derived))
            pl.new_instance(cat, params, views, rng)
    splits = ["train", "test"] + (["train_textured", "test_textured"] if cfg.textured_variant else [])
    return pl.jobs, {"categories": [cat], "splits": splits}


def plan_retrieval(cfg: RetrievalConfig, seed: int) -> Tuple[List[Job], Dict[str, Any]]:
    pl = _Planner("retrieval", seed)
    shape_id = 0
    looks = dict(grey_renders=True, materials_per_view=cfg.materials_per_photo,
                 materials_splits=tuple(cfg.materials_per_photo_splits))

    def images(n_train: int, n_test: int, tr: str, te: str, rng) -> List[ViewSpec]:
        out = []
        for k in range(n_train + n_test):
            a, e, t, d, pp = _pose(cfg.camera, rng)
            split = tr if k < n_train else te
            out.append(ViewSpec(split, k, a, e, t, d, _choice(cfg.backgrounds, rng), pp))
        return out

    for cat in cfg.categories:
        for i in range(cfg.shapes_per_category):
            rng = pl.rng("multi", cat, i)
            views = images(cfg.train_images_per_shape, cfg.test_images_per_shape, "train", "test", rng)
            pl.new_instance(cat, sample_params(cat, rng), views, rng, variant="multi", shape_id=shape_id, **looks)
            shape_id += 1
    families = []
    cat = cfg.fine_category
    protos = []
    for f in range(cfg.fine_families):
        protos.append(sample_family(cat, pl.rng("family", cat, f)))
        families.append(f"{cat}.f{f:02d}")
    for i in range(cfg.fine_shapes):
        f = i % cfg.fine_families
        rng = pl.rng("fine", cat, i)
        params = family_instance(cat, protos[f], rng, cfg.family_jitter)
        views = images(cfg.fine_train_images_per_shape, cfg.fine_test_images_per_shape, "fine_train", "fine_test", rng)
        pl.new_instance(cat, params, views, rng, variant="fine", family=families[f], shape_id=shape_id, **looks)
        shape_id += 1
    cats = list(dict.fromkeys(list(cfg.categories) + [cat]))
    return pl.jobs, {"categories": cats, "families": families, "splits": ["train", "test", "fine_train", "fine_test"]}


PLANNERS = {"views": plan_views, "multiview": plan_multiview, "collection": plan_collection,
            "retrieval": plan_retrieval}


def plan(preset: str, cfg: Config, seed: int) -> Tuple[List[Job], Dict[str, Any]]:
    return PLANNERS[preset](cfg, seed)
