"""A tiny procedural multi-view world for PiRO's unit-level end-to-end tests (a helper module with
a unique name, imported by the tests; conftest modules of other folders share the name ``conftest``).

Each category is a template of coloured 3D Gaussian blobs; an object perturbs the template
(slightly: fine-grained); a view rotates the object about +Y (azimuth 2 pi k / V) and splats the
blobs orthographically into an image. Seconds to build, independent of the data layer.
"""
import math

import torch
import torch.nn as nn

from workbench.methods.piro.data import MultiViewSplit


def toy_world(n_cat=3, n_obj=6, views=6, size=24, blobs=5, obj_jitter=0.25, seed=0):
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(n_cat, blobs, 3, generator=g) * 1.2 - 0.6
    colours = torch.rand(n_cat, blobs, 3, generator=g)
    imgs, cats = [], []
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for c in range(n_cat):
        for _ in range(n_obj):
            pos = templates[c] + obj_jitter * torch.randn(blobs, 3, generator=g) * 0.3
            col = (colours[c] + 0.5 * obj_jitter * torch.randn(blobs, 3, generator=g)).clamp(0, 1)
            views_img = []
            for k in range(views):
                a = 2 * math.pi * k / views
                R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
                p = pos @ R.T
                w = torch.exp(-((xs[None] - p[:, 0, None, None]) ** 2 + (ys[None] + p[:, 1, None, None]) ** 2) / 0.03)
                img = (w[:, None] * col[:, :, None, None]).sum(0) + 0.1
                views_img.append(img.clamp(0, 1))
            imgs.append(torch.stack(views_img))
            cats.append(c)
    return torch.stack(imgs), torch.tensor(cats)


def toy_splits(**kw):
    images, cats = toy_world(**kw)
    n_obj = kw.get("n_obj", 6)
    per = torch.arange(len(cats)) % n_obj
    tr, te = per < n_obj - 2, per >= n_obj - 2
    names = [f"cat{i}" for i in range(int(cats.max()) + 1)]
    return {"train": MultiViewSplit.from_tensors(images[tr], cats[tr], torch.nonzero(tr).squeeze(1), names),
            "test": MultiViewSplit.from_tensors(images[te], cats[te], torch.nonzero(te).squeeze(1), names)}


class TinyCNN(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.out_channels = width
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def tiny_backbone(name, pretrained=False, **kwargs):
    return TinyCNN()

