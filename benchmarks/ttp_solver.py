"""TTP run time (paper Table 5): CNN and solver milliseconds per image, batched vs per-sample L-BFGS.

For batch sizes 1 and 32 and 1 and 4 solver iterations (pose + closed-form shape alternations),
on the CPU (and on CUDA when available), side by side in one run:

* **ours** -- :func:`workbench.methods.ttp.solver.solve_pose_and_shape`: batched Levenberg-Marquardt
  on SO(3) x R^2 for the whole batch at once (no Python loop over samples);
* **reference** -- what the official code does: every sample solved separately by
  ``torch.optim.LBFGS`` (lr 1, max_iter 100, strong Wolfe, tolerances 1e-7 / 1e-9) on the
  axis-angle + translation, then the same closed-form shape step.

Both start from the same initial pose (the official ``rand(3)`` axis-angle with zero translation,
seeded) on the same problems: the bird template of the synthetic world (642 vertices; ``--level 4``
gives the official 2562), a random K = 16 basis and coefficients, ground-truth poses drawn like the
``collection`` preset's, visibility weights in [0, 1] and Gaussian noise on the 2D points. Final
errors are the weighted reprojection energy ``sum_i w_i |pi(V_i) - u_i|^2`` evaluated in float64.
The CNN is TTP's encoder + point head (ResNet-18 -> 4 x 4 x 256 -> Linear -> 3N) at 256 x 256.

Target (issue): at batch 32 ours is >= 10x faster per image than the reference with equal or lower
final reprojection error (tolerance: float32 rounding, 1e-5 relative).

Writes ``<outputs>/benchmarks/ttp_solver.json`` and prints a table::

    .venv/bin/python benchmarks/ttp_solver.py                 # CPU (and CUDA if present)
    .venv/bin/python benchmarks/ttp_solver.py --threads 1 --level 4
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import roma
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.core.io import write_json  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402
from workbench.methods.ttp.config import ModelSection  # noqa: E402
from workbench.methods.ttp.model import TTPEncoder, PointHead  # noqa: E402
from workbench.methods.ttp.solver import (camera_from_points, deform, project_weak_perspective,  # noqa: E402
                                          reprojection_energy, solve_pose_and_shape,
                                          solve_pose_and_shape_reference)
from workbench.methods.ttp.template import build_template  # noqa: E402

REL_TOL = 1e-5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_problem(template: torch.Tensor, batch: int, K: int, noise: float, seed: int, device):
    """Synthetic correspondences: (u, w, basis, scale, centre, rotvec0, t0) on ``device``."""
    g = torch.Generator().manual_seed(seed)
    N = template.shape[0]
    basis = 0.05 * torch.randn(K, N, 3, generator=g)
    coeffs = torch.randn(batch, K, generator=g)
    V = deform(template, basis, coeffs)
    az = 2 * math.pi * torch.rand(batch, generator=g)
    el = math.radians(-10) + math.radians(50) * torch.rand(batch, generator=g)
    R = roma.rotvec_to_rotmat(torch.stack([torch.zeros(batch), az, torch.zeros(batch)], -1))
    R = roma.rotvec_to_rotmat(torch.stack([el, torch.zeros(batch), torch.zeros(batch)], -1)) @ R
    t = 0.1 * torch.randn(batch, 2, generator=g)
    s = 0.3 + 0.1 * torch.rand(batch, generator=g)
    c = 0.05 * torch.randn(batch, 2, generator=g)
    u = project_weak_perspective(V, R, t, s, c) + noise * torch.randn(batch, N, 2, generator=g)
    w = torch.rand(batch, N, generator=g)
    scale, centre = camera_from_points(u)
    rotvec0 = torch.rand(batch, 3, generator=g)             # the official rand(3) initialisation
    t0 = torch.zeros(batch, 2)
    return [x.to(device) for x in (u, w, basis, scale, centre, rotvec0, t0)]


def final_energy(out, u, w, scale, centre) -> torch.Tensor:
    d = lambda x: x.detach().double().cpu()  # noqa: E731
    return reprojection_energy(d(out.verts), d(u), d(w), d(out.R), d(out.t), d(scale), d(centre))


def time_solver(fn, device, repeats: int) -> tuple[float, object]:
    out = fn()                                   # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def time_cnn(n_verts: int, batch: int, device, repeats: int, size: int = 256) -> float:
    cfg = ModelSection()
    enc = TTPEncoder(cfg.backbone, False, cfg.feat_channels, cfg.feat_grid).to(device).eval()
    head = PointHead(enc.out_features, n_verts).to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    with torch.no_grad():
        head(enc(x))
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            head(enc(x))
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_device(device: torch.device, args, template: torch.Tensor) -> list[dict]:
    rows = []
    for batch in args.batches:
        cnn_s = time_cnn(template.shape[0], batch, device, args.repeats)
        for iters in args.iterations:
            u, w, basis, s, c, r0, t0 = make_problem(template.to(device), batch, args.K, args.noise,
                                                     args.seed + batch, device)
            T = template.to(device)
            R0 = roma.rotvec_to_rotmat(r0)

            def ours():
                return solve_pose_and_shape(u, w, T, basis, args.gamma, s, c, iterations=iters,
                                            R_init=R0, t_init=t0)

            def ours_affine():
                return solve_pose_and_shape(u, w, T, basis, args.gamma, s, c, iterations=iters)

            def ref():
                return solve_pose_and_shape_reference(u, w, T, basis, args.gamma, s, c, iters, r0, t0)

            t_ours, o = time_solver(ours, device, args.repeats)
            t_aff, oa = time_solver(ours_affine, device, args.repeats)
            t_ref, rf = time_solver(ref, device, max(2, args.repeats // 2))
            e_ours, e_aff, e_ref = (final_energy(x, u, w, s, c) for x in (o, oa, rf))
            rows.append({
                "device": device.type, "batch": batch, "iterations": iters, "n_verts": int(T.shape[0]),
                "cnn_ms_per_image": 1e3 * cnn_s / batch,
                "ours_ms_per_image": 1e3 * t_ours / batch,
                "ours_affine_init_ms_per_image": 1e3 * t_aff / batch,
                "reference_ms_per_image": 1e3 * t_ref / batch,
                "speedup": t_ref / t_ours,
                "ours_energy": float(e_ours.mean()), "ours_affine_energy": float(e_aff.mean()),
                "reference_energy": float(e_ref.mean()),
                "energy_rel_diff": float((e_ours.mean() - e_ref.mean()) / e_ref.mean()),
                "ours_worse_samples": int((e_ours > e_ref * (1 + REL_TOL)).sum()),
                "lm_iterations": [h.lm_iterations for h in o.history],
            })
            r = rows[-1]
            print(f"{device.type:4s} B={batch:2d} T={iters}  CNN {r['cnn_ms_per_image']:8.2f}  "
                  f"ours {r['ours_ms_per_image']:8.2f}  ref {r['reference_ms_per_image']:8.2f} ms/img  "
                  f"x{r['speedup']:6.1f}  E ours {r['ours_energy']:.6g} ref {r['reference_energy']:.6g} "
                  f"(rel {r['energy_rel_diff']:+.1e})", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--iterations", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--level", type=int, default=3, help="template icosphere level (3: 642, 4: 2562 vertices)")
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    template = build_template("bird", level=args.level).verts
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    for d in devices:
        rows += run_device(torch.device(d), args, template)
    summary = []
    for r in rows:
        if r["batch"] == max(args.batches):
            ok = r["speedup"] >= 10 and r["energy_rel_diff"] <= REL_TOL
            summary.append({"figure": f"TTP solver ms/image, batch {r['batch']}, {r['iterations']} iter ({r['device']})",
                            "ours": round(r["ours_ms_per_image"], 3),
                            "reference": round(r["reference_ms_per_image"], 3),
                            "ratio": round(r["speedup"], 2), "target": ">= 10x, energy <= reference",
                            "unit": "ms", "pass": bool(ok)})
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform(),
            "processor": platform.processor(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "args": vars(args), "rel_tol": REL_TOL}
    out = Path(args.out) if args.out else outputs_dir() / "benchmarks" / "ttp_solver.json"
    write_json(out, {"info": info, "rows": rows, "summary": summary})
    print(f"wrote {out}")
    for s in summary:
        print(f"{s['figure']}: ours {s['ours']} ms vs reference {s['reference']} ms -> x{s['ratio']} "
              f"({'PASS' if s['pass'] else 'FAIL'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
