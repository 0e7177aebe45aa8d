"""The command line: help on every subcommand, one-line errors, --debug tracebacks."""
import subprocess
import sys

import pytest

from workbench.cli import build_parser, main

SUBCOMMANDS = [["data"], ["data", "generate"], ["data", "list"], ["data", "fetch"], ["data", "check"],
               ["data", "contact-sheets"], ["train"], ["eval"], ["report"], ["run"]]


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=lambda a: " ".join(a))
def test_help_on_every_subcommand(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: workbench " + " ".join(args))
    assert len(out.splitlines()) >= 3


def test_unknown_method_is_one_line_error(capsys):
    assert main(["train", "compnet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unknown method 'compnet'" in err and "did you mean 'compnet3d'" in err


def test_bad_profile_is_one_line_error(capsys):
    assert main(["train", "piro", "--profile", "quik"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'quik'") and "did you mean 'quick'" in err
    assert err.count("\n") == 1


def test_debug_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "workbench", "--debug", "train", "compnet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_python_m_entry_point_errors_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "workbench", "eval", "piro", "--run", "does-not-exist"],
                          capture_output=True, text=True, timeout=120, env={"WB_RUNS_DIR": "/nonexistent-runs",
                                                                            "PATH": "/usr/bin:/bin"})
    assert proc.returncode in (1, 2)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr


def test_parser_requires_a_command():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([])
    assert exc.value.code == 2
