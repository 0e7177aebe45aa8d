"""Smoke-profile end to end on the synthetic ``views`` preset: train, resume, evaluate, tables, baselines."""
import json

import pytest
import torch

from workbench.methods import get_method
from workbench.methods.compnet3d import METHOD, CompNet3DConfig
from workbench.methods.compnet3d.data import load_task_data
from workbench.methods.compnet3d.evaluate import load_trained
from workbench.methods.compnet3d.train import predict_classes


@pytest.fixture(scope="module")
def smoke(views_smoke_root, tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    # 60 iterations of 8 images (~15 epochs of the 32 smoke training images)
    cfg = CompNet3DConfig.for_profile("smoke", [f"data.root={views_smoke_root}", "train.device=cpu",
                                                "train.iterations=60", "train.checkpoint_every=30",
                                                "eval.splits=[test,occ_l3,unknown]", "augment.enabled=false"])
    data = load_task_data(cfg)
    run_dir = tmp_path_factory.mktemp("compnet3d") / "smoke-compnet3d-s0"
    summary = METHOD.train(cfg, run_dir, data=data)
    metrics = METHOD.evaluate(cfg, run_dir, data=data)
    yield cfg, data, run_dir, summary, metrics
    torch.set_num_threads(n)


def test_registry_and_variants():
    spec = get_method("compnet3d")
    assert spec is METHOD and spec.presets == ("views",)
    assert [v.name for v in spec.variants] == ["compnet3d", "compnet3d_n64", "compnet3d_noweights",
                                                    "novum", "dualhead"]


def test_training_fits_the_training_images_far_above_chance(smoke):
    cfg, data, run_dir, summary, metrics = smoke
    assert summary["status"] == "completed" and summary["step"] == 60
    assert summary["n_classes"] == 4 and summary["calib_updates"] == 5        # before iterations 10, 20, .., 50
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv")
    first, last = m["loss"].iloc[0], m["loss"].iloc[-1]
    assert last < 0.5 * first                                                  # the contrastive loss drops
    model = load_trained(cfg, run_dir, data, torch.device("cpu"))
    pred, target = predict_classes(model, data.loader("train", batch_size=16), torch.device("cpu"))
    acc = (pred == target).float().mean().item()
    print("smoke train-split accuracy", acc)
    assert acc >= 0.6, acc                                                     # chance: 0.25 (4 classes)


def test_evaluation_outputs_and_tables(smoke):
    cfg, data, run_dir, summary, metrics = smoke
    ev = json.loads((run_dir / "eval.json").read_text())
    assert set(ev["splits"]) == {"test", "occ_l3", "unknown"}
    for split in ("test", "occ_l3"):
        r = ev["splits"][split]
        assert 0.0 <= r["acc"] <= 1.0 and r["n"] == len(data.rows[split])
        assert set(r["pose"]) == {"acc_pi6", "acc_pi18", "median_deg"} and set(r["pose_gt"]) == set(r["pose"])
        assert 0.0 <= r["pose"]["median_deg"] <= 180.0
        # modulo the shapes' vertical-axis symmetries an error can only shrink
        for key in ("pose", "pose_gt"):
            assert r[key + "_sym"]["acc_pi6"] >= r[key]["acc_pi6"]
            assert r[key + "_sym"]["median_deg"] <= r[key]["median_deg"]
    ch = ev["splits"]["test"]["chance"]   # prior-guess chance: random training poses
    assert 0.0 < ch["acc_pi6"] <= ch["acc_pi6_sym"] < 1.0 and 45.0 < ch["median_deg"] < 135.0
    u = ev["splits"]["unknown"]["per_category"]
    assert set(u) == {"bus"} and u["bus"]["used_class"] in data.class_names
    assert sum(u["bus"]["used_counts"].values()) == u["bus"]["n"]
    assert metrics["test.acc"] == ev["splits"]["test"]["acc"]
    md = (run_dir / "tables.md").read_text()
    assert "Table 4" in md and "93.5" in md and "Table 3" in md
    tabs = METHOD.tables(__import__("pandas").DataFrame([{"method": "compnet3d", "run": run_dir.name,
                                                          "path": str(run_dir), "complete": True}]))
    assert set(tabs) >= {"table1", "table2", "table4", "pose_detail"}


def test_pose_grouping_does_not_change_the_metrics(smoke):
    """Evaluation pools the pose runs of several loader batches (``eval.pose_batch_size``) with the
    ground-truth-class runs of the misclassified images: per-image results equal one batch at a time."""
    from workbench.methods.compnet3d.evaluate import evaluate_split, load_trained

    cfg, data, run_dir, _, _ = smoke
    model = load_trained(cfg, run_dir, data, torch.device("cpu"))
    outs = []
    for group in (1, 64):
        c = cfg.merged({"eval": {"batch_size": 2, "pose_batch_size": group, "max_images": 0}})
        outs.append(evaluate_split(model, c, data, "test", torch.device("cpu"), data.median_distance))
    a, b = outs
    assert a["n"] == b["n"] == len(data.rows["test"]) > 2 and a["acc"] == b["acc"] and a["per_category"] == b["per_category"]
    for key in ("pose", "pose_gt"):
        assert a[key] == pytest.approx(b[key], abs=1e-6)


def test_resume_is_a_no_op(smoke):
    cfg, data, run_dir, summary, metrics = smoke
    again = METHOD.train(cfg, run_dir, data=data)
    assert again["step"] == summary["step"] and again["calib_updates"] == summary["calib_updates"]


@pytest.mark.parametrize("variant", ["novum", "dualhead"])
def test_baselines_train_and_evaluate(smoke, variant, tmp_path):
    cfg, data, run_dir, summary, metrics = smoke
    over = {v.name: v.overrides for v in METHOD.variants}[variant]
    vcfg = cfg.merged(over).with_overrides(["train.iterations=3", "eval.splits=[test]"])
    s = METHOD.train(vcfg, tmp_path / variant, data=data)
    m = METHOD.evaluate(vcfg, tmp_path / variant, data=data)
    assert s["step"] == 3 and 0.0 <= m["test.acc"] <= 1.0 and "test.pose_acc_pi6" in m
    if variant == "novum":
        assert "calib_updates" in s and s["calib_updates"] == 0               # no confusion weights
        per_row = lambda t: t["loss_gflops"] / t["visible_rows"]  # noqa: E731
        assert per_row(s["last_train"]) > 1.5 * per_row(summary["last_train"])   # full contrast costs more


def test_pose_pipeline_recovers_ground_truth_from_ideal_features(smoke):
    """With distinct vertex features and a feature map rendered from them at the ground-truth pose
    (dataset cameras, feature-resolution intrinsics, principal-point jitter), the evaluation's
    render-and-compare must find the annotated pose: checks every convention between the data
    layer and the estimator."""
    import torch.nn.functional as F

    from workbench.geometry import rotation_error
    from workbench.methods.compnet3d.evaluate import CompNetPredictor, feature_intrinsics
    from workbench.methods.compnet3d.pose import render_vertex_features

    cfg, data, run_dir, summary, metrics = smoke
    cfg = cfg.with_overrides(["pose.n_azimuth=12", "pose.n_elevation=4", "pose.n_theta=3", "pose.refine_steps=15"])
    model = load_trained(cfg, run_dir, data, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    model.bank.vertex.copy_(F.normalize(torch.randn(model.bank.vertex.shape, generator=g), dim=-1)
                            * model.bank.valid[..., None])
    b = next(iter(data.loader("test", batch_size=8)))
    h, w = data.image_size[0] // cfg.model.stride, data.image_size[1] // cfg.model.stride
    focal, principal = feature_intrinsics(b, data.image_size, (h, w), torch.device("cpu"))
    y = b["label"]
    n = model.n_verts
    feats, cover = render_vertex_features([model.verts[i, : n[i]] for i in y], [model.faces[i] for i in y],
                                          [model.bank.vertex[i, : n[i]] for i in y], b["R"], b["T"], focal,
                                          principal, (h, w))
    bg = model.bank.background[torch.randint(0, model.bank.n_background, (len(y), h, w), generator=g)]
    fmap = F.normalize(torch.where(cover[:, None], feats, bg.permute(0, 3, 1, 2)), dim=1)
    res = CompNetPredictor(model, cfg, data.median_distance).pose(fmap, y, focal, principal)
    err = torch.rad2deg(rotation_error(res.R, b["R"]))
    assert (err < 30).float().mean() >= 0.85, err
    assert err.median() < 10, err
