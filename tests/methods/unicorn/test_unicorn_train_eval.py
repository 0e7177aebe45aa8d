"""UNICORN training and evaluation on the synthetic ``collection`` preset (smoke profile)."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.eval.metrics import mask_iou
from workbench.methods import get_method
from workbench.methods.unicorn.config import UnicornConfig
from workbench.methods.unicorn.data import UnicornDataset, dataset_roots
from workbench.methods.unicorn.model import UnicornModel
from workbench.methods.unicorn.train import UnicornObjective, build_bank


@pytest.fixture(scope="module")
def smoke_cfg():
    return UnicornConfig.for_profile("smoke")


@pytest.fixture(scope="module")
def train_ds(smoke_cfg):
    c = smoke_cfg.data
    return UnicornDataset(dataset_roots(c), "train", c.variant, c.image_size)


def test_short_run_decreases_reconstruction_loss(smoke_cfg, train_ds):
    """40 alternate iterations on 8 fixed images: the 3D-step reconstruction loss drops by > 20 %."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = UnicornConfig.for_profile("smoke", ["loss.mean_texture_p=0.0"])
    model = UnicornModel(cfg)
    obj = UnicornObjective(cfg, model, build_bank(cfg))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = train_ds.images[:8].float() / 255.0
    rec = []
    for step in range(40):
        out = obj(model, {"image": x}, step)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if "rec" in out:
            rec.append(float(out["rec"]))
    first, last = sum(rec[:3]) / 3, sum(rec[-3:]) / 3
    assert last < 0.8 * first, (first, last)


def test_smoke_end_to_end_beats_chance(smoke_cfg, tmp_path):
    """METHOD.run on the smoke profile writes eval.json; the reconstructed silhouettes beat the
    all-foreground mask on IoU by 0.1, and every metric is finite."""
    spec = get_method("unicorn")
    run = tmp_path / "unicorn" / "smoke-full-s0"
    metrics = spec.run(smoke_cfg, run)
    saved = json.loads((run / "eval.json").read_text())
    assert saved["chamfer_l1_icp"] == pytest.approx(metrics["chamfer_l1_icp"])
    for k in ("chamfer_l1", "chamfer_l1_icp", "template_chamfer_l1", "template_chamfer_l1_icp", "mask_iou", "psnr"):
        assert torch.isfinite(torch.tensor(metrics[k])), k
    assert metrics["perceptual_kind"] in ("vgg", "ssim")
    assert metrics["train_step"] == smoke_cfg.train.iterations
    c = smoke_cfg.data
    test = UnicornDataset(dataset_roots(c), "test", c.variant, c.image_size, smoke_cfg.eval.max_images)
    gt = test.masks.float() / 255.0
    chance = float(mask_iou(torch.ones_like(gt), gt, threshold=0.5).mean())
    assert metrics["mask_iou"] > chance + 0.1, (metrics["mask_iou"], chance)
    tables = spec.tables(None)
    assert set(tables) == {"table2", "table3"}
    assert tables["table3"].iloc[-1]["full (paper)"] == pytest.approx(0.216)


def test_preset_overrides_reach_the_generator(monkeypatch, tmp_path):
    """``data.preset_overrides`` are passed to the generator after the category (e.g. uncropped renders)."""
    import importlib

    gen = importlib.import_module("workbench.data.generate")   # the module (the package exports a function of that name)

    seen = []
    monkeypatch.setattr(gen, "generate", lambda preset, **kw: seen.append((preset, kw["overrides"])) or tmp_path)
    c = UnicornConfig.for_profile("smoke", ["data.categories=[car,bird]",
                                            "data.preset_overrides=[crop_padding=null]"]).data
    assert dataset_roots(c) == {"car": tmp_path, "bird": tmp_path}
    assert seen == [("collection", ["category=car", "crop_padding=null"]), ("collection", ["crop_padding=null"])]
    seen.clear()
    dataset_roots(UnicornConfig.for_profile("smoke", ["data.categories=[bird]"]).data)
    assert seen == [("collection", None)]   # the default dataset keeps its unhashed name
