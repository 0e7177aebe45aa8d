"""Point losses, alignment, shape metrics and mesh regularisers: known values and invariants."""
import math

import pytest
import roma
import torch

from workbench.geometry import (Meshes, apply_similarity, arap_energy, chamfer_distance, chamfer_l1_x10,
                                cuboid_mesh, icp, ico_sphere, knn_points, mesh_edge_loss, mesh_laplacian_smoothing,
                                mesh_normal_consistency, modified_hausdorff, sample_points_from_meshes, subdivide,
                                voxel_iou)
from workbench.geometry.align import SimilarityTransform


def test_knn_points_brute_force_and_gradients():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 50, 3, generator=g), torch.randn(2, 70, 3, generator=g)
    out = knn_points(x, y, K=3, return_nn=True)
    d = torch.cdist(x, y) ** 2
    ref = torch.topk(d, 3, largest=False)
    assert torch.equal(out.idx, ref.indices) and torch.allclose(out.dists, ref.values, atol=1e-5)
    assert torch.allclose(out.knn[0, 5, 1], y[0, ref.indices[0, 5, 1]])
    xr = x.clone().requires_grad_(True)
    knn_points(xr, y, K=1).dists.sum().backward()
    nn = y.gather(1, ref.indices[..., :1].expand(-1, -1, 3))
    assert torch.allclose(xr.grad, 2 * (x - nn), atol=1e-5)


def test_chamfer_conventions_on_toy_clouds():
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    y = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [1.0, 0.0, 3.0]]])
    # squared distances x -> y: 0, 1; y -> x: 0, 4, 9
    loss, _ = chamfer_distance(x, y)
    assert loss.item() == pytest.approx(0.5 + 13.0 / 3.0)
    loss_l1, _ = chamfer_distance(x + torch.tensor([0.0, 0.0, 0.5]), y, norm=1)  # |dx|+|dy|+|dz|
    assert loss_l1.item() == pytest.approx((0.5 + 1.5) / 2 + (0.5 + 2.5 + 2.5) / 3)
    assert chamfer_distance(x, y, point_reduction="sum")[0].item() == pytest.approx(1.0 + 13.0)
    assert chamfer_distance(x, y, single_directional=True)[0].item() == pytest.approx(0.5)
    assert chamfer_distance(x, y, point_reduction="max")[0].item() == pytest.approx(1.0 + 9.0)
    # Chamfer-L1 (OccNet): Euclidean distances, x10, half of acc + comp
    assert chamfer_l1_x10(x, y).item() == pytest.approx(10 * 0.5 * ((0 + 1) / 2 + (0 + 2 + 3) / 3))
    assert modified_hausdorff(x, y).item() == pytest.approx((0 + 1 + 0 + 2 + 3) / 5)
    # padding is ignored with lengths
    xp = torch.cat([x, torch.full((1, 3, 3), 100.0)], 1)
    assert chamfer_distance(xp, y, x_lengths=torch.tensor([2]))[0].item() == pytest.approx(0.5 + 13.0 / 3.0)
    # normals: identical / opposite normals (abs cosine) cost nothing, orthogonal cost 1
    n = torch.tensor([[[0.0, 0.0, 1.0]] * 2])
    m = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    _, ln = chamfer_distance(x, y, x_normals=n, y_normals=m)
    assert ln.item() == pytest.approx(0.0 + 1.0 / 3.0)
    _, ln_signed = chamfer_distance(x, y, x_normals=n, y_normals=m, abs_cosine=False)
    assert ln_signed.item() == pytest.approx((2 + 2) / 2 + (2 + 1 + 0) / 3)


