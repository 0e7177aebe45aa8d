"""workbench.nn: backbones (registry), heads and other reusable network pieces.

.. code-block:: python

    from workbench.nn import build_backbone, ProjectionHead
    bb = build_backbone("resnet18", in_channels=1)              # random init, grey input
    fmap = bb.features(torch.rand(2, 1, 64, 64))                # (2, 512, 2, 2), stride 32
    stages = build_backbone("resnet50").features(x, return_stages=["layer2", "layer3", "layer4"])
    head = ProjectionHead(bb.out_channels, 128, input_norm=True)
    z = head(bb(x))                                             # (B, 128), unit norm

torchvision is imported only when a torchvision backbone is built.
"""
from .backbones import (Backbone, ResNetBackbone, SmallCNN, VGG16Backbone, build_backbone, global_pool,
                        list_backbones, locate_pretrained, register_backbone)
from .heads import MLP, L2Norm, ProjectionHead

__all__ = ["Backbone", "SmallCNN", "ResNetBackbone", "VGG16Backbone", "build_backbone", "register_backbone",
           "list_backbones", "locate_pretrained", "global_pool", "MLP", "L2Norm", "ProjectionHead"]
