"""Headless widget tests: set handle values, check that figures, status and tables follow."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest

from workbench.core.config import Config
from workbench.viz._util import decode_data_uri
from workbench.viz.widgets import ablation_panel, dataset_browser, embedding_explorer, pose_explorer, run_comparer


def _bbox(img, bg=255):
    fg = (np.abs(img.astype(int) - bg).sum(-1) > 10)
    rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1   # (height, width) in pixels


def test_pose_explorer_rerenders_through_the_workbench_renderer(box_mesh):
    # box: 1.0 wide (X), 0.3 high (Y), 0.5 deep (Z)
    box, h = pose_explorer(box_mesh, image_size=(64, 64), focal_px=60.0, azimuth=0, elevation=0, distance=3.0)
    json.dumps(box.get_state())                        # the widget state serialises
    img0 = decode_data_uri(h["figure"].data[0].source)
    h0, w0 = _bbox(img0)
    assert w0 / h0 == pytest.approx(1.0 / 0.3, rel=0.2)  # front view: wide and flat
    status0, frustum0 = h["status"].value, np.array(h["figure"].data[2].x, dtype=float)

    h["azimuth"].value = 90                            # side view: 0.5 deep instead of 1.0 wide
    img1 = decode_data_uri(h["figure"].data[0].source)
    h1, w1 = _bbox(img1)
    assert w0 / w1 == pytest.approx(2.0, rel=0.2) and h1 == pytest.approx(h0, abs=2)
    assert "azimuth 90°" in h["status"].value and h["status"].value != status0
    assert not np.allclose(np.array(h["figure"].data[2].x, dtype=float), frustum0, equal_nan=True)

    h["azimuth"].value = 0
    h["theta"].value = 90                              # in-plane rotation swaps the extents
    h2, w2 = _bbox(decode_data_uri(h["figure"].data[0].source))
    assert (h2, w2) == pytest.approx((w0, h0), abs=2)
    assert h["renders"][0] == 4


def test_pose_explorer_reports_render_errors():
    calls = []

    def render(a, e, t, d):
        calls.append((a, e, t, d))
        if d > 5:
            raise ValueError("too far")
        img = np.zeros((8, 8, 3))
        img[..., 0] = (a % (2 * math.pi)) / (2 * math.pi)
        return img

    v = np.eye(3)
    box, h = pose_explorer((v, np.array([[0, 1, 2]])), render_fn=render, show_scene=False, azimuth=0)
    h["azimuth"].value = 90
    assert calls[-1][0] == pytest.approx(math.pi / 2)      # sliders in degrees, render_fn in radians
    assert decode_data_uri(h["figure"].data[0].source)[0, 0, 0] == round(0.25 * 255)
    h["distance"].value = 6
    assert "render failed: too far" in h["status"].value


class _Index:
    """A dataset index with the DatasetIndex interface (df, load_image, load_mask)."""

    def __init__(self, n=30):
        rng = np.random.default_rng(0)
        self.df = pd.DataFrame({
            "split": np.where(np.arange(n) < 20, "train", "val"),
            "category": np.array(["car", "chair", "mug"])[np.arange(n) % 3],
            "occlusion_level": np.arange(n) % 2,
            "corruption": np.where(np.arange(n) % 5 == 0, "fog", "none"),
            "azimuth": rng.uniform(-np.pi, np.pi, n),
            "keypoints_2d": [rng.random((3, 2)) * 16 for _ in range(n)],
            "keypoints_visible": [np.array([True, False, True]) for _ in range(n)],
        })
        self.loaded = []

    def load_image(self, i):
        self.loaded.append(i)
        img = np.zeros((3, 16, 16), np.float32)
        img[0] = i / 30.0
        return img

    def load_mask(self, i):
        m = np.zeros((1, 16, 16), np.float32)
        m[:, 4:12, 4:12] = 1
        return m


def test_dataset_browser_filters_and_pages():
    idx = _Index()
    box, h = dataset_browser(idx, n=4, ncols=4)
    assert h["selection"]() == [0, 1, 2, 3] and "30 of 30 images" in h["status"].value
    assert h["page"].max == 7
    h["category"].value = "chair"
    assert h["matching"]() == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]
    assert h["selection"]() == [1, 4, 7, 10]
    assert "10 of 30 images match" in h["status"].value
    h["split"].value = "val"
    assert h["selection"]() == [22, 25, 28]
    img = decode_data_uri(h["figure"].data[1].source)
    assert abs(int(img[0, 0, 0]) - 25 / 30 * 255) <= 1           # cell 1 shows image 25
    assert decode_data_uri(h["figure"].data[3].source).min() == 255  # the 4th cell is blank
    assert h["figure"].layout.annotations[3].text == " "
    kp = h["figure"].data[4 + 0]                                  # keypoints of cell 0: 2 visible
    assert len(kp.x) == 2
    h["split"].value = "(all)"
    h["page"].value = 2
    assert h["selection"]() == [25, 28]                           # chairs 9 and 10 of 10
    h["masks"].value = True
    img = decode_data_uri(h["figure"].data[0].source)
    assert not np.array_equal(img[8, 8], img[0, 0])               # mask tint inside the square
    h["corruption"].value = "fog"
    assert set(h["df"].loc[h["matching"](), "corruption"]) == {"fog"}


def _write_run(root, method, name, losses, acc):
    from workbench.train.metrics_log import MetricsLog

    d = root / method / name
    d.mkdir(parents=True)
    log = MetricsLog(d / "metrics.csv")
    for step, loss in losses:
        log.append({"step": step, "phase": "train", "time": 0.0, "loss": loss})
    log.append({"step": losses[-1][0], "phase": "eval", "time": 0.0, "acc": acc})
    (d / "eval.json").write_text(json.dumps({"acc": acc, "median_deg": 100 * (1 - acc)}))


def test_run_comparer_overlays_selected_runs(tmp_path):
    _write_run(tmp_path, "piro", "a", [(10, 2.0), (20, 1.0)], 0.7)
    _write_run(tmp_path, "piro", "b", [(10, 3.0), (20, 2.5)], 0.6)
    _write_run(tmp_path, "cmic", "c", [(10, 1.0), (20, 0.5)], 0.9)
    box, h = run_comparer(tmp_path)
    assert set(h["runs"].options) == {"piro/a", "piro/b", "cmic/c"}
    assert h["metric"].value == "loss" and len(h["figure"].data) == 3
    h["runs"].value = ("piro/a", "piro/b")
    names = [t.name for t in h["figure"].data]
    assert names == ["piro/a", "piro/b"]
    np.testing.assert_allclose(h["figure"].data[1].y, [3.0, 2.5])
    assert "2 of 3 runs selected" in h["status"].value
    assert "cmic/c" not in h["table"].value and "piro/a" in h["table"].value
    # best accuracy (piro/a, 0.700) is bold
    st = h["table"].value
    assert "font-weight: bold" in st and "0.700" in st
    h["metric"].value = "acc"
    assert [t.name for t in h["figure"].data] == ["piro/a (eval)", "piro/b (eval)"]
    h["smooth"].value = 0.5
    h["metric"].value = "loss"
    np.testing.assert_allclose(h["figure"].data[0].y, [2.0, (0.5 * 2.0 * 0.5 + 0.5 * 1.0) / 0.75])


@dataclass
class Optim(Config):
    lr: float = 0.05
    iterations: int = 20


@dataclass
class Model(Config):
    activation: Literal["linear", "tanh"] = "linear"
    fit_intercept: bool = True


@dataclass
class ToyConfig(Config):
    name: str = "toy"
    seed: int = 0
    noise: Optional[float] = None
    optim: Optim = field(default_factory=Optim)
    model: Model = field(default_factory=Model)


def toy_launch(cfg: ToyConfig, progress):
    """Fit y = 2x + 1 by gradient descent with the config's lr/iterations/intercept."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(-1, 1, 200)
    y = 2 * x + 1 + (cfg.noise or 0.0) * rng.normal(size=200)
    w = b = 0.0
    for it in range(cfg.optim.iterations):
        z = w * x + (b if cfg.model.fit_intercept else 0.0)
        pred = np.tanh(z) if cfg.model.activation == "tanh" else z
        g = (pred - y) * ((1 - pred ** 2) if cfg.model.activation == "tanh" else 1.0)
        w -= cfg.optim.lr * 2 * (g * x).mean()
        if cfg.model.fit_intercept:
            b -= cfg.optim.lr * 2 * g.mean()
        progress(it + 1, cfg.optim.iterations)
    z = w * x + (b if cfg.model.fit_intercept else 0.0)
    pred = np.tanh(z) if cfg.model.activation == "tanh" else z
    if cfg.optim.lr > 5:
        raise FloatingPointError("diverged")
    return {"mse": float(((pred - y) ** 2).mean()), "slope": float(w)}


