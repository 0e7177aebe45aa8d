"""The main job: data -> train -> evaluate -> report, per profile.

``run_job(profile)`` generates the synthetic presets the selected methods need, trains and
evaluates the method variants (the paper's baselines and ablations, see
:class:`workbench.methods.Variant`; at ``smoke``/``quick`` only those of each paper's main table,
``MethodSpec.main_variants``, at ``full`` all of them) into
``runs/<method>/<profile>-<variant>-s<seed>/`` and builds the report. Runs are trained in ``jobs``
parallel worker processes (2 on a 2-core CPU: one torch thread per run is the fastest way to train
small models) under one overall progress bar. A run whose ``eval.json`` exists is complete and
reused, so a killed job resumes where it stopped; an interrupted training resumes from its
checkpoint.
"""
from __future__ import annotations

import logging
import os
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
    merged = deep_merge(merged, variant.overrides_for(profile))
    if seed is not None and "seed" in merged:
        merged["seed"] = seed
    merged = deep_merge(merged, parse_overrides(overrides))
    return spec.config_cls.from_dict(merged)


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / "eval.json").is_file()


def train_method(method: "str | MethodSpec", profile: str | None = None, variant: str | None = None,
                 run: str | None = None, seed: int | None = None, overrides: Sequence[str] | None = None,
                 evaluate: bool = True, root: Path | None = None) -> dict:
    """Train (and evaluate) one variant of one method; returns ``{"run_dir", "metrics"}``."""
    profile = resolve_profile(profile)
    spec = method if isinstance(method, MethodSpec) else get_method(method)
    var = find_variant(spec, variant)
    cfg = make_config(spec, profile, var, seed=seed, overrides=overrides)
    s = getattr(cfg, "seed", 0) if seed is None else seed
    run_dir = Path(root or runs_dir()) / spec.name / (run or run_name(profile, var.name, s))
    info = {"method": spec.name, "variant": var.name, "profile": profile, "seed": s,
            "description": var.description}
    metrics = train_config(spec, cfg, run_dir, info, evaluate=evaluate)
    return {"run_dir": run_dir, "metrics": metrics}