def test_sampling_is_on_the_surface_and_area_weighted():
    s = ico_sphere(3)
    pts, nrm = sample_points_from_meshes(s, 4000, return_normals=True, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (1, 4000, 3)
    r = pts.norm(dim=-1)
    assert (r <= 1.0 + 1e-5).all() and (r > 0.98).all()
    assert ((nrm * pts).sum(-1) > 0.95).all()
    box = cuboid_mesh((2.0, 1.0, 1.0), 200)  # 2 faces of area 1, 4 faces of area 2: x-faces get 2/10
    p = sample_points_from_meshes(box, 20000, generator=torch.Generator().manual_seed(1))[0]
    on_x_faces = (p[:, 0].abs() > 0.999).float().mean().item()
    assert abs(on_x_faces - 0.2) < 0.015


def test_icp_recovers_a_similarity_transform():
    g = torch.Generator().manual_seed(0)
    X = sample_points_from_meshes(cuboid_mesh((1.0, 0.6, 0.3), 100), 600, generator=g)
    R = roma.rotvec_to_rotmat(torch.tensor([[0.15, -0.1, 0.2]]))
    T = torch.tensor([[0.05, -0.03, 0.02]])
    s = torch.tensor([1.2])
    Y = apply_similarity(X, SimilarityTransform(R, T, s))
    sol = icp(X, Y, estimate_scale=True, max_iterations=60)
    assert sol.rmse.item() < 1e-3
    assert torch.allclose(sol.RTs.R, R, atol=1e-3) and torch.allclose(sol.RTs.s, s, atol=1e-3)
    rigid = icp(X, apply_similarity(X, SimilarityTransform(R, T, torch.ones(1))), max_iterations=60)
    assert rigid.rmse.item() < 1e-3 and torch.allclose(rigid.RTs.s, torch.ones(1))
    # Chamfer-L1 after alignment is ~0, before it is not
    assert chamfer_l1_x10(sol.Xt, Y).item() < 0.02 < chamfer_l1_x10(X, Y).item()


def test_voxel_iou_known_values():
    a = torch.zeros(8, 8, 8, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[:4] = True
    b[2:6] = True
    assert voxel_iou(a, b).item() == pytest.approx(2 / 6)
    assert voxel_iou(a, a).item() == 1.0
    # two boxes sharing the lower half: IoU of the solids is 1/2 at any resolution aligned with the boxes
    big = cuboid_mesh((1.0, 1.0, 1.0), 50, merge_duplicates=True)
    v = big.verts_packed()
    half = Meshes([torch.stack([v[:, 0], torch.where(v[:, 1] > 0, torch.zeros_like(v[:, 1]), v[:, 1]), v[:, 2]], 1)],
                  big.faces_list())
    bounds = ((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))
    assert voxel_iou(big, half, resolution=32, bounds=bounds).item() == pytest.approx(0.5, abs=1e-6)
    iou = voxel_iou(ico_sphere(3), Meshes([ico_sphere(3).verts_packed() * 0.8], ico_sphere(3).faces_list()),
                    resolution=32).item()
    assert abs(iou - 0.8 ** 3) < 0.03


def test_regularizers_known_values_and_invariances():
    # edge loss of a unit cube face grid: every edge has length 1 -> (1 - 0)^2 = 1 for target 0
    tri = Meshes([torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])], [torch.tensor([[0, 1, 2], [1, 3, 2]])])
    lengths = torch.tensor([1.0, 1.0, 1.0, 1.0, math.sqrt(2.0)])
    assert mesh_edge_loss(tri).item() == pytest.approx(float((lengths ** 2).mean()))
    assert mesh_edge_loss(tri, target_length=1.0).item() == pytest.approx(float(((lengths - 1) ** 2).mean()))
    # a flat mesh is perfectly consistent; folding it along the diagonal costs 1 - cos(angle)
    assert mesh_normal_consistency(tri).item() == pytest.approx(0.0, abs=1e-7)
    folded = Meshes([torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1.0]])], tri.faces_list())
    n0 = torch.tensor([0.0, 0.0, 1.0])
    n1 = torch.linalg.cross(torch.tensor([0.0, 1, -1]), torch.tensor([-1.0, 0, -1]))
    assert mesh_normal_consistency(folded).item() == pytest.approx(1 - float(torch.cosine_similarity(n0, n1, 0)),
                                                                    abs=1e-6)
    # Laplacians: a fine sphere is smoother than a noisy one; uniform of a flat grid interior is 0
    s = ico_sphere(2)
    noisy = s.offset_verts(0.1 * torch.randn(s.verts_packed().shape, generator=torch.Generator().manual_seed(0)))
    for method in ("uniform", "cot", "cotcurv"):
        assert mesh_laplacian_smoothing(noisy, method).item() > 1.5 * mesh_laplacian_smoothing(s, method).item()
    # cotangent mean-curvature normal of the unit sphere: |sum (cot a + cot b)(x_j - x_i)| = 4 A_i and
    # pytorch3d's cotcurv scales it by 1 / (4 * 3 A_i): every vertex contributes ~1/3
    assert mesh_laplacian_smoothing(ico_sphere(3), "cotcurv").item() == pytest.approx(1 / 3, rel=0.01)
    grid = subdivide(subdivide(tri))
    lap = mesh_laplacian_smoothing(grid, "uniform")
    assert lap.item() > 0  # boundary vertices are not at their neighbours' mean
    # ARAP: zero for rigid motions, positive for stretching, gradient exists
    v = s.verts_packed()
    f = s.faces_packed()
    R = roma.rotvec_to_rotmat(torch.tensor([0.3, -0.2, 0.5]))
    assert arap_energy(v @ R.T + 0.3, v, f).item() < 1e-8
    stretched = (v * torch.tensor([1.3, 1.0, 1.0])).requires_grad_(True)
    e = arap_energy(stretched, v, f)
    e.backward()
    assert e.item() > 1e-3 and stretched.grad.abs().max() > 0
    assert arap_energy(v * torch.tensor([1.3, 1.0, 1.0]), v, f, weights="cot").item() > 1e-3


