"""workbench.core.io (atomic writes) plus the small core helpers: errors, seeding, device, paths."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from workbench.core import (ConfigError, NonFiniteLossError, ShapeError, TrainingError, atomic_dir, atomic_open,
                            atomic_path, check_shape, data_dir, get_device, rng_state, runs_dir, save_torch,
                            seed_everything, set_rng_state, write_json, write_text, write_yaml)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_atomic_path_replaces_on_success_and_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("v1")
        assert not target.exists()  # nothing visible before the block ends
    assert target.read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "v1" and _leftovers(target.parent) == []


def test_atomic_open_and_writers(tmp_path):
    p = tmp_path / "a.txt"
    write_text(p, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(p) as f:
            f.write("new but interrupted")
            raise KeyboardInterrupt
    assert p.read_text() == "old" and _leftovers(tmp_path) == []
    write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "v": np.arange(3), "p": Path("x/y"), "n": np.int64(4)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.5, "v": [0, 1, 2], "p": "x/y", "n": 4}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists() and _leftovers(tmp_path) == []
    write_yaml(tmp_path / "c.yaml", {"a": [1, 2], "b": {"c": "d"}})
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == {"a": [1, 2], "b": {"c": "d"}}
    save_torch(tmp_path / "t.pt", {"w": torch.arange(4)})
    assert torch.equal(torch.load(tmp_path / "t.pt")["w"], torch.arange(4))


def test_atomic_dir_is_all_or_nothing(tmp_path):
    target = tmp_path / "dataset"
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("x")
            raise ValueError("generation failed")
    assert not target.exists() and _leftovers(tmp_path) == []
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"] and _leftovers(tmp_path) == []
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"] and _leftovers(tmp_path) == []


def test_check_shape_and_error_messages():
    check_shape("images", torch.zeros(2, 3, 8, 8), (None, 3, None, None))
    with pytest.raises(ShapeError, match=r"images: expected shape \(\*, 3, \*, \*\), got \(2, 1, 8, 8\)"):
        check_shape("images", torch.zeros(2, 1, 8, 8), (None, 3, None, None))
    with pytest.raises(ShapeError):
        check_shape("x", torch.zeros(2, 3), (None, 3, 1))
    err = NonFiniteLossError(12, float("nan"), "runs/a/checkpoint.pt")
    assert isinstance(err, TrainingError) and err.step == 12
    assert str(err) == "loss is nan at step 12: training stopped; last good checkpoint kept at runs/a/checkpoint.pt"


def test_seed_everything_and_rng_state_round_trip():
    seed_everything(11)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(11)
    state = rng_state()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    g = seed_everything(11)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(11)))


def test_get_device_and_paths(monkeypatch, tmp_path):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        get_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            get_device("cuda")
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path / "d"))
    assert runs_dir() == tmp_path / "r" and data_dir() == tmp_path / "d"
