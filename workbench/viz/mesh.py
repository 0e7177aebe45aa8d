"""Interactive mesh viewer (plotly ``Mesh3d``).

Meshes may be given as a :class:`workbench.geometry.mesh.Meshes` batch (its ``TexturesVertex`` or
``TexturesUV`` are used when present), as ``(verts (V,3), faces (F,3))`` pairs, or as dicts with
keys ``verts, faces`` and optional ``vertex_colors (V,3)``, ``face_colors (F,3)``,
``verts_uvs (T,2)``, ``faces_uvs (F,3)``, ``texture (H,W,3)``.

Colour sources, in order of precedence: a per-vertex scalar map (``scalars``, e.g. an activation
or an error; drawn with a colour scale and a colour bar), per-face colours, per-vertex colours,
a UV texture (approximated by per-vertex colours, see :func:`uv_to_vertex_colors`), a flat colour.

The scene uses the object's canonical frame (+Y up, front towards +Z), so the default view looks
at the front of the object from slightly above.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import ShapeError
from ._util import palette_color, rgb_strings, to_numpy

DEFAULT_MESH_COLOR = "#9fb4d0"
#: Canonical view: +Y up, eye in front (+Z) and slightly above/right of the object.
DEFAULT_SCENE_CAMERA = dict(up=dict(x=0, y=1, z=0), eye=dict(x=1.45, y=1.05, z=2.1), center=dict(x=0, y=0, z=0))


@dataclass
class MeshData:
    """One mesh as numpy arrays: ``verts (V,3)`` float, ``faces (F,3)`` int, optional colours in [0,1]."""

    verts: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    face_colors: np.ndarray | None = None
    name: str = "mesh"

    def __post_init__(self) -> None:
        self.verts = to_numpy(self.verts, np.float64)
        self.faces = to_numpy(self.faces, np.int64)
        if self.verts.ndim != 2 or self.verts.shape[1] != 3:
            raise ShapeError(f"mesh '{self.name}': verts must be (V, 3), got {tuple(self.verts.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ShapeError(f"mesh '{self.name}': faces must be (F, 3), got {tuple(self.faces.shape)}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= len(self.verts)):
            raise ShapeError(f"mesh '{self.name}': face indices out of range [0, {len(self.verts)})")
        if self.vertex_colors is not None:
            self.vertex_colors = _colors(self.vertex_colors, len(self.verts), f"mesh '{self.name}' vertex_colors")
        if self.face_colors is not None:
            self.face_colors = _colors(self.face_colors, len(self.faces), f"mesh '{self.name}' face_colors")


def _colors(c: Any, n: int, what: str) -> np.ndarray:
    a = to_numpy(c, np.float64)
    if a.ndim == 1 and a.shape[0] == 3:
        a = np.broadcast_to(a, (n, 3)).copy()
    if a.ndim != 2 or a.shape != (n, 3):
        raise ShapeError(f"{what}: expected ({n}, 3), got {tuple(a.shape)}")
    if a.max(initial=0.0) > 1.0 + 1e-6:
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


def uv_to_vertex_colors(verts_uvs: Any, faces_uvs: Any, faces: Any, texture: Any,
                        num_verts: int | None = None) -> np.ndarray:
    """Approximate a UV texture by per-vertex colours.

    Every face corner samples the texture bilinearly at its UV (pytorch3d's ``TexturesUV``
    convention: ``u`` to the right, ``v`` upwards, i.e. ``v = 0`` is the bottom row, with
    ``align_corners=True``); a vertex gets the mean colour of the corners that use it (vertices on
    UV seams have several).

    Args:
        verts_uvs: ``(T, 2)`` in [0, 1].
        faces_uvs: ``(F, 3)`` indices into ``verts_uvs``.
        faces: ``(F, 3)`` indices into the vertices.
        texture: ``(H, W, 3)`` (or ``(3, H, W)``) in [0, 1].
        num_verts: V (default ``faces.max() + 1``).
    Returns:
        ``(V, 3)`` colours in [0, 1]; vertices used by no face are grey.
    """
    from ._util import to_hwc_image

    uv = to_numpy(verts_uvs, np.float64)
    fuv = to_numpy(faces_uvs, np.int64)
    f = to_numpy(faces, np.int64)
    tex = to_hwc_image(texture, "texture").astype(np.float64)
    if fuv.shape != f.shape:
        raise ShapeError(f"faces_uvs {tuple(fuv.shape)} must have the shape of faces {tuple(f.shape)}")
    h, w = tex.shape[:2]
    corner_uv = uv[fuv.reshape(-1)]                       # (3F, 2)
    x = np.clip(corner_uv[:, 0], 0, 1) * (w - 1)
    y = (1.0 - np.clip(corner_uv[:, 1], 0, 1)) * (h - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    wx = (x - x0)[:, None]
    wy = (y - y0)[:, None]
    c = (tex[y0, x0] * (1 - wx) * (1 - wy) + tex[y0, x1] * wx * (1 - wy)
         + tex[y1, x0] * (1 - wx) * wy + tex[y1, x1] * wx * wy)  # (3F, 3)
    n = int(num_verts if num_verts is not None else (f.max() + 1 if f.size else 0))
    acc = np.zeros((n, 3))
    cnt = np.zeros(n)
    np.add.at(acc, f.reshape(-1), c)
    np.add.at(cnt, f.reshape(-1), 1.0)
    out = np.full((n, 3), 0.6)
    used = cnt > 0
    out[used] = acc[used] / cnt[used, None]
    return np.clip(out, 0, 1)


def _from_textures(textures: Any, i: int, verts: np.ndarray, faces: np.ndarray) -> np.ndarray | None:
    """Vertex colours of mesh ``i`` from a pytorch3d-style textures object, if it has colours."""
    if textures is None:
        return None
    if hasattr(textures, "verts_features_list"):
        feats = to_numpy(textures.verts_features_list()[i], np.float64)
        if feats.ndim == 2 and feats.shape == (len(verts), 3):
            return np.clip(feats, 0, 1)
        return None
    if hasattr(textures, "maps_padded") and hasattr(textures, "verts_uvs_list"):
        tex = to_numpy(textures.maps_padded()[i])
        return uv_to_vertex_colors(textures.verts_uvs_list()[i], textures.faces_uvs_list()[i], faces, tex,
                                   num_verts=len(verts))
    return None


def as_mesh_list(meshes: Any, names: Sequence[str] | None = None) -> list[MeshData]:
    """Normalise any accepted mesh input (see the module docstring) to a list of :class:`MeshData`."""
    out: list[MeshData] = []

    def name(k: int) -> str:
        return names[k] if names is not None and k < len(names) else f"mesh {k}"

    def add(m: Any) -> None:
        k = len(out)
        if isinstance(m, MeshData):
            out.append(m)
        elif hasattr(m, "verts_list") and hasattr(m, "faces_list"):
            vl, fl = m.verts_list(), m.faces_list()
            tex = getattr(m, "textures", None)
            for j, (v, f) in enumerate(zip(vl, fl)):
                v_np, f_np = to_numpy(v, np.float64), to_numpy(f, np.int64)
                vc = _from_textures(tex, j, v_np, f_np)
                out.append(MeshData(v_np, f_np, vertex_colors=vc, name=name(len(out))))
        elif isinstance(m, dict):
            v, f = m["verts"], m["faces"]
            vc = m.get("vertex_colors")
            if vc is None and m.get("texture") is not None:
                vc = uv_to_vertex_colors(m["verts_uvs"], m["faces_uvs"], f, m["texture"], num_verts=len(v))
            out.append(MeshData(v, f, vertex_colors=vc, face_colors=m.get("face_colors"),
                                name=m.get("name", name(k))))
        elif isinstance(m, (tuple, list)) and len(m) == 2 and not isinstance(m[0], (tuple, list, dict)):
            out.append(MeshData(m[0], m[1], name=name(k)))
        else:
            raise ShapeError(f"cannot interpret {type(m).__name__} as a mesh (expected Meshes, (verts, faces) "
                             "or a dict with 'verts' and 'faces')")

    if isinstance(meshes, (list,)) and meshes and not _is_pair(meshes):
        for m in meshes:
            add(m)
    else:
        add(meshes)
    return out


def _is_pair(x: Any) -> bool:
    """True for ``[verts, faces]`` given as a two-element list of arrays."""
    return (len(x) == 2 and all(hasattr(a, "shape") for a in x)
            and to_numpy(x[0]).ndim == 2 and to_numpy(x[1]).ndim == 2
            and to_numpy(x[1]).dtype.kind in "iu" and to_numpy(x[0]).dtype.kind == "f")


def wireframe_trace(mesh: MeshData, color: str = "#303030", width: float = 1.5,
                    visible: bool = True, name: str | None = None) -> go.Scatter3d:
    """Unique edges of the mesh as one ``Scatter3d`` line trace (segments separated by gaps)."""
    f = mesh.faces
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=0)
    e = np.unique(np.sort(e, axis=1), axis=0)
    pts = np.full((len(e) * 3, 3), np.nan)
    pts[0::3] = mesh.verts[e[:, 0]]
    pts[1::3] = mesh.verts[e[:, 1]]
    return go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines",
                        line=dict(color=color, width=width), hoverinfo="skip", connectgaps=False,
                        name=name or f"{mesh.name} wireframe", visible=visible, showlegend=False,
                        meta={"role": "wireframe"})


def mesh_trace(mesh: MeshData, *, color: str | None = None, scalars: Any = None,
               colorscale: str = "Viridis", cmin: float | None = None, cmax: float | None = None,
               scalar_name: str = "value", opacity: float = 1.0, flatshading: bool = True,
               showscale: bool = True) -> go.Mesh3d:
    """One ``Mesh3d`` trace; colour precedence as in the module docstring."""
    v, f = mesh.verts, mesh.faces
    kw: dict[str, Any] = {}
    hover = "x=%{x:.3f}<br>y=%{y:.3f}<br>z=%{z:.3f}"
    if scalars is not None:
        s = to_numpy(scalars, np.float64).reshape(-1)
        if s.shape[0] != len(v):
            raise ShapeError(f"mesh '{mesh.name}': scalars must have one value per vertex "
                             f"({len(v)}), got {s.shape[0]}")
        kw.update(intensity=s, intensitymode="vertex", colorscale=colorscale, showscale=showscale,
                  cmin=float(np.nanmin(s)) if cmin is None else cmin,
                  cmax=float(np.nanmax(s)) if cmax is None else cmax,
                  colorbar=dict(title=dict(text=scalar_name), len=0.6))
        hover += f"<br>{scalar_name}=%{{intensity:.3g}}"
    elif mesh.face_colors is not None:
        kw["facecolor"] = rgb_strings(mesh.face_colors)
    elif mesh.vertex_colors is not None:
        kw["vertexcolor"] = rgb_strings(mesh.vertex_colors)
    else:
        kw["color"] = color or DEFAULT_MESH_COLOR
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                     opacity=opacity, flatshading=flatshading, name=mesh.name, showlegend=True,
                     lighting=dict(ambient=0.55, diffuse=0.8, specular=0.15, roughness=0.6, fresnel=0.1),
                     lightposition=dict(x=100, y=200, z=300), hovertemplate=hover + "<extra>%{fullData.name}</extra>",
                     meta={"role": "mesh"}, **kw)


def keypoint_trace(points: Any, names: Sequence[str] | None = None, visible: Any = None,
                   color: str = "#d62728", size: float = 5.0, name: str = "keypoints") -> go.Scatter3d:
    """3D keypoints ``(K, 3)`` as markers with labels; invisible ones (``visible[k] == 0``) hollow."""
    p = to_numpy(points, np.float64).reshape(-1, 3)
    symbols = None
    if visible is not None:
        vis = to_numpy(visible).reshape(-1).astype(bool)
        symbols = ["circle" if b else "circle-open" for b in vis]
    text = list(names) if names is not None else [str(k) for k in range(len(p))]
    return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers+text", text=text,
                        textposition="top center", textfont=dict(size=10, color=color),
                        marker=dict(size=size, color=color, symbol=symbols, line=dict(width=1, color="#222")),
                        name=name, hovertemplate="%{text}<extra></extra>", meta={"role": "keypoints"})


def scene_layout(camera: dict | None = None, show_axes: bool = False) -> dict:
    """A 3D scene with equal axis scales and the canonical +Y-up camera."""
    ax = dict(visible=show_axes, showbackground=False, title="")
    return dict(aspectmode="data", camera=camera or DEFAULT_SCENE_CAMERA, xaxis=ax, yaxis=ax, zaxis=ax,
                dragmode="orbit")


def _per_mesh(value: Any, n: int, what: str) -> list:
    """Broadcast a per-mesh option: ``None`` -> ``[None] * n``; a list of ``n`` entries stays."""
    if value is None:
        return [None] * n
    if n == 1:
        if isinstance(value, (list, tuple)) and len(value) == 1 and (value[0] is None or hasattr(value[0], "shape")):
            return [value[0]]
        return [value]
    if isinstance(value, (list, tuple)) and len(value) == n:
        return list(value)
    raise ShapeError(f"{what}: expected a list with one entry per mesh ({n}), got {type(value).__name__}")


def mesh_figure(meshes: Any, *, names: Sequence[str] | None = None, layout: str = "row",
                vertex_colors: Any = None, face_colors: Any = None, scalars: Any = None,
                scalar_name: str = "value", colorscale: str = "Viridis", shared_scale: bool = True,
                keypoints: Any = None, keypoint_names: Any = None, keypoints_visible: Any = None,
                wireframe: bool = False, opacity: float = 1.0, flatshading: bool = True,
                colors: Sequence[str] | None = None, title: str | None = None,
                height: int = 420, width: int | None = None, show_axes: bool = False) -> go.Figure:
    """View one or several meshes.

    Args:
        meshes: one mesh or a list (see the module docstring for the accepted forms).
        names: display names (default from the input or ``mesh k``).
        layout: ``"row"`` (one 3D scene per mesh, side by side) or ``"overlay"`` (one scene).
        vertex_colors / face_colors: per mesh ``(V,3)`` / ``(F,3)`` in [0,1] (a list for several meshes).
        scalars: per mesh ``(V,)`` values (activation, error, ...); shown with ``colorscale`` and a
            colour bar titled ``scalar_name``. ``shared_scale`` uses one range over all meshes.
        keypoints: per mesh ``(K,3)``; ``keypoint_names`` ``[K]`` labels; ``keypoints_visible`` ``(K,)``.
        wireframe: initial state of the wireframe overlay. A wireframe trace is always added and
            the figure has "wireframe on/off" buttons to toggle it.
        colors: flat colours per mesh when they have no colours of their own (default: a
            neutral blue-grey for one mesh, the palette for several in ``overlay``).
    Returns:
        A ``go.Figure`` (never shown).
    """
    ms = as_mesh_list(meshes, names)
    n = len(ms)
    vcs = _per_mesh(vertex_colors, n, "vertex_colors")
    fcs = _per_mesh(face_colors, n, "face_colors")
    scs = _per_mesh(scalars, n, "scalars")
    kps = _per_mesh(keypoints, n, "keypoints")
    kvis = _per_mesh(keypoints_visible, n, "keypoints_visible")
    if keypoint_names is not None and n > 1 and not (isinstance(keypoint_names[0], (list, tuple))):
        kn = [keypoint_names] * n
    else:
        kn = _per_mesh(keypoint_names, n, "keypoint_names")
    for m, vc, fc in zip(ms, vcs, fcs):
        if vc is not None:
            m.vertex_colors = _colors(vc, len(m.verts), f"mesh '{m.name}' vertex_colors")
        if fc is not None:
            m.face_colors = _colors(fc, len(m.faces), f"mesh '{m.name}' face_colors")
    cmin = cmax = None
    if shared_scale and any(s is not None for s in scs):
        allv = np.concatenate([to_numpy(s, np.float64).reshape(-1) for s in scs if s is not None])
        cmin, cmax = float(np.nanmin(allv)), float(np.nanmax(allv))

    if layout not in ("row", "overlay"):
        raise ValueError(f"layout must be 'row' or 'overlay', got '{layout}'")
    if layout == "row" and n > 1:
        fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n],
                            subplot_titles=[m.name for m in ms], horizontal_spacing=0.01)
    else:
        fig = go.Figure()
    wire_idx: list[int] = []
    shown_scale = False
    for k, m in enumerate(ms):
        scene = "scene" if (layout == "overlay" or k == 0) else f"scene{k + 1}"
        if colors is not None:
            flat = colors[k % len(colors)]
        else:
            flat = DEFAULT_MESH_COLOR if (n == 1 or layout == "row") else palette_color(k)
        tr = mesh_trace(m, color=flat, scalars=scs[k], colorscale=colorscale, cmin=cmin, cmax=cmax,
                        scalar_name=scalar_name, opacity=opacity, flatshading=flatshading,
                        showscale=(scs[k] is not None and not (shared_scale and shown_scale)))
        shown_scale = shown_scale or scs[k] is not None
        tr.scene = scene
        fig.add_trace(tr)
        wt = wireframe_trace(m, visible=wireframe)
        wt.scene = scene
        fig.add_trace(wt)
        wire_idx.append(len(fig.data) - 1)
        if kps[k] is not None:
            kt = keypoint_trace(kps[k], names=kn[k], visible=kvis[k], name=f"{m.name} keypoints")
            kt.scene = scene
            fig.add_trace(kt)
    scenes = {("scene" if k == 0 else f"scene{k + 1}"): scene_layout(show_axes=show_axes)
              for k in range(n if (layout == "row" and n > 1) else 1)}
    fig.update_layout(**scenes)
    # plotly.js restyle needs the full visibility list: keep non-wireframe traces as they are
    ntr = len(fig.data)
    base = [True if fig.data[i].visible is None else fig.data[i].visible for i in range(ntr)]
    on_vis = [True if i in wire_idx else base[i] for i in range(ntr)]
    off_vis = [False if i in wire_idx else base[i] for i in range(ntr)]
    fig.update_layout(
        title=title, height=height, width=width, margin=dict(l=0, r=0, t=40 if (title or n > 1) else 10, b=0),
        legend=dict(orientation="h", yanchor="bottom", y=0.0, x=0.0),
        updatemenus=[dict(type="buttons", direction="right", x=1.0, xanchor="right", y=1.0, yanchor="top",
                          showactive=True, active=1 if wireframe else 0,
                          buttons=[dict(label="wireframe off", method="restyle", args=[{"visible": off_vis}]),
                                   dict(label="wireframe on", method="restyle", args=[{"visible": on_vis}])])],
    )
    return fig


def set_wireframe(fig: go.Figure, visible: bool) -> go.Figure:
    """Show or hide every wireframe trace of a figure made by :func:`mesh_figure` (in place)."""
    for tr in fig.data:
        if isinstance(tr.meta, dict) and tr.meta.get("role") == "wireframe":
            tr.visible = visible
    return fig
