"""Dataset generation throughput, end to end: images per second for each preset.

Headline (issue 4, target >= 200 images/s on 2 cores): ``workbench data generate views --profile
quick`` at 64x64 (4148 images, 294 objects), run as a fresh process, exactly as a user runs it. Its
wall clock covers everything: interpreter start, imports, planning, worker start-up (a ``fork``
pool that inherits the parent's imports), the lazily rendered occluder bank, the category cuboids,
rendering, PNG and parquet writing, and the atomic rename.

The other presets (``multiview``, ``collection``, ``retrieval``, reduced ``quick`` profiles of
~1000-2000 images, and ``views`` at 128 px) are measured the same way and reported (no target).

The build machine is shared, so every run reports, next to the wall-clock rate, the CPU seconds
of the whole process tree (``getrusage`` of the finished children) and an **idle-machine
estimate** for ``--workers`` cores: ``images / (serial CPU + parallel CPU / workers)``, where the
parallel part is the CPU spent while the pool runs (the jobs' CPU plus the parent's overlapped
work) and the serial part is everything else (start-up, imports, planning, index writing). It
assumes a balanced pool (the longest jobs go first) and no other load. The load average at the
start of each run is recorded; wall-clock figures scale down with it.

Writes ``<outputs>/benchmarks/data.json`` (``results`` and the ``summary`` rows of
``benchmarks/run_all.py``) and prints a table::

    .venv/bin/python benchmarks/data.py                       # headline + other presets
    .venv/bin/python benchmarks/data.py --only views-quick    # the headline only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.core.io import write_json  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402

# name -> (preset, overrides, target); "views-quick" is the unmodified quick profile (the headline)
CASES = {
    "views-quick": ("views", [], ">=200"),
    "views-quick-128": ("views", ["render.image_size=128"], "report"),
    "multiview-quick": ("multiview", [], "report"),
    "collection-reduced": ("collection", ["train_instances=600", "test_instances=100"], "report"),
    "retrieval-reduced": ("retrieval", ["shapes_per_category=12", "fine_shapes=30", "fine_families=5"], "report"),
}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(name: str, workers: int, tmp: Path) -> dict:
    """Run ``workbench data generate`` for one case in a fresh process; return its measurements."""
    preset, overrides, target = CASES[name]
    out = tmp / name
    code = ("import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))" if not overrides else
            "import sys, json; from workbench.data import generate; "
            "generate(sys.argv[1], 'quick', seed=0, out=sys.argv[2], workers=int(sys.argv[3]), "
            "overrides=json.loads(sys.argv[4]), progress=False)")
    args = (["data", "generate", preset, "--profile", "quick", "--seed", "0", "--out", str(out),
             "--workers", str(workers)] if not overrides else [preset, str(out), str(workers), json.dumps(overrides)])
    env = dict(os.environ, WB_DATA_DIR=str(tmp), PYTHONPATH=str(ROOT))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    c0 = _children_cpu()
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    cpu_tree = _children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: generation failed:\n{proc.stderr[-3000:]}")
    g = json.loads((out / "generation.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    n = g["images"]
    parallel = g["cpu_seconds_jobs"] + g.get("cpu_seconds_main_during_pool", 0.0)
    serial = max(cpu_tree - parallel, 0.0)
    idle_s = serial + parallel / max(workers, 1)
    return {"case": name, "preset": preset, "overrides": overrides, "target": target, "workers": workers,
            "images": n, "objects": g["objects"], "start_method": g.get("start_method"),
            "command": "workbench data generate" if not overrides else "workbench.data.generate()",
            "seconds_wall": round(wall, 2), "images_per_s": round(n / wall, 1),
            "seconds_generate": g["seconds_total"], "seconds_pool_start": g.get("seconds_pool_start"),
            "seconds_index": g.get("seconds_index"),
            "images_per_s_steady": g["images_per_s_steady"],
            "cpu_seconds_tree": round(cpu_tree, 2), "cpu_seconds_jobs": g["cpu_seconds_jobs"],
            "cpu_seconds_serial": round(serial, 2), "images_per_cpu_s_jobs": g["images_per_cpu_s"],
            "idle_estimate_seconds": round(idle_s, 2),
            "idle_estimate_images_per_s": round(n / max(idle_s, 1e-9), 1),
            "load_average_start": round(load, 2), "load_average_end": g["load_average"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases ({', '.join(CASES)})")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.only.split(",") if c.strip()]
    bad = [c for c in names if c not in CASES]
    if bad:
        ap.error(f"unknown case(s) {bad} (valid: {', '.join(CASES)})")
    results = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-data-") as d:
        for name in names:
            r = run(name, args.workers, Path(d))
            results.append(r)
            print(f"{name:<19} {r['images']:>5} images  wall {r['seconds_wall']:>6.1f} s = {r['images_per_s']:>6.1f} img/s "
                  f"(load {r['load_average_start']:.1f})  CPU tree {r['cpu_seconds_tree']:>6.1f} s "
                  f"(serial {r['cpu_seconds_serial']:.1f})  idle-{args.workers}-core estimate "
                  f"{r['idle_estimate_images_per_s']:>6.1f} img/s", flush=True)
    summary = []
    for r in results:
        what = f"{r['case']} ({r['images']} images, 64px)" if "128" not in r["case"] else \
            f"{r['case']} ({r['images']} images, 128px)"
        summary.append({"figure": f"{what}, end to end, wall clock, {r['workers']} workers "
                                  f"(load {r['load_average_start']:.1f})",
                        "ours": r["images_per_s"], "reference": None, "ratio": None, "target": r["target"],
                        "unit": "images/s"})
        summary.append({"figure": f"{r['case']}: idle {r['workers']}-core estimate from CPU time",
                        "ours": r["idle_estimate_images_per_s"], "reference": None, "ratio": None,
                        "target": "report", "unit": "images/s"})
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "results": results, "summary": summary}
    write_json(outputs_dir() / "benchmarks" / "data.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
