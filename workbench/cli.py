"""The ``workbench`` command line (also ``python -m workbench``).

Subcommands::

    workbench data generate PRESET [--profile P] [--seed S] [--out DIR] [--workers N]
    workbench data list | fetch NAME | check NAME [--root DIR]
    workbench train METHOD [--profile P] [--variant V] [--run NAME] [--set key=value ...]
    workbench eval METHOD --run NAME
    workbench report [--out DIR]
    workbench run [--profile P] [--methods a,b] [--variants main|all|a,b] [--jobs N] [--seed S]

Errors are printed as one line (``error: ...``) with exit code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from .core.errors import WorkbenchError

log = logging.getLogger("workbench")


def _add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None,
                   help="smoke | quick | full | auto (default: $WB_PROFILE or auto = full on GPU, quick on CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Train, evaluate and compare 3D-aware object understanding methods on a shared synthetic world.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # data -----------------------------------------------------------------------------
    p_data = sub.add_parser("data", help="generate synthetic datasets; list, fetch and check real ones",
                            description="Generate synthetic datasets; list, fetch and check real ones.")
    dsub = p_data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    g = dsub.add_parser("generate", help="generate a synthetic preset",
                        description="Generate a synthetic dataset preset (views, multiview, collection, retrieval).")
    g.add_argument("preset")
    _add_profile(g)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", type=Path, default=None, help="output directory (default: cached under $WB_DATA_DIR)")
    g.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    dsub.add_parser("list", help="list the datasets of data_manifest.yaml and whether they are present",
                    description="List the datasets of data_manifest.yaml and whether they are present.")
    f = dsub.add_parser("fetch", help="download a public dataset with hash verification",
                        description="Download a dataset of the manifest with sha256 verification and atomic unpacking.")
    f.add_argument("name")
    c = dsub.add_parser("check", help="check a dataset's layout on disk",
                        description="Check that a dataset's files on disk match the manifest's expected layout.")
    c.add_argument("name")
    c.add_argument("--root", type=Path, default=None)
    cs = dsub.add_parser("contact-sheets", help="write contact sheets of every category and preset",
                         description="Write PNG contact sheets of the world's categories and of each preset "
                                     "(and of the retrieval preset with per-photo materials) for a visual check.")
    cs.add_argument("--out", type=Path, default=None, help="output directory (default: outputs/contact_sheets)")
    cs.add_argument("--profile", default="smoke", help="data profile of the presets (default: smoke)")
    cs.add_argument("--seed", type=int, default=0)

    # train / eval ---------------------------------------------------------------------
    t = sub.add_parser("train", help="train one method (one variant)",
                       description="Train one method variant; resumes from runs/<method>/<run>/checkpoint.pt.")
    t.add_argument("method")
    _add_profile(t)
    t.add_argument("--variant", default=None, help="a named baseline/ablation of the method (default: the full method)")
    t.add_argument("--run", default=None, help="run name (default: <profile>-<variant>-s<seed>)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set train.lr=3e-4 (repeatable)")
    t.add_argument("--no-eval", action="store_true", help="do not evaluate after training")
    e = sub.add_parser("eval", help="evaluate a trained run", description="Evaluate a trained run; writes eval.json.")
    e.add_argument("method")
    e.add_argument("--run", required=True)

    # report / run ---------------------------------------------------------------------
    r = sub.add_parser("report", help="build outputs/report.html, tables and figures from runs/",
                       description="Collect runs/ into tables (CSV, LaTeX), figures and a self-contained HTML report.")
    r.add_argument("--out", type=Path, default=None, help="output directory (default: $WB_OUTPUTS_DIR or ./outputs)")
    r.add_argument("--runs", type=Path, default=None, help="runs directory (default: $WB_RUNS_DIR or ./runs)")
    j = sub.add_parser("run", help="the main job: data -> train -> evaluate -> report",
                       description="The main job: generate data, train and evaluate every method with its "
                                   "baselines and ablations, then build the report. Finished runs are reused.")
    _add_profile(j)
    j.add_argument("--methods", default=None, help="comma-separated subset (default: all available)")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--variants", default=None,
                   help="'main' (each paper's main-table rows; default for smoke/quick), 'all' (default for "
                        "full) or comma-separated variant names")
    j.add_argument("--jobs", default="auto",
                   help="runs trained in parallel processes (default auto: 2 on a multi-core CPU, 1 with a GPU)")
    j.add_argument("--no-report", action="store_true")
    return parser


def _cmd_data(args) -> int:
    from . import data

    if args.data_command == "generate":
        root = data.generate(args.preset, profile=args.profile, seed=args.seed, out=args.out, workers=args.workers)
        sys.stdout.write(f"{root}\n")
    elif args.data_command == "list":
        from .data import manifest

        df = manifest.list_datasets()
        sys.stdout.write(df.to_string(index=False) + "\n")
    elif args.data_command == "fetch":
        from .data import manifest

        root = manifest.fetch(args.name)
        sys.stdout.write(f"{root}\n")
    elif args.data_command == "check":
        from .data import manifest

        report = manifest.check(args.name, root=args.root)
        sys.stdout.write(f"{report}\n")
    elif args.data_command == "contact-sheets":
        from .data import write_contact_sheets

        paths = write_contact_sheets(args.out, args.profile, args.seed)
        paths += write_contact_sheets(args.out, args.profile, args.seed, presets=["retrieval"], categories=False,
                                      overrides={"retrieval": ["materials_per_photo=true"]})
        sys.stdout.write("".join(f"{p}\n" for p in paths))
    return 0


def _cmd_train(args) -> int:
    from .pipeline import train_method

    result = train_method(args.method, profile=args.profile, variant=args.variant, run=args.run,
                          seed=args.seed, overrides=args.overrides, evaluate=not args.no_eval)
    sys.stdout.write(f"{result['run_dir']}\n")
    return 0


def _cmd_eval(args) -> int:
    from .pipeline import evaluate_run

    metrics = evaluate_run(args.method, args.run)
    import json

    sys.stdout.write(json.dumps(metrics, indent=2, default=str) + "\n")
    return 0


def _cmd_report(args) -> int:
    from .report import build_report

    path = build_report(out_dir=args.out, runs_root=args.runs)
    sys.stdout.write(f"{path}\n")
    return 0


def _cmd_run(args) -> int:
    from .pipeline import run_job

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    from .core.errors import ConfigError
    from .pipeline import default_jobs

    if args.jobs == "auto":
        jobs = default_jobs()
    elif args.jobs.isdigit() and int(args.jobs) >= 1:
        jobs = int(args.jobs)
    else:
        raise ConfigError(f"--jobs must be 'auto' or a positive integer, got '{args.jobs}'")
    summary = run_job(profile=args.profile, methods=methods, seed=args.seed, report=not args.no_report,
                      variants=args.variants, jobs=jobs)
    sys.stdout.write(summary + "\n")
    return 0


COMMANDS = {"data": _cmd_data, "train": _cmd_train, "eval": _cmd_eval, "report": _cmd_report, "run": _cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except WorkbenchError as e:
        if args.debug:
            raise
        sys.stderr.write(f"error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 -- one line unless --debug
        if args.debug:
            raise
        sys.stderr.write(f"error: {type(e).__name__}: {e} (rerun with --debug for the traceback)\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
