"""Render backend selection: ``"torch"`` (built in, default) or ``"pytorch3d"`` (optional, lazy import).

``get_backend("auto")`` returns the value of the ``WORKBENCH_RENDER_BACKEND`` environment variable
when it is set, else ``"pytorch3d"`` when ``pytorch3d`` (with its compiled extension) imports,
else ``"torch"``. An explicit ``"torch"``/``"pytorch3d"`` argument wins over the environment.
"""
from __future__ import annotations

import functools
import logging
import os

from ..core.errors import RenderError

__all__ = ["get_backend", "pytorch3d_available", "BACKENDS", "ENV_VAR"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "pytorch3d")
ENV_VAR = "WORKBENCH_RENDER_BACKEND"


@functools.lru_cache(maxsize=1)
def pytorch3d_available() -> bool:
    """True when ``pytorch3d`` and its compiled ``_C`` extension import."""
    try:
        import pytorch3d  # noqa: F401
        from pytorch3d import _C  # noqa: F401
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes  # noqa: F401
    except Exception as e:  # ImportError, OSError (bad .so), ...
        log.debug("pytorch3d unavailable: %s", e)
        return False
    return True


def get_backend(name: str = "auto") -> str:
    """Resolve a backend name to ``"torch"`` or ``"pytorch3d"`` (see module docs)."""
    if name is None:
        name = "auto"
    name = str(name).lower()
    if name not in BACKENDS:
        raise RenderError(f"unknown render backend {name!r}; expected one of {BACKENDS}")
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            if env not in BACKENDS:
                raise RenderError(f"{ENV_VAR}={env!r} is not a render backend; expected one of {BACKENDS}")
            name = env
    if name == "auto":
        return "pytorch3d" if pytorch3d_available() else "torch"
    if name == "pytorch3d" and not pytorch3d_available():
        raise RenderError("render backend 'pytorch3d' requested but pytorch3d (with its compiled extension) "
                          "is not importable; install it with conda or use backend='torch'")
    return name
