"""UNICORN: unsupervised single-view textured mesh reconstruction by cross-instance consistency.

"Share With Thy Neighbors: Single-View Reconstruction by Cross-Instance Consistency" (Monnier,
Fisher, Efros, Aubry; ECCV 2022). A structured autoencoder maps one image to a shape code
(deforming an ellipsoid template), a texture code (UV map generator), a background code, an
anisotropic scale and K pose candidates with probabilities; the layered soft rasterizer renders
the reconstruction, trained from images alone with progressive conditioning, swap reconstruction
against a memory bank of neighbours, and alternate 3D / pose steps.

Modules: :mod:`.config`, :mod:`.model` (template, deformation field, generator, pose heads,
renderer), :mod:`.losses`, :mod:`.bank` (memory bank, viewpoint bins), :mod:`.data`,
:mod:`.train`, :mod:`.evaluate`, :mod:`.shape_metrics` (the evaluation protocol on
``workbench.geometry``'s sampling, Chamfer-L1 and ICP),
:mod:`.baselines` (ablations, tables), :mod:`.paper` (reported numbers), :mod:`.viz` (figures).
"""
from .. import MethodSpec
from .baselines import VARIANTS, tables
from .config import UnicornConfig
from .evaluate import evaluate
from .train import train

METHOD = MethodSpec(
    name="unicorn",
    config_cls=UnicornConfig,
    train=train,
    evaluate=evaluate,
    variants=VARIANTS,
    main_variants=("full", "no_swap"),  # Table 2 (ours) + the key Table 3 ablation
    headline=(("Chamfer-L1 (ICP)", "chamfer_l1_icp"), ("template Chamfer-L1 (ICP)", "template_chamfer_l1_icp"),
              ("mask IoU", "mask_iou")),
    presets=("collection",),
    tables=tables,
    description=("UNICORN (ECCV 2022): structured autoencoder (shape, texture, background, K poses) trained "
                 "from single images with a layered soft rasterizer, progressive conditioning, swap "
                 "reconstruction and alternate 3D/pose steps."),
)

__all__ = ["METHOD", "UnicornConfig", "train", "evaluate", "tables", "VARIANTS"]
