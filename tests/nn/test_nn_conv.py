import torch
from torch import nn

from workbench.nn.conv import use_small_map_convs


def test_small_map_convolutions_equal_conv2d_values_and_gradients():
    import torch.nn.functional as F

    from workbench.nn.conv import SmallMapConv2d

    g = torch.Generator().manual_seed(0)
    # (in, out, kernel, stride, padding, bias, input side): layer4-like, strided, the 4x4/s2 reduction, 1x1
    for cin, cout, k, st, p, bias, side in [(8, 6, 3, 1, 1, False, 2), (5, 7, 3, 2, 1, True, 3),
                                            (6, 4, 4, 2, 1, False, 2), (4, 3, 1, 2, 0, False, 3),
                                            (3, 5, 3, 1, 1, True, 9)]:            # last: 81 > 16 positions
        conv = SmallMapConv2d(cin, cout, k, st, p, bias=bias).double()
        x = torch.randn(3, cin, side, side, generator=g, dtype=torch.float64, requires_grad=True)
        y = conv(x)
        ref = F.conv2d(x, conv.weight, conv.bias, st, p)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        ga = torch.autograd.grad(y, [x, conv.weight], gy)
        gb = torch.autograd.grad(ref, [x, conv.weight], gy)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_use_small_map_convs_keeps_parameters_and_state_dict():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(2, 3, 4, 4)
    ref = m(x)
    use_small_map_convs(m)
    assert all(type(c).__name__ == "SmallMapConv2d" for c in (m[0], m[2]))
    assert before.keys() == m.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)
