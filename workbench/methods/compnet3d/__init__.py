"""3D-CompNets: scalable 3D compositional models for robust classification and pose (ICCV 2025).

A neural mesh model: one cuboid mesh per category whose vertices carry unit features learned by
contrast with the backbone's features at the vertices' projections (ground-truth pose). The
loss is *grouped*: each vertex contrasts with its own class's vertices and the background bank,
and with only ``N`` sampled vertices of each other class, weighted by a confusion matrix measured
on a calibration split (pairs below 0.05 dropped). Classification matches the feature map against
every vertex (eq 7, no rendering); pose is render-and-compare on the predicted class's mesh.

Variants (config overrides of the one model): ``compnet3d`` (N = 32 in full; 16 in the CPU
profiles, whose meshes have 80 vertices), ``compnet3d_n64``, ``compnet3d_noweights`` (ablation:
grouped contrast, every pair at weight 1), ``novum`` (full cross-class contrast, no weights: the
NOVUM baseline) and ``dualhead`` (the same backbone with class + pose-bin heads trained with
cross-entropy: the paper's ResNet/DINOv2 rows).
``model.backbone=vit_b`` gives the ViT-B/14 rows.

What to expect from the CPU profiles (measured, ``quick``: 13 categories, 64 px images, small CNN
from scratch, 800 iterations (1200 measured before; cut to fit `make demo` on 2 cores), one seed, 104 images per split, so about +-5 points of noise):
the mesh models are far from converged (their validation accuracy still climbs at the end; the
paper starts from ImageNet weights and trains 12-100 epochs). The confusion weights (eqs 4-5)
slow learning in this regime: a weak early classifier gives diffuse confusion rows whose entries
(0.05-0.3) scale the cross-class term far below NOVUM's weight 1; grouped contrast with every
weight at 1 (``compnet3d_noweights``) matches NOVUM's accuracy in less time. Without the random
zoom/shift augmentation (``augment``) the vertex features learn image position instead of parts.
Pose accuracy stays near the chance level (~14-17% at pi/6) for all models at this budget.

Modules: ``losses`` (eqs 2-5 + FLOP count), ``bank`` (eq 6, background FIFO), ``confusion``
(eqs 4-5), ``classify`` (eq 7), ``pose`` (eq 8), ``correspond`` (projections + visibility),
``model``, ``data``, ``train``, ``evaluate``, ``tables``/``paper`` (paper-layout tables), ``viz``.
"""
from __future__ import annotations

from ..import MethodSpec, Variant
from .config import CompNet3DConfig
from .evaluate import evaluate
from .tables import combined_tables
from .train import train

VARIANTS = (
    Variant("compnet3d", {}, "3D-CompNets: grouped contrast (N=32) with confusion weights"),
    Variant("compnet3d_n64", {"loss": {"n_sample": 64}}, "3D-CompNets with N=64 sampled vertices per class"),
    Variant("compnet3d_noweights", {"loss": {"use_weights": False}},
            "ablation: grouped contrast with every class pair at weight 1 (no confusion weights)"),
    Variant("novum", {"loss": {"contrast": "full", "use_weights": False}},
            "NOVUM baseline: full cross-class contrast, no grouping, no weights"),
    Variant("dualhead", {"model": {"kind": "dualhead"}},
            "DNN baseline: same backbone, class logits + 3x40 pose bins, cross-entropy"),
)

METHOD = MethodSpec(
    name="compnet3d",
    config_cls=CompNet3DConfig,
    train=train,
    evaluate=evaluate,
    variants=VARIANTS,
    main_variants=("compnet3d", "novum", "dualhead"),  # Table 1 rows: ours, NOVUM, the DNN
    headline=(("IID accuracy", "metrics.test.acc"), ("L3 occlusion accuracy", "metrics.occ_l3.acc"),
              ("IID pose acc pi/6", "metrics.test.pose_acc_pi6")),
    presets=("views",),
    tables=combined_tables,
    description=__doc__.splitlines()[0],
)

__all__ = ["METHOD", "VARIANTS", "CompNet3DConfig", "train", "evaluate"]
