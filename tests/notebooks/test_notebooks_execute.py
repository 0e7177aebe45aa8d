"""Execute every notebook in ``notebooks/`` with ``WB_PROFILE=smoke`` (later notebooks are picked
up automatically).

Each notebook runs in a fresh kernel from its own folder (as ``jupyter lab`` would), through
nbclient inside pytest, so plain ``pytest`` runs them and ``pytest -n 2`` runs them in parallel.
Time limits: ``WB_NB_CELL_TIMEOUT`` seconds per cell (default 600: generous, for a loaded 2-core machine) and ``WB_NB_TIMEOUT`` per
notebook (default 900, enforced by pytest-timeout when installed). The executed notebook is saved
next to the test's temporary files for debugging.
"""
from __future__ import annotations

import os
import time

import pytest

from nbhelpers import NOTEBOOK_DIR, notebook_paths

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CELL_TIMEOUT = int(os.environ.get("WB_NB_CELL_TIMEOUT", "600"))
NB_TIMEOUT = int(os.environ.get("WB_NB_TIMEOUT", "900"))


def _error_outputs(nb) -> list[str]:
    errs = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errs.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return errs


@pytest.mark.notebook
@pytest.mark.timeout(NB_TIMEOUT)
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path, smoke_environ, tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
                                     record_timing=True)
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        nbformat.write(nb, tmp_path / path.name)
        pytest.fail(f"{path.name} failed (executed copy: {tmp_path / path.name}):\n{e}", pytrace=False)
    finally:
        nbformat.write(nb, tmp_path / path.name)
    elapsed = time.perf_counter() - t0
    assert not _error_outputs(nb), _error_outputs(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "not every code cell ran"
    print(f"{path.name}: {len(code)} code cells in {elapsed:.1f} s")
