"""Run every benchmark script and write ``outputs/benchmarks.md`` with one table.

Each ``benchmarks/<name>.py`` prints its measurements and writes
``<outputs>/benchmarks/<name>.json``. A JSON that has a top-level ``"summary"`` list of rows
``{"figure", "ours", "reference", "ratio", "target", "unit"}`` contributes those rows to the
table (the reference is measured in the same run by the script itself).

Usage: ``python benchmarks/run_all.py [--only render,data] [--timeout 900]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from workbench.core.io import write_text  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated script names (without .py)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per script")
    args = ap.parse_args(argv)
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if args.only:
        keep = {s.strip() for s in args.only.split(",")}
        scripts = [p for p in scripts if p.stem in keep]
    out = outputs_dir()
    rows, status = [], []
    for script in scripts:
        t0 = time.time()
        print(f"== {script.name}", flush=True)
        try:
            proc = subprocess.run([sys.executable, str(script)], timeout=args.timeout, cwd=HERE.parent)
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        status.append((script.stem, ok, time.time() - t0))
        js = out / "benchmarks" / f"{script.stem}.json"
        if ok and js.is_file():
            data = json.loads(js.read_text())
            summary = data.get("summary", [])
            if not isinstance(summary, list) or not all(isinstance(r, dict) for r in summary):
                print(f"   {js.name}: 'summary' is not a list of rows; left out of the table", flush=True)
                summary = []
            for r in summary:
                rows.append({"benchmark": script.stem, **r})
    lines = ["# Benchmarks", "", f"Machine: {_machine()}", "",
             "| benchmark | figure | ours | reference (same run) | ratio | target | unit |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k in
                                        ("benchmark", "figure", "ours", "reference", "ratio", "target", "unit")) + " |")
    lines += ["", "| script | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {'ok' if ok else 'FAILED'} | {t:.0f} |" for n, ok, t in status]
    write_text(out / "benchmarks.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(ok for _, ok, _ in status) else 1


def _machine() -> str:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {gpu}"


if __name__ == "__main__":
    sys.exit(main())