def train_config(spec: MethodSpec, cfg, run_dir: Path, info: dict, evaluate: bool = True,
                 callbacks: Sequence | None = None) -> dict:
    """Train (and evaluate) ``cfg`` in ``run_dir``; returns the evaluation metrics (``{}`` without).

    Saves ``config.yaml`` (refusing a run directory that holds a different config) and ``run.json``
    (``info``: method, variant, profile, seed, ... plus ``timing``: the wall and CPU seconds spent
    training and evaluating, which the report and the benchmark table read). ``callbacks`` are
    passed to the method's ``train`` (e.g. a progress callback of the ablation playground).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists():
        previous = spec.config_cls.load(saved)
        if previous != cfg:
            raise ConfigError(f"{saved} holds a different config than requested; "
                              f"choose another --run name or delete {run_dir}")
    else:
        cfg.save(saved)
    write_json(run_dir / "run.json", info)
    w0, c0 = time.perf_counter(), time.process_time()
    if callbacks:
        spec.train(cfg, run_dir, callbacks=list(callbacks))
    else:
        spec.train(cfg, run_dir)
    timing = {"train_wall_s": round(time.perf_counter() - w0, 2), "train_cpu_s": round(time.process_time() - c0, 2),
              "threads": _torch_threads()}
    metrics = {}
    if evaluate:
        w1, c1 = time.perf_counter(), time.process_time()
        metrics = spec.evaluate(cfg, run_dir)
        timing.update(eval_wall_s=round(time.perf_counter() - w1, 2), eval_cpu_s=round(time.process_time() - c1, 2))
    write_json(run_dir / "run.json", {**info, "timing": timing})
    return metrics


def ensure_run(method: "str | MethodSpec", profile: str | None = None, variant: str | None = None, seed: int = 0,
               root: Path | None = None) -> Path:
    """The directory of ``runs/<method>/<profile>-<variant>-s<seed>``, trained and evaluated first
    unless its ``eval.json`` exists (a finished run is reused as is, never re-evaluated)."""
    profile = resolve_profile(profile)
    spec = method if isinstance(method, MethodSpec) else get_method(method)
    var = find_variant(spec, variant)
    run_dir = Path(root or runs_dir()) / spec.name / run_name(profile, var.name, seed)
    if is_complete(run_dir):
        return run_dir
    return Path(train_method(spec, profile=profile, variant=var.name, seed=seed, root=root)["run_dir"])


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # noqa: BLE001 -- timing metadata only
        return None


def evaluate_run(method: str, run: str, root: Path | None = None) -> dict:
    spec = get_method(method)
    run_dir = Path(root or runs_dir()) / spec.name / run
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"no run at {run_dir} (missing config.yaml)")
    cfg = spec.config_cls.load(cfg_path)
    return spec.evaluate(cfg, run_dir)


def _run_variant(spec: MethodSpec, profile: str, variant: str, name: str, seed: int, root: Path | None,
                 threads: int | None = None) -> tuple[str, str, float, str | None, str | None]:
    """Train + evaluate one run (in this process or a worker); never raises.

    Returns ``(method, run_name, wall_seconds, error_line, traceback)``.
    """
    t0 = time.time()
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        train_method(spec, profile=profile, variant=variant, run=name, seed=seed, root=root)
        return spec.name, name, time.time() - t0, None, None
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 -- one failing run must not hide the others
        return spec.name, name, time.time() - t0, f"{type(e).__name__}: {e}", traceback.format_exc()


def _worker_init() -> None:
    """Workers of a parallel job die with the job (Linux ``PR_SET_PDEATHSIG``; checkpoints are
    atomic, so a killed worker resumes cleanly on the next ``workbench run``)."""
    logging.basicConfig(level=logging.WARNING)
    if os.name == "posix":
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass


def default_jobs() -> int:
    """Parallel runs for ``workbench run``: 2 on a CPU-only machine with >= 2 cores (one torch thread
    each trains small models faster than one run on two threads), 1 with a GPU (one run owns it)."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except Exception:  # noqa: BLE001
        pass
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def run_job(profile: str | None = None, methods: Iterable[str] | None = None, seed: int = 0,
            report: bool = True, root: Path | None = None, variants: str | None = None,
            jobs: int = 1) -> str:
    """Run the whole job; returns a one-paragraph summary. Finished runs are reused.

    Args:
        profile: ``smoke`` / ``quick`` / ``full`` (default ``$WB_PROFILE`` or quick).
        methods: subset of methods (default: every available one).
        variants: ``"main"`` (the variants each paper's main table needs), ``"all"`` or a
            comma-separated list of names; default ``"all"`` for ``full`` and ``"main"`` otherwise.
        jobs: runs trained in parallel worker processes (each with ``cpu_count // jobs`` torch
            threads); 1 trains in this process.
    """
    profile = resolve_profile(profile)
    names = list(methods) if methods else available_methods()
    specs = [get_method(n) for n in names]
    which = variants or ("all" if profile == "full" else "main")
    t0 = time.time()
    if specs:
        presets = sorted({p for s in specs for p in s.presets})
    else:  # no method available yet: still prepare every preset
        presets = ["collection", "multiview", "retrieval", "views"]

    jobs_list = [(s, v) for s in specs for v in s.selected_variants(which)]
    bar = tqdm(total=len(presets) + len(jobs_list), desc=f"workbench run ({profile})", unit="step")
    from . import data

    for preset in presets:
        bar.set_postfix_str(f"data:{preset}")
        data.generate(preset, profile=profile, seed=seed)
        bar.update(1)
    done, reused, failed = 0, 0, []
    todo = []
    for spec, var in jobs_list:
        name = run_name(profile, var.name, seed)
        if is_complete(Path(root or runs_dir()) / spec.name / name):
            reused += 1
            bar.update(1)
        else:
            todo.append((spec, var.name, name))

    def _finished(result) -> None:
        nonlocal done
        method, name, seconds, err, tb = result
        if err is None:
            done += 1
            bar.write(f"  done {method}/{name} in {seconds / 60:.1f} min")
        else:
            log.error("%s/%s failed: %s", method, name, err)
            failed.append((method, name, err, tb))
        bar.update(1)

    jobs = max(1, min(int(jobs), len(todo) or 1))
    if jobs == 1:
        for spec, var_name, name in todo:
            bar.set_postfix_str(f"{spec.name}:{var_name}")
            _finished(_run_variant(spec, profile, var_name, name, seed, root))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = mp.get_context("spawn")
        # per-run progress bars stay quiet in the workers (the job shows one overall bar); tqdm reads
        # TQDM_DISABLE when it is imported, so it must be in the environment the workers inherit
        saved_env = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(_run_variant, spec, profile, var_name, name, seed, root, threads):
                           f"{spec.name}:{var_name}" for spec, var_name, name in todo}
                running = list(futures.values())
                bar.set_postfix_str(", ".join(running[:jobs]))
                try:
                    for fut in as_completed(futures):
                        running.remove(futures[fut])
                        _finished(fut.result())
                        bar.set_postfix_str(", ".join(running[:jobs]))
                except KeyboardInterrupt:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        finally:
            if saved_env is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = saved_env
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
