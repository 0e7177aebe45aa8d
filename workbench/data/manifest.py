"""The data manifest (``data_manifest.yaml`` at the top of the repository): list, fetch, check.

* :func:`load_manifest` validates the YAML (schema in the module source, errors name the entry
  and field).
* :func:`list_datasets` -> a ``pandas.DataFrame`` (name, kind, access, methods, licence, local status).
* :func:`fetch` downloads ``access: download`` files through ``pooch`` with sha256 verification
  (a mismatch raises :class:`~workbench.core.errors.ManifestError` and leaves no file behind),
  unpacks them into a hidden temporary directory that is renamed into place when complete, then
  runs :func:`check`. ``generated`` entries run :func:`workbench.data.generate`; ``manual`` entries
  raise with their instructions.
* :func:`check` validates a local copy: the entry's adapter must read it (errors name the file
  and what was expected) and the ``layout`` globs are reported.

The manifest is found at ``$WB_MANIFEST``, else the repository top level next to the package.
"""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd
import yaml

from ..core.errors import DataError, ManifestError
from ..core.io import atomic_dir
from ..core.paths import data_dir

log = logging.getLogger(__name__)

__all__ = ["manifest_path", "load_manifest", "list_datasets", "fetch", "check", "dataset_root"]

ACCESS = ("generated", "download", "manual", "bundled")
KINDS = ("synthetic", "real")
REQUIRED = ("kind", "access", "license", "homepage", "citation", "methods", "layout")
METHODS = ("compnet3d", "piro", "unicorn", "cmic", "ttp")


def manifest_path() -> Path:
    env = os.environ.get("WB_MANIFEST")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data_manifest.yaml"


