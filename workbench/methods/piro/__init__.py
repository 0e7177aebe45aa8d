"""PiRO: dual pose-invariant category and object embeddings (Sarkar & Kak, CVPR 2024).

A shared CNN backbone embeds every view of an object; a *category* head and an *object* head
map it into two spaces; a single-head self-attention block per space pools the unordered views
into multi-view embeddings. The category space is trained with a large-margin softmax (L_cat)
and a pose-invariant clustering loss (L_picat); the object space with a pose-invariant ranking
loss (L_piobj) that separates the *confusers* -- the closest views of two different objects of
the same category. Evaluation covers eight tasks: single/multi-view category/object
recognition (kNN) and retrieval (mAP).

Modules: :mod:`.config` (``PiroConfig``), :mod:`.model` (``PiroNet``), :mod:`.losses`,
:mod:`.sampler` (same-category pairs), :mod:`.data` (multi-view splits), :mod:`.train`,
:mod:`.retrieval` (protocol: kNN via faiss or torch, mAP, rho), :mod:`.evaluate`,
:mod:`.baselines` (variants), :mod:`.paper`, :mod:`.tables`, :mod:`.viz`.

Quick use::

    from workbench.methods.piro import PiroConfig, train, evaluate
    cfg = PiroConfig.for_profile("smoke")
    train(cfg, "runs/piro/demo"); metrics = evaluate(cfg, "runs/piro/demo")
"""
from __future__ import annotations

from .. import MethodSpec
from .baselines import VARIANTS, get_variant, variant_config
from .config import PiroConfig
from .evaluate import evaluate
from .tables import tables
from .train import train

METHOD = MethodSpec(
    name="piro",
    config_cls=PiroConfig,
    train=train,
    evaluate=evaluate,
    variants=VARIANTS,
    main_variants=("piro_de", "piro_se", "pi_cnn"),  # Table 1 (dual vs single) + the classic PI baseline
    headline=(("SV category acc", "sv_cat_acc"), ("SV object acc", "sv_obj_acc"), ("SV object mAP", "sv_obj_map")),
    presets=("multiview",),
    tables=tables,
    description=("PiRO (CVPR 2024): dual pose-invariant category and object embeddings from multi-view "
                 "images; single/multi-view category and object recognition and retrieval."),
)

__all__ = ["METHOD", "PiroConfig", "train", "evaluate", "tables", "VARIANTS", "get_variant", "variant_config"]
