"""CMIC: single-image 3D shape retrieval by cross-modal instance and category contrastive learning.

Lin, Yang, Wang, Lai, Jia, Zhao, Gao, "Single Image 3D Shape Retrieval via Cross-Modal Instance
and Category Contrastive Learning", ICCV 2021.

A query photo (RGB + object mask) and a 3D shape (12 grey flat-shaded renders) are embedded in one
128-D space; the shape embedding is a query-conditioned attention over its view embeddings; the
encoders are trained with an instance contrastive loss plus 0.2 x a category contrastive loss, on
queries re-coloured with the colours of other queries of the batch (Reinhard colour transfer).

Modules: :mod:`.config` (profiles), :mod:`.colour` (colour spaces, colour transfer, HSV jitter),
:mod:`.augment` (geometric augmentation), :mod:`.model` (encoders, view attention),
:mod:`.losses`, :mod:`.retrieval` (chunked repository scoring), :mod:`.data` (in-memory queries,
repositories, batch sampler), :mod:`.train`, :mod:`.evaluate`, :mod:`.baselines` (variants,
tables), :mod:`.paper` (reported numbers), :mod:`.viz` (figures and notebook widgets).
"""
from .. import MethodSpec
from .baselines import VARIANTS, tables
from .config import CMICConfig
from .evaluate import evaluate
from .train import train

METHOD = MethodSpec(
    name="cmic",
    config_cls=CMICConfig,
    train=train,
    evaluate=evaluate,
    variants=VARIANTS,
    main_variants=("full", "aug_none", "no_cat"),  # Table 2: colour augmentation and category loss
    headline=(("top-1", "top1"), ("top-10", "top10"), ("category acc", "category_acc")),
    presets=("retrieval",),
    tables=tables,
    description=("CMIC (ICCV 2021): single-image 3D shape retrieval with a query-conditioned attention "
                 "over 12 grey renders, instance + category contrastive losses and colour-transfer "
                 "augmentation."),
)

__all__ = ["METHOD", "CMICConfig", "train", "evaluate", "tables", "VARIANTS"]
