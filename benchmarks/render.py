"""Speed and memory of the torch mesh renderer, measured beside open3d ray casting of the same scenes.

Cases (issue 3):

1. ``hard``: hard rasterisation, 1 face/pixel, 128x128, a 2,000-face mesh, batch 16, against
   open3d ``RaycastingScene`` ray casting of the same 16 views (BVH build + cast, and cast only).
   Target: within 10x of open3d.
2. ``layered``: UNICORN's layered soft rendering (sigma 1e-4, blur ln(1/1e-4 - 1) sigma, K = 25,
   no perspective correction), 64x64, ``ico_sphere(3)`` with per-vertex colours, batch 32,
   forward + backward of an MSE loss. Targets: <= 150 ms per batch, peak memory <= 2 GB.
3. ``features``: NeMo-style feature rendering of 128-channel vertex features (cuboid, ~1,000
   vertices) at 64x80, batch 16, forward + backward (report only).

The torch backend runs its compiled CPU kernels (``workbench.render.cpu_kernels``, numba) on CPU;
the layered case also times the same step on the vectorised torch path alone (``WB_RENDER_KERNELS=torch``).

Every case runs in its own subprocess (so its peak RSS is its own), with ``--threads`` torch
threads (default 2, the target machine). Times are medians over ``--reps`` repetitions after a
warm-up; wall-clock and CPU seconds are both recorded, and so is the load average (on a shared
machine wall-clock figures scale with the load; CPU-time figures much less so).

Writes ``<outputs>/benchmarks/render.json`` and prints a table::

    .venv/bin/python benchmarks/render.py
    .venv/bin/python benchmarks/render.py --threads 1 --reps 5 --cases layered
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from workbench.core.io import write_json  # noqa: E402
from workbench.core.paths import outputs_dir  # noqa: E402

CASES = ("hard", "layered", "features")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time(fn, reps: int):
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall_ms": 1e3 * statistics.median(wall), "wall_min_ms": 1e3 * min(wall),
            "cpu_ms": 1e3 * statistics.median(cpu)}


def _blob_mesh(n_faces: int = 2000):
    """A smooth closed blob with ~n_faces faces (a welded gridded box, bulged)."""
    from workbench.geometry import Meshes, cuboid_mesh

    m = cuboid_mesh((1.0, 0.8, 0.6), n_faces // 2 + 2, merge_duplicates=True)
    v = m.verts_packed()
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-6) * (0.45 + 0.05 * torch.sin(4 * v[:, :1]))
    return Meshes([v], m.faces_list())


def case_hard(reps: int) -> dict:
    from workbench.geometry import pinhole_cameras, pose_to_rt
    from workbench.render import MeshRasterizer, RasterizationSettings, raycast_mesh
    from workbench.render.raycast import _o3d

    mesh = _blob_mesh(2000)
    v, f = mesh.verts_list()[0], mesh.faces_list()[0]
    N, S = 16, 128
    g = torch.Generator().manual_seed(0)
    R, T = pose_to_rt(torch.rand(N, generator=g) * 6.28, torch.rand(N, generator=g) - 0.5,
                      torch.rand(N, generator=g) - 0.5, torch.full((N,), 2.0))
    focal, pp = torch.full((N,), 110.0), torch.full((N, 2), S / 2.0)
    cams = pinhole_cameras(R, T, focal, pp, (S, S))
    rast = MeshRasterizer(cams, RasterizationSettings(image_size=S, faces_per_pixel=1), backend="torch")
    batch = mesh.extend(N)
    out = {"faces": int(f.shape[0]), "batch": N, "image": [S, S]}
    base = _rss_mb()
    out["torch"] = _time(lambda: rast(batch), reps)
    out["torch_peak_mb"] = _peak_mb() - base
    out["open3d_total"] = _time(lambda: raycast_mesh(v, f, R, T, focal, pp, (S, S)), reps)
    # cast only (BVH built once)
    import numpy as np

    o3d = _o3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.numpy().astype(np.float32)), o3d.core.Tensor(f.numpy().astype(np.uint32)))
    from workbench.render.raycast import _view_rays_to_world

    u = torch.arange(S, dtype=torch.float64) + 0.5
    vv, uu = torch.meshgrid(u, u, indexing="ij")
    dv = torch.stack([(S / 2 - uu) / 110.0, (S / 2 - vv) / 110.0, torch.ones_like(uu)], -1)[None].expand(N, S, S, 3)
    o, d = _view_rays_to_world(torch.zeros_like(dv), dv, R.double(), T.double())
    rays = o3d.core.Tensor(torch.cat([o, d], -1).float().numpy())
    out["open3d_cast"] = _time(lambda: scene.cast_rays(rays), reps)
    fr = rast(batch)
    out["coverage"] = float((fr.pix_to_face[..., 0] >= 0).float().mean())
    return out


def case_layered(reps: int) -> dict:
    from workbench.geometry import FoVPerspectiveCameras, Meshes, ico_sphere, pose_to_rt
    from workbench.render import (BlendParams, LayeredShader, MeshRasterizer, MeshRenderer, RasterizationSettings,
                                  TexturesVertex)

    B, S, sigma = 32, 64, 1e-4
    s = ico_sphere(3)
    g = torch.Generator().manual_seed(0)
    verts = (s.verts_padded().expand(B, -1, -1) * 0.6).clone().requires_grad_(True)
    faces = s.faces_padded().expand(B, -1, -1)
    col = torch.rand(B, verts.shape[1], 3, generator=g).requires_grad_(True)
    R, T = pose_to_rt(torch.rand(B, generator=g) * 6.28, torch.rand(B, generator=g) * 0.6 - 0.3,
                      torch.zeros(B), torch.full((B,), 2.732))
    cams = FoVPerspectiveCameras(R=R, T=T, fov=30)
    rs = RasterizationSettings(image_size=S, blur_radius=math.log(1 / 1e-4 - 1) * sigma, faces_per_pixel=25,
                               perspective_correct=False)
    renderer = MeshRenderer(MeshRasterizer(cams, rs, backend="torch"), LayeredShader(BlendParams(sigma=sigma)))
    target = torch.rand(B, S, S, 4, generator=g)

    def step():
        verts.grad = None
        col.grad = None
        img = renderer(Meshes(verts, faces, textures=TexturesVertex(col)))
        loss = ((img - target) ** 2).mean()
        loss.backward()

    base = _rss_mb()
    out = {"batch": B, "image": [S, S], "faces": int(s.faces_packed().shape[0]), "faces_per_pixel": 25}
    out["fwd_bwd"] = _time(step, reps)
    out["peak_mb"] = _peak_mb()
    out["peak_above_baseline_mb"] = _peak_mb() - base
    from workbench.render import cpu_kernels

    out["kernels"] = "numba" if cpu_kernels.use_cpu_kernels(verts) else "torch"
    if out["kernels"] == "numba":  # the same step on the vectorised torch path, for comparison
        cpu_kernels.set_cpu_kernels("torch")
        out["fwd_bwd_pure_torch"] = _time(step, reps)
        cpu_kernels.set_cpu_kernels("auto")
    with torch.no_grad():
        fr = MeshRasterizer(cams, rs)(Meshes(verts, faces))
    out["occupied_slots_per_covered_pixel"] = float((fr.pix_to_face >= 0).sum() / (fr.pix_to_face[..., 0] >= 0).sum())
    return out


def case_features(reps: int) -> dict:
    from workbench.geometry import cameras_from_pose, cuboid_mesh
    from workbench.render import render_features

    B, H, W, C = 16, 64, 80, 128
    mesh = cuboid_mesh((1.0, 0.6, 0.8), 1000)
    V = mesh.verts_packed().shape[0]
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(V, C, generator=g), dim=1).requires_grad_(True)
    cams = cameras_from_pose(torch.rand(B, generator=g) * 6.28, torch.rand(B, generator=g) * 0.5,
                             torch.rand(B, generator=g) * 0.4 - 0.2, torch.full((B,), 5.0), 3000 / 8 / 5 * 2.2,
                             (W / 2, H / 2), (H, W))
    target = torch.randn(B, C, H, W, generator=g)

    def fwd():
        with torch.no_grad():
            render_features(mesh, feats, cams, (H, W))

    def fwd_bwd():
        feats.grad = None
        (render_features(mesh, feats, cams, (H, W)) * target).sum().backward()

    base = _rss_mb()
    out = {"batch": B, "image": [H, W], "channels": C, "verts": V, "faces": int(mesh.faces_packed().shape[0])}
    out["fwd"] = _time(fwd, reps)
    out["fwd_bwd"] = _time(fwd_bwd, reps)
    out["peak_above_baseline_mb"] = _peak_mb() - base
    return out


def _child(case: str, reps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    res = {"hard": case_hard, "layered": case_layered, "features": case_features}[case](reps)
    print("RESULT " + json.dumps(res))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.reps, args.threads)
        return 0
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "threads": args.threads, "loadavg_start": os.getloadavg()}}
    for case in args.cases.split(","):
        t0 = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", case, "--reps", str(args.reps),
                               "--threads", str(args.threads)], capture_output=True, text=True, cwd=HERE.parent)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            results[case] = {"error": proc.stderr[-2000:]}
            continue
        results[case] = json.loads(line[0][7:])
        results[case]["seconds"] = time.time() - t0
    results["machine"]["loadavg_end"] = os.getloadavg()
    summary = []
    h = results.get("hard", {})
    if "torch" in h:
        summary.append({"figure": "hard raster 128^2, 2k faces, batch 16 (vs open3d cast only)",
                        "ours": h["torch"]["wall_ms"], "reference": h["open3d_cast"]["wall_ms"],
                        "ratio": h["torch"]["wall_ms"] / h["open3d_cast"]["wall_ms"], "target": "<= 10x", "unit": "ms"})
        summary.append({"figure": "hard raster (vs open3d BVH build + cast)", "ours": h["torch"]["wall_ms"],
                        "reference": h["open3d_total"]["wall_ms"],
                        "ratio": h["torch"]["wall_ms"] / h["open3d_total"]["wall_ms"], "target": "<= 10x", "unit": "ms"})
    lay = results.get("layered", {})
    if "fwd_bwd" in lay:
        summary.append({"figure": "layered soft 64^2, ico_sphere(3), K=25, batch 32, fwd+bwd", "ours":
                        lay["fwd_bwd"]["wall_ms"], "reference": None, "ratio": None, "target": "<= 150", "unit": "ms"})
        if "fwd_bwd_pure_torch" in lay:
            summary.append({"figure": "layered soft, vectorised torch path only (WB_RENDER_KERNELS=torch)",
                            "ours": lay["fwd_bwd_pure_torch"]["wall_ms"], "reference": None, "ratio": None,
                            "target": None, "unit": "ms"})
        summary.append({"figure": "layered soft: CPU time of the same step", "ours": lay["fwd_bwd"]["cpu_ms"],
                        "reference": None, "ratio": None, "target": None, "unit": "CPU ms"})
        summary.append({"figure": "layered soft: peak RSS of the process", "ours": lay["peak_mb"], "reference": None,
                        "ratio": None, "target": "<= 2048", "unit": "MB"})
    fe = results.get("features", {})
    if "fwd" in fe:
        summary.append({"figure": "features 128ch 64x80, batch 16, forward", "ours": fe["fwd"]["wall_ms"],
                        "reference": None, "ratio": None, "target": "report", "unit": "ms"})
        summary.append({"figure": "features 128ch 64x80, batch 16, fwd+bwd", "ours": fe["fwd_bwd"]["wall_ms"],
                        "reference": None, "ratio": None, "target": "report", "unit": "ms"})
    results["summary"] = summary
    path = outputs_dir() / "benchmarks" / "render.json"
    write_json(path, results)
    print(f"render benchmark ({args.threads} threads, load {results['machine']['loadavg_start'][0]:.1f} -> "
          f"{results['machine']['loadavg_end'][0]:.1f})")
    for r in summary:
        ref = "" if r["reference"] is None else f"  ref {r['reference']:.1f}  ratio {r['ratio']:.2f}"
        print(f"  {r['figure']:<62} {r['ours']:9.1f} {r['unit']}{ref}  target {r['target']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