def test_ablation_panel_builds_widgets_and_runs(monkeypatch):
    box, h = ablation_panel(ToyConfig(), toy_launch)
    f = h["fields"]
    assert set(f) == {"name", "seed", "noise", "optim.lr", "optim.iterations", "model.activation",
                      "model.fit_intercept"}
    assert type(f["optim.iterations"]).__name__ == "IntText" and type(f["optim.lr"]).__name__ == "FloatText"
    assert type(f["model.activation"]).__name__ == "Dropdown" and list(f["model.activation"].options) == ["linear", "tanh"]
    assert type(f["model.fit_intercept"]).__name__ == "Checkbox"
    json.dumps(box.get_state())

    seen = []
    h["progress"].observe(lambda ch: seen.append(ch["new"]), names="value")
    h["run"].click()
    assert len(h["history"]) == 1 and h["history"][0]["changes"] == "(defaults)"
    assert len([v for v in seen if 0 < v <= 1]) >= 20 and seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen[1:-1], seen[2:-1]))   # monotone while running
    mse_default = h["history"][0]["mse"]

    f["optim.lr"].value = 0.4
    f["optim.iterations"].value = 200
    assert h["config"]().optim == Optim(lr=0.4, iterations=200)
    h["run"].click()
    row = h["history"][1]
    assert row["changes"] == "optim.lr=0.4, optim.iterations=200"
    assert row["mse"] < 1e-3 < mse_default and row["slope"] == pytest.approx(2.0, abs=0.01)
    assert "run 2 finished" in h["status"].value
    tbl = h["table"]()
    assert list(tbl.index) == [1, 2] and {"mse", "slope", "seconds"} <= set(tbl.columns)
    assert h["results"].value.count("font-weight: bold") >= 1
    assert "(defaults)" in h["results"].value

    f["model.fit_intercept"].value = False   # without the intercept the fit is worse
    h["run"].click()
    assert h["history"][2]["mse"] > 0.9

    f["noise"].value = "lots"                # Optional[float] from YAML text: invalid
    h["run"].click()
    assert "invalid config" in h["status"].value and len(h["history"]) == 3
    f["noise"].value = "0.1"
    f["optim.lr"].value = 10.0
    h["run"].click()
    assert "run failed: FloatingPointError: diverged" in h["status"].value
    assert h["progress"].bar_style == "danger" and len(h["history"]) == 3 and not h["run"].disabled
    h["reset"].click()
    assert h["config"]() == ToyConfig()