def load_manifest(path: str | os.PathLike | None = None) -> Dict[str, Any]:
    """Read and validate the manifest; returns the parsed mapping."""
    path = Path(path) if path is not None else manifest_path()
    if not path.is_file():
        raise ManifestError(f"data manifest not found: {path} (set WB_MANIFEST or run from the repository)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("datasets"), dict):
        raise ManifestError(f"{path}: expected 'schema_version: 1' and a 'datasets' mapping")
    from .adapters import ADAPTERS
    from .presets import PRESETS

    for name, e in data["datasets"].items():
        where = f"{path}: datasets.{name}"
        if not isinstance(e, dict):
            raise ManifestError(f"{where}: expected a mapping")
        miss = [k for k in REQUIRED if k not in e]
        if miss:
            raise ManifestError(f"{where}: missing fields {miss}")
        if e["kind"] not in KINDS:
            raise ManifestError(f"{where}.kind: '{e['kind']}' not in {KINDS}")
        if e["access"] not in ACCESS:
            raise ManifestError(f"{where}.access: '{e['access']}' not in {ACCESS}")
        bad = [m for m in e["methods"] if m not in METHODS]
        if bad:
            raise ManifestError(f"{where}.methods: unknown {bad} (valid: {', '.join(METHODS)})")
        if e["access"] == "generated":
            if e.get("preset") not in PRESETS:
                raise ManifestError(f"{where}.preset: '{e.get('preset')}' is not a preset ({', '.join(PRESETS)})")
        else:
            if e.get("adapter") not in ADAPTERS:
                raise ManifestError(f"{where}.adapter: '{e.get('adapter')}' has no adapter ({', '.join(ADAPTERS)})")
        if e["access"] == "download":
            files = e.get("files")
            if not isinstance(files, list) or not files:
                raise ManifestError(f"{where}.files: a download entry needs a list of files")
            for i, f in enumerate(files):
                for k in ("path", "url", "sha256", "unpack"):
                    if k not in f:
                        raise ManifestError(f"{where}.files[{i}]: missing '{k}'")
                sha = f["sha256"]
                if sha is not None and (not isinstance(sha, str) or len(sha) != 64
                                        or any(c not in "0123456789abcdef" for c in sha.lower())):
                    raise ManifestError(f"{where}.files[{i}].sha256: expected 64 hex digits or null, got {sha!r}")
                if f["unpack"] not in ("zip", "tar", "none"):
                    raise ManifestError(f"{where}.files[{i}].unpack: expected zip, tar or none")
        if e["access"] == "manual" and not e.get("instructions"):
            raise ManifestError(f"{where}: manual entries need 'instructions'")
    return data


def _entry(name: str, manifest: Dict[str, Any]) -> Dict[str, Any]:
    ds = manifest["datasets"]
    if name not in ds:
        import difflib

        close = difflib.get_close_matches(name, list(ds), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ManifestError(f"unknown dataset '{name}'{hint} (see `workbench data list`)")
    return ds[name]


def dataset_root(name: str) -> Path:
    return data_dir() / name


def list_datasets(manifest: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per manifest entry, with the local status (present / missing / generated)."""
    m = load_manifest(manifest)
    rows = []
    for name, e in m["datasets"].items():
        if e["access"] == "generated":
            from .generate import GENERATOR_VERSION

            found = sorted(p.name for p in data_dir().glob(f"{e['preset']}-*-g{GENERATOR_VERSION}*")
                           if (p / "index.parquet").is_file()) if data_dir().is_dir() else []
            status = f"generated: {', '.join(found)}" if found else "not generated"
        else:
            status = "present" if dataset_root(name).is_dir() else "missing"
        rows.append({"name": name, "kind": e["kind"], "access": e["access"], "methods": ", ".join(e["methods"]),
                     "license": e["license"], "homepage": e.get("homepage") or "", "status": status})
    return pd.DataFrame(rows)


def _safe_members_zip(zf: zipfile.ZipFile, dest: Path) -> None:
    for info in zf.infolist():
        target = (dest / info.filename).resolve()
        if not str(target).startswith(str(dest.resolve())):
            raise ManifestError(f"archive member escapes the target directory: {info.filename}")
    zf.extractall(dest)


def _unpack(archive: Path, kind: str, dest: Path, strip: Optional[str]) -> None:
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                _safe_members_zip(zf, dest)
        elif kind == "tar":
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(dest, filter="data")
                except TypeError:  # pragma: no cover - Python without extraction filters
                    tf.extractall(dest)
        else:
            shutil.copy2(archive, dest / archive.name)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        raise ManifestError(f"{archive}: cannot unpack as {kind}: {e}") from None
    if strip:
        inner = dest / strip
        if inner.is_dir():
            for p in list(inner.iterdir()):
                p.rename(dest / p.name)
            inner.rmdir()


def fetch(name: str, root: str | os.PathLike | None = None, manifest: str | os.PathLike | None = None,
          allow_unverified: bool = False, profile: str = "quick", progress: bool = True) -> Path:
    """Make dataset ``name`` available locally and return its root (see the module docstring)."""
    m = load_manifest(manifest)
    e = _entry(name, m)
    if e["access"] == "generated":
        from .generate import generate

        return generate(e["preset"], profile=profile, out=root, progress=progress)
    if e["access"] == "manual":
        target = Path(root) if root else dataset_root(name)
        raise ManifestError(f"'{name}' cannot be downloaded automatically ({e.get('license')}). "
                            f"{e['instructions']} Put it at {target} and run `workbench data check {name}`.")
    import pooch

    target = Path(root) if root else dataset_root(name)
    if target.exists():
        log.info("%s already present at %s; checking", name, target)
        check(name, target, manifest)
        return target
    cache = data_dir() / ".downloads" / name
    cache.mkdir(parents=True, exist_ok=True)
    archives = []
    for f in e["files"]:
        sha = f.get("sha256")
        if sha is None and not allow_unverified:
            raise ManifestError(f"{name}: no sha256 is recorded for {f['url']}; verify the file upstream, add its hash "
                                f"to the manifest, or fetch with allow_unverified=True (the hash is then logged)")
        try:
            got = pooch.retrieve(f["url"], known_hash=f"sha256:{sha}" if sha else None, fname=f["path"],
                                 path=cache, progressbar=progress)
        except ValueError as err:  # pooch: hash mismatch (the downloaded file is deleted)
            (cache / f["path"]).unlink(missing_ok=True)
            raise ManifestError(f"{name}: {f['path']} failed sha256 verification ({err}); nothing was kept") from None
        except Exception as err:  # noqa: BLE001 - network errors of several types
            (cache / f["path"]).unlink(missing_ok=True)
            raise ManifestError(f"{name}: cannot download {f['url']}: {err}") from None
        if sha is None:
            log.warning("%s: downloaded %s without verification; sha256=%s", name, f["path"], pooch.file_hash(got))
        archives.append((Path(got), f))
    with atomic_dir(target) as tmp:
        for path, f in archives:
            _unpack(path, f["unpack"], tmp, f.get("strip"))
    try:
        check(name, target, manifest)
    except DataError:
        log.error("%s was unpacked to %s but does not pass its check", name, target)
        raise
    return target


def check(name: str, root: str | os.PathLike | None = None, manifest: str | os.PathLike | None = None) -> Dict[str, Any]:
    """Validate a local copy of ``name`` (adapter + layout globs); returns a report dict.

    Raises :class:`~workbench.core.errors.DataError` naming the missing/malformed file.
    """
    m = load_manifest(manifest)
    e = _entry(name, m)
    if e["access"] == "generated":
        from .schema import DatasetIndex

        if root is None:
            raise ManifestError(f"check {name}: pass the generated dataset's root (see `workbench data list`)")
        ds = DatasetIndex(root)
        rep = ds.validate(check_files=False)
        return {"name": name, "root": str(Path(root).resolve()), **rep, "layout_missing": _layout(Path(root), e)}
    target = Path(root) if root else dataset_root(name)
    if not target.is_dir():
        raise DataError(f"{target}: dataset '{name}' not found; expected {e.get('description', 'its official layout')}"
                        f" (layout {e['layout']}); see `workbench data fetch {name}`")
    from .adapters import read_dataset

    ds = read_dataset(e["adapter"], target)
    rep = ds.validate(check_files=False)
    missing = _layout(target, e)
    if missing:
        log.warning("%s: layout globs without matches: %s", name, missing)
    return {"name": name, "root": str(target.resolve()), **rep, "categories": len(ds.meta.get("categories", [])),
            "layout_missing": missing}


def _layout(root: Path, e: Dict[str, Any]) -> List[str]:
    return [g for g in e.get("layout", []) if not any(root.glob(g))]
