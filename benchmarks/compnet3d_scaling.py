"""Cost of the 3D-CompNets vertex contrastive loss against the number of classes.

For Y in {10, 25, 50, 100, 200} procedural categories (cuboid meshes of ~500 vertices, one per
category), a vertex bank, the N_b = 2560 background bank and a batch of random unit features, time
one training step of the loss (forward + backward) and count its matrix-multiply FLOPs, for NOVUM's
full contrast and for the grouped loss with N = 32 and N = 64. Also counts the paper's setting, in
which NOVUM's meshes have ~1000 vertices (the source of its "96% fewer FLOPs").

Writes ``<outputs>/benchmarks/compnet3d_scaling.json`` and ``.png`` and prints a table::

    .venv/bin/python benchmarks/compnet3d_scaling.py               # CPU defaults (batch 4)
    .venv/bin/python benchmarks/compnet3d_scaling.py --device cuda --batch 16
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from workbench.core.io import write_json
from workbench.core.paths import outputs_dir
from workbench.methods.compnet3d.bank import FeatureBank
from workbench.methods.compnet3d.losses import compnet_loss, loss_flops
from workbench.methods.compnet3d.mesh import category_vertex_counts

CLASSES = (10, 25, 50, 100, 200)
MODES = (("full", None), ("grouped", 32), ("grouped", 64))


def _label(mode: str, n: int | None) -> str:
    return "full" if mode == "full" else f"grouped_N{n}"


def _batch(bank: FeatureBank, batch: int, visible_frac: float, target_vertices: int, g: torch.Generator, device):
    """Random unit features; exactly ``visible_frac * 0.9 * target_vertices`` visible slots per
    image (every cuboid has more real vertices than that), so the number of loss rows is the same
    for every Y."""
    Y, K, D = bank.vertex.shape
    labels = torch.randint(0, Y, (batch,), generator=g)
    feats = F.normalize(torch.randn(batch, K, D, generator=g), dim=-1)
    n_vis = max(1, min(int(visible_frac * 0.9 * target_vertices), int(bank.valid.sum(1).min())))
    keys = torch.rand(batch, K, generator=g).masked_fill(~bank.valid[labels].cpu(), -1.0)
    visible = torch.zeros(batch, K, dtype=torch.bool)
    visible.scatter_(1, keys.topk(n_vis, dim=1).indices, True)
    bgf = F.normalize(torch.randn(batch * 5, D, generator=g), dim=-1)
    return (feats.to(device).requires_grad_(True), visible.to(device), labels.to(device),
            bgf.to(device).requires_grad_(True))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(Y: int, mode: str, n: int | None, args, device) -> dict:
    g = torch.Generator().manual_seed(1000 + Y)
    counts = category_vertex_counts(Y, args.vertices, seed=Y)
    bank = FeatureBank(counts, args.dim, args.background, generator=g).to(device)
    feats, visible, labels, bgf = _batch(bank, args.batch, args.visible, args.vertices, g, device)
    sg = torch.Generator().manual_seed(0)

    def step():
        out = compnet_loss(feats, visible, labels, bank.vertex, bank.valid, bank.background,
                           contrast=mode, n_sample=n or 1, bg_feats=bgf, bg_reg_weight=0.1, generator=sg)
        out["loss"].backward()
        feats.grad = None
        bgf.grad = None
        return out

    with FlopCounterMode(display=False) as fc:
        out = step()
    M = int(out["n_rows"])
    K = bank.max_vertices
    analytic = loss_flops(M, K, args.background, Y, args.dim, contrast=mode, n_sample=n or 1,
                          n_bg_feats=bgf.shape[0])
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {
        "classes": Y, "mode": mode, "n_sample": n, "label": _label(mode, n), "rows": M,
        "max_vertices": K, "mean_vertices": float(np.mean(counts)),
        "flops_measured": int(fc.get_total_flops()), "flops_analytic": analytic["total"],
        "softmax_columns": analytic["columns"],
        "time_s_median": statistics.median(times), "time_s_min": min(times),
        "gflops_per_row": analytic["total"] / max(M, 1) / 1e9,
    }


def linear_fit(xs, ys) -> dict:
    """Least-squares ``y = a + b x`` with R^2 and the log-log slope (1 = linear growth)."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    r2 = 1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-30)
    loglog = float(np.polyfit(np.log(x), np.log(y), 1)[0])
    return {"intercept": float(a), "slope": float(b), "r2": float(r2), "loglog_slope": loglog}


