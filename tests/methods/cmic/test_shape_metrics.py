"""Shape metrics of retrieval: solid voxels of unions of intersecting parts, modified Hausdorff."""
import pytest
import torch

from workbench.geometry import save_ply
from workbench.methods.cmic.evaluate import ShapeMetrics


def _box(lo, hi):
    lo, hi = torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32)
    c = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.float32)
    v = lo + c * (hi - lo)
    f = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


def _merge(*parts):
    vs, fs, n = [], [], 0
    for v, f in parts:
        vs.append(v), fs.append(f + n)
        n += len(v)
    return torch.cat(vs), torch.cat(fs)


def test_union_of_overlapping_parts_is_solid_and_metrics_behave(tmp_path):
    two = _merge(_box([-0.5, -0.25, -0.25], [0.1, 0.25, 0.25]), _box([-0.1, -0.25, -0.25], [0.5, 0.25, 0.25]))
    one = _box([-0.5, -0.25, -0.25], [0.5, 0.25, 0.25])
    half = _box([-0.5, -0.25, -0.25], [0.0, 0.25, 0.25])
    paths = {}
    for name, (v, f) in {"two": two, "one": one, "half": half}.items():
        paths[name] = str(tmp_path / f"{name}.ply")
        save_ply(paths[name], v, f)
    m = ShapeMetrics(n_points=2000, resolution=20, scale=0.5)
    m.set_bounds(paths.values())
    # the overlap of the two parts is inside (a parity test would leave a hole there)
    assert torch.equal(m.voxels(paths["two"]), m.voxels(paths["one"]))
    d, iou = m.pair(paths["two"], paths["one"])
    assert iou == 1.0 and d < 0.02  # (> 0: the inner faces of the parts are sampled too)
    d, iou = m.pair(paths["one"], paths["half"])
    assert iou == pytest.approx(0.5, abs=0.03)
    assert 0.02 < d < 0.2
    assert m.pair(paths["half"], paths["half"]) == (0.0, 1.0)


def test_family_metrics_hand_computed():
    from workbench.methods.cmic.evaluate import family_metrics

    # families: a a a b b c ; queries: gt rows 0, 3, 5, 1 (-1 = not in the repository)
    fams = ["a", "a", "a", "b", "b", "c"]
    top1 = torch.tensor([2, 0, 5, 4, 3])
    gt = torch.tensor([0, 3, 5, 1, -1])
    m = family_metrics(fams, top1, gt)
    # hits: row2 in a (yes), row0 a vs b (no), row5 c (yes), row4 b vs a (no); the last query is skipped
    assert m["family_acc"] == pytest.approx(2 / 4)
    # chance: family sizes of the gts 3, 2, 1, 3 over 6 shapes
    assert m["chance_family_acc"] == pytest.approx((3 + 2 + 1 + 3) / 4 / 6)
    assert m["family_size"] == pytest.approx(9 / 4)
    # no families, or singleton families only: nothing to report
    assert family_metrics([""] * 6, top1, gt) == {}
    assert family_metrics(list("abcdef"), top1, gt) == {}
