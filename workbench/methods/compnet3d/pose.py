"""Pose by render-and-compare (paper eq 8) on the neural mesh model.

For a feature map ``F`` and a class mesh with vertex features ``C``, a camera ``alpha`` renders the
interpolated vertex features ``C_hat_i(alpha)`` at feature resolution, and::

    L(alpha) = -( sum_{i in FG} f_i . C_hat_i(alpha) + sum_{i in BG} max_n f_i . b_n ) / (h w)

with FG the pixels covered by the rendered mesh (``pix_to_face >= 0``). Because the rendering is
linear in the vertex features, ``f_i . C_hat_i = sum_j bary_ij (f_i . C_{v_ij})``: the per-pixel
vertex similarities ``G = F C^T`` are computed once per image and each pose only gathers them with
its rasterized faces and barycentrics. The 144 initial poses (12 azimuths x 4 elevations x 3
in-plane angles, NeMo's grid) are scored in one batch from cached rasterizations; the best is
refined by Adam on the camera position ``C`` (3-vector) and ``theta`` (NOVUM: lr 0.05, betas
(0.4, 0.6)), with gradients through the rasterizer's barycentrics; the last iterate is returned.

Cameras are pinhole cameras at feature resolution: focal and principal point divided by the stride.
The class meshes are closed convex cuboids seen from outside, so back faces are culled before
rasterization (the nearest face of every pixel is a front face: same fragments, less work).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ...core.errors import ShapeError
from ...geometry.pose import camera_position, inplane_rotation, look_at_rotation, pose_to_rt, rt_to_pose
from .correspond import rasterize

log = logging.getLogger(__name__)


def pose_grid(n_azimuth: int = 12, n_elevation: int = 4, n_theta: int = 3,
              elevation_range=(-math.pi / 6, math.pi / 3), theta_range=(-math.pi / 6, math.pi / 6)
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NeMo's initialisation grid -> ``(azimuth, elevation, theta)`` each ``(P,)`` radians.

    Azimuth ``linspace(0, 2 pi, n, endpoint=False)``; elevation and theta ``linspace`` over their
    ranges (the midpoint when ``n == 1``).
    """
    az = torch.arange(n_azimuth, dtype=torch.float32) * (2 * math.pi / n_azimuth)
    lin = lambda lo, hi, n: (torch.linspace(lo, hi, n) if n > 1  # noqa: E731
                             else torch.tensor([(lo + hi) / 2]))
    el = lin(*elevation_range, n_elevation)
    th = lin(*theta_range, n_theta)
    A, E, Th = torch.meshgrid(az, el, th, indexing="ij")
    return A.reshape(-1), E.reshape(-1), Th.reshape(-1)