def paper_setting(args) -> dict:
    """FLOPs per visible row in the paper's setting: Y = 188, NOVUM K ~ 1000, 3D-CompNets K ~ 500."""
    Y, D, Nb = 188, 128, 2560
    full = loss_flops(1, 1000, Nb, Y, D, "full")["total"]
    out = {"classes": Y, "novum_vertices": 1000, "compnet_vertices": 500, "background": Nb}
    for n in (32, 64):
        gr = loss_flops(1, 500, Nb, Y, D, "grouped", n_sample=n)["total"]
        out[f"ratio_full_over_grouped_N{n}"] = full / gr
        out[f"fewer_flops_pct_N{n}"] = 100 * (1 - gr / full)
    same_k = loss_flops(1, 500, Nb, Y, D, "full")["total"]
    out["ratio_same_K500_N32"] = same_k / loss_flops(1, 500, Nb, Y, D, "grouped", n_sample=32)["total"]
    out["paper_reported"] = {"full_gflops": 61.2, "N64_gflops": 4.31, "N32_gflops": 2.71,
                             "ratio_N32": 61.2 / 2.71, "ratio_N64": 61.2 / 4.31}
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for label in sorted({r["label"] for r in results}):
        rs = sorted((r for r in results if r["label"] == label), key=lambda r: r["classes"])
        ys = [r["classes"] for r in rs]
        axes[0].plot(ys, [r["flops_analytic"] / 1e9 for r in rs], "o-", label=label)
        axes[1].plot(ys, [r["time_s_median"] * 1e3 for r in rs], "o-", label=label)
    full = {r["classes"]: r for r in results if r["label"] == "full"}
    for label in sorted({r["label"] for r in results} - {"full"}):
        rs = sorted((r for r in results if r["label"] == label), key=lambda r: r["classes"])
        axes[2].plot([r["classes"] for r in rs],
                     [full[r["classes"]]["flops_analytic"] / r["flops_analytic"] for r in rs], "o-",
                     label=f"FLOPs full / {label}")
        axes[2].plot([r["classes"] for r in rs],
                     [full[r["classes"]]["time_s_median"] / r["time_s_median"] for r in rs], "s--",
                     label=f"time full / {label}")
    axes[2].axhline(10, color="grey", lw=0.8, ls=":")
    axes[0].set(xlabel="classes Y", ylabel="loss GFLOPs / step (fwd+bwd)", title="loss FLOPs", yscale="log",
                xscale="log")
    axes[1].set(xlabel="classes Y", ylabel="ms / step", title="loss time per step", yscale="log", xscale="log")
    axes[2].set(xlabel="classes Y", ylabel="x cheaper", title="full contrast / grouped")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    p.add_argument("--batch", type=int, default=4, help="images per step")
    p.add_argument("--visible", type=float, default=0.5, help="fraction of visible vertices per image")
    p.add_argument("--vertices", type=int, default=500, help="target vertices per cuboid")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--background", type=int, default=2560)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default <outputs>/benchmarks)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    for Y in args.classes:
        for mode, n in MODES:
            r = measure(Y, mode, n, args, device)
            results.append(r)
            print(f"Y={Y:4d} {r['label']:12s} rows={r['rows']:5d} K={r['max_vertices']} "
                  f"GFLOPs={r['flops_analytic'] / 1e9:8.3f} (counted {r['flops_measured'] / 1e9:8.3f}) "
                  f"time={r['time_s_median'] * 1e3:9.1f} ms", flush=True)
    summary = {}
    full = {r["classes"]: r for r in results if r["label"] == "full"}
    for label in sorted({r["label"] for r in results}):
        rs = sorted((r for r in results if r["label"] == label), key=lambda r: r["classes"])
        ys = [r["classes"] for r in rs]
        entry = {"flops_fit": linear_fit(ys, [r["flops_analytic"] for r in rs]),
                 "time_fit": linear_fit(ys, [r["time_s_median"] for r in rs]) if len(rs) > 1 else None}
        if label != "full":
            entry["flops_ratio_full_over"] = {r["classes"]: full[r["classes"]]["flops_analytic"] / r["flops_analytic"]
                                              for r in rs}
            entry["time_ratio_full_over"] = {r["classes"]: full[r["classes"]]["time_s_median"] / r["time_s_median"]
                                             for r in rs}
        summary[label] = entry
    rows = []  # the run_all table: full / grouped loss FLOPs and step time at Y = 100 (or the largest Y)
    y_ref = 100 if 100 in full else max(full)
    for label, e in summary.items():
        if label == "full":
            continue
        rows.append({"figure": f"compnet3d loss FLOPs, full / {label}, Y={y_ref}", "ours": e["flops_ratio_full_over"][y_ref],
                     "reference": None, "ratio": None, "target": ">= 10x", "unit": "x"})
        rows.append({"figure": f"compnet3d loss time per step, full / {label}, Y={y_ref}",
                     "ours": e["time_ratio_full_over"][y_ref], "reference": None, "ratio": None, "target": ">= 10x",
                     "unit": "x"})
    out = {
        "benchmark": "compnet3d_scaling",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)},
        "results": results,
        "fits": summary,
        "summary": rows,
        "paper_setting": paper_setting(args),
    }
    folder = args.out or (outputs_dir() / "benchmarks")
    write_json(folder / "compnet3d_scaling.json", out)
    plot(results, folder / "compnet3d_scaling.png")
    for label, e in summary.items():
        if label == "full":
            continue
        fr = ", ".join(f"Y={y}: {v:.1f}x" for y, v in e["flops_ratio_full_over"].items())
        tr = ", ".join(f"Y={y}: {v:.1f}x" for y, v in e["time_ratio_full_over"].items())
        print(f"{label}: FLOPs full/grouped {fr}\n{' ' * len(label)}  time  full/grouped {tr}")
    for label, e in summary.items():
        f = e["flops_fit"]
        print(f"{label}: FLOPs = {f['intercept'] / 1e9:.3f} + {f['slope'] / 1e9:.4f} * Y GFLOPs "
              f"(R2 {f['r2']:.4f}, log-log slope {f['loglog_slope']:.2f})")
    ps = out["paper_setting"]
    print(f"paper setting (Y=188, NOVUM K=1000, ours K=500): full/grouped N32 = "
          f"{ps['ratio_full_over_grouped_N32']:.1f}x ({ps['fewer_flops_pct_N32']:.1f}% fewer; paper "
          f"{ps['paper_reported']['ratio_N32']:.1f}x), N64 = {ps['ratio_full_over_grouped_N64']:.1f}x "
          f"(paper {ps['paper_reported']['ratio_N64']:.1f}x); same K=500: {ps['ratio_same_K500_N32']:.1f}x")
    print(f"wrote {folder / 'compnet3d_scaling.json'} and .png")
    return out


if __name__ == "__main__":
    main()
