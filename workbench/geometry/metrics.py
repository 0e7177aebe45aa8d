"""Shape metrics on voxels: occupancy grids of meshes and voxel IoU.

``voxel_iou(a, b, resolution=32)`` accepts boolean occupancy grids ``(R, R, R)`` / ``(N, R, R, R)``
or meshes (``Meshes`` of the same batch size, or ``(verts, faces)`` pairs). Meshes are voxelised
on a common grid over ``bounds`` (default: the joint bounding box of both shapes, padded by half
a voxel), either as **solid** occupancy of voxel centres (open3d inside/outside test; needs closed
meshes; TTP uses 32^3, CMIC 128^3) or as **surface** voxels hit by dense surface samples.

Solid mode and several parts: open3d's occupancy is a ray-parity test, so a point inside two
overlapping closed parts (e.g. a body and an intersecting wing) crosses an even number of surfaces
and would read as outside. The mesh is therefore split into its connected components (faces joined
through shared vertex *positions*, so unwelded duplicates do not split a part) and the solid is the
union of the per-component parity fills. Each component must be closed; nested components (a
closed shell inside another, e.g. a hollow object) are also filled, as a union would.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..core.errors import ShapeError
from .mesh import Meshes
from .points import sample_points_from_meshes

__all__ = ["voxelize_mesh", "voxel_iou", "face_components"]

MeshLike = Union[Meshes, Tuple[torch.Tensor, torch.Tensor]]


def _as_meshes(m: MeshLike) -> Meshes:
    if isinstance(m, Meshes):
        return m
    if isinstance(m, (tuple, list)) and len(m) == 2:
        return Meshes([torch.as_tensor(m[0], dtype=torch.float32)], [torch.as_tensor(m[1])])
    raise ShapeError(f"expected Meshes or a (verts, faces) pair, got {type(m).__name__}")


def _grid_centres(bounds: torch.Tensor, resolution: int) -> torch.Tensor:
    lo, hi = bounds[0].double(), bounds[1].double()
    step = (hi - lo) / resolution
    axes = [lo[i] + (torch.arange(resolution, dtype=torch.float64) + 0.5) * step[i] for i in range(3)]
    g = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    return g.reshape(-1, 3)


def face_components(verts: torch.Tensor, faces: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Connected-component label ``(F,)`` int64 (0..C-1) of every face of one mesh.

    Faces are connected when they share a vertex position: vertices closer than ``tol`` times the
    bounding-box diagonal (after rounding to that grid) count as one, so meshes with duplicated
    seam vertices are not split. ``verts (V, 3)``, ``faces (F, 3)``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    F = faces.shape[0]
    if F == 0:
        return torch.zeros(0, dtype=torch.int64)
    v = verts.detach().cpu().double()
    lo = v.min(0).values
    q = max(float((v.max(0).values - lo).norm()) * tol, 1e-12)
    _, weld = torch.unique(torch.round((v - lo) / q).long(), dim=0, return_inverse=True)
    f = weld[faces.cpu().long()].numpy()  # (F, 3) welded vertex ids
    nv = int(weld.max()) + 1
    # bipartite graph faces <-> welded vertices; components of the faces
    rows = np.repeat(np.arange(F), 3)
    graph = coo_matrix((np.ones(3 * F, dtype=np.int8), (rows, F + f.reshape(-1))), shape=(F + nv, F + nv))
    _, labels = connected_components(graph, directed=False)
    _, lab = np.unique(labels[:F], return_inverse=True)
    return torch.from_numpy(lab.astype(np.int64))


def voxelize_mesh(verts: torch.Tensor, faces: torch.Tensor, resolution: int, bounds: torch.Tensor,
                  mode: str = "solid", n_surface_samples: Optional[int] = None) -> torch.Tensor:
    """Occupancy ``(R, R, R)`` bool of one mesh on the grid spanning ``bounds (2, 3)`` (min, max corners).

    ``mode="solid"``: voxel centres inside the mesh, as the union of the parity fills of its connected
    components (so intersecting closed parts are filled where they overlap; see the module docs).
    ``mode="surface"``: voxels containing dense area-weighted surface samples.
    """
    if mode == "solid":
        import open3d as o3d

        v_np = np.ascontiguousarray(verts.detach().cpu().numpy(), dtype=np.float32)
        f_t = faces.detach().cpu().long()
        pts = o3d.core.Tensor(_grid_centres(bounds, resolution).float().numpy())
        labels = face_components(verts, f_t)
        n_comp = int(labels.max()) + 1 if labels.numel() else 0
        occ = np.zeros(resolution ** 3, dtype=bool)
        for c in range(n_comp):
            fc = f_t[labels == c]
            if fc.shape[0] < 4:  # fewer than 4 triangles cannot close a volume
                continue
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(v_np), o3d.core.Tensor(np.ascontiguousarray(fc.numpy(), dtype=np.uint32)))
            occ |= scene.compute_occupancy(pts).numpy() > 0.5
        return torch.from_numpy(occ.reshape(resolution, resolution, resolution))
    if mode == "surface":
        n = n_surface_samples or max(20000, 30 * resolution * resolution)
        pts = sample_points_from_meshes(Meshes([verts.detach().float().cpu()], [faces.cpu()]), n,
                                        generator=torch.Generator().manual_seed(0))[0].double()
        lo, hi = bounds[0].double(), bounds[1].double()
        ijk = torch.floor((pts - lo) / (hi - lo) * resolution).long()
        ok = ((ijk >= 0) & (ijk < resolution)).all(1)
        ijk = ijk[ok]
        occ = torch.zeros(resolution, resolution, resolution, dtype=torch.bool)
        occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
        return occ
    raise ShapeError(f"voxelize_mesh: mode must be 'solid' or 'surface', got {mode!r}")


def voxel_iou(a: Union[torch.Tensor, MeshLike], b: Union[torch.Tensor, MeshLike], resolution: int = 32,
              bounds: Optional[Union[Sequence[Sequence[float]], torch.Tensor]] = None, mode: str = "solid"
              ) -> torch.Tensor:
    """Intersection over union of voxel occupancies -> ``(N,)`` (1 when both are empty).

    Args:
        a, b: occupancy grids (bool ``(R, R, R)`` or ``(N, R, R, R)``) or meshes (see module docs).
        resolution: voxels per side when meshes are given.
        bounds: ``((xmin, ymin, zmin), (xmax, ymax, zmax))`` of the grid; default the joint bounding box.
        mode: ``"solid"`` or ``"surface"`` voxelisation of meshes.
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        ga, gb = a.bool(), b.bool()
        if ga.shape != gb.shape or ga.dim() not in (3, 4):
            raise ShapeError(f"voxel_iou: grids must have the same (N,) R, R, R shape, got {tuple(a.shape)}, "
                             f"{tuple(b.shape)}")
        if ga.dim() == 3:
            ga, gb = ga[None], gb[None]
    else:
        ma, mb = _as_meshes(a), _as_meshes(b)
        if len(ma) != len(mb):
            raise ShapeError(f"voxel_iou: {len(ma)} vs {len(mb)} meshes")
        grids_a, grids_b = [], []
        for (va, fa), (vb, fb) in zip(zip(ma.verts_list(), ma.faces_list()), zip(mb.verts_list(), mb.faces_list())):
            if bounds is None:
                allv = torch.cat([va.detach().cpu(), vb.detach().cpu()]).double()
                lo, hi = allv.min(0).values, allv.max(0).values
                pad = (hi - lo).max() / (2 * resolution) + 1e-9
                bnd = torch.stack([lo - pad, hi + pad])
            else:
                bnd = torch.as_tensor(bounds, dtype=torch.float64)
            grids_a.append(voxelize_mesh(va, fa, resolution, bnd, mode))
            grids_b.append(voxelize_mesh(vb, fb, resolution, bnd, mode))
        ga, gb = torch.stack(grids_a), torch.stack(grids_b)
    inter = (ga & gb).flatten(1).sum(1).double()
    union = (ga | gb).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
