"""Environment report for ``notebooks/00_setup.ipynb``: versions, device, render backend,
figure export, data/runs directories and which real datasets of the manifest are present.

Everything is collected defensively: a missing optional package is reported as "not installed",
never raised.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Any

import pandas as pd

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "roma", "kornia", "open3d", "pytorch3d",
            "plotly", "kaleido", "matplotlib", "ipywidgets", "anywidget", "jupyterlab", "umap", "pooch")


_DISTRIBUTIONS = {"umap": "umap-learn", "open3d": ("open3d-cpu", "open3d")}


def _version(mod: str) -> str:
    """Installed version from the package metadata (no import: open3d/umap imports take seconds)."""
    from importlib import metadata

    names = _DISTRIBUTIONS.get(mod, mod)
    for name in (names if isinstance(names, tuple) else (names,)):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:   # not pip-installed (conda, source build): import it
        m = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 - ImportError, OSError from native libs, ...
        return "not installed" if isinstance(e, ImportError) else f"import failed ({type(e).__name__})"
    return str(getattr(m, "__version__", "installed"))


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{package: version or 'not installed'}`` (``umap`` is umap-learn)."""
    return {("umap-learn" if p == "umap" else p): _version(p) for p in packages}


def device_info() -> dict[str, str]:
    import torch

    from ..core.device import get_device

    info = {"device (auto)": str(get_device("auto")), "CUDA available": str(torch.cuda.is_available()),
            "CPU threads (torch)": str(torch.get_num_threads()), "CPU cores": str(os.cpu_count())}
    if torch.cuda.is_available():
        info["GPU"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        info["CUDA (torch build)"] = str(torch.version.cuda)
    return info


def render_info() -> dict[str, str]:
    try:
        from ..render.backend import ENV_VAR, get_backend, pytorch3d_available
    except ImportError as e:
        return {"render backend": f"unavailable ({e})"}
    try:
        backend = get_backend("auto")
    except Exception as e:  # noqa: BLE001 - a bad env value is reported, not raised
        backend = f"error: {e}"
    return {"render backend": backend, "pytorch3d backend available": str(pytorch3d_available()),
            ENV_VAR: os.environ.get(ENV_VAR, "(unset)")}


def export_info() -> dict[str, str]:
    from .export import find_chrome

    chrome = find_chrome()
    kal = _version("kaleido")
    if chrome and kal not in ("not installed",):
        how = "kaleido + Chromium (PNG/SVG/PDF)"
    elif kal == "not installed":
        how = "matplotlib / HTML fallback (kaleido not installed)"
    else:
        how = "matplotlib / HTML fallback (no Chrome/Chromium)"
    return {"figure export": how, "browser": chrome or "none found"}


def paths_info() -> dict[str, str]:
    from ..core.paths import data_dir, outputs_dir, runs_dir

    out = {}
    for name, fn, env in (("data dir", data_dir, "WB_DATA_DIR"), ("runs dir", runs_dir, "WB_RUNS_DIR"),
                          ("outputs dir", outputs_dir, "WB_OUTPUTS_DIR")):
        p = fn()
        state = "exists" if p.is_dir() else "missing (created on first use)"
        out[name] = f"{p} [{state}; ${env}={'set' if os.environ.get(env) else 'unset'}]"
    return out


def dataset_status() -> pd.DataFrame:
    """Datasets of the data manifest (``workbench.data.list_datasets``) and their local status:
    real datasets ``present``/``missing`` under the data dir, synthetic presets generated or not.

    Never raises: a missing or invalid manifest is reported as a one-row table with the error.
    """
    try:
        from ..data import list_datasets

        return list_datasets()
    except Exception as e:  # noqa: BLE001 - ImportError, ManifestError, ...: report, do not fail
        return pd.DataFrame([{"name": "(data manifest unavailable)", "status": f"{type(e).__name__}: {e}"}])


def environment_report() -> pd.DataFrame:
    """One table ``section | item | value`` with everything above (datasets separately:
    :func:`dataset_status`)."""
    from ..core.config import resolve_profile

    rows: list[dict[str, Any]] = []

    def add(section: str, d: dict[str, str]) -> None:
        rows.extend({"section": section, "item": k, "value": v} for k, v in d.items())

    try:
        prof = resolve_profile(None)
    except Exception as e:  # noqa: BLE001
        prof = f"invalid: {e}"
    add("system", {"python": sys.version.split()[0], "platform": platform.platform(),
                   "executable": sys.executable,
                   "WB_PROFILE": f"{os.environ.get('WB_PROFILE', '(unset)')} -> {prof}"})
    add("device", device_info())
    add("packages", package_versions())
    add("rendering", render_info())
    add("figures", export_info())
    add("paths", paths_info())
    return pd.DataFrame(rows)


def report_text(df: pd.DataFrame | None = None) -> str:
    """The report as aligned plain text (for logs and the CLI)."""
    df = environment_report() if df is None else df
    width = int(df["item"].str.len().max()) + 2
    lines, last = [], None
    for _, r in df.iterrows():
        if r["section"] != last:
            lines.append(f"[{r['section']}]")
            last = r["section"]
        lines.append(f"  {r['item']:<{width}}{r['value']}")
    return "\n".join(lines)


__all__ = ["environment_report", "dataset_status", "package_versions", "device_info", "render_info",
           "export_info", "paths_info", "report_text"]
