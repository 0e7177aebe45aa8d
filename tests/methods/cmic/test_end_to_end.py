"""Smoke-profile end to end on the synthetic `retrieval` preset: train, resume, evaluate, tables."""
import json
import math

import pytest
import torch

from workbench.methods.cmic import METHOD, CMICConfig
from workbench.methods.cmic.data import load_data


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    cfg = CMICConfig.for_profile("smoke", overrides=["train.progress=false", "train.device=cpu"])
    run_dir = tmp_path_factory.mktemp("cmic") / "smoke-full-s0"
    train_out = METHOD.train(cfg, run_dir)
    metrics = METHOD.evaluate(cfg, run_dir)
    return cfg, run_dir, train_out, metrics


def test_smoke_run_retrieves_far_above_chance(smoke_run):
    cfg, run_dir, train_out, m = smoke_run
    assert train_out["status"] == "completed" and train_out["step"] == cfg.train.iterations
    # 8 seen shapes (4 categories x 3, one per category held out as the unseen gallery), 8 test photos
    assert m["seen_shapes"] == 8 and m["unseen_shapes"] == 4 and m["queries"] == 8
    assert m["chance_top1"] == pytest.approx(1 / 8)
    # 8 queries are few: a random ranking gets >= 2 of 8 right with p = 0.26 and >= 4 of 8 categories
    # with p = 0.11, both together with p < 0.03; the trained model is measured at 2-3 of 8 (the
    # exact count moves with the CPU's float rounding over 40 iterations, so 3 of 8 is not asserted)
    assert m["top1"] >= 2 * m["chance_top1"]
    assert m["category_acc"] >= 0.5                    # chance 0.25 (4 categories)
    assert m["top5"] >= m["top1"]
    assert json.loads((run_dir / "eval.json").read_text())["top1"] == m["top1"]


def test_smoke_predictions_and_shape_metrics_are_consistent(smoke_run):
    cfg, run_dir, _, m = smoke_run
    p = torch.load(run_dir / "predictions.pt")
    hit = p["seen_topk"][:, 0] == p["gt"]
    assert hit.float().mean().item() == pytest.approx(m["top1"])
    assert (p["seen_scores"][:, :-1] >= p["seen_scores"][:, 1:]).all()  # ranked best first
    # the retrieved shape is the ground truth: distance 0, IoU 1; another shape: both worse
    assert (p["seen_d_hau"][hit] == 0).all() and (p["seen_iou"][hit] == 1).all()
    assert (p["seen_d_hau"][~hit] > 0).all() and (p["seen_iou"][~hit] < 1).all()
    assert m["d_hau"] == pytest.approx(p["seen_d_hau"].mean().item())
    # the unseen gallery never holds the ground truth
    assert (p["unseen_d_hau"] > 0).all() and 0 < m["unseen_d_hau"] and 0 <= m["unseen_iou"] < 1
    # where the seen gallery returned the ground truth, the unseen one (without it) is farther; the means
    # are not ordered in general (a smoke model's seen misses can be farther than its unseen picks)
    assert (p["unseen_d_hau"][hit] > p["seen_d_hau"][hit]).all()
    assert m["unseen_d_hau"] == pytest.approx(p["unseen_d_hau"].mean().item())
    # colour-shift evaluation ran on the same photos
    assert 0 <= m["recolour_top1"] <= 1 and (p["recolour_source"] != torch.arange(len(hit))).all()
    # and the hue-rotation test: its own ranking, similarities in [-1, 1]
    assert 0 <= m["hue_top1"] <= 1 and p["hue_topk"].shape == p["seen_topk"].shape
    assert -1 <= m["colour_invariance"] <= 1
    # the smoke world has one test photo per shape: no same-shape pair to compare
    assert math.isnan(m["same_shape_similarity"])


def test_resume_is_a_no_op_and_tables_show_ours_beside_the_paper(smoke_run):
    cfg, run_dir, train_out, m = smoke_run
    again = METHOD.train(cfg, run_dir)
    assert again["step"] == train_out["step"]
    import pandas as pd

    (run_dir / "run.json").write_text(json.dumps({"variant": "full", "profile": "smoke", "seed": 0}))
    tables = METHOD.tables(pd.DataFrame({"path": [str(run_dir)]}))
    t2 = tables["table2"]
    row = t2.loc[("synthetic multi-category", "colour transfer", "contrastive", "yes")]
    assert row["Top-1 % (ours)"] == pytest.approx(100 * m["top1"]) and row["Top-1 % (paper Pix3D)"] == 78.9
    assert tables["table1"].loc["synthetic mean (multi-category)", "Top-1 % (paper CMIC)"] == 78.9


def test_fine_grained_variant_loads_the_single_category_repository():
    from workbench.methods import get_method
    from workbench.pipeline import find_variant, make_config

    spec = get_method("cmic")
    cfg = make_config(spec, "smoke", find_variant(spec, "fg_full"))
    data = load_data(cfg.data)
    assert data.categories[int(data.seen.categories[0])] == "car"
    assert len(set(data.seen.categories.tolist())) == 1 and len(data.unseen) >= 1
    assert torch.isin(data.test.shape_ids, data.seen.shape_ids).all()
