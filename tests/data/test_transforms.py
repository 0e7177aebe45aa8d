"""The batched photometric jitter (``workbench.data.transforms.photometric_batch``)."""
import pytest
import torch

from workbench.data.transforms import photometric_batch


def _images(B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(B, 3, 5, 7, generator=g)  # away from the clamp


def test_zero_strengths_are_the_identity():
    x = _images()
    assert torch.equal(photometric_batch(x), x)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = _images()
    y = photometric_batch(x, brightness=0.2, generator=torch.Generator().manual_seed(1))
    ratio = (y / x).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    assert ((ratio[:, 0] >= 0.8 - 1e-6) & (ratio[:, 0] <= 1.2 + 1e-6)).all()
    assert ratio[:, 0].std() > 0.01  # a factor per image, not one for the batch


def test_contrast_keeps_the_mean_and_saturation_keeps_the_grey():
    x = _images()
    g = torch.Generator().manual_seed(2)
    y = photometric_batch(x, contrast=0.3, generator=g)
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    y = photometric_batch(0.4 + 0.2 * x, saturation=0.5, generator=g)
    assert torch.allclose(y.mean(1), (0.4 + 0.2 * x).mean(1), atol=1e-5)
    assert not torch.allclose(y, 0.4 + 0.2 * x)


def test_channel_shuffle_permutes_the_channels_of_every_image():
    x = _images(B=32)
    y = photometric_batch(x, channel_shuffle=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(y.sort(1).values, x.sort(1).values)  # same values per pixel
    assert all(not torch.equal(y[i], x[i]) for i in range(32))  # never the identity order
    orders = {tuple(int((y[i, c] == x[i, k]).all()) for c in range(3) for k in range(3)) for i in range(32)}
    assert len(orders) == 5  # all five non-identity permutations occur


def test_grayscale_and_probabilities():
    x = _images(B=400)
    y = photometric_batch(x, grayscale=1.0)
    assert torch.allclose(y, x.mean(1, keepdim=True).expand_as(x))
    y = photometric_batch(x, grayscale=0.25, generator=torch.Generator().manual_seed(4))
    grey = (y[:, 0] == y[:, 1]).all(-1).all(-1) & (y[:, 1] == y[:, 2]).all(-1).all(-1)
    assert 0.18 < grey.float().mean() < 0.32


def test_reproducible_with_a_generator_and_rejects_bad_shapes():
    x = _images()
    kw = dict(brightness=0.3, contrast=0.3, saturation=0.3, channel_shuffle=0.5, grayscale=0.2)
    a = photometric_batch(x, generator=torch.Generator().manual_seed(5), **kw)
    b = photometric_batch(x, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a, b) and a.dtype == x.dtype and (a >= 0).all() and (a <= 1).all()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        photometric_batch(x[:, :1])
