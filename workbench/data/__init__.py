"""workbench.data: the synthetic 3D world, dataset generation, task datasets, real-dataset adapters
and the data manifest.

Entry points (the CLI ``workbench data ...`` wraps the first four):

* ``generate(preset, profile="quick", seed=0, out=None, workers=None, overrides=None) -> Path``
  (presets ``views``, ``multiview``, ``collection``, ``retrieval``; cached under ``$WB_DATA_DIR``);
* ``list_datasets() -> DataFrame``, ``fetch(name) -> Path``, ``check(name, root=None) -> dict``
  (driven by ``data_manifest.yaml``);
* ``DatasetIndex(root)`` -- the validated on-disk schema; ``read_dataset(name, root)`` -- adapters;
* task datasets ``ViewsDataset``, ``MultiViewDataset``, ``ObjectPairDataset``, ``CollectionDataset``,
  ``RetrievalDataset``, ``ShapeRepository``; augmentation hooks in ``workbench.data.transforms``;
* the world: ``NAMED_CATEGORIES``, ``get_category``, ``sample_params``, ``make_object``,
  ``procedural_categories``; rendering ``render_views``; ``contact_sheet`` / ``category_sheet``.

Heavy modules (torch datasets, open3d rendering) are imported lazily.
"""
from __future__ import annotations

import importlib
from typing import Any

# ``generate`` is both a submodule and its main function: import it eagerly so that the package
# attribute is the function (importing the submodule would otherwise bind the module to it).
from .generate import generate  # noqa: E402,F401  (light: numpy/pandas; torch and open3d load on first use)

_LAZY = {
    "default_output": ".generate", "GENERATOR_VERSION": ".generate",
    "clean_partials": ".generate",
    "list_datasets": ".manifest", "fetch": ".manifest", "check": ".manifest", "load_manifest": ".manifest",
    "DatasetIndex": ".schema", "COLUMNS": ".schema",
    "read_dataset": ".adapters", "ADAPTERS": ".adapters",
    "ViewsDataset": ".datasets", "MultiViewDataset": ".datasets", "ObjectPairDataset": ".datasets",
    "CollectionDataset": ".datasets", "RetrievalDataset": ".datasets", "ShapeRepository": ".datasets",
    "PRESETS": ".presets", "preset_config": ".presets", "ViewsConfig": ".presets", "MultiViewConfig": ".presets",
    "CollectionConfig": ".presets", "RetrievalConfig": ".presets",
    "NAMED_CATEGORIES": ".world", "CATEGORIES": ".world", "get_category": ".world", "sample_params": ".world",
    "sample_family": ".world", "family_instance": ".world", "make_object": ".world", "ObjectModel": ".world",
    "reference_cuboid": ".world", "resample_materials": ".world",
    "procedural_categories": ".procedural",
    "render_views": ".shading", "Light": ".shading",
    "contact_sheet": ".contact", "category_sheet": ".contact", "write_contact_sheets": ".contact",
    "corrupt": ".corruptions", "CORRUPTIONS": ".corruptions",
}

__all__ = sorted(list(_LAZY) + ["generate"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(_LAZY[name], __name__)
        val = getattr(mod, name)
        globals()[name] = val
        return val
    raise AttributeError(f"module 'workbench.data' has no attribute '{name}'")


def __dir__():
    return __all__
