"""Dataset generation throughput: images per second for each preset at 64x64 and 128x128.

Generates a reduced version of each preset's ``quick`` profile (about 400-1000 images) with
``--workers`` processes (default 2, the target machine's core count) and reports

* ``images/s``: images written per second of rendering (pool start-up excluded),
* ``steady images/s``: after the first finished object (warm workers),
* ``images/CPU-s``: images per CPU-second of job rendering summed over workers, and the
  ``idle estimate`` = that x workers: the rate on an otherwise idle machine with that many cores
  (rendering is CPU-bound and embarrassingly parallel); on a shared machine the wall-clock rates
  scale down with the load, the CPU-based figure does not,
* the wall time including planning, the occluder bank, worker start-up and the index.

Target (issue 4): >= 200 images/s for ``views`` at 64x64 on 2 cores. The machine's load average is
recorded: on a shared machine the figures scale down with the load.

Writes ``<outputs>/benchmarks/data.json`` and prints a table::

    .venv/bin/python benchmarks/data.py                       # all presets, 64 and 128, 2 workers
    .venv/bin/python benchmarks/data.py --presets views --sizes 64 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.io import write_json  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402

REDUCED = {
    "views": ["train_instances=4", "val_instances=1", "test_instances=1", "unknown_instances=1"],
    "multiview": ["train_objects=3", "test_objects=1", "families=2", "fine_train_objects=2", "fine_test_objects=1"],
    "collection": ["train_instances=300", "test_instances=50"],
    "retrieval": ["shapes_per_category=6", "fine_shapes=12", "fine_families=3"],
}


def run(preset: str, size: int, workers: int, tmp: Path) -> dict:
    from workbench.data.generate import generate

    ov = REDUCED[preset] + [f"render.image_size={size}"]
    if preset == "retrieval":
        ov.append(f"render_size={size}")
    t = time.time()
    root = generate(preset, "quick", seed=0, out=tmp / f"{preset}-{size}", workers=workers, overrides=ov,
                    progress=False, force=True)
    wall = time.time() - t
    g = json.loads((root / "generation.json").read_text())
    shutil.rmtree(root, ignore_errors=True)
    return {"preset": preset, "size": size, "workers": workers, "images": g["images"], "objects": g["objects"],
            "images_per_s": g["images_per_s"], "images_per_s_steady": g["images_per_s_steady"],
            "images_per_cpu_s": g["images_per_cpu_s"],
            "idle_estimate_images_per_s": round(g["images_per_cpu_s"] * workers, 1),
            "seconds_render": g["seconds_render"], "seconds_wall": round(wall, 2), "load_average": g["load_average"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="views,multiview,collection,retrieval")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-data-") as d:
        os.environ.setdefault("WB_DATA_DIR", d)
        for preset in args.presets.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                r = run(preset, size, args.workers, Path(d))
                results.append(r)
                print(f"{preset:<11} {size:>4}px  {r['images']:>5} images  {r['images_per_s']:>7.1f} img/s  "
                      f"steady {r['images_per_s_steady'] or float('nan'):>7.1f} img/s  per CPU-s {r['images_per_cpu_s']:>6.1f}  "
                      f"idle-{args.workers}-core estimate {r['idle_estimate_images_per_s']:>6.1f} img/s  wall {r['seconds_wall']:>6.1f} s  "
                      f"load {r['load_average'][0]:.1f}", flush=True)
    summary = []
    for r in results:
        tgt = 200 if (r["preset"], r["size"]) == ("views", 64) else None
        summary.append({"figure": f"{r['preset']} {r['size']}px, {r['workers']} idle cores (CPU-time estimate)",
                        "ours": r["idle_estimate_images_per_s"], "reference": None, "ratio": None, "target": tgt,
                        "unit": "images/s"})
        summary.append({"figure": f"{r['preset']} {r['size']}px, wall clock on this machine (load {r['load_average'][0]:.1f})",
                        "ours": r["images_per_s"], "reference": None, "ratio": None, "target": None, "unit": "images/s"})
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "results": results, "summary": summary}
    write_json(outputs_dir() / "benchmarks" / "data.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
