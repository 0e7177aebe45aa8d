"""The main job: data -> train -> evaluate -> report, per profile.

``run_job(profile)`` generates the synthetic presets the selected methods need, trains and
evaluates every method variant (the paper's baselines and ablations, see
:class:`workbench.methods.Variant`) into ``runs/<method>/<profile>-<variant>-s<seed>/`` and builds
the report. A run whose ``eval.json`` exists is complete and reused, so a killed job resumes
where it stopped; an interrupted training resumes from its checkpoint.
"""
from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from .core.config import resolve_profile
from .core.errors import ConfigError, WorkbenchError
from .core.io import write_json
from .core.paths import runs_dir
from .methods import MethodSpec, Variant, available_methods, get_method

log = logging.getLogger(__name__)


def run_name(profile: str, variant: str, seed: int) -> str:
    return f"{profile}-{variant}-s{seed}"


def find_variant(spec: MethodSpec, name: str | None) -> Variant:
    if name is None:
        return spec.variants[0]
    for v in spec.variants:
        if v.name == name:
            return v
    valid = ", ".join(v.name for v in spec.variants)
    raise ConfigError(f"unknown variant '{name}' of {spec.name} (valid: {valid})")


def make_config(spec: MethodSpec, profile: str, variant: Variant, seed: int | None = None,
                overrides: Sequence[str] | None = None):
    """Defaults -> profile -> variant overrides -> seed -> user overrides."""
    from .core.config import deep_merge, parse_overrides

    base = spec.config_cls().to_dict()
    merged = deep_merge(base, spec.config_cls.profile_overrides(profile))
    merged = deep_merge(merged, dict(variant.overrides))
    if seed is not None and "seed" in merged:
        merged["seed"] = seed
    merged = deep_merge(merged, parse_overrides(overrides))
    return spec.config_cls.from_dict(merged)


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / "eval.json").is_file()


def train_method(method: str, profile: str | None = None, variant: str | None = None, run: str | None = None,
                 seed: int | None = None, overrides: Sequence[str] | None = None, evaluate: bool = True,
                 root: Path | None = None) -> dict:
    """Train (and evaluate) one variant of one method; returns ``{"run_dir", "metrics"}``."""
    profile = resolve_profile(profile)
    spec = get_method(method)
    var = find_variant(spec, variant)
    cfg = make_config(spec, profile, var, seed=seed, overrides=overrides)
    s = getattr(cfg, "seed", 0) if seed is None else seed
    run_dir = Path(root or runs_dir()) / spec.name / (run or run_name(profile, var.name, s))
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists():
        previous = spec.config_cls.load(saved)
        if previous != cfg:
            raise ConfigError(f"{saved} holds a different config than requested; "
                              f"choose another --run name or delete {run_dir}")
    else:
        cfg.save(saved)
    write_json(run_dir / "run.json", {"method": spec.name, "variant": var.name, "profile": profile,
                                      "seed": s, "description": var.description})
    spec.train(cfg, run_dir)
    metrics = spec.evaluate(cfg, run_dir) if evaluate else {}
    return {"run_dir": run_dir, "metrics": metrics}


def evaluate_run(method: str, run: str, root: Path | None = None) -> dict:
    spec = get_method(method)
    run_dir = Path(root or runs_dir()) / spec.name / run
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"no run at {run_dir} (missing config.yaml)")
    cfg = spec.config_cls.load(cfg_path)
    return spec.evaluate(cfg, run_dir)


def run_job(profile: str | None = None, methods: Iterable[str] | None = None, seed: int = 0,
            report: bool = True, root: Path | None = None) -> str:
    """Run the whole job; returns a one-paragraph summary. Finished runs are reused."""
    profile = resolve_profile(profile)
    names = list(methods) if methods else available_methods()
    specs = [get_method(n) for n in names]
    t0 = time.time()
    if specs:
        presets = sorted({p for s in specs for p in s.presets})
    else:  # no method available yet: still prepare every preset
        presets = ["collection", "multiview", "retrieval", "views"]

    jobs = [(s, v) for s in specs for v in s.variants]
    bar = tqdm(total=len(presets) + len(jobs), desc=f"workbench run ({profile})", unit="step")
    for preset in presets:
        bar.set_postfix_str(f"data:{preset}")
        from . import data

        data.generate(preset, profile=profile, seed=seed)
        bar.update(1)
    done, reused, failed = 0, 0, []
    for spec, var in jobs:
        name = run_name(profile, var.name, seed)
        run_dir = Path(root or runs_dir()) / spec.name / name
        bar.set_postfix_str(f"{spec.name}:{var.name}")
        if is_complete(run_dir):
            reused += 1
        else:
            try:
                train_method(spec.name, profile=profile, variant=var.name, run=name, seed=seed, root=root)
                done += 1
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 -- one failing run must not hide the others
                log.error("%s/%s failed: %s", spec.name, name, e)
                failed.append((spec.name, name, f"{type(e).__name__}: {e}", traceback.format_exc()))
        bar.update(1)
    bar.close()
    report_path = None
    if report:
        from .report import build_report

        report_path = build_report(runs_root=root)
    minutes = (time.time() - t0) / 60
    summary = (f"profile {profile}: {len(presets)} presets, {done} runs trained, {reused} reused, "
               f"{len(failed)} failed in {minutes:.1f} min" + (f"; report: {report_path}" if report_path else ""))
    if failed:
        lines = "\n".join(f"  {m}/{r}: {msg}" for m, r, msg, _ in failed)
        for m, r, _, tb in failed:
            log.debug("%s/%s traceback:\n%s", m, r, tb)
        raise WorkbenchError(f"{summary}\nfailed runs:\n{lines}")
    return summary
