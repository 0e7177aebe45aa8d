"""PiRO's variants and baselines, all as config overrides of the one model.

=================  =======================================================================
``piro_de``        PiRO, dual spaces, L_cat + L_picat + L_piobj (the method)
``piro_se``        single space, L_cat + L_piobj (the official ``trainPiRO_Single.py``)
``se_cat``         Table 4: single space, L_cat only
``se_all``         Table 4: single space, all three losses
``de_cat_piobj``   Table 4: dual spaces, L_cat + L_piobj
``pi_cnn``         Ho et al.'s PI-CNN (view-to-object x object-to-category softmax), one space, no attention
``pi_proxy``       PI-Proxy (proxy-NCA form of the same model)
``pi_tc``          PI-TC (triplet-centre form)
``mvcnn``          MV-CNN: cross-entropy on the view-averaged embedding, one space, no attention
``piro_de_coarse`` PiRO-DE on the coarse categories (``train``/``test``, ModelNet-40-like)
``piro_se_coarse`` PiRO-SE on the coarse categories
=================  =======================================================================

All but the ``*_coarse`` variants use the default data subset, the fine-grained families
(``fine_train``/``fine_test``, FG3D-like), where the dual space matters most.
"""
from __future__ import annotations

from .. import Variant

_SE = {"model": {"dual": False}}
_PIE = {"model": {"dual": False, "attention": False}}

VARIANTS: tuple[Variant, ...] = (
    Variant("piro_de", {}, "PiRO-DE: dual category/object spaces, L_cat + L_picat + L_piobj"),
    Variant("piro_se", {**_SE, "loss": {"use_picat": False}},
            "PiRO-SE: a single space, L_cat + L_piobj (official single-space trainer)"),
    Variant("pi_cnn", {**_PIE, "loss": {"objective": "pi_cnn"}}, "PI-CNN (Ho et al. 2019)"),
    Variant("pi_proxy", {**_PIE, "loss": {"objective": "pi_proxy"}}, "PI-Proxy (Ho et al. 2019)"),
    Variant("pi_tc", {**_PIE, "loss": {"objective": "pi_tc"}}, "PI-TC (Ho et al. 2019)"),
    Variant("se_cat", {**_SE, "loss": {"use_picat": False, "use_piobj": False}},
            "Table 4: single space, L_cat"),
    Variant("se_all", _SE, "Table 4: single space, L_cat + L_piobj + L_picat"),
    Variant("de_cat_piobj", {"loss": {"use_picat": False}}, "Table 4: dual spaces, L_cat + L_piobj"),
    Variant("mvcnn", {**_PIE, "loss": {"objective": "mvcnn"}}, "MV-CNN: view pooling + cross-entropy"),
    Variant("piro_de_coarse", {"data": {"subset": "coarse"}},
            "PiRO-DE on the coarse everyday categories (ModelNet-40-like)"),
    Variant("piro_se_coarse", {**_SE, "data": {"subset": "coarse"}, "loss": {"use_picat": False}},
            "PiRO-SE on the coarse everyday categories (ModelNet-40-like)"),
)

#: Variant name -> row label in the paper's tables.
TABLE2_ROWS = {"pi_cnn": "PI-CNN", "pi_proxy": "PI-Proxy", "pi_tc": "PI-TC", "piro_se": "PiRO-SE",
               "piro_de": "PiRO-DE", "mvcnn": "MV-CNN"}
#: Table 1 rows: (space, variant) per data subset.
TABLE1_ROWS = (("Single", "piro_se"), ("Dual", "piro_de"), ("Single", "piro_se_coarse"), ("Dual", "piro_de_coarse"))
TABLE4_ROWS = {"se_cat": "Single: L_cat", "piro_se": "Single: L_cat + L_piobj",
               "se_all": "Single: L_cat + L_piobj + L_picat", "de_cat_piobj": "Dual: L_cat + L_piobj",
               "piro_de": "Dual: L_cat + L_piobj + L_picat"}


def get_variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    from ...core.errors import ConfigError

    raise ConfigError(f"unknown piro variant '{name}' (valid: {', '.join(v.name for v in VARIANTS)})")


def variant_config(name: str, profile: str | None = None, overrides=None):
    """The config of a variant at a profile (defaults -> profile -> variant -> overrides)."""
    from ...core.config import deep_merge, parse_overrides
    from .config import PiroConfig

    merged = deep_merge(PiroConfig().to_dict(), PiroConfig.profile_overrides(profile))
    merged = deep_merge(merged, get_variant(name).overrides_for(profile))
    merged = deep_merge(merged, parse_overrides(overrides))
    return PiroConfig.from_dict(merged)
