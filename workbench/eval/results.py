"""The results store: ``runs/<method>/<run_name>/`` and pandas tables over it.

Layout of one run (see DESIGN.md)::

    runs/<method>/<run_name>/
        config.yaml     the run config (written by the Trainer / the method's train())
        metrics.csv     step-wise metrics (columns step, phase, time, <metric>...; see workbench.train)
        eval.json       final metrics written by the method's evaluate(); its presence = run complete
        checkpoint.pt   atomic, resumable checkpoint
        figures/        exported figures
        run.json        method, variant, profile, seed, description and ``timing`` (train/eval wall
                        and CPU seconds, torch threads), written by :mod:`workbench.pipeline`

``runs/`` is :func:`workbench.core.runs_dir` (``$WB_RUNS_DIR`` or ``./runs``) unless a ``root`` is
given. :func:`collect_runs` returns one row per run with the columns ``method, run, path,
profile, seed, complete, variant``, then every config field flattened as ``config.<dotted.key>``,
the run's ``timing.<key>`` (from ``run.json``), then
every eval metric flattened with dots (``eval.`` is prefixed only where a metric name collides
with one of the run columns). ``profile`` and ``seed`` are read from the config (top-level
``profile``; ``seed`` at the top level or in ``train``), falling back to eval.json's top level.

Example::

    run = RunDir("piro", "smoke-seed0")
    run.write_eval({"sv_cat": {"acc": 0.91, "mAP": 0.80}, "profile": "smoke"})
    df = collect_runs(method="piro")               # columns ..., config.train.lr, sv_cat.acc, ...
    curves = load_metrics(run, phase="train")      # step-wise DataFrame
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml

from ..core.errors import ConfigError, DataError
from ..core.io import write_json
from ..core.paths import runs_dir

RUN_FILES = ("config.yaml", "metrics.csv", "eval.json", "checkpoint.pt")
RUN_COLUMNS = ("method", "run", "path", "profile", "seed", "complete")


def _check_part(kind: str, value: str) -> str:
    value = str(value)
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("."):
        raise ConfigError(f"invalid {kind} '{value}': expected a single, non-hidden directory name")
    return value


class RunDir(os.PathLike):
    """Paths and readers of one run directory ``<root>/<method>/<name>`` (nothing is created eagerly).

    A ``RunDir`` is path-like, so it can be passed wherever a run directory is expected
    (``Trainer(..., run_dir=RunDir("piro", "a"))``).
    """

    def __init__(self, method: str, name: str, root: str | os.PathLike | None = None):
        self.method = _check_part("method name", method)
        self.name = _check_part("run name", name)
        self.root = Path(root).resolve() if root is not None else runs_dir()
        self.path = self.root / self.method / self.name

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "RunDir":
        """The ``RunDir`` of an existing ``<root>/<method>/<name>`` directory path."""
        p = Path(path).resolve()
        return cls(p.parent.name, p.name, root=p.parent.parent)

    # ------------------------------------------------------------------ paths
    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({self.method!r}, {self.name!r}, root={str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    def figure_path(self, filename: str) -> Path:
        """``figures/<filename>``, creating ``figures/``."""
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        return self.figures_dir / filename

    def create(self) -> "RunDir":
        """Create the directory (and ``figures/``); return self."""
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        return self.path.is_dir()

    def is_complete(self) -> bool:
        """True once ``eval.json`` exists (written atomically at the end of evaluation)."""
        return self.eval_path.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    # ------------------------------------------------------------------ readers / writers
    def read_config(self) -> dict:
        """``config.yaml`` as a plain dict (use ``MyConfig.load(run.config_path)`` for a typed one)."""
        if not self.config_path.is_file():
            raise DataError(f"no config.yaml in run {self.path}")
        try:
            data = yaml.safe_load(self.config_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise DataError(f"{self.config_path}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise DataError(f"{self.config_path}: expected a mapping at the top level")
        return data

    def read_eval(self) -> dict:
        """``eval.json`` as a dict."""
        if not self.eval_path.is_file():
            raise DataError(f"no eval.json in run {self.path} (run not evaluated yet)")
        try:
            data = json.loads(self.eval_path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{self.eval_path}: invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise DataError(f"{self.eval_path}: expected a JSON object")
        return data

    def write_eval(self, metrics: Mapping[str, Any]) -> Path:
        """Write ``eval.json`` atomically (marks the run complete); tensors/numpy scalars are converted."""
        write_json(self.eval_path, _jsonable(metrics))
        return self.eval_path

    def load_metrics(self, phase: Literal["train", "eval"] | None = None):
        """``metrics.csv`` as a DataFrame (see :func:`load_metrics`)."""
        return load_metrics(self, phase=phase)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensor
        return obj.detach().cpu().tolist()
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy array / scalar
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists are kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}{sep}", sep))
        else:
            out[key] = v
    return out


def _as_path(run: RunDir | str | os.PathLike) -> Path:
    return run.path if isinstance(run, RunDir) else Path(run)


def load_metrics(run: RunDir | str | os.PathLike, phase: Literal["train", "eval"] | None = None):
    """A run's ``metrics.csv`` as a pandas DataFrame (``run`` may also be the run dir or the CSV path).

    A partial last line left by a killed process is ignored. ``phase`` keeps only ``train`` or
    ``eval`` rows and drops the columns that are empty for that phase.
    """
    import pandas as pd

    p = _as_path(run)
    if p.is_dir():
        p = p / "metrics.csv"
    if not p.is_file():
        raise DataError(f"metrics file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text.strip():
        return pd.DataFrame(columns=["step", "phase", "time"])
    try:
        df = pd.read_csv(io.StringIO(text))
    except Exception as e:  # noqa: BLE001 - pandas raises several parser errors
        raise DataError(f"{p}: cannot parse metrics CSV: {e}") from None
    if phase is not None:
        if "phase" not in df:
            raise DataError(f"{p}: no 'phase' column")
        df = df[df["phase"] == phase].dropna(axis=1, how="all").reset_index(drop=True)
    return df


def list_runs(root: str | os.PathLike | None = None, method: str | None = None) -> list[RunDir]:
    """Every run directory under ``root`` (a directory holding at least one of the run files)."""
    root = Path(root).resolve() if root is not None else runs_dir()
    if not root.is_dir():
        return []
    methods = [root / method] if method is not None else sorted(p for p in root.iterdir() if p.is_dir())
    runs = []
    for mdir in methods:
        if not mdir.is_dir() or mdir.name.startswith("."):
            continue
        for rdir in sorted(p for p in mdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if any((rdir / f).is_file() for f in RUN_FILES):
                runs.append(RunDir(mdir.name, rdir.name, root=root))
    return runs


def _first(*candidates: Any) -> Any:
    for c in candidates:
        if c is not None:
            return c
    return None


def _read_run_info(path: Path) -> dict:
    """``run.json`` (method, variant, profile, seed) if present and readable."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def collect_runs(root: str | os.PathLike | None = None, method: str | None = None, complete_only: bool = False,
                 errors: Literal["raise", "skip"] = "raise"):
    """One row per run under ``root`` (see the module docstring for the columns).

    Args:
        root: runs directory (default :func:`workbench.core.runs_dir`).
        method: only this method's runs.
        complete_only: only runs with ``eval.json``.
        errors: ``raise`` a :class:`DataError` on an unreadable config/eval file, or ``skip`` that run.
    """
    import pandas as pd

    rows = []
    for run in list_runs(root, method):
        complete = run.is_complete()
        if complete_only and not complete:
            continue
        try:
            cfg = run.read_config() if run.config_path.is_file() else {}
            ev = run.read_eval() if complete else {}
        except DataError:
            if errors == "skip":
                continue
            raise
        train_cfg = cfg.get("train") if isinstance(cfg.get("train"), Mapping) else {}
        info = _read_run_info(run.path / "run.json")  # written by workbench.pipeline
        row: dict[str, Any] = {
            "method": run.method, "run": run.name, "path": str(run.path),
            "profile": _first(info.get("profile"), cfg.get("profile"), ev.get("profile")),
            "seed": _first(info.get("seed"), cfg.get("seed"), train_cfg.get("seed"), ev.get("seed")),
            "complete": complete,
            "variant": info.get("variant"),
        }
        row.update({f"config.{k}": v for k, v in flatten(cfg).items()})
        timing = info.get("timing") if isinstance(info.get("timing"), Mapping) else {}
        row.update({f"timing.{k}": v for k, v in timing.items()})  # wall/CPU seconds (workbench.pipeline)
        for k, v in flatten(ev).items():
            if k in ("profile", "seed") and row.get(k) == v:
                continue
            row[f"eval.{k}" if k in row else k] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    return df.sort_values(["method", "run"], kind="stable").reset_index(drop=True)


def runs_table(df, metrics: Iterable[str], by: Iterable[str] = ("method",)):
    """Mean and std of ``metrics`` over runs grouped by ``by`` (e.g. seeds of one setting)."""
    metrics, by = list(metrics), list(by)
    missing = [m for m in metrics + by if m not in df.columns]
    if missing:
        raise DataError(f"runs_table: columns {missing} not in the runs table (have {list(df.columns)})")
    return df.groupby(by)[metrics].agg(["mean", "std", "count"])
