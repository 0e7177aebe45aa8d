"""Backbone registry, shapes/strides, multi-stage features and local pretrained-weight loading."""
from __future__ import annotations

import pytest
import torch

from workbench.core import CheckpointError, ConfigError, ShapeError
from workbench.nn import (Backbone, SmallCNN, build_backbone, global_pool, list_backbones, locate_pretrained,
                          register_backbone)


def test_registry_names_unknown_and_custom():
    assert {"small_cnn", "resnet18", "resnet34", "resnet50", "vgg16"} <= set(list_backbones())
    with pytest.raises(ConfigError, match="did you mean 'resnet50'"):
        build_backbone("resnet5")

    @register_backbone("_test_tiny_cnn")
    def tiny(pretrained=False, in_channels=3, weights_path=None, width=4):
        return SmallCNN(in_channels, width=width, stride=4)

    assert "_test_tiny_cnn" in list_backbones()
    assert build_backbone("_test_tiny_cnn", width=6).out_channels == 12
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("_test_tiny_cnn")(tiny)


@pytest.mark.parametrize("stride, channels", [(8, 128), (16, 256)])
def test_small_cnn_strides_and_stages(stride, channels):
    bb = build_backbone("small_cnn", stride=stride, in_channels=1)
    x = torch.rand(2, 1, 48, 64)
    f = bb.features(x)
    assert isinstance(bb, Backbone) and bb.out_channels == channels and bb.stride == stride
    assert f.shape == (2, channels, 48 // stride, 64 // stride)
    assert bb(x).shape == (2, channels)
    st = bb.features(x, return_stages=["stage1", "stage2"])
    assert list(st) == ["stage1", "stage2"] and st["stage2"].shape == (2, 64, 12, 16)
    bb(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in bb.parameters())
    with pytest.raises(ShapeError, match=r"expected \(B, 1, H, W\)"):
        bb.features(torch.rand(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="unknown stages"):
        bb.features(x, return_stages=["layer9"])
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_backbone("small_cnn", pretrained=True)
    assert sum(p.numel() for p in build_backbone("small_cnn", norm="gn").parameters()) < 400_000


def test_resnet_stages_and_truncation():
    x = torch.rand(2, 3, 64, 64)
    bb = build_backbone("resnet50")
    st = bb.features(x, return_stages=["layer2", "layer3", "layer4"])  # the ResNetExt inputs
    assert {k: tuple(v.shape) for k, v in st.items()} == {
        "layer2": (2, 512, 8, 8), "layer3": (2, 1024, 4, 4), "layer4": (2, 2048, 2, 2)}
    assert bb.stage_strides["layer2"] == 8 and bb.out_channels == 2048 and bb.stride == 32
    r18 = build_backbone("resnet18", out_stage="layer3", in_channels=4)
    assert (r18.out_channels, r18.stride) == (256, 16) and not hasattr(r18, "layer4")
    assert r18.features(torch.rand(1, 4, 64, 64)).shape == (1, 256, 4, 4)
    assert build_backbone("resnet34").stage_channels["layer4"] == 512


def test_vgg16_stages_match_torchvision_layout():
    bb = build_backbone("vgg16")
    st = bb.features(torch.rand(1, 3, 32, 32), return_stages=True)
    assert {k: (v.shape[1], 32 // v.shape[2]) for k, v in st.items()} == {
        "relu1_2": (64, 1), "relu2_2": (128, 2), "relu3_3": (256, 4), "relu4_3": (512, 8), "relu5_3": (512, 16),
        "pool5": (512, 32)}
    assert all((v >= 0).all() for v in st.values())  # post-ReLU maps
    perc = build_backbone("vgg16", out_stage="relu3_3")  # perceptual-loss trunk
    assert len(perc.body) == 16 and perc.out_channels == 256 and perc.stride == 4
    assert perc.features(torch.zeros(1, 3, 8, 8)).shape == (1, 256, 2, 2)


def _torchvision_resnet18(seed=0):
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BN statistics so that loading them matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _trunk(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_resnet_loads_local_torchvision_weights_file(tmp_path):
    net = _torchvision_resnet18()
    f = tmp_path / "r18.pth"
    torch.save(net.state_dict(), f)
    bb = build_backbone("resnet18", weights_path=f).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():  # equal up to rounding: the 2x2 maps of layer4 convolve as one GEMM on the CPU
        torch.testing.assert_close(bb.features(x), _trunk(net, x), rtol=1e-5, atol=1e-5)
    assert bb.weights_file == str(f)


def test_pretrained_true_uses_torch_hub_cache_or_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("WB_WEIGHTS_DIR", raising=False)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(CheckpointError) as ei:
        build_backbone("resnet18", pretrained=True)
    assert str(expected) in str(ei.value) and "no download" in str(ei.value)
    net = _torchvision_resnet18(seed=1)
    expected.parent.mkdir(parents=True)
    torch.save(net.state_dict(), expected)
    assert locate_pretrained("resnet18") == expected
    bb = build_backbone("resnet18", pretrained=True).eval()
    assert torch.equal(bb.layer4[1].conv2.weight, net.layer4[1].conv2.weight)
    with pytest.raises(ConfigError, match="unknown weights 'IMAGENET9K'"):
        build_backbone("resnet18", pretrained="IMAGENET9K")


def test_pretrained_first_conv_adaptation(tmp_path):
    net = _torchvision_resnet18()
    f = tmp_path / "r18.pth"
    torch.save(net.state_dict(), f)
    rgb = build_backbone("resnet18", weights_path=f).eval()
    rgbm = build_backbone("resnet18", weights_path=f, in_channels=4).eval()
    grey = build_backbone("resnet18", weights_path=f, in_channels=1).eval()
    x = torch.rand(2, 3, 32, 32)
    g = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        # an extra (mask) channel starts with zero weights: the pretrained response is unchanged
        assert torch.equal(rgbm.features(torch.cat([x, torch.ones(2, 1, 32, 32)], 1)), rgb.features(x))
        # one channel = sum of the RGB filters: grey input behaves as grey replicated to RGB
        torch.testing.assert_close(grey.features(g), rgb.features(g.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)
    # a backbone's own (4-channel) state_dict loads back
    own = tmp_path / "own.pth"
    torch.save(rgbm.state_dict(), own)
    again = build_backbone("resnet18", weights_path=own, in_channels=4)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), rgbm.state_dict().values()))
    with pytest.raises(CheckpointError, match="conv1 takes 4 channels"):
        build_backbone("resnet18", weights_path=own, in_channels=3)


def test_vgg16_and_small_cnn_weight_files(tmp_path):
    src = build_backbone("vgg16")
    f = tmp_path / "vgg16.pth"
    torch.save({**{f"features.{k}": v for k, v in src.body.state_dict().items()},
                "classifier.0.weight": torch.zeros(4, 4)}, f)  # torchvision layout, classifier ignored
    got = build_backbone("vgg16", weights_path=f)
    assert torch.equal(got.body[28].weight, src.body[28].weight)
    small = build_backbone("small_cnn", width=8)
    g = tmp_path / "small.pth"
    torch.save({"state_dict": small.state_dict()}, g)
    assert torch.equal(build_backbone("small_cnn", width=8, weights_path=g).stage3[0][0].weight,
                       small.stage3[0][0].weight)
    with pytest.raises(CheckpointError, match=f"{g}.*shape mismatch"):
        build_backbone("small_cnn", width=16, weights_path=g)
    bad = tmp_path / "bad.pth"
    bad.write_text("garbage")
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        build_backbone("vgg16", weights_path=bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_backbone("resnet18", weights_path=tmp_path / "nope.pth")


def test_global_pool():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert global_pool(x).tolist() == [[1.5, 5.5]]
    assert global_pool(x, "max").tolist() == [[3.0, 7.0]]
    assert global_pool(x, "avgmax").tolist() == [[2.25, 6.25]]