def rt_from_camera(C: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera centre ``C (N, 3)`` and in-plane ``theta (N,)`` -> ``R (N, 3, 3)``, ``T (N, 3)`` (differentiable)."""
    R = look_at_rotation(C) @ inplane_rotation(theta)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T


def pixel_similarities(fmap: torch.Tensor, vertex: torch.Tensor,
                       background: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``G (B, hw, K) = f_i . C_k`` per image's own vertex set and ``bgmax (B, hw)``.

    Args:
        fmap: ``(B, D, h, w)``; vertex: ``(B, K, D)`` (each image's class bank);
        background: ``(N_b, D)`` or None.
    """
    feats = fmap.flatten(2).transpose(1, 2)                                 # (B, hw, D)
    G = feats @ vertex.transpose(1, 2)
    bgmax = (feats @ background.T).amax(-1) if background is not None else None
    return G, bgmax


def fragment_loss(G: torch.Tensor, bgmax: torch.Tensor | None, vidx: torch.Tensor,
                  bary: torch.Tensor) -> torch.Tensor:
    """Eq 8 for every (image, pose) pair.

    Args:
        G: ``(B, hw, K)`` pixel-vertex similarities; bgmax: ``(B, hw)`` or None.
        vidx: ``(B or 1, P, hw, 3)`` long local vertex indices of the face covering each pixel
            (-1 where no face does); bary: same shape, float barycentrics.

    Returns:
        ``(B, P)`` losses (mean over the ``hw`` pixels).
    """
    B, hw, K = G.shape
    if vidx.shape[-2:] != (hw, 3):
        raise ShapeError(f"vidx: expected (.., P, {hw}, 3), got {tuple(vidx.shape)}")
    P = vidx.shape[1]
    fg = vidx[..., 0] >= 0                                                 # (b, P, hw)
    idx = vidx.clamp_min(0).expand(B, P, hw, 3)
    Gx = G[:, None].expand(B, P, hw, K)
    obj = (torch.gather(Gx, 3, idx) * bary.expand(B, P, hw, 3)).sum(-1)   # (B, P, hw)
    fgb = fg.expand(B, P, hw)
    score = torch.where(fgb, obj, torch.zeros_like(obj))
    if bgmax is not None:
        score = score + torch.where(fgb, torch.zeros_like(obj), bgmax[:, None, :].expand(B, P, hw))
    return -score.mean(-1)


def fragments_to_local(frags, faces_packed: torch.Tensor, verts_first: torch.Tensor,
                       mesh_of_image: torch.Tensor):
    """``Fragments`` (K=1) -> local vertex indices ``(N, hw, 3)`` (-1 empty) and barycentrics."""
    p2f = frags.pix_to_face[..., 0]                                       # (N, h, w)
    N = p2f.shape[0]
    fv = faces_packed[p2f.clamp_min(0)]                                   # (N, h, w, 3) packed vertex ids
    fv = fv - verts_first[mesh_of_image][:, None, None, None]
    fv = torch.where((p2f >= 0)[..., None], fv, torch.full_like(fv, -1))
    bary = torch.where((p2f >= 0)[..., None], frags.bary_coords[..., 0, :], torch.zeros_like(fv, dtype=frags.bary_coords.dtype))
    return fv.reshape(N, -1, 3), bary.reshape(N, -1, 3)


def render_vertex_features(verts: list[torch.Tensor], faces: list[torch.Tensor], feats: list[torch.Tensor],
                           R: torch.Tensor, T: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
                           size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``C_hat(alpha)``: each mesh's vertex features interpolated over its rasterized faces.

    Args: per-image ``verts (V_b, 3)``, ``faces (F_b, 3)``, ``feats (V_b, D)``; cameras
    ``R (B, 3, 3)``, ``T (B, 3)``, ``focal (B,)``, ``principal (B, 2)`` at the ``size (h, w)`` grid.

    Returns:
        ``features (B, D, h, w)`` (0 where no face) and ``covered (B, h, w)`` bool.
    """
    frags = rasterize(verts, faces, R, T, focal, principal, size)
    offs = torch.tensor([0] + [int(v.shape[0]) for v in verts[:-1]], device=R.device).cumsum(0)
    faces_packed = torch.cat([f.to(R.device) + o for f, o in zip(faces, offs.tolist())])
    vidx, bary = fragments_to_local(frags, faces_packed, offs, torch.arange(len(verts), device=R.device))
    h, w = size
    out = []
    for b, fb in enumerate(feats):
        x = (fb[vidx[b].clamp_min(0)] * bary[b][..., None]).sum(-2)            # (hw, D)
        out.append(x.T.reshape(-1, h, w))
    return torch.stack(out), (vidx[..., 0] >= 0).view(-1, h, w)


@dataclass
class PoseResult:
    """Estimated poses of a batch (radians; ``R (B, 3, 3)``, ``T (B, 3)``), final eq-8 loss,
    the class whose mesh was used, the best initial pose index and, optionally, the trajectory."""

    R: torch.Tensor
    T: torch.Tensor
    azimuth: torch.Tensor
    elevation: torch.Tensor
    theta: torch.Tensor
    distance: torch.Tensor
    loss: torch.Tensor
    classes: torch.Tensor
    init_index: torch.Tensor
    grid_loss: torch.Tensor | None = None
    trajectory: list | None = None


class RenderAndCompare:
    """Pose estimator over the category meshes and the vertex/background banks.

    Args:
        verts: ``(Y, K, 3)`` padded class vertices; ``n_verts (Y,)``; ``faces`` list of ``(F_y, 3)``.
        grid: ``(azimuth, elevation, theta)`` initial poses (:func:`pose_grid`).
        distance: camera distance of the initial poses.
    """

    def __init__(self, verts: torch.Tensor, n_verts: torch.Tensor, faces: list[torch.Tensor],
                 grid: tuple[torch.Tensor, torch.Tensor, torch.Tensor], distance: float):
        self.verts = verts
        self.n_verts = n_verts
        self.faces = faces
        self.grid = grid
        self.distance = float(distance)
        self._cache: dict = {}

    def _mesh(self, y: int):
        return self.verts[y, : int(self.n_verts[y])], self.faces[y].to(self.verts.device)

    @torch.no_grad()
    def grid_fragments(self, y: int, focal: float, size: tuple[int, int]):
        """Cached ``(vidx (P, h, w, 3), bary (P, h, w, 3))`` of class ``y`` at every grid pose,
        rendered with the principal point at the centre of the ``size`` grid."""
        h, w = size
        key = (y, round(float(focal), 3), tuple(size), round(self.distance, 4))
        if key not in self._cache:
            a, e, th = (t.to(self.verts) for t in self.grid)
            P = a.shape[0]
            R, T = pose_to_rt(a, e, th, torch.full_like(a, self.distance))
            v, f = self._mesh(y)
            frags = rasterize([v] * P, [f] * P, R, T, torch.full((P,), float(focal), device=v.device),
                              torch.tensor([[w / 2, h / 2]], dtype=v.dtype, device=v.device).expand(P, 2), size,
                              cull_backfaces=True)
            faces_packed = torch.cat([f + i * v.shape[0] for i in range(P)])
            first = torch.arange(P, device=v.device) * v.shape[0]
            vidx, bary = fragments_to_local(frags, faces_packed, first, torch.arange(P, device=v.device))
            self._cache[key] = (vidx.view(P, h, w, 3), bary.view(P, h, w, 3))
        return self._cache[key]

    @staticmethod
    def _shift(vidx: torch.Tensor, bary: torch.Tensor, dy: int, dx: int):
        """Translate ``(P, h, w, 3)`` maps by whole pixels (uncovered pixels become empty)."""
        if dy == 0 and dx == 0:
            return vidx, bary
        P, h, w, _ = vidx.shape
        v2 = torch.full_like(vidx, -1)
        b2 = torch.zeros_like(bary)
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        v2[:, yd, xd] = vidx[:, ys, xs]
        b2[:, yd, xd] = bary[:, ys, xs]
        return v2, b2

    @torch.no_grad()
    def grid_search(self, G: torch.Tensor, bgmax: torch.Tensor | None, classes: torch.Tensor,
                    focal: torch.Tensor, principal: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, P)`` eq-8 losses of every grid pose, each image with its own class mesh.

        ``G (B, hw, K)`` must hold each image's similarities to *its* class's vertices. The grid is
        rendered once per class with a centred principal point and shifted by the whole-pixel part
        of each image's principal-point offset (a principal-point change is an exact image
        translation; the sub-pixel remainder is left to the refinement).
        """
        B = G.shape[0]
        h, w = size
        P = self.grid[0].shape[0]
        out = G.new_empty(B, P)
        for b in range(B):
            vidx, bary = self.grid_fragments(int(classes[b]), float(focal[b]), size)
            dx = int(round(float(principal[b, 0]) - w / 2))
            dy = int(round(float(principal[b, 1]) - h / 2))
            vidx, bary = self._shift(vidx, bary, dy, dx)
            out[b] = fragment_loss(G[b: b + 1], None if bgmax is None else bgmax[b: b + 1],
                                   vidx.view(1, P, h * w, 3), bary.view(1, P, h * w, 3))[0]
        return out

    def refine(self, G: torch.Tensor, bgmax: torch.Tensor | None, classes: torch.Tensor,
               init: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], focal: torch.Tensor,
               principal: torch.Tensor, size: tuple[int, int], steps: int, lr: float = 0.05,
               betas=(0.4, 0.6), record: bool = False):
        """Adam on camera centre and theta from ``init = (a, e, theta, d)``; last iterate.

        Returns ``(R, T, loss (B,), trajectory)``; ``trajectory`` lists ``(R, T, loss)`` per step
        when ``record``.
        """
        a, e, th, d = init
        C = camera_position(a, e, d).detach().clone().requires_grad_(True)
        theta = th.detach().clone().to(C).requires_grad_(True)
        G = G.detach()
        bgmax = None if bgmax is None else bgmax.detach()
        classes_l = [int(c) for c in classes.tolist()]
        meshes = [self._mesh(c) for c in classes_l]
        faces_packed, first, off = [], [], 0
        for v, f in meshes:
            faces_packed.append(f + off)
            first.append(off)
            off += v.shape[0]
        faces_packed = torch.cat(faces_packed)
        first = torch.tensor(first, device=C.device)
        B = C.shape[0]
        opt = torch.optim.Adam([C, theta], lr=lr, betas=tuple(betas))
        traj = []

        def evaluate():
            R, T = rt_from_camera(C, theta)
            frags = rasterize([m[0] for m in meshes], [m[1] for m in meshes], R, T, focal, principal, size,
                              cull_backfaces=True)
            vidx, bary = fragments_to_local(frags, faces_packed, first, torch.arange(B, device=C.device))
            loss = fragment_loss(G, bgmax, vidx[:, None], bary[:, None])[:, 0]
            return R, T, loss

        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            R, T, loss = evaluate()
            if record:
                traj.append((R.detach().clone(), T.detach().clone(), loss.detach().clone()))
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            R, T, loss = evaluate()
        if record:
            traj.append((R.clone(), T.clone(), loss.clone()))
        return R.detach(), T.detach(), loss.detach(), traj

    def estimate(self, G: torch.Tensor, bgmax: torch.Tensor | None, classes: torch.Tensor,
                 focal: torch.Tensor, principal: torch.Tensor, size: tuple[int, int], steps: int,
                 lr: float = 0.05, betas=(0.4, 0.6), record: bool = False) -> PoseResult:
        """Grid search then refinement with each image's class mesh (``classes (B,)``)."""
        grid_loss = self.grid_search(G, bgmax, classes, focal, principal, size)
        best = grid_loss.argmin(1)
        a, e, th = (t.to(G)[best] for t in self.grid)
        d = torch.full_like(a, self.distance)
        if steps > 0:
            R, T, loss, traj = self.refine(G, bgmax, classes, (a, e, th, d), focal, principal, size, steps,
                                           lr, betas, record)
        else:
            R, T = pose_to_rt(a, e, th, d)
            loss, traj = grid_loss.gather(1, best[:, None])[:, 0], []
        a2, e2, th2, d2 = rt_to_pose(R, T)
        return PoseResult(R, T, a2, e2, th2, d2, loss, classes.clone(), best, grid_loss, traj if record else None)
