"""Colour spaces, colour transfer and HSV jitter against independent references."""
import colorsys
import math

import numpy as np
import pytest
import torch

from workbench.core.errors import ConfigError, ShapeError
from workbench.methods.cmic import colour as C


def _images(b=3, h=12, w=10, seed=0, lo=0.05, hi=0.95):
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(b, 3, h, w, generator=g)).double()


def _lab_reinhard_numpy(img):
    """Reinhard et al. 2001 written out from the paper's equations (per pixel)."""
    lms = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
    L, M, S = np.log10(np.einsum("ij,jhw->ihw", lms, img))
    return np.stack([(L + M + S) / math.sqrt(3), (L + M - 2 * S) / math.sqrt(6), (L - M) / math.sqrt(2)])


def test_lalphabeta_matches_the_papers_equations_and_inverts():
    x = _images()
    lab = C.rgb_to_lalphabeta(x)
    ref = np.stack([_lab_reinhard_numpy(im) for im in x.numpy()])
    np.testing.assert_allclose(lab.numpy(), ref, atol=1e-12)
    torch.testing.assert_close(C.lalphabeta_to_rgb(lab), x, atol=1e-12, rtol=0)
    # Reinhard's published LMS -> RGB matrix is only approximately the inverse of the forward one
    # (third row off by up to 0.017); the exact inverse is used so that the conversion round-trips
    published = torch.tensor([[4.4679, -3.5873, 0.1193], [-1.2186, 2.3809, -0.1624], [0.0497, -0.2439, 1.2045]],
                             dtype=torch.float64)
    torch.testing.assert_close(C._LMS2RGB[:2], published[:2], atol=3e-3, rtol=0)


def test_cielab_matches_skimage_and_the_x255_quirk_inverts():
    skimage_color = pytest.importorskip("skimage.color")
    x = _images(b=2)
    for im, lab in zip(x, C.rgb_to_cielab(x)):
        ref = skimage_color.rgb2lab(im.permute(1, 2, 0).numpy())
        np.testing.assert_allclose(lab.permute(1, 2, 0).numpy(), ref, atol=1e-3)
    for space in ("cielab", "cielab_x255"):
        torch.testing.assert_close(C.from_space(C.to_space(x, space), space), x, atol=1e-10, rtol=0)
    # the quirk: "Lab" of 255-scaled pixels (L far outside [0, 100])
    assert C.to_space(x, "cielab_x255")[:, 0].min() > 100


@pytest.mark.parametrize("space", C.COLOUR_SPACES)
def test_transfer_matches_source_statistics_and_inverts(space):
    target, source = _images(seed=1), _images(seed=2, lo=0.2, hi=0.7)
    out = C.colour_transfer(target, source, space, clip=False)
    # per channel mean / unbiased std in the colour space, computed independently
    o, s = C.to_space(out, space), C.to_space(source, space)
    for a, b in ((o, s),):
        torch.testing.assert_close(a.mean((2, 3)), b.mean((2, 3)), atol=1e-9, rtol=0)
        torch.testing.assert_close(a.flatten(2).std(2, unbiased=True), b.flatten(2).std(2, unbiased=True),
                                   atol=1e-9, rtol=1e-9)
    # transferring back with the original statistics recovers the original image
    back = C.colour_transfer(out, target, space, clip=False)
    torch.testing.assert_close(back, target, atol=1e-9, rtol=0)
    # the default clips into [0, 1]
    clipped = C.colour_transfer(target, source, space)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_masked_statistics_and_flat_images():
    target, source = _images(seed=3), _images(seed=4)
    mask = torch.zeros(3, 1, 12, 10, dtype=torch.float64)
    mask[:, :, 2:9, 3:8] = 1
    out = C.colour_transfer(target, source, "lab_reinhard", target_mask=mask, source_mask=mask, clip=False)
    o, s = C.to_space(out, "lab_reinhard"), C.to_space(source, "lab_reinhard")
    inside = mask[0, 0].bool()
    torch.testing.assert_close(o[..., inside].mean(-1), s[..., inside].mean(-1), atol=1e-9, rtol=0)
    torch.testing.assert_close(o[..., inside].std(-1), s[..., inside].std(-1), atol=1e-9, rtol=1e-9)
    flat = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    res = C.colour_transfer(flat, _images(b=1, h=8, w=8))
    assert torch.isfinite(res).all()


