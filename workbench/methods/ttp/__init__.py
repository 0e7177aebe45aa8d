"""TTP: correspondence-driven monocular category reconstruction (Kokkinos & Kokkinos, NeurIPS 2021).

"To The Point: Correspondence-driven monocular 3D category reconstruction". A CNN regresses the
2D image position and the visibility of every vertex of a category template; a differentiable
solver layer then finds the weak-perspective camera (axis-angle pose, Levenberg-Marquardt forward,
implicit-function-theorem backward) and a low-rank deformation of the template (closed-form ridge
solve), alternating for a few iterations. Losses on the rendered silhouette and texture, on the
points (silhouette chamfer, cycle, visibility, equivariance) and shape priors train it without 3D
supervision.

Modules: :mod:`.solver` (the solver layer, reusable on its own), :mod:`.template` (mean-shape
templates from the synthetic world), :mod:`.model`, :mod:`.rendering` (screen-space rendering),
:mod:`.augment` (equivariance bookkeeping), :mod:`.losses`, :mod:`.priors` (Laplacian, ARAP),
:mod:`.occupancy` (solid occupancy of part unions, for templates and 3D IoU),
:mod:`.data`, :mod:`.train`, :mod:`.evaluate`, :mod:`.baselines` (variants, tables),
:mod:`.paper` (reported numbers), :mod:`.viz` (figures and notebook widgets).
"""
from .. import MethodSpec
from .baselines import VARIANTS, tables
from .config import TTPConfig
from .evaluate import evaluate
from .train import train

METHOD = MethodSpec(
    name="ttp",
    config_cls=TTPConfig,
    train=train,
    evaluate=evaluate,
    variants=VARIANTS,
    main_variants=("full", "rigid", "kp", "rigid_kp"),  # Table 1: non-rigid vs rigid, with/without keypoints
    headline=(("mask IoU", "miou"), ("3D IoU", "iou3d"), ("3D IoU (template)", "iou3d_template")),
    presets=("collection",),
    tables=tables,
    description=("TTP (NeurIPS 2021): regress template-vertex positions and visibility, solve the "
                 "weak-perspective pose (implicitly differentiated) and a low-rank deformation "
                 "(closed form) per image; monocular category mesh reconstruction."),
)

__all__ = ["METHOD", "TTPConfig", "train", "evaluate", "tables", "VARIANTS"]
