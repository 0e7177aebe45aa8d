"""Training throughput of each method at its ``quick`` settings: images per second.

For every method (its first, full variant) a short training run of ``--iters`` iterations is
started with the method's ``quick`` config in a temporary runs directory, on the default device
(CUDA when available, else the CPU with ``--threads`` torch threads; ``make demo`` trains two runs
in parallel with one thread each). The throughput is read from the run's own ``metrics.csv``
(``time`` column) between the first logged step after ``--warmup`` iterations and the last one, so
start-up, dataset loading and the image cache's first pass are excluded. One iteration processes:

* compnet3d: ``train.batch_size`` images;
* piro: ``train.batch_size`` object pairs x 2 objects x ``sampling.n_views`` views;
* unicorn: ``train.batch_size`` images;
* cmic: ``train.batch_size`` query photos (each with its shape's 12 grey renders, not counted);
* ttp: ``train.batch_size`` images, doubled when ``data.flip_train`` (the flipped copies).

Writes ``<outputs>/benchmarks/train_throughput.json`` (a ``summary`` row per method for
``benchmarks/run_all.py``) and prints a table::

    .venv/bin/python benchmarks/train_throughput.py [--methods piro,ttp] [--iters 40] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.core.io import write_json  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402
from workbench.methods import METHOD_NAMES, get_method  # noqa: E402


def images_per_iteration(method: str, cfg) -> int:
    """Images one training iteration of ``method`` processes (see the module docstring)."""
    b = int(cfg.train.batch_size)
    if method == "piro":
        return b * 2 * int(cfg.sampling.n_views)
    if method == "ttp":
        return b * (2 if getattr(cfg.data, "flip_train", False) else 1)
    return b


def measure(method: str, iters: int, warmup: int, runs_root: Path) -> dict:
    import pandas as pd
    import torch

    from workbench.pipeline import make_config, train_method

    spec = get_method(method)
    var = spec.variants[0]
    overrides = [f"train.iterations={iters}", "train.log_every=5", "train.checkpoint_every=1000000"]
    cfg = make_config(spec, "quick", var, overrides=overrides)
    if hasattr(cfg.train, "eval_every"):
        overrides.append("train.eval_every=0")
    if hasattr(cfg.train, "milestones"):
        overrides.append("train.milestones=[]")
    cfg = make_config(spec, "quick", var, overrides=overrides)
    t0 = time.perf_counter()
    out = train_method(spec, profile="quick", variant=var.name, run="bench", overrides=overrides,
                       evaluate=False, root=runs_root)
    wall = time.perf_counter() - t0
    df = pd.read_csv(out["run_dir"] / "metrics.csv")
    df = df[(df["phase"] == "train") & (df["step"] >= warmup)].sort_values("step")
    if len(df) < 2:
        raise RuntimeError(f"{method}: fewer than two logged steps after warm-up {warmup} (iters={iters})")
    steps = float(df["step"].iloc[-1] - df["step"].iloc[0])
    seconds = float(df["time"].iloc[-1] - df["time"].iloc[0])
    ipi = images_per_iteration(method, cfg)
    return {"method": method, "variant": var.name, "images_per_iteration": ipi,
            "seconds_per_iteration": seconds / steps, "images_per_second": ipi * steps / seconds,
            "run_wall_s": wall, "device": "cuda" if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHOD_NAMES))
    ap.add_argument("--iters", type=int, default=40, help="training iterations per method")
    ap.add_argument("--warmup", type=int, default=10, help="iterations excluded from the measurement")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (make demo: 1 per run)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="wb-bench-train-") as tmp:
        for m in [x.strip() for x in args.methods.split(",") if x.strip()]:
            try:
                r = measure(m, args.iters, args.warmup, Path(tmp))
            except Exception as e:  # noqa: BLE001 -- report the others
                failures.append(f"{m}: {type(e).__name__}: {e}")
                print(f"{m}: FAILED {e}", flush=True)
                continue
            rows.append(r)
            print(f"{m:10s} {r['images_per_second']:8.1f} img/s  ({r['seconds_per_iteration'] * 1000:.0f} ms/it, "
                  f"{r['images_per_iteration']} img/it, {r['device']}, {r['threads']} thread(s))", flush=True)
    where = f"{rows[0]['device']}, {rows[0]['threads']} thread(s)" if rows else "?"
    summary = [{"figure": f"{r['method']} training throughput (quick, {where})",
                "ours": round(r["images_per_second"], 1), "reference": None, "ratio": None,
                "target": "report", "unit": "img/s"} for r in rows]
    write_json(outputs_dir() / "benchmarks" / "train_throughput.json",
               {"rows": rows, "failures": failures, "summary": summary,
                "settings": {"iters": args.iters, "warmup": args.warmup, "threads": args.threads}})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
