"""Session fixtures: tiny synthetic datasets generated once (smoke profile) and shared by the tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # wbdata_fixtures


@pytest.fixture(scope="session")
def wb_data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wbdata")
    mp = pytest.MonkeyPatch()
    mp.setenv("WB_DATA_DIR", str(d))
    yield d
    mp.undo()


def _gen(preset: str, data_dir: Path) -> Path:
    from workbench.data.generate import generate

    return generate(preset, "smoke", seed=0, workers=0, progress=False)


@pytest.fixture(scope="session")
def views_root(wb_data_dir):
    return _gen("views", wb_data_dir)


@pytest.fixture(scope="session")
def multiview_root(wb_data_dir):
    return _gen("multiview", wb_data_dir)


@pytest.fixture(scope="session")
def collection_root(wb_data_dir):
    return _gen("collection", wb_data_dir)


@pytest.fixture(scope="session")
def retrieval_root(wb_data_dir):
    return _gen("retrieval", wb_data_dir)