def test_regularizer_gradients_match_finite_differences():
    s = ico_sphere(1)
    v0 = (s.verts_packed().double() + 0.05 * torch.randn(42, 3, generator=torch.Generator().manual_seed(0)).double())
    f = s.faces_packed()

    def losses(v):  # (the cot Laplacian's weights are built without gradient, as in pytorch3d)
        m = Meshes([v], [f])
        return mesh_normal_consistency(m) + mesh_edge_loss(m, 0.3) + mesh_laplacian_smoothing(m, "uniform")

    assert torch.autograd.gradcheck(losses, (v0.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_solid_voxelisation_of_overlapping_parts_is_their_union():
    from workbench.geometry.metrics import face_components, voxelize_mesh

    # two unit cubes overlapping in a 0.5 x 0.75 x 1 box: union volume 2 - 0.375 = 1.625
    cube = cuboid_mesh((1.0, 1.0, 1.0), 60, merge_duplicates=True)
    v, f = cube.verts_packed(), cube.faces_packed()
    verts = torch.cat([v, v + torch.tensor([0.5, 0.25, 0.0])])
    faces = torch.cat([f, f + v.shape[0]])
    assert face_components(verts, faces).unique().numel() == 2
    # unwelded seams (duplicated vertices) still form one part per cube
    raw = cuboid_mesh((1.0, 1.0, 1.0), 60)
    assert face_components(raw.verts_packed(), raw.faces_packed()).unique().numel() == 1
    # voxel edge h = 1/40 and a grid origin 3h below -0.5: every cube face lies on a voxel boundary,
    # so the voxel volume is exact up to ray-casting precision (stated tolerance 0.5%)
    R, h = 64, 1.0 / 40
    lo = torch.full((3,), -0.5 - 3 * h, dtype=torch.float64)
    bounds = torch.stack([lo, lo + R * h])
    occ = voxelize_mesh(verts, faces, R, bounds, mode="solid")
    vol = float(occ.sum()) * h ** 3
    assert vol == pytest.approx(1.625, rel=0.005)
    # an unaligned grid: boundary voxels make an error of about half a voxel times the area (~2%)
    unaligned = torch.tensor([[-0.6, -0.6, -0.6], [1.1, 0.85, 0.6]], dtype=torch.float64)
    vol2 = float(voxelize_mesh(verts, faces, 48, unaligned).sum()) * float((unaligned[1] - unaligned[0]).prod()) / 48 ** 3
    assert vol2 == pytest.approx(1.625, rel=0.04)
    # the overlap region itself is filled (a single parity fill leaves it empty: volume 1.25)
    centre = ((torch.tensor([0.25, 0.125, 0.0]) - bounds[0]) / (bounds[1] - bounds[0]) * R).long()
    assert occ[tuple(centre.tolist())]


def test_nearest_neighbour_kdtree_matches_brute_force_with_padding():
    """Without gradients the metrics use a k-d tree; it must equal the distance-matrix path, padding included."""
    from workbench.geometry import knn_points
    from workbench.geometry.points import _nn_euclid

    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 300, 3, generator=g), torch.rand(2, 250, 3, generator=g)
    lx, ly = torch.tensor([300, 180]), torch.tensor([250, 97])
    fast = _nn_euclid(x, y, lx, ly)
    brute = knn_points(x, y, lx, ly, K=1).dists[..., 0].clamp_min(0).sqrt()
    assert torch.allclose(fast, brute, atol=1e-6)
    assert float(fast[1, 180:].abs().sum()) == 0.0  # padded queries
    # with gradients the differentiable path is used, and gives the same values
    xg = x.clone().requires_grad_(True)
    slow = _nn_euclid(xg, y, lx, ly)
    assert slow.requires_grad and torch.allclose(slow.detach(), fast, atol=1e-6)
    ref = modified_hausdorff(x, y, lx, ly)
    xd = x.clone().requires_grad_(True)
    assert torch.allclose(modified_hausdorff(xd, y, lx, ly).detach(), ref, atol=1e-6)
