"""Embeddings keep clusters apart; curves read real metrics.csv files; tables bold the best."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.core.errors import DataError, ShapeError
from workbench.viz.curves import confusion_matrix, confusion_matrix_figure, ema, load_metrics, training_curves
from workbench.viz.embeddings import embedding_figure, pca_embed, point_indices, umap_embed
from workbench.viz.tables import PAPER_SUFFIX, lower_is_better, results_table


def _clusters(n_per=60, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (3, dim))
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dim)) for c in centres])
    y = np.repeat(np.arange(3), n_per)
    return x, y


def _loo_1nn_accuracy(z, y):
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


@pytest.mark.slow  # umap-learn's numba JIT: ~15 s on an idle 2-core CPU, once per process
def test_umap_separates_clusters_and_is_seeded():
    x, y = _clusters()
    z = umap_embed(x, 2, seed=0, n_neighbors=10)
    assert z.shape == (180, 2)
    assert _loo_1nn_accuracy(z, y) >= 0.97          # chance is 1/3
    z2 = umap_embed(x, 2, seed=0, n_neighbors=10)
    np.testing.assert_allclose(z, z2)                # reproducible with a seed


def test_pca_recovers_a_line_and_input_checks():
    t = np.linspace(-1, 1, 50)
    x = np.c_[t, 2 * t, -t] + 5.0
    z = pca_embed(x, 2)
    assert abs(np.corrcoef(z[:, 0], t)[0, 1]) > 0.9999
    np.testing.assert_allclose(z[:, 1], 0, atol=1e-9)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ShapeError, match="1 rows contain NaN"):
        umap_embed(bad, 2, method="pca")
    with pytest.raises(ShapeError, match="n_components"):
        umap_embed(x, 4)


def test_embedding_figure_traces_per_category_map_back_to_rows():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(30, 2))
    cats = np.array(["car", "chair", "mug"])[rng.integers(0, 3, 30)]
    fig = embedding_figure(xy, {"category": cats, "azimuth": rng.random(30)}, color_by="category",
                           images=rng.random((30, 3, 8, 8)), show_images=4)
    assert [t.name for t in fig.data] == ["car", "chair", "mug"]
    for k, t in enumerate(fig.data):
        rows = point_indices(fig, k, range(len(t.x)))
        assert set(cats[rows]) == {t.name}
        np.testing.assert_allclose(np.c_[t.x, t.y], xy[rows])
    assert sum(len(t.x) for t in fig.data) == 30
    assert len(fig.layout.images) == 4
    assert "category: " in fig.data[0].hovertext[0]
    cont = embedding_figure(xy, {"azimuth": rng.random(30)}, color_by="azimuth")
    assert len(cont.data) == 1 and cont.data[0].marker.showscale
    z3 = embedding_figure(rng.normal(size=(10, 3)))
    assert z3.data[0].type == "scatter3d"
    with pytest.raises(ShapeError, match="color_by"):
        embedding_figure(xy, {"a": np.zeros(30)}, color_by="b")


def _write_run(root, method, name, losses, evals):
    from workbench.train.metrics_log import MetricsLog

    d = root / method / name
    d.mkdir(parents=True)
    log = MetricsLog(d / "metrics.csv")
    for step, loss in losses:
        log.append({"step": step, "phase": "train", "time": 0.1 * step, "loss": loss, "lr": 0.01})
    for step, acc in evals:
        log.append({"step": step, "phase": "eval", "time": 0.1 * step, "acc": acc})
    (d / "eval.json").write_text(json.dumps({"acc": evals[-1][1] if evals else None}))
    return d


def test_training_curves_overlay_runs_and_phases(tmp_path):
    a = _write_run(tmp_path, "piro", "a", [(10, 2.0), (20, 1.5), (30, 1.0)], [(20, 0.4), (30, 0.6)])
    b = _write_run(tmp_path, "piro", "b", [(10, 2.2), (20, 1.9), (30, 1.7)], [(30, 0.5)])
    df = load_metrics(a)
    assert list(df["step"]) == [10, 20, 30, 20, 30] and df["loss"].dtype.kind == "f"
    fig = training_curves([a, b], metrics=["loss", "acc"])
    runs = {(t.meta["run"], t.meta["metric"], t.meta["phase"]) for t in fig.data}
    assert runs == {("piro/a", "loss", "train"), ("piro/a", "acc", "eval"),
                    ("piro/b", "loss", "train"), ("piro/b", "acc", "eval")}
    tr = [t for t in fig.data if t.meta == {"run": "piro/b", "metric": "loss", "phase": "train"}][0]
    np.testing.assert_allclose(tr.y, [2.2, 1.9, 1.7])
    np.testing.assert_array_equal(tr.x, [10, 20, 30])
    ev = [t for t in fig.data if t.meta["phase"] == "eval"][0]
    assert ev.line.dash == "dash"
    # default metrics: every numeric column but step/time/phase
    fig2 = training_curves({"A": a})
    assert {t.meta["metric"] for t in fig2.data} == {"loss", "lr", "acc"}
    with pytest.raises(DataError, match="not in any run"):
        training_curves([a], metrics=["bleu"])
    with pytest.raises(DataError, match="not found"):
        load_metrics(tmp_path / "missing")


def test_ema_is_debiased():
    np.testing.assert_allclose(ema(np.array([1.0, 0.0]), 0.5), [1.0, 1 / 3])
    np.testing.assert_allclose(ema(np.full(5, 3.0), 0.9), 3.0)


def test_confusion_matrix_counts_and_figure():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    cm = confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    fig = confusion_matrix_figure(y_true=y_true, y_pred=y_pred, labels=["a", "b", "c"])
    assert fig.layout.meta["accuracy"] == pytest.approx(5 / 7)
    np.testing.assert_allclose(fig.data[0].z[2], [1 / 3, 0, 2 / 3])
    assert fig.data[0].text[0][1] == "0.50<br>(1)"
    with pytest.raises(ShapeError):
        confusion_matrix([0, 1], [0])


def test_results_table_bolds_best_per_direction_and_adds_paper_columns():
    df = pd.DataFrame({"acc_pi6": [0.8, 0.9, 0.85], "median_deg": [12.0, 15.0, 9.0], "chamfer": [0.2, 0.2, 0.3]},
                      index=["ours", "baseline", "ablation"])
    paper = {"ours": {"acc_pi6": 0.91}, "baseline": {"acc_pi6": 0.88}}
    st = results_table(df, paper=paper)
    assert st.best == {"acc_pi6": ["baseline"], "median_deg": ["ablation"], "chamfer": ["ours", "baseline"]}
    assert list(st.data.columns) == ["acc_pi6", "acc_pi6" + PAPER_SUFFIX, "median_deg", "chamfer"]
    assert np.isnan(st.data.loc["ablation", "acc_pi6" + PAPER_SUFFIX])
    html = st.to_html()
    assert html.count("font-weight: bold") >= 1 and "0.910" in html and "–" in html
    # the bold style is on the right cells
    ctx = st._compute().ctx
    bold = {(r, c) for (r, c), props in ctx.items() if ("font-weight", "bold") in props}
    assert bold == {(1, 0), (2, 2), (0, 3), (1, 3)}
    assert lower_is_better("median_deg") and lower_is_better("chamfer_l1") and not lower_is_better("acc_pi18")
    st2 = results_table(df, higher_is_better={"median_deg": True})
    assert st2.best["median_deg"] == ["baseline"]
    with pytest.raises(KeyError, match="rows not in the table"):
        results_table(df, paper={"other": {"acc_pi6": 1.0}})
