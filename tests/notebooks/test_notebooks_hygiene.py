"""Static checks of every notebook: committed without outputs, one ``parameters`` cell reading
``WB_PROFILE``, thin code cells, teaching markdown."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbhelpers import notebook_paths

nbformat = pytest.importorskip("nbformat")

PATHS = notebook_paths()
MAX_CODE_LINES = 25   # DESIGN.md: a cell much longer than ~15 lines belongs in the library


def test_there_are_notebooks():
    names = [p.name for p in PATHS]
    assert "00_setup.ipynb" in names and "01_data_prep.ipynb" in names, names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs (run nbstripout)"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state (run nbstripout)"


@pytest.mark.skipif(shutil.which("nbstripout", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("nbstripout") is None, reason="nbstripout not installed")
def test_nbstripout_verify_passes():
    exe = shutil.which("nbstripout", path=str(Path(sys.executable).parent)) or shutil.which("nbstripout")
    res = subprocess.run([exe, "--verify", *map(str, PATHS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_one_parameters_cell_reading_wb_profile(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters' (need exactly 1)"
    src = tagged[0].source
    assert "WB_PROFILE" in src and "PROFILE" in src.replace("WB_PROFILE", ""), src
    assert tagged[0] is code[0], f"{path.name}: the parameters cell must be the first code cell"
    # the parameters cell only assigns values (papermill injects overrides right after it)
    compiled = compile(src, path.name, "exec")
    for value in ("smoke", "full"):
        monkeypatch.setenv("WB_PROFILE", value)
        ns: dict = {}
        exec(compiled, ns)   # noqa: S102 - our own notebook's parameter assignments
        assert ns["PROFILE"] == value, f"{path.name}: PROFILE does not follow WB_PROFILE"
    monkeypatch.delenv("WB_PROFILE")
    ns = {}
    exec(compiled, ns)   # noqa: S102
    assert ns["PROFILE"] == "auto", f"{path.name}: the default without WB_PROFILE must be 'auto'"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_teaches(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(code) if len(c.source.splitlines()) > MAX_CODE_LINES]
    assert not long, f"{path.name}: code cells too long for a thin notebook: {long}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "start with a title"
    assert len(md) >= len(code) // 2, f"{path.name}: {len(md)} markdown cells for {len(code)} code cells"
    assert sum(len(c.source) for c in md) > 1500, f"{path.name}: too little explanation"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
