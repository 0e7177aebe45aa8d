"""Bank updates (eq 6, FIFO), the confusion-weight schedule (eqs 4-5) and eq 7 classification."""
import pytest
import torch
import torch.nn.functional as F

from workbench.core.errors import ConfigError, ShapeError
from workbench.methods.compnet3d.bank import FeatureBank
from workbench.methods.compnet3d.classify import class_scores
from workbench.methods.compnet3d.confusion import ConfusionSchedule, confusion_matrix, confusion_weights


def test_bank_init_unit_norm_and_padding():
    bank = FeatureBank([4, 2, 3], dim=5, n_background=7, generator=torch.Generator().manual_seed(0))
    assert bank.vertex.shape == (3, 4, 5) and bank.background.shape == (7, 5)
    assert bank.n_vertices() == [4, 2, 3]
    norms = bank.vertex.norm(dim=-1)
    assert torch.allclose(norms[bank.valid], torch.ones(9)) and (norms[~bank.valid] == 0).all()
    assert torch.allclose(bank.background.norm(dim=-1), torch.ones(7))
    assert set(dict(bank.named_buffers())) >= {"vertex", "valid", "background", "bg_ptr"}
    assert not list(bank.parameters())


def test_vertex_update_visible_average_by_hand():
    bank = FeatureBank([3, 3], dim=2, n_background=4)
    bank.vertex.copy_(torch.tensor([[[1.0, 0], [0, 1], [1, 0]], [[0, 1], [0, 1], [0, 1]]]))
    old = bank.vertex.clone()
    feats = torch.tensor([[[0.0, 1], [1, 0], [0, -1]],       # image of class 0
                          [[0.0, -1], [1, 0], [1, 0]],       # image of class 0
                          [[1.0, 0], [1, 0], [1, 0]]])       # image of class 1 (nothing visible)
    vis = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    labels = torch.tensor([0, 0, 1])
    changed = bank.update_vertices(feats, vis, labels, momentum=0.9, average="visible")
    # vertex (0,0): mean of (0,1) and (0,-1) = 0 -> normalize(0.9*(1,0)) = (1,0)
    assert torch.allclose(bank.vertex[0, 0], torch.tensor([1.0, 0]))
    # vertex (0,1): one observation (1,0): normalize(0.9*(0,1) + 0.1*(1,0))
    assert torch.allclose(bank.vertex[0, 1], F.normalize(torch.tensor([0.1, 0.9]), dim=0))
    assert torch.equal(bank.vertex[0, 2], old[0, 2]) and torch.equal(bank.vertex[1], old[1])
    assert changed.tolist() == [[True, True, False], [False, False, False]]


def test_vertex_update_images_average_divides_by_class_images():
    bank = FeatureBank([2], dim=2, n_background=2)
    bank.vertex.copy_(torch.tensor([[[0.0, 1], [0, 1]]]))
    feats = torch.tensor([[[1.0, 0], [1, 0]], [[1.0, 0], [1, 0]]])
    vis = torch.tensor([[True, True], [True, False]])
    bank.update_vertices(feats, vis, torch.tensor([0, 0]), momentum=0.5, average="images")
    # vertex 0: sum (2,0)/2 images = (1,0); vertex 1: (1,0)/2 = (0.5, 0)
    assert torch.allclose(bank.vertex[0, 0], F.normalize(torch.tensor([0.5, 0.5]), dim=0))
    assert torch.allclose(bank.vertex[0, 1], F.normalize(torch.tensor([0.25, 0.5]), dim=0))
    with pytest.raises(ConfigError, match="average"):
        bank.update_vertices(feats, vis, torch.tensor([0, 0]), average="mean")
    with pytest.raises(ShapeError):
        bank.update_vertices(feats[:, :1], vis, torch.tensor([0, 0]))


def test_repeated_updates_converge_to_the_observed_direction():
    bank = FeatureBank([1], dim=3, n_background=2, generator=torch.Generator().manual_seed(1))
    target = F.normalize(torch.tensor([1.0, 2.0, -1.0]), dim=0)
    for _ in range(100):
        bank.update_vertices(target.view(1, 1, 3), torch.ones(1, 1, dtype=torch.bool), torch.tensor([0]), 0.9)
    assert torch.allclose(bank.vertex[0, 0], target, atol=1e-4)


