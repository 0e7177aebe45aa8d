"""End to end: train + evaluate on the toy multi-view world, resume, files, tables; config strictness."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.core.errors import ConfigError
from workbench.methods import get_method
from workbench.methods.piro import PiroConfig, variant_config
from workbench.methods.piro.evaluate import evaluate
from workbench.methods.piro.tables import tables
from workbench.methods.piro.train import augment_views, train

from piro_toy import tiny_backbone, toy_splits

OVR = ["train.iterations=60", "train.eval_every=30", "train.checkpoint_every=30", "train.log_every=10",
       "data.image_size=24", "train.milestones=[]", "model.cat_dim=16", "model.obj_dim=16", "model.pool=avg"]


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return toy_splits(n_cat=3, n_obj=8, views=6, obj_jitter=0.3, seed=1)


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("piro") / "piro" / "smoke-piro_de-s0"
    cfg = variant_config("piro_de", "smoke", OVR)
    res = train(cfg, run, data=toy, backbone_factory=tiny_backbone)
    metrics = evaluate(cfg, run, data=toy, backbone_factory=tiny_backbone)
    return cfg, run, res, metrics


def test_end_to_end_beats_chance(trained, toy):
    cfg, run, res, m = trained
    assert res["status"] == "completed" and res["step"] == 60
    # 3 categories (chance 33 %); 6 test objects x 6 views: another view of the same object is
    # 5 of the 35 other views (chance of the 1-NN ~14 %); MV object: 1 of 6 references (17 %).
    # Thresholds hold for seeds 0-2 (seed 0, used here: 89 / 92 / 83; the worst seed: 47 / 69 / 83).
    assert m["sv_cat_acc"] > 45.0, m
    assert m["sv_obj_acc"] > 40.0, m
    assert m["mv_obj_acc"] > 50.0, m
    for k in ("sv_cat_map", "mv_cat_map", "sv_obj_map", "mv_obj_map"):
        assert 0.0 <= m[k] <= 100.0
    assert m["sv_cat_map_noself"] <= m["sv_cat_map"] + 1e-9
    # within-category SV object retrieval (diagnostic): a gallery of the query's own category only
    assert 0.0 <= m["sv_obj_map_within_cat"] <= 100.0


def test_run_files_and_rho_tracking(trained):
    cfg, run, _, m = trained
    for f in ("config.yaml", "metrics.csv", "checkpoint.pt", "eval.json", "embeddings.pt"):
        assert (run / f).is_file(), f
    assert PiroConfig.load(run / "config.yaml") == cfg
    ev = json.loads((run / "eval.json").read_text())
    assert ev["sv_obj_acc"] == pytest.approx(m["sv_obj_acc"]) and ev["step"] == 60
    df = pd.read_csv(run / "metrics.csv")
    rho = df[df["phase"] == "eval"][["step", "train.rho_obj", "train.d_intra_max_obj", "train.d_inter_min_obj"]]
    assert rho["step"].tolist() == [30, 60] and rho.notna().all().all()
    np.testing.assert_allclose(rho["train.rho_obj"], rho["train.d_inter_min_obj"] / rho["train.d_intra_max_obj"],
                               rtol=1e-6)
    emb = torch.load(run / "embeddings.pt", weights_only=True)
    assert emb["test"]["obj_sv"].shape == (6, 6, 16) and emb["test"]["obj_mv_ref"].shape == (6, 16)


def test_rerun_resumes_without_training(trained, toy):
    cfg, run, _, m = trained
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    res = train(cfg, run, data=toy, backbone_factory=tiny_backbone)
    assert res["step"] == 60 and (run / "checkpoint.pt").stat().st_mtime_ns == before
    again = evaluate(cfg, run, data=toy, backbone_factory=tiny_backbone, save_embeddings=False)
    assert again["sv_obj_acc"] == pytest.approx(m["sv_obj_acc"])       # deterministic evaluation


@pytest.mark.parametrize("variant", ["piro_se", "pi_tc", "mvcnn"])
def test_variants_train_a_few_steps(variant, toy, tmp_path):
    cfg = variant_config(variant, "smoke", OVR + ["train.iterations=3", "train.eval_every=0"])
    res = train(cfg, tmp_path / variant, data=toy, backbone_factory=tiny_backbone)
    assert res["step"] == 3 and np.isfinite(res["last_train"]["loss"])


def test_tables_from_runs(trained):
    _, run, _, m = trained
    (run / "run.json").write_text(json.dumps({"variant": "piro_de", "profile": "smoke", "seed": 0}))
    t = tables(pd.DataFrame({"path": [str(run)]}))
    assert set(t) == {"table1", "table2", "table4"}
    row = t["table1"].loc[[i for i in t["table1"].index if i[0].startswith("ours") and i[1] == "Dual"][0]]
    assert row["SV-obj acc"] == pytest.approx(m["sv_obj_acc"])
    assert t["table1"].loc[("paper (FG3D)", "Dual"), "SV-obj acc"] == pytest.approx(83.00)
    ours4 = t["table4"].loc[[i for i in t["table4"].index if i[0].startswith("ours")][0]]
    assert ours4["Classification avg"] == pytest.approx(m["acc_avg"])


def test_method_spec_and_config_errors():
    spec = get_method("piro")
    assert spec.variants[0].name == "piro_de" and "multiview" in spec.presets
    with pytest.raises(ConfigError, match="did you mean"):
        PiroConfig.for_profile("smoke", ["model.dul=false"])
    with pytest.raises(ConfigError):
        PiroConfig.for_profile("smoke", ["loss.objective=triplet"])
    with pytest.raises(ConfigError):
        PiroConfig.for_profile("smoke", ["loss.use_cat=false", "loss.use_picat=false", "loss.use_piobj=false"])
    full = PiroConfig.for_profile("full")
    assert (full.model.backbone, full.model.cat_dim, full.model.pool, full.train.lr) == ("vgg16", 2048, "flatten", 1e-5)
    assert full.train.milestones == [5000, 10000, 15000, 20000] and full.train.gamma == 0.5


def test_augment_views_shapes_and_identity():
    x = torch.rand(2, 3, 3, 16, 16)
    y = augment_views(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    same = augment_views(x, max_rot_deg=0.0, scale=(1.0, 1.0), max_shear_deg=0.0, flip_p=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    flipped = augment_views(x, max_rot_deg=0.0, scale=(1.0, 1.0), max_shear_deg=0.0, flip_p=1.0)
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)


def test_streamed_split_gives_the_same_batches(toy, tmp_path):
    """A split read from a dataset (full profile) yields exactly the in-memory batches."""
    from workbench.methods.piro.data import MultiViewSplit
    from workbench.methods.piro.sampler import PairSampler
    from workbench.methods.piro.train import _PairBatches

    mem = toy["train"]

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(mem)

        def __getitem__(self, i):
            return {"images": mem.images[i].float() / 255.0, "category": int(mem.categories[i]),
                    "object": int(mem.objects[i])}

    disk = MultiViewSplit(mem.categories, mem.objects, mem.category_names, dataset=DS(),
                          image_size=mem.image_size, meta={"views": mem.num_views})
    s = PairSampler(mem.categories.numpy(), 3, mem.num_views, n_views=4, seed=2)
    for k in (0, 5):
        a, b = _PairBatches(s, mem)[k], _PairBatches(s, disk)[k]
        torch.testing.assert_close(a["images"], b["images"])
        assert torch.equal(a["category"], b["category"]) and a["images"].shape == (6, 4, 3, 24, 24)
    cfg = variant_config("piro_de", "smoke", OVR + ["train.iterations=2", "train.eval_every=0", "data.workers=1",
                                                    "data.in_memory=false"])
    res = train(cfg, tmp_path / "disk", data={"train": disk, "test": toy["test"]}, backbone_factory=tiny_backbone)
    assert res["step"] == 2


def test_real_dataset_adapter_path(tmp_path):
    """ObjectPI in PiRO's layout (8 views, o2c files) -> the config's data section -> splits."""
    from PIL import Image

    from workbench.methods.piro.train import load_data

    rng = np.random.default_rng(0)
    root = tmp_path / "objectpi"
    o2c = {"train": np.array([0, 0, 1, 1, 2]), "test": np.array([1, 0])}
    for split, cats in o2c.items():
        (root / split).mkdir(parents=True)
        np.save(root / split / f"{split}_o2c.npy", cats)
        for k in range(len(cats)):
            (root / split / str(k + 1)).mkdir()
            for v in range(8):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / split / str(k + 1) / f"{v + 1}.jpg")
    (root / "classes.txt").write_text("mug\nbook\nshoe\n")
    cfg = PiroConfig.for_profile("smoke", ["data.source=objectpi", f"data.root={root}", "data.views=8",
                                           "data.image_size=16"])
    d = load_data(cfg, cache=False)
    tr, te = d["train"], d["test"]
    assert tr.images.shape == (5, 8, 3, 16, 16) and te.images.shape == (2, 8, 3, 16, 16)
    assert tr.category_names == te.category_names and tr.categories.tolist() == [0, 0, 1, 1, 2]
    assert [te.category_names[c] for c in te.categories] == ["book", "mug"]
    with pytest.raises(Exception, match="objectpi"):
        load_data(PiroConfig.for_profile("smoke", ["data.source=objectpi", f"data.root={tmp_path / 'nope'}"]),
                  cache=False)
