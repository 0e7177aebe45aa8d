"""Cameras with pytorch3d's names, signatures and conventions (pure torch).

Frames (see ``docs/rendering.md``/``DESIGN.md``):

* world -> view with row vectors ``X_view = X_world @ R + T``; view space +X left, +Y up, +Z forward;
* NDC has the orientation of view space; the shorter image side spans [-1, 1];
* screen/image space is +x right, +y down, origin at the top-left corner, pixel (i, j) centred at
  ``(j + 0.5, i + 0.5)``; ``u = W/2 - s x_ndc``, ``v = H/2 - s y_ndc`` with ``s = min(H, W) / 2``.

Camera classes: :class:`FoVPerspectiveCameras`, :class:`PerspectiveCameras` (``in_ndc`` True/False),
:class:`FoVOrthographicCameras`, :class:`OrthographicCameras`. For a screen-space
``PerspectiveCameras(focal_length=f, principal_point=(cx, cy), in_ndc=False, image_size=((H, W),))``
rendered image coordinates are ``u = cx - f X/Z``, ``v = cy - f Y/Z`` (:func:`project_points_pinhole`),
whereas ``transform_points`` returns pytorch3d's ``(f X/Z + cx, f Y/Z + cy)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

from ..core.errors import RenderError, ShapeError
from .pose import look_at_rotation, pose_to_rt
from .transforms import Transform3d

__all__ = [
    "CamerasBase", "FoVPerspectiveCameras", "PerspectiveCameras", "FoVOrthographicCameras",
    "OrthographicCameras", "look_at_view_transform", "look_at_rotation",
    "camera_position_from_spherical_angles", "get_ndc_to_screen_transform", "get_screen_to_ndc_transform",
    "project_points_pinhole", "weak_perspective_project", "pinhole_cameras", "cameras_from_pose",
    "pixel_centers_ndc",
]

_Param = Union[float, Sequence, torch.Tensor]
# trailing width of each camera parameter (0 = one scalar per camera)
_PARAM_WIDTH = {"focal_length": 2, "principal_point": 2, "scale_xyz": 3}


def _to_tensor(x: _Param, dtype, device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(x, dtype=dtype, device=device)


def _image_size_tensor(image_size, N: int, device) -> torch.Tensor:
    if image_size is None:
        raise RenderError("image_size ((H, W),) is required for screen-space cameras (in_ndc=False)")
    s = torch.as_tensor(image_size, dtype=torch.float32, device=device)
    if s.dim() == 0:
        s = s.repeat(2)
    if s.dim() == 1:
        s = s[None]
    if s.shape[-1] != 2:
        raise ShapeError(f"image_size: expected (H, W) or ((H, W), ...), got {tuple(s.shape)}")
    return s.expand(N, 2)


class CamerasBase:
    """Shared machinery: R (N, 3, 3), T (N, 3), device; subclasses define the projection."""

    _FIELDS: Tuple[str, ...] = ()

    def __init__(self, R=None, T=None, device="cpu", dtype: Optional[torch.dtype] = None, **params):
        if dtype is None:
            dtype = R.dtype if isinstance(R, torch.Tensor) and R.is_floating_point() else torch.float32
        dev = torch.device(device)
        if isinstance(R, torch.Tensor):
            dev = R.device
        elif isinstance(T, torch.Tensor):
            dev = T.device
        R = torch.eye(3, dtype=dtype, device=dev)[None] if R is None else _to_tensor(R, dtype, dev)
        T = torch.zeros(1, 3, dtype=dtype, device=dev) if T is None else _to_tensor(T, dtype, dev)
        if R.dim() == 2:
            R = R[None]
        if T.dim() == 1:
            T = T[None]
        if R.shape[-2:] != (3, 3) or T.shape[-1] != 3:
            raise ShapeError(f"cameras: R must be (N, 3, 3) and T (N, 3); got {tuple(R.shape)}, {tuple(T.shape)}")
        tensors = {}
        for k, v in params.items():
            t = _to_tensor(v, dtype, dev)
            width = _PARAM_WIDTH.get(k, 0)
            if width == 0:
                t = t.reshape(-1)
            elif k == "focal_length" and t.dim() <= 1:
                t = t.reshape(-1, 1).expand(-1, 2)  # scalar or (N,) -> fx = fy
            else:
                t = t.reshape(-1, width) if t.dim() <= 1 else t
                if t.dim() != 2 or t.shape[-1] != width:
                    raise ShapeError(f"cameras: {k} must be (N, {width}), got {tuple(t.shape)}")
            tensors[k] = t
        N = max([R.shape[0], T.shape[0]] + [t.shape[0] for t in tensors.values()])
        self._N = N
        self.device = dev
        self.dtype = dtype
        try:
            self.R = R.expand(N, 3, 3)
            self.T = T.expand(N, 3)
            for k, t in tensors.items():
                setattr(self, k, t.expand(N, *t.shape[1:]))
        except RuntimeError as e:
            raise ShapeError(f"cameras: parameters have incompatible batch sizes (N={N}): "
                             f"R {tuple(R.shape)}, T {tuple(T.shape)}, "
                             + ", ".join(f"{k} {tuple(t.shape)}" for k, t in tensors.items())) from e

    # -- batch helpers -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._N

    def to(self, device) -> "CamerasBase":
        new = self.clone()
        for k, v in list(vars(new).items()):
            if isinstance(v, torch.Tensor):
                setattr(new, k, v.to(device))
        new.device = torch.device(device)
        return new

    def clone(self) -> "CamerasBase":
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()})
        return new

    def __getitem__(self, idx) -> "CamerasBase":
        if isinstance(idx, int):
            idx = [idx]
        new = self.__class__.__new__(self.__class__)
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == self._N and k != "_N":
                v = v[idx]
            new.__dict__[k] = v
        new._N = new.R.shape[0]
        return new

    # -- interface ---------------------------------------------------------------------------------
    def is_perspective(self) -> bool:
        raise NotImplementedError

    def in_ndc(self) -> bool:
        return True

    def get_znear(self) -> Optional[torch.Tensor]:
        return getattr(self, "znear", None)

    def get_image_size(self):
        return getattr(self, "image_size", None)

    def get_projection_transform(self, **kwargs) -> Transform3d:
        raise NotImplementedError

    def get_world_to_view_transform(self, R: Optional[torch.Tensor] = None,
                                    T: Optional[torch.Tensor] = None, **kwargs) -> Transform3d:
        """Row-vector 4x4 ``[[R, 0], [T, 1]]`` so that ``[X, 1] @ M = [X @ R + T, 1]``."""
        R = self.R if R is None else R
        T = self.T if T is None else T
        N = R.shape[0]
        top = torch.cat([R, torch.zeros(N, 3, 1, dtype=R.dtype, device=R.device)], dim=2)
        bottom = torch.cat([T[:, None, :], torch.ones(N, 1, 1, dtype=R.dtype, device=R.device)], dim=2)
        return Transform3d(matrix=torch.cat([top, bottom], dim=1))

    def get_full_projection_transform(self, **kwargs) -> Transform3d:
        """World -> projection space (NDC for NDC cameras, pytorch3d screen for in_ndc=False)."""
        return self.get_world_to_view_transform(**kwargs).compose(self.get_projection_transform(**kwargs))

    def transform_points(self, points: torch.Tensor, eps: Optional[float] = None, **kwargs) -> torch.Tensor:
        """World points ``(N, P, 3)`` or ``(P, 3)`` -> projection space (see class docs)."""
        return self.get_full_projection_transform(**kwargs).transform_points(points, eps=eps)

    def get_ndc_camera_transform(self, **kwargs) -> Transform3d:
        """Projection space -> NDC (identity for NDC cameras)."""
        if self.in_ndc():
            return Transform3d(dtype=self.dtype, device=self.device)
        fix = torch.eye(4, dtype=self.dtype, device=self.device).repeat(self._N, 1, 1)
        fix[:, 3, :2] = -2.0 * self.get_principal_point()
        image_size = kwargs.get("image_size", self.get_image_size())
        to_ndc = get_screen_to_ndc_transform(self, with_xyflip=False, image_size=image_size)
        return Transform3d(matrix=fix).compose(to_ndc)

    def transform_points_ndc(self, points: torch.Tensor, eps: Optional[float] = None, **kwargs) -> torch.Tensor:
        """World points -> NDC (x left, y up); z as returned by the projection."""
        tr = self.get_full_projection_transform(**kwargs).compose(self.get_ndc_camera_transform(**kwargs))
        return tr.transform_points(points, eps=eps)

    def transform_points_screen(self, points: torch.Tensor, eps: Optional[float] = None,
                                with_xyflip: bool = True, image_size=None, **kwargs) -> torch.Tensor:
        """World points -> image pixel coordinates ``(u, v, z)`` (x right, y down, top-left origin)."""
        image_size = image_size if image_size is not None else self.get_image_size()
        ndc = self.transform_points_ndc(points, eps=eps, **kwargs)
        to_screen = get_ndc_to_screen_transform(self, with_xyflip=with_xyflip, image_size=image_size)
        return to_screen.transform_points(ndc, eps=eps)

    def get_camera_center(self, **kwargs) -> torch.Tensor:
        """World position of the camera centres ``(N, 3)``: ``C = -T @ R^T``."""
        R = kwargs.get("R", self.R)
        T = kwargs.get("T", self.T)
        return -(T[:, None, :] @ R.transpose(1, 2))[:, 0]

    def get_principal_point(self) -> torch.Tensor:
        """``(N, 2)`` principal point (NDC or pixels, see ``in_ndc``)."""
        return self.principal_point

    def get_focal_length(self) -> torch.Tensor:
        """``(N, 2)`` focal lengths ``(fx, fy)`` (NDC or pixels, see ``in_ndc``)."""
        return self.focal_length


class FoVPerspectiveCameras(CamerasBase):
    """OpenGL-style perspective camera: ``x_ndc = X / (Z tan(fov/2) aspect)``, ``y_ndc = Y / (Z tan(fov/2))``.

    Args: znear=1, zfar=100, aspect_ratio=1 (pixel aspect), fov=60 (degrees unless degrees=False), R, T.
    NDC z is ``zfar (Z - znear) / ((zfar - znear) Z)`` in [0, 1].
    """

    def __init__(self, znear: _Param = 1.0, zfar: _Param = 100.0, aspect_ratio: _Param = 1.0,
                 fov: _Param = 60.0, degrees: bool = True, R=None, T=None, K=None, device="cpu"):
        if K is not None:
            raise RenderError("FoVPerspectiveCameras: a custom K is not supported by the torch backend")
        super().__init__(R=R, T=T, device=device, znear=znear, zfar=zfar, aspect_ratio=aspect_ratio, fov=fov)
        self.degrees = degrees

    def is_perspective(self) -> bool:
        return True

    def _vec(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def get_projection_transform(self, **kwargs) -> Transform3d:
        znear, zfar = self._vec("znear"), self._vec("zfar")
        fov, aspect = self._vec("fov"), self._vec("aspect_ratio")
        if self.degrees:
            fov = fov * (math.pi / 180.0)
        tan_half = torch.tan(fov / 2)
        K = torch.zeros(self._N, 4, 4, dtype=self.dtype, device=self.device)
        K[:, 0, 0] = 1.0 / (tan_half * aspect)
        K[:, 1, 1] = 1.0 / tan_half
        K[:, 3, 2] = 1.0
        K[:, 2, 2] = zfar / (zfar - znear)
        K[:, 2, 3] = -(zfar * znear) / (zfar - znear)
        return Transform3d(matrix=K.transpose(1, 2))

    def focal_length_px(self, image_size: Tuple[int, int]) -> torch.Tensor:
        """Equivalent pinhole focal length in pixels for an image ``(H, W)``: ``(min(H, W)/2)/tan(fov/2)``."""
        fov = self._vec("fov") * ((math.pi / 180.0) if self.degrees else 1.0)
        return (min(image_size) / 2.0) / torch.tan(fov / 2)


class FoVOrthographicCameras(CamerasBase):
    """Orthographic camera given by a view volume (pytorch3d ``FoVOrthographicCameras``)."""

    def __init__(self, znear: _Param = 1.0, zfar: _Param = 100.0, max_y: _Param = 1.0, min_y: _Param = -1.0,
                 max_x: _Param = 1.0, min_x: _Param = -1.0, scale_xyz=((1.0, 1.0, 1.0),), R=None, T=None,
                 K=None, device="cpu"):
        if K is not None:
            raise RenderError("FoVOrthographicCameras: a custom K is not supported by the torch backend")
        super().__init__(R=R, T=T, device=device, znear=znear, zfar=zfar, max_y=max_y, min_y=min_y,
                         max_x=max_x, min_x=min_x, scale_xyz=scale_xyz)

    def is_perspective(self) -> bool:
        return False

    def _vec(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def get_projection_transform(self, **kwargs) -> Transform3d:
        znear, zfar = self._vec("znear"), self._vec("zfar")
        max_x, min_x, max_y, min_y = (self._vec(n) for n in ("max_x", "min_x", "max_y", "min_y"))
        scale = self.scale_xyz
        K = torch.zeros(self._N, 4, 4, dtype=self.dtype, device=self.device)
        K[:, 0, 0] = 2.0 / (max_x - min_x) * scale[:, 0]
        K[:, 1, 1] = 2.0 / (max_y - min_y) * scale[:, 1]
        K[:, 0, 3] = -(max_x + min_x) / (max_x - min_x)
        K[:, 1, 3] = -(max_y + min_y) / (max_y - min_y)
        K[:, 2, 2] = 1.0 / (zfar - znear) * scale[:, 2]
        K[:, 2, 3] = -znear / (zfar - znear)
        K[:, 3, 3] = 1.0
        return Transform3d(matrix=K.transpose(1, 2))


class _FocalCameras(CamerasBase):
    def __init__(self, focal_length: _Param = 1.0, principal_point=((0.0, 0.0),), R=None, T=None, K=None,
                 device="cpu", in_ndc: bool = True, image_size=None):
        if K is not None:
            raise RenderError(f"{type(self).__name__}: a custom K is not supported by the torch backend")
        super().__init__(R=R, T=T, device=device, focal_length=focal_length, principal_point=principal_point)
        self._in_ndc = in_ndc
        if not in_ndc:
            self.image_size = _image_size_tensor(image_size, self._N, self.device)
        elif image_size is not None:
            self.image_size = _image_size_tensor(image_size, self._N, self.device)

    def in_ndc(self) -> bool:
        return self._in_ndc


class PerspectiveCameras(_FocalCameras):
    """Pinhole camera ``(fx X/Z + px, fy Y/Z + py, 1/Z)`` with focal/principal in NDC (``in_ndc=True``,
    default, principal (0, 0)) or in pixels (``in_ndc=False``, requires ``image_size=((H, W),)``)."""

    def is_perspective(self) -> bool:
        return True

    def get_projection_transform(self, **kwargs) -> Transform3d:
        f = self.get_focal_length()
        p = self.get_principal_point()
        K = torch.zeros(self._N, 4, 4, dtype=self.dtype, device=self.device)
        K[:, 0, 0] = f[:, 0]
        K[:, 1, 1] = f[:, 1]
        K[:, 0, 2] = p[:, 0]
        K[:, 1, 2] = p[:, 1]
        K[:, 2, 3] = 1.0
        K[:, 3, 2] = 1.0
        return Transform3d(matrix=K.transpose(1, 2))


class OrthographicCameras(_FocalCameras):
    """Orthographic camera ``(fx X + px, fy Y + py, Z)``; focal/principal in NDC or pixels (``in_ndc``)."""

    def is_perspective(self) -> bool:
        return False

    def get_projection_transform(self, **kwargs) -> Transform3d:
        f = self.get_focal_length()
        p = self.get_principal_point()
        K = torch.zeros(self._N, 4, 4, dtype=self.dtype, device=self.device)
        K[:, 0, 0] = f[:, 0]
        K[:, 1, 1] = f[:, 1]
        K[:, 0, 3] = p[:, 0]
        K[:, 1, 3] = p[:, 1]
        K[:, 2, 2] = 1.0
        K[:, 3, 3] = 1.0
        return Transform3d(matrix=K.transpose(1, 2))


# -- NDC <-> screen --------------------------------------------------------------------------------

def get_ndc_to_screen_transform(cameras: CamerasBase, with_xyflip: bool = False, image_size=None) -> Transform3d:
    """NDC -> screen: ``x_s = s x_ndc - W/2`` (then ``-x`` with xyflip), ``s = min(H, W) / 2``."""
    size = _image_size_tensor(image_size, len(cameras), cameras.device).to(cameras.dtype)
    H, W = size[:, 0], size[:, 1]
    s = size.min(dim=1).values / 2.0
    K = torch.zeros(len(cameras), 4, 4, dtype=cameras.dtype, device=cameras.device)
    K[:, 0, 0] = s
    K[:, 1, 1] = s
    K[:, 0, 3] = -W / 2.0
    K[:, 1, 3] = -H / 2.0
    K[:, 2, 2] = 1.0
    K[:, 3, 3] = 1.0
    tr = Transform3d(matrix=K.transpose(1, 2))
    if with_xyflip:
        flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=cameras.dtype, device=cameras.device))
        tr = tr.compose(Transform3d(matrix=flip[None].expand(len(cameras), 4, 4)))
    return tr


def get_screen_to_ndc_transform(cameras: CamerasBase, with_xyflip: bool = False, image_size=None) -> Transform3d:
    return get_ndc_to_screen_transform(cameras, with_xyflip=with_xyflip, image_size=image_size).inverse()


def pixel_centers_ndc(image_size: Tuple[int, int], device="cpu", dtype=torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """NDC coordinates sampled by the rasterizer: ``x (W,)`` for columns and ``y (H,)`` for rows.

    Column ``j`` samples ``x = ndc(W-1-j, W, H)`` and row ``i`` samples ``y = ndc(H-1-i, H, W)`` with
    ``ndc(k, S1, S2) = -r/2 + (r k + r/2) / S1``, ``r = 2`` on the shorter side, ``2 S1/S2`` on the longer.
    """
    H, W = int(image_size[0]), int(image_size[1])

    def ndc(k: torch.Tensor, S1: int, S2: int) -> torch.Tensor:
        r = 2.0 * S1 / S2 if S1 > S2 else 2.0
        return -r / 2.0 + (r * k + r / 2.0) / S1

    j = torch.arange(W, device=device, dtype=torch.float64)
    i = torch.arange(H, device=device, dtype=torch.float64)
    return ndc(W - 1 - j, W, H).to(dtype), ndc(H - 1 - i, H, W).to(dtype)


# -- look-at ----------------------------------------------------------------------------------------

def camera_position_from_spherical_angles(distance: _Param, elevation: _Param, azimuth: _Param,
                                          degrees: bool = True, device="cpu") -> torch.Tensor:
    """pytorch3d argument order ``(distance, elevation, azimuth)`` -> ``(N, 3)`` camera centres."""
    d, e, a = (torch.as_tensor(v, dtype=torch.float32, device=device) if not isinstance(v, torch.Tensor) else v
               for v in (distance, elevation, azimuth))
    d, e, a = torch.broadcast_tensors(d.reshape(-1), e.reshape(-1).to(d), a.reshape(-1).to(d))
    if degrees:
        e, a = e * (math.pi / 180.0), a * (math.pi / 180.0)
    return torch.stack([d * torch.cos(e) * torch.sin(a), d * torch.sin(e), d * torch.cos(e) * torch.cos(a)], -1)


def look_at_view_transform(dist: _Param = 1.0, elev: _Param = 0.0, azim: _Param = 0.0, degrees: bool = True,
                           eye=None, at=((0.0, 0.0, 0.0),), up=((0.0, 1.0, 0.0),), device="cpu"
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """pytorch3d ``look_at_view_transform`` -> ``R (N, 3, 3)``, ``T (N, 3)`` (``T = -C @ R``)."""
    if eye is not None:
        C = torch.as_tensor(eye, dtype=torch.float32, device=device) if not isinstance(eye, torch.Tensor) else eye
        C = C.reshape(-1, 3)
    else:
        C = camera_position_from_spherical_angles(dist, elev, azim, degrees=degrees, device=device)
    at_t = torch.as_tensor(at, dtype=C.dtype, device=C.device).reshape(-1, 3)
    C, at_t = torch.broadcast_tensors(C, at_t)
    R = look_at_rotation(C, at=at_t, up=up)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T


# -- pixel-unit helpers ----------------------------------------------------------------------------

def project_points_pinhole(points_view: torch.Tensor, focal_px: torch.Tensor,
                           principal_px: torch.Tensor) -> torch.Tensor:
    """View-space points ``(N, P, 3)`` -> image coordinates ``(N, P, 2)`` in pixels (x right, y down).

    ``u = cx - f X / Z``, ``v = cy - f Y / Z`` (the sign flips map pytorch3d's +X left / +Y up view
    space to image axes). ``focal_px (N,)``, ``principal_px (N, 2)``.
    """
    if points_view.dim() != 3 or points_view.shape[-1] != 3:
        raise ShapeError(f"points_view: expected (N, P, 3), got {tuple(points_view.shape)}")
    f = torch.as_tensor(focal_px, dtype=points_view.dtype, device=points_view.device).reshape(-1, 1)
    c = torch.as_tensor(principal_px, dtype=points_view.dtype, device=points_view.device).reshape(-1, 1, 2)
    z = points_view[..., 2]
    return torch.stack([c[..., 0] - f * points_view[..., 0] / z, c[..., 1] - f * points_view[..., 1] / z], -1)


def weak_perspective_project(points: torch.Tensor, R: torch.Tensor, scale: torch.Tensor,
                             trans: torch.Tensor) -> torch.Tensor:
    """Scaled-orthographic projection ``s (X @ R)[..., :2] + t``.

    ``points (N, P, 3)`` (or ``(P, 3)`` shared), ``R (N, 3, 3)`` row-vector rotation (as in
    ``X_view = X @ R``), ``scale (N,)``, ``trans (N, 2)`` -> ``(N, P, 2)`` in the caller's 2D frame
    (no axis flip is applied).
    """
    if points.dim() == 2:
        points = points[None].expand(R.shape[0], -1, -1)
    if points.shape[-1] != 3 or R.shape[-2:] != (3, 3):
        raise ShapeError(f"weak_perspective_project: points (N, P, 3) and R (N, 3, 3) expected, "
                         f"got {tuple(points.shape)} and {tuple(R.shape)}")
    s = torch.as_tensor(scale, dtype=points.dtype, device=points.device).reshape(-1, 1, 1)
    t = torch.as_tensor(trans, dtype=points.dtype, device=points.device).reshape(-1, 1, 2)
    return s * (points @ R)[..., :2] + t


def pinhole_cameras(R: torch.Tensor, T: torch.Tensor, focal_px, principal_px, image_size: Tuple[int, int]
                    ) -> PerspectiveCameras:
    """Screen-space ``PerspectiveCameras`` for a pixel pinhole (``u = cx - f X/Z``, ``v = cy - f Y/Z``)."""
    N = R.shape[0]
    f = torch.as_tensor(focal_px, dtype=R.dtype, device=R.device).reshape(-1)
    f = f.expand(N) if f.numel() == 1 else f
    p = torch.as_tensor(principal_px, dtype=R.dtype, device=R.device).reshape(-1, 2).expand(N, 2)
    H, W = int(image_size[0]), int(image_size[1])
    return PerspectiveCameras(focal_length=f[:, None].expand(N, 2), principal_point=p, R=R, T=T,
                              in_ndc=False, image_size=((H, W),), device=R.device)


def cameras_from_pose(azimuth, elevation, theta, distance, focal_px, principal_px,
                      image_size: Tuple[int, int]) -> PerspectiveCameras:
    """Pose annotation (radians) + pinhole intrinsics (pixels) -> screen-space ``PerspectiveCameras``."""
    R, T = pose_to_rt(azimuth, elevation, theta, distance)
    return pinhole_cameras(R, T, focal_px, principal_px, image_size)
