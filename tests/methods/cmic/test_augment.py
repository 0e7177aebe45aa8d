"""Geometric augmentation: identity / flip / crop geometry, image and mask stay aligned."""
import torch

from workbench.methods.cmic.augment import (AugmentSettings, augment_queries, augment_renders,
                                            random_affine_theta, warp)


def test_identity_flip_and_crop_geometry():
    x = torch.rand(2, 3, 8, 8)
    eye = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    torch.testing.assert_close(warp(x, eye, (8, 8)), x)
    flip = torch.tensor([[-1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    torch.testing.assert_close(warp(x, flip, (8, 8)), x.flip(-1))
    # the top-left quarter, resampled to 4x4, is exactly that quarter
    quarter = torch.tensor([[0.5, 0, -0.5], [0, 0.5, -0.5]]).expand(2, 2, 3)
    torch.testing.assert_close(warp(x, quarter, (4, 4)), x[..., :4, :4])
    g = torch.Generator().manual_seed(0)
    th = random_affine_theta(500, scale=(0.65, 0.9), flip_p=0.5, generator=g)
    area = (th[:, 0, 0].abs() * th[:, 1, 1])
    assert area.min() >= 0.65 - 1e-6 and (th[:, 0, 0].abs() <= 1).all() and (th[:, 1, 1] <= 1).all()
    assert area.max() <= 0.9 + 1e-6
    inside = (th[:, 0, 2].abs() <= 1 - th[:, 0, 0].abs() + 1e-6) & (th[:, 1, 2].abs() <= 1 - th[:, 1, 1] + 1e-6)
    assert inside.all()  # no translation: the crop stays inside the image
    assert 0.4 < (th[:, 0, 0] < 0).float().mean() < 0.6


def test_query_image_and_mask_share_the_warp():
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(4, 1, 32, 32)
    mask[:, :, 8:20, 5:25] = 1
    img = mask.expand(4, 3, 32, 32).clone()
    aug = AugmentSettings(colour="none")
    out_img, out_mask = augment_queries(img, mask, 24, aug, g)
    assert out_img.shape == (4, 3, 24, 24) and out_mask.shape == (4, 1, 24, 24)
    torch.testing.assert_close(out_img[:, :1], out_mask)
    assert (out_mask > 0.5).any() and (out_mask < 0.5).any()
    renders = torch.rand(2, 12, 1, 32, 32)
    assert augment_renders(renders, 16, aug, g).shape == (2, 12, 1, 16, 16)
    # colour transfer keeps masks and shapes
    ti, tm = augment_queries(torch.rand(4, 3, 32, 32), mask, 24, AugmentSettings(), g)
    assert ti.shape == (4, 3, 24, 24) and 0 <= ti.min() and ti.max() <= 1


def test_shrinking_crops_are_anti_aliased_like_the_evaluation_resize():
    from workbench.methods.cmic.augment import resize

    # stripes of period 3 px: a plain bilinear 2x shrink aliases them into a coarse beat pattern
    x = torch.zeros(2, 1, 64, 64)
    x[..., ::3] = 1.0
    eye = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    aa, plain = warp(x, eye, (32, 32)), warp(x, eye, (32, 32), antialias=False)
    torch.testing.assert_close(aa, resize(x, 32))  # whole-image crop: exactly the evaluation's resize
    assert plain.std() > 3 * aa.std()
    # a crop of 3/4 of the image to 32 px: the same as the anti-aliased resize of that crop
    g = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)).expand(2, 1, 64, 64)
    th = torch.tensor([[0.75, 0, -0.25], [0, 0.75, -0.25]]).expand(2, 2, 3)
    ref = resize(g[..., :48, :48], 32)
    err_aa = (warp(g, th, (32, 32)) - ref).abs().mean()
    err_plain = (warp(g, th, (32, 32), antialias=False) - ref).abs().mean()
    assert err_aa < 0.5 * err_plain
    # enlarging crops are unchanged
    torch.testing.assert_close(warp(g, eye, (64, 64)), g)