def test_background_fifo_replaces_oldest():
    bank = FeatureBank([1], dim=2, n_background=5)
    e = lambda a: F.normalize(torch.tensor([[float(a), 1.0]]), dim=-1)
    for i in range(7):                          # 7 single pushes into 5 slots
        bank.push_background(e(i))
    # slots hold items 5, 6, 2, 3, 4 (0 and 1 overwritten)
    expect = torch.cat([e(5), e(6), e(2), e(3), e(4)])
    assert torch.allclose(bank.background, expect)
    assert int(bank.bg_ptr) == 2 and int(bank.bg_seen) == 7
    bank.push_background(torch.cat([e(10 + i) for i in range(4)]))   # wraps around
    assert torch.allclose(bank.background, torch.cat([e(13), e(6), e(10), e(11), e(12)]))
    assert torch.allclose(bank.collapsed_background().norm(), torch.tensor(1.0))


def test_confusion_weights_threshold_rows_and_fallback():
    pred = torch.tensor([0, 0, 0, 1, 0, 1, 1, 1, 1, 2])
    target = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    counts = confusion_matrix(pred, target, 3)
    assert counts.tolist() == [[3, 1, 0], [1, 4, 1], [0, 0, 0]]
    w = confusion_weights(counts, threshold=0.2, previous=torch.full((3, 3), 0.7))
    assert w[0].tolist() == pytest.approx([0.0, 0.25, 0.0])
    assert w[1].tolist() == pytest.approx([0.0, 0.0, 0.0])      # 1/6 < 0.2 dropped; diagonal 0
    assert w[2].tolist() == pytest.approx([0.7, 0.7, 0.0])      # no calibration sample: keep previous
    assert confusion_weights(counts, threshold=0.1)[1].tolist() == pytest.approx([1 / 6, 0.0, 1 / 6])


def test_confusion_schedule_every_and_sparsifies():
    sch = ConfusionSchedule(n_classes=3, every=4, threshold=0.05)
    assert sch.omega.tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]     # all pairs weigh 1 at start
    assert [s for s in range(1, 13) if sch.due(s)] == [4, 8, 12]
    assert not ConfusionSchedule(3, every=0).due(4)
    target = torch.arange(3).repeat_interleave(20)
    pred = target.clone()
    pred[0] = 1                                                        # 1/20 = 0.05 kept
    pred[20:22] = 2                                                    # 0.1
    sch.update(4, pred, target)
    assert sch.omega[0, 1].item() == pytest.approx(0.05) and sch.omega[1, 2].item() == pytest.approx(0.1)
    assert sch.sparsity() == pytest.approx(4 / 6)
    sch.update(8, target, target)
    assert sch.sparsity() == 1.0 and [s for s, _ in sch.history] == [4, 8]
    st = sch.state_dict()
    other = ConfusionSchedule(3, every=4)
    other.load_state_dict(st)
    assert torch.equal(other.omega, sch.omega) and len(other.history) == 2


def test_eq7_matches_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    B, D, H, W, Y, K, Nb = 2, 6, 3, 4, 5, 7, 4
    fmap = F.normalize(torch.randn(B, D, H, W, generator=g), dim=1)
    vertex = F.normalize(torch.randn(Y, K, D, generator=g), dim=-1)
    valid = torch.rand(Y, K, generator=g) > 0.3
    valid[:, 0] = True
    vertex = vertex * valid[..., None]
    bg = F.normalize(torch.randn(Nb, D, generator=g), dim=-1)
    mask = torch.rand(B, 1, H, W, generator=g) > 0.4
    for background, pmask in [(bg, None), (None, None), (bg, mask)]:
        S = class_scores(fmap, vertex, valid, background, pixel_mask=pmask, chunk=2)
        ref = torch.zeros(B, Y)
        for b in range(B):
            for y in range(Y):
                for i in range(H):
                    for j in range(W):
                        if pmask is not None and not pmask[b, 0, i, j]:
                            continue
                        f = fmap[b, :, i, j]
                        best = max(float(f @ vertex[y, k]) for k in range(K) if valid[y, k])
                        if background is not None:
                            best = max(best, max(float(f @ background[n]) for n in range(Nb)))
                        ref[b, y] += best
        assert torch.allclose(S, ref, atol=1e-5)


def test_eq7_recovers_the_class_whose_vertices_made_the_image():
    g = torch.Generator().manual_seed(1)
    Y, K, D = 4, 10, 16
    vertex = F.normalize(torch.randn(Y, K, D, generator=g), dim=-1)
    valid = torch.ones(Y, K, dtype=torch.bool)
    bg = F.normalize(torch.randn(8, D, generator=g), dim=-1)
    # image of class 2: half of the pixels are noisy copies of its vertices, the rest background
    pix = torch.cat([vertex[2, torch.randint(0, K, (12,), generator=g)], bg[torch.randint(0, 8, (12,), generator=g)]])
    pix = F.normalize(pix + 0.3 * torch.randn(pix.shape, generator=g), dim=-1)
    fmap = pix.T.reshape(1, D, 4, 6)
    assert class_scores(fmap, vertex, valid, bg).argmax(1).item() == 2
