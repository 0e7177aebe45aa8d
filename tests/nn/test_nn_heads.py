"""MLP, L2Norm and ProjectionHead."""
from __future__ import annotations

import pytest
import torch

from workbench.core import ConfigError
from workbench.nn import MLP, L2Norm, ProjectionHead


def test_mlp_structure_and_options():
    m = MLP(8, [16, 16], 3, norm="bn", dropout=0.1)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert m(torch.rand(5, 8)).shape == (5, 3)
    assert len(MLP(4, [], 2)) == 1 and isinstance(MLP(4, [3], 2, last_act=True)[-1], torch.nn.ReLU)
    assert MLP(4, [8], 2, norm="ln")(torch.rand(2, 7, 4)).shape == (2, 7, 2)
    with pytest.raises(ConfigError, match="unknown activation"):
        MLP(4, [8], 2, act="swishy")


def test_mlp_learns_xor():
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    m = MLP(2, [16], 2, act="tanh")
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    assert (m(x).argmax(1) == y).all()  # a linear model cannot do this


def test_l2norm_and_projection_head():
    z = L2Norm()(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(z, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    head = ProjectionHead(32, 8, input_norm=True)
    out = head(torch.rand(6, 32) * 10)
    assert out.shape == (6, 8) and torch.allclose(out.norm(dim=1), torch.ones(6))
    assert isinstance(head.input_norm, torch.nn.BatchNorm1d) and len(head.mlp) == 1
    two = ProjectionHead(32, 8, hidden_dim=16, normalize=False)
    assert [type(x).__name__ for x in two.mlp] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert not torch.allclose(two(torch.rand(4, 32)).norm(dim=1), torch.ones(4))