def test_batch_transfer_partners_and_probability():
    x = _images(b=6).float()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        src = C.random_partner(6, g, allow_self=False)
        assert sorted(src.tolist()) == list(range(6)) and (src != torch.arange(6)).all()
    same, src = C.batch_colour_transfer(x, p=0.0, generator=g)
    assert torch.equal(same, x) and torch.equal(src, torch.arange(6))
    out, src = C.batch_colour_transfer(x, allow_self=False, generator=g)
    for i in range(6):
        torch.testing.assert_close(out[i:i + 1], C.colour_transfer(x[i:i + 1], x[src[i]:src[i] + 1]))
    with pytest.raises(ConfigError, match="masks"):
        C.batch_colour_transfer(x, stats_region="mask")


def test_hsv_round_trip_and_colorsys_reference():
    x = _images(b=2, h=5, w=4).float()
    x[0, :, 0, 0] = 0.3  # grey pixel (hue undefined -> 0)
    hsv = C.rgb_to_hsv(x)
    for b, i, j in [(0, 0, 0), (0, 1, 2), (1, 4, 3), (1, 2, 1)]:
        ref = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
        np.testing.assert_allclose(hsv[b, :, i, j].numpy(), ref, atol=1e-6)
    torch.testing.assert_close(C.hsv_to_rgb(hsv), x, atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(1)
    assert torch.equal(C.hsv_jitter(x, p=0.0, generator=g), x)
    j = C.hsv_jitter(x, hue=0.0, saturation=0.0, value=0.0, p=1.0, generator=g)
    torch.testing.assert_close(j, x, atol=1e-6, rtol=0)
    assert (C.hsv_jitter(x, p=1.0, generator=g) - x).abs().max() > 0.01


def test_embedding_similarities_by_hand():
    from workbench.methods.cmic.evaluate import embedding_similarities

    q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    shifted = torch.tensor([[1.0, 1.0], [0.0, -1.0], [1.0, 1.0]])
    ids = torch.tensor([7, 7, 9])
    out = embedding_similarities(q, shifted, ids)
    # cosines of the rows: 1/sqrt2, -1, 1 -> mean
    assert out["colour_invariance"] == pytest.approx((2 ** -0.5 - 1 + 1) / 3)
    # the one same-shape pair (rows 0 and 1) is orthogonal
    assert out["same_shape_similarity"] == pytest.approx(0.0)
    assert math.isnan(embedding_similarities(q, shifted, torch.tensor([1, 2, 3]))["same_shape_similarity"])
    with pytest.raises(ShapeError):
        embedding_similarities(q, shifted[:2], ids)


def test_embed_queries_hue_shift_turns_red_photos_cyan():
    from workbench.methods.cmic.evaluate import embed_queries

    class Photos:                      # the QuerySet interface embed_queries uses
        def __init__(self, images):
            self.images = images

        def __len__(self):
            return len(self.images)

        def get(self, idx):
            return self.images[idx], torch.ones(len(idx), 1, *self.images.shape[-2:])

    class MeanColour(torch.nn.Module):  # "embedding" = the photo's mean colour
        def __init__(self):
            super().__init__()
            self.dim = 3
            self.w = torch.nn.Parameter(torch.zeros(1))

        def embed_queries(self, images, masks):
            return images.mean((2, 3))

    red = torch.zeros(5, 3, 8, 8)
    red[:, 0] = 1.0
    out = embed_queries(MeanColour(), Photos(red), 8, batch_size=2, hue_shift=0.5)
    assert torch.allclose(out, torch.tensor([[0.0, 1.0, 1.0]]).expand(5, 3), atol=1e-5)
    assert torch.allclose(embed_queries(MeanColour(), Photos(red), 8, batch_size=2), red.mean((2, 3)))