def test_embedding_explorer_hover_and_lasso():
    from plotly.callbacks import LassoSelector, Points

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(20, 2))
    cats = np.array(["a", "b"])[np.arange(20) % 2]
    imgs = rng.random((20, 3, 16, 16))
    box, h = embedding_explorer(xy, {"category": cats, "view": np.arange(20)}, images=imgs, color_by="category")
    fw = h["figure"]
    assert [t.name for t in fw.data] == ["a", "b"]
    # the plot's lasso event arrives per trace with trace-local indices
    fw.data[1]._dispatch_on_selection(Points(point_inds=[0, 2], trace_index=1), LassoSelector(xs=[0], ys=[0]))
    fw.data[0]._dispatch_on_selection(Points(point_inds=[1], trace_index=0), LassoSelector(xs=[0], ys=[0]))
    assert h["selected"]() == [1, 2, 5]
    assert "3 of 20 points selected" in h["status"].value and "b: 2" in h["status"].value
    assert h["gallery"].value.count("<img") == 3
    fw.data[0]._dispatch_on_hover(Points(point_inds=[3], trace_index=0), None)
    assert h["thumb"].value[:8] == b"\x89PNG\r\n\x1a\n" and "#6" in h["info"].value
    h["color_by"].value = "(none)"
    assert len(fw.data) == 1 and h["selected"]() == []
    h["select"]([4, 7])
    assert h["selected"]() == [4, 7]
