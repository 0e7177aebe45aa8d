"""workbench.crossmethod: the library behind notebooks 07-10.

Fast tests with analytic cases and a fake method (the real methods are exercised end to end by
the notebook executions in tests/notebooks, on the smoke runs)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import crossmethod as cm
from workbench.core.config import Config
from workbench.core.errors import ConfigError, DataError
from workbench.geometry.pose import pose_to_rt
from workbench.methods import MethodSpec, Variant


# --------------------------------------------------------------------------- helpers
def _rot(a_deg: float, e_deg: float = 0.0, th_deg: float = 0.0) -> np.ndarray:
    t = lambda d: torch.tensor([math.radians(d)], dtype=torch.float64)   # noqa: E731
    return pose_to_rt(t(a_deg), t(e_deg), t(th_deg), torch.tensor([3.0], dtype=torch.float64))[0][0].numpy()


def _cube(scale: float = 1.0, shift=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    from workbench.geometry import cuboid_mesh

    m = cuboid_mesh((1.0, 1.0, 1.0), n_verts=30, merge_duplicates=True)
    v, f = m if isinstance(m, tuple) else (m.verts_list()[0], m.faces_list()[0])
    return v.double().numpy() * scale + np.asarray(shift), f.long().numpy()


# --------------------------------------------------------------------------- poses and meshes
@pytest.mark.parametrize("a,e,th,expected", [(30, 0, 0, 30.0), (0, 0, 45, 45.0), (180, 0, 0, 180.0)])
def test_rotation_error_deg_analytic(a, e, th, expected):
    # azimuth about the up axis and theta about the viewing axis are rotations by that angle
    assert cm.rotation_error_deg(_rot(a, e, th), _rot(0)) == pytest.approx(expected, abs=1e-4)
    assert cm.rotation_error_deg(_rot(a, e, th), _rot(a, e, th)) == pytest.approx(0.0, abs=1e-4)


def test_mesh_scores_are_scale_and_shift_invariant():
    gt = _cube()
    ch, iou = cm._mesh_scores(_cube(2.5, (0.3, -1.0, 2.0)), gt, voxel_res=16)
    assert ch < 0.035              # same shape after unit normalisation: only the sampling noise (3000 points)
    if not math.isnan(iou):                          # open3d ray casting available
        assert iou == pytest.approx(1.0, abs=1e-6)
    flat = (gt[0] * np.array([1.0, 0.2, 1.0]), gt[1])
    ch2, iou2 = cm._mesh_scores(flat, gt, voxel_res=16)
    assert ch2 > 2 * ch
    if not math.isnan(iou2):
        assert 0.1 < iou2 < 0.5                       # a slab of 1/5 of the height in a unit cube


def _comparison() -> cm.ObjectComparison:
    comp = cm.ObjectComparison(index=3, instance="car_x", image=np.zeros((3, 32, 32)), mask=np.ones((1, 32, 32)),
                               R_gt=_rot(40.0, 20.0), distance=3.0, gt_mesh=_cube())
    comp.poses = {"compnet3d": _rot(40.0 + 90.0, 20.0), "ttp": _rot(40.0, 20.0), "unicorn": _rot(40.0 + 10.0, 20.0)}
    comp.candidates = {"R": np.stack([_rot(50.0, 20.0), _rot(220.0, 20.0)]), "proba": np.array([0.7, 0.3])}
    comp.meshes = {"ttp": _cube(0.5), "cmic": _cube(1.0)}
    comp.table = pd.DataFrame([{"method": "ttp", "chamfer": 0.0, "voxel IoU": 1.0},
                               {"method": "cmic", "chamfer": 0.1, "voxel IoU": 0.5}]).set_index("method")
    return comp


def test_pose_scene_colours_each_camera_by_its_error():
    comp = _comparison()
    fig = cm.pose_scene(comp, error_max_deg=90.0)
    errs = fig.layout.meta["errors_deg"]
    assert errs["ttp"] == pytest.approx(0.0, abs=1e-4)
    assert errs["unicorn"] == pytest.approx(10.0, abs=1e-3)
    assert errs["compnet3d"] == pytest.approx(90.0, abs=1e-3)
    names = {t.name for t in fig.data if t.name}
    assert {"ground truth", "compnet3d", "ttp", "unicorn", "unicorn candidates"} <= names
    frusta = {t.name: t for t in fig.data if getattr(t, "mode", None) == "lines"}
    # zero error -> the start of RdYlGn_r (green), 90 deg -> its end (red)
    assert frusta["ttp"].line.color != frusta["compnet3d"].line.color
    # every camera sits at the GT distance from the origin
    for t in fig.data:
        if getattr(t, "mode", None) == "markers+text":
            c = np.array([t.x[0], t.y[0], t.z[0]], dtype=float)
            assert np.linalg.norm(c) == pytest.approx(3.0, abs=1e-6)


def test_meshes_figure_has_gt_and_every_mesh():
    fig = cm.meshes_figure(_comparison())
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 3 and titles[0] == "ground truth"
    assert any("cmic (retrieved)" in t and "IoU 0.50" in t for t in titles)


# --------------------------------------------------------------------------- embeddings
def _two_clusters(n: int = 20) -> cm.EmbeddingPoints:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (n, 8)) + np.eye(8)[0]
    b = rng.normal(0, 0.05, (n, 8)) + np.eye(8)[1]
    labels = pd.DataFrame({"category": ["a"] * n + ["b"] * n, "instance": [f"i{k % 4}" for k in range(2 * n)],
                           "pose": np.arange(2 * n) * 10.0})
    return cm.EmbeddingPoints("toy", np.concatenate([a, b]), labels, np.zeros((2 * n, 3, 8, 8), np.float32))


def test_neighbour_purity_separated_and_random():
    pts = _two_clusters()
    assert cm.neighbour_purity(pts, "category", k=5) == pytest.approx(1.0)
    # instance labels cycle inside each cluster: neighbours share it at about the base rate 1/4
    assert cm.neighbour_purity(pts, "instance", k=5) < 0.5


def test_embedding_points_checks_lengths():
    with pytest.raises(DataError, match="3 features but 2 label rows"):
        cm.EmbeddingPoints("bad", np.zeros((3, 4)), pd.DataFrame({"category": ["a", "b"]}))


def test_embedding_tabs_selection_round_trip():
    pts = _two_clusters(6)
    tab, handles = cm.embedding_tabs({"toy": pts, "toy2": pts}, method="pca")
    assert len(tab.children) == 2 and tab.get_title(0) == "toy"
    h = handles["toy"]
    assert h["coords"].shape == (12, 2)
    h["select"]([5, 1, 7])
    sel = h["selected"]()
    assert sel == [1, 5, 7]
    t = cm.selection_table(pts, sel)
    assert list(t.index) == [1, 5, 7] and list(t["category"]) == ["a", "a", "b"]
    with pytest.raises(DataError, match="out of range"):
        cm.selection_table(pts, [12])


# --------------------------------------------------------------------------- tables
def _tables() -> dict:
    t1 = pd.DataFrame({"acc": [0.5, 0.75], "acc (paper)": [0.6, float("nan")], "note": ["x_1", "y&z"]},
                      index=pd.Index(["ours", "baseline"], name="model"))
    t1.attrs.update(caption="Table 1: accuracy_%", dataset="views")
    t2 = pd.DataFrame({"iou": [0.25]}, index=["ours"])
    t2.attrs.update(caption="Table 2", dataset="collection")
    return {("compnet3d", "table1"): t1, ("ttp", "table2"): t2}


def test_export_tables_round_trip(tmp_path):
    tabs = _tables()
    paths = cm.export_tables(tabs, tmp_path)
    assert sorted(p.name for p in paths) == ["compnet3d__table1.csv", "compnet3d__table1.tex",
                                             "ttp__table2.csv", "ttp__table2.tex"]
    back = pd.read_csv(tmp_path / "compnet3d__table1.csv", index_col=0)
    pd.testing.assert_frame_equal(back, tabs[("compnet3d", "table1")], check_names=False)
    tex = (tmp_path / "compnet3d__table1.tex").read_text()
    assert r"\begin{tabular}{lrrr}" in tex and r"\caption{Table 1: accuracy\_\%}" in tex
    assert r"0.500 & 0.600 & x\_1" in tex and r"0.750 & -- & y\&z" in tex
    # LaTeX specials are escaped in one pass (the braces of \textbackslash{} are not re-escaped)
    odd = pd.DataFrame({"a": [1.0]}, index=["x\\y{z}"])
    assert r"x\textbackslash{}y\{z\} & 1.000" in cm._to_latex(odd)
    with pytest.raises(ConfigError, match="unknown formats"):
        cm.export_tables(tabs, tmp_path, formats=("xlsx",))


def test_tables_index_filter_and_figure():
    tabs = _tables()
    idx = cm.tables_index(tabs)
    assert list(idx["method"]) == ["compnet3d", "ttp"]
    assert list(idx["paper numbers"]) == [True, False]
    assert list(cm.filter_tables(tabs, methods=["ttp"])) == [("ttp", "table2")]
    assert list(cm.filter_tables(tabs, datasets=["views"])) == [("compnet3d", "table1")]
    fig = cm.table_figure(tabs[("compnet3d", "table1")])
    assert [t.name for t in fig.data] == ["acc", "acc (paper)"]
    assert list(fig.data[0].y) == [0.5, 0.75]


# --------------------------------------------------------------------------- a fake method end to end
@dataclass
class _Train(Config):
    iterations: int = 6
    lr: float = 0.5


@dataclass
class _FakeConfig(Config):
    profile: str = "smoke"
    seed: int = 0
    use_trick: bool = True
    train: _Train = field(default_factory=_Train)

    PROFILES = {"smoke": {}, "quick": {}, "full": {}}


def _fake_train(cfg, run_dir, callbacks=()):
    """Loss decays as lr^step; one metrics.csv row per step; callbacks see every step."""
    rows = ["step,phase,time,loss"]
    for s in range(1, cfg.train.iterations + 1):
        rows.append(f"{s},train,0.0,{cfg.train.lr ** s}")
        for cb in callbacks:
            cb.on_step_end(None, s, {"loss": cfg.train.lr ** s})
    (Path(run_dir) / "metrics.csv").write_text("\n".join(rows) + "\n")
    return {"status": "done"}


def _fake_evaluate(cfg, run_dir):
    m = {"acc": 0.9 if cfg.use_trick else 0.6, "nested": {"err": 1.0 / cfg.train.iterations}, "name": "x"}
    (Path(run_dir) / "eval.json").write_text(json.dumps(m))
    return m


def _fake_tables(df):
    t = df.set_index("run")[["acc"]]
    t.attrs["caption"] = "fake table"
    return {"main": t}


FAKE = MethodSpec(name="ttp", config_cls=_FakeConfig, train=_fake_train, evaluate=_fake_evaluate,
                  variants=(Variant("full"), Variant("no_trick", {"use_trick": False})), tables=_fake_tables)


@pytest.fixture
def fake_method(monkeypatch, tmp_path):
    """``ttp`` replaced by the fake method everywhere crossmethod and the pipeline look it up."""
    import workbench.pipeline as pipeline

    monkeypatch.setattr(cm, "get_method", lambda name: FAKE if name == "ttp" else pytest.fail(name))
    monkeypatch.setattr(pipeline, "get_method", lambda name: FAKE)
    monkeypatch.setattr(cm, "METHOD_NAMES", ("ttp",))
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WB_OUTPUTS_DIR", str(tmp_path / "out"))
    return tmp_path / "runs"


def test_launch_run_progress_reuse_and_run_json(fake_method):
    calls = []
    cfg = _FakeConfig().with_overrides(["train.iterations=4"])
    res = cm.launch_run("ttp", cfg, variant="full", progress=lambda v, total=None: calls.append((v, total)))
    run_dir = Path(res["run_dir"])
    assert run_dir.parent == fake_method / "ttp" and run_dir.name.startswith("playground-smoke-full-")
    assert calls[:4] == [(1, 4), (2, 4), (3, 4), (4, 4)] and calls[-1] == (1.0, None)
    assert res["acc"] == pytest.approx(0.9) and res["nested.err"] == pytest.approx(0.25) and "name" not in res
    info = json.loads((run_dir / "run.json").read_text())
    assert info["variant"] == "full" and info["profile"] == "smoke" and info["playground"] is True
    # the same config is the same run: reused, not retrained
    calls.clear()
    again = cm.launch_run("ttp", cfg, variant="full", progress=lambda v, total=None: calls.append(v))
    assert again["run_dir"] == res["run_dir"] and calls == [1.0]
    other = cm.launch_run("ttp", cfg.with_overrides(["train.lr=0.25"]), variant="full")
    assert other["run_dir"] != res["run_dir"]


def test_ensure_run_trains_once_then_reuses(fake_method, monkeypatch):
    trained = []
    import workbench.pipeline as pipeline

    real = pipeline.train_method
    monkeypatch.setattr(pipeline, "train_method", lambda *a, **k: trained.append(k.get("variant")) or real(*a, **k))
    d = cm.ensure_run("ttp", "smoke", "no_trick")
    assert d == fake_method / "ttp" / "smoke-no_trick-s0" and (d / "eval.json").is_file()
    assert cm.ensure_run("ttp", "smoke", "no_trick") == d
    assert trained == ["no_trick"]


def test_playground_row_curves_and_results_tables(fake_method):
    box, h = cm.ablation_playground("ttp", "no_trick", profile="smoke")
    panel = h["panel"]()
    assert {"use_trick", "train.iterations", "train.lr"} <= set(panel["fields"])   # from the dataclass
    assert panel["fields"]["use_trick"].value is False                            # the variant's override
    panel["fields"]["train.iterations"].value = 3
    panel["run"].click()
    table = panel["table"]()
    assert list(table["changes"]) == ["train.iterations=3"]
    assert table["acc"].iloc[0] == pytest.approx(0.6)
    assert len(h["curves"].data) == 1 and list(h["curves"].data[0].y) == pytest.approx([0.5, 0.25, 0.125])
    # switching the variant rebuilds the form from that variant's config
    h["variant"].value = "full"
    assert h["panel"]()["fields"]["use_trick"].value is True
    # the playground run is an ordinary run: the tables see it, filtered by profile
    cm.ensure_run("ttp", "smoke", "full")
    tabs = cm.results_tables(profile="smoke")
    main = tabs[("ttp", "main")]
    assert main.attrs["dataset"] == "-" and len(main) == 2
    assert cm.results_tables(profile="quick") == {}
    browser, bh = cm.results_browser(profile="smoke")
    assert "1 of 1 tables" in bh["status"].value
    bh["export"].click()
    assert any(p.suffix == ".tex" for p in bh["exported"])
