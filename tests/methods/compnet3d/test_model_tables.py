"""Model shapes/strides, pose bins, config profiles, data helpers and the paper-layout tables."""
import math

import pytest
import torch

from workbench.core.errors import ConfigError
from workbench.methods.compnet3d.config import CompNet3DConfig
from workbench.methods.compnet3d.data import stratified_subset
from workbench.methods.compnet3d.mesh import cuboid_about, novum_cuboid_vertex_count
from workbench.methods.compnet3d.model import (DualHead, FeatureExtractor, UpsampleDecoder, angles_to_bins,
                                               bins_to_angles)
from workbench.methods.compnet3d.tables import run_tables, tables_markdown, variant_of


@pytest.mark.parametrize("stride", [4, 8])
def test_feature_extractor_unit_features_at_stride(stride):
    cfg = CompNet3DConfig.for_profile("smoke", [f"model.stride={stride}"])
    m = FeatureExtractor(cfg.model, (64, 64)).eval()
    y = m(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, cfg.model.feature_dim, 64 // stride, 64 // stride)
    assert torch.allclose(y.norm(dim=1), torch.ones(2, 64 // stride, 64 // stride), atol=1e-5)


def test_small_cnn_top_stride_sets_the_receptive_field():
    """Pixels that reach the feature at the centre of a 160 px image (trunk + decoder): 101 px wide
    with the top stage at stride 8, the whole image with 16 and 32."""
    extents = {}
    for top in (8, 16, 32):
        cfg = CompNet3DConfig.for_profile("smoke", ["model.stride=4", f"model.top_stride={top}"])
        m = FeatureExtractor(cfg.model, (160, 160)).eval()
        x = torch.rand(1, 3, 160, 160, requires_grad=True)
        y = m(x)
        assert y.shape == (1, cfg.model.feature_dim, 40, 40)
        y[0, :, 20, 20].sum().backward()
        rows = torch.nonzero(x.grad[0].abs().amax((0, 2)) > 0).flatten()
        extents[top] = int(rows.max() - rows.min() + 1)
    assert extents == {8: 101, 16: 160, 32: 160}


def test_small_cnn_top_stride_must_exceed_the_output_stride():
    with pytest.raises(ConfigError, match="top_stride"):
        FeatureExtractor(CompNet3DConfig.for_profile("smoke", ["model.stride=8", "model.top_stride=8"]).model, (64, 64))


def test_upsample_decoder_is_nemo_resnetext_for_resnet50_channels():
    dec = UpsampleDecoder((512, 1024, 2048))
    assert dec.out_channels == 256
    convs = [m for m in dec.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs][::2] == [(2048, 1024), (2048, 512), (1024, 256)]
    x = [torch.rand(1, 512, 8, 10), torch.rand(1, 1024, 4, 5), torch.rand(1, 2048, 2, 3)]   # odd sizes
    assert dec(x).shape == (1, 256, 8, 10)


def test_dual_head_shapes_and_pose_bins_round_trip():
    cfg = CompNet3DConfig.for_profile("smoke", ["model.kind=dualhead"])
    logits, pose = DualHead(cfg, 5, (64, 64))(torch.rand(3, 3, 64, 64))
    assert logits.shape == (3, 5) and pose.shape == (3, 3, cfg.model.pose_bins)
    a = torch.tensor([0.1, 3.0, 6.2, -0.3])
    e = torch.tensor([0.0, 0.5, -0.2, 1.5])
    th = torch.tensor([0.0, -0.1, 3.1, -3.1])
    idx = angles_to_bins(a, e, th, 40)
    assert idx.min() >= 0 and idx.max() < 40
    a2, e2, th2 = bins_to_angles(idx, 40)
    wrap = lambda x: torch.remainder(x + math.pi, 2 * math.pi) - math.pi  # noqa: E731
    assert (wrap(a2 - a).abs() <= math.pi / 40 + 1e-6).all()              # half a 9-degree bin
    assert ((e2 - e).abs() <= math.pi / 80 + 1e-6).all()
    assert (wrap(th2 - th).abs() <= math.pi / 40 + 1e-6).all()


def test_config_profiles_variants_and_strict_keys():
    for p in ("smoke", "quick", "full"):
        cfg = CompNet3DConfig.for_profile(p)
        assert cfg.model.kappa == pytest.approx(1 / 0.07)
        assert cfg.bank.momentum == 0.9 and cfg.loss.weight_threshold == 0.05
    full = CompNet3DConfig.for_profile("full")
    assert (full.model.backbone, full.model.stride, full.model.n_vertices, full.model.feature_dim) == \
        ("resnet50", 8, 500, 128)
    assert (full.loss.n_sample, full.bank.n_background, full.pose.n_azimuth * full.pose.n_elevation *
            full.pose.n_theta) == (32, 2560, 144)
    assert variant_of(full) == "compnet3d"
    assert variant_of(full.with_overrides(["loss.contrast=full"])) == "novum"
    assert variant_of(full.with_overrides(["model.kind=dualhead"])) == "dualhead"
    with pytest.raises(ConfigError, match="n_sample"):
        CompNet3DConfig.for_profile("smoke", ["loss.n_samples=3"])
    with pytest.raises(ConfigError):
        CompNet3DConfig.for_profile("smoke", ["loss.contrast=partial"])
    with pytest.raises(ConfigError, match="momentum"):
        CompNet3DConfig.for_profile("smoke", ["bank.momentum=1.0"])


def test_cuboid_vertex_count_targets_k():
    for size in [(1.0, 0.6, 0.4), (0.3, 1.0, 0.9)]:
        v, f = cuboid_about(size, 500)
        assert abs(v.shape[0] - 500) < 60
        assert v.abs().amax(0).tolist() == pytest.approx([s / 2 for s in size], abs=1e-5)
    assert novum_cuboid_vertex_count((1, 1, 1), 500) >= 500       # NOVUM's rule overshoots (edges duplicated)


def test_stratified_subset_round_robin():
    labels = ["a"] * 5 + ["b"] * 2 + ["c"] * 4
    sub = stratified_subset(labels, 6)
    got = [labels[i] for i in sub]
    assert sorted(got) == ["a", "a", "b", "b", "c", "c"]
    assert stratified_subset(labels, 0) == list(range(11))


def test_run_tables_layout_with_paper_side_columns():
    res = {"splits": {"test": {"acc": 0.9, "n": 260, "pose": {"acc_pi6": 0.5, "median_deg": 31.0},
                               "pose_gt": {"acc_pi6": 0.55}, "pose_sym": {"acc_pi6": 0.6},
                               "pose_gt_sym": {"acc_pi6": 0.65},
                               "chance": {"acc_pi6": 0.111, "acc_pi6_sym": 0.232}},
                      "occ_l1": {"acc": 0.8, "pose": {"acc_pi6": 0.4}},
                      "occ_l2": {"acc": 0.6, "pose": {"acc_pi6": 0.3}},
                      "occ_l3": {"acc": 0.4, "pose": {"acc_pi6": 0.2}},
                      "corrupt_fog": {"acc": 0.7, "pose": {"acc_pi6": 0.35}},
                      "style_cad": {"acc": 0.55},
                      "unknown": {"per_category": {"bus": {"acc_pi6": 0.25, "used_class": "car",
                                                            "used_fraction": 0.75}}}},
           "train": {"step": 10, "train_time_s": 3.0, "last_train": {"loss_gflops": 0.01}},
           "contrast": "grouped"}
    tabs = run_tables(res, CompNet3DConfig.for_profile("smoke"))
    t4 = tabs["table4"]
    row = t4[(t4.task == "class")].iloc[0]
    assert row["iid"] == 90.0 and row["iid (paper)"] == 93.5
    assert row["occ_avg"] == pytest.approx(60.0) and row["occ_avg (paper)"] == 43.7
    assert row["corr_avg"] is None or row["corr_avg"] != row["corr_avg"]   # incomplete corruptions: no average
    assert row["fog"] == 70.0 and row["fog (paper)"] == 73.6
    assert t4[(t4.task == "pose")].iloc[0]["occ_l3"] == 20.0
    assert tabs["table2"].iloc[0]["style shift"] == 55.0
    t3 = tabs["table3"].iloc[0]
    assert t3["bus"] == 25.0 and t3["bus via"] == "car (75%)" and t3["avg (paper)"] == 45.5
    pdt = tabs["pose_detail"].iloc[0]
    assert (pdt["acc pi/6"], pdt["acc pi/6, gt class"], pdt["acc pi/6 mod sym"]) == (50.0, 55.0, 60.0)
    assert (pdt["acc pi/6 mod sym, gt class"], pdt["chance acc pi/6"], pdt["chance mod sym"]) == (65.0, 11.1, 23.2)
    md = tables_markdown(tabs, "x")
    assert "| class | compnet3d |" in md and "Table 3" in md and "not in the paper" in md


def test_preset_overrides_reach_the_generator(monkeypatch, tmp_path):
    """``data.preset_overrides`` (e.g. more views per training instance) are passed to the generator."""
    import importlib

    gen = importlib.import_module("workbench.data.generate")   # the module (the package exports a function of that name)
    from workbench.methods.compnet3d.config import CompNet3DConfig
    from workbench.methods.compnet3d.data import dataset_root

    seen = []
    monkeypatch.setattr(gen, "generate", lambda preset, **kw: seen.append((preset, kw.get("overrides"))) or tmp_path)
    assert dataset_root(CompNet3DConfig.for_profile("smoke", ["data.preset_overrides=[train_views=24]"])) == tmp_path
    dataset_root(CompNet3DConfig.for_profile("smoke"))
    assert seen == [("views", ["train_views=24"]), ("views", None)]


def test_shape_symmetries_per_row_and_bad_shape_files(tmp_path, caplog):
    """Rows share one computation per shape file; a corrupt or non-PLY shape has no symmetries (a
    warning for the corrupt one), and a dataset without readable shapes gives None (no symmetry scores)."""
    from types import SimpleNamespace

    import pandas as pd

    from workbench.geometry import cuboid_mesh
    from workbench.geometry.mesh_io import save_ply
    from workbench.methods.compnet3d.evaluate import ShapeSymmetries

    m = cuboid_mesh((1.0, 0.5, 0.4), n_verts=120, merge_duplicates=True)
    save_ply(tmp_path / "box.ply", m.verts_list()[0], m.faces_list()[0])
    (tmp_path / "bad.ply").write_bytes(b"ply\nnot really\n")
    (tmp_path / "cloud.npz").write_bytes(b"")
    df = pd.DataFrame({"shape": ["box.ply", "bad.ply", "cloud.npz", "", "box.ply"]})
    syms = ShapeSymmetries(SimpleNamespace(root=tmp_path, index=SimpleNamespace(df=df)))
    with caplog.at_level("WARNING"):
        got = syms.get([0, 1, 2, 3, 4])
    assert [round(math.degrees(float(p))) for p in got[0]] == [180] and got[4] is got[0]
    assert got[1] is None and got[2] is None and got[3] is None
    assert "bad.ply" in caplog.text
    assert syms.get([1, 2, 3]) is None
    no_col = ShapeSymmetries(SimpleNamespace(root=tmp_path, index=SimpleNamespace(df=df.drop(columns="shape"))))
    assert no_col.get([0]) is None
