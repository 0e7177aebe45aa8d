"""Mesh file IO: PLY (ascii / binary, vertex colours, normals, per-face labels) and OBJ (with UVs).

Writers are atomic (``workbench.core.io.atomic_path``): an interrupted write never leaves a partial
file. Readers raise :class:`~workbench.core.errors.DataError` naming the file and the problem.
Polygons with more than three corners are fan-triangulated on reading.

* ``save_ply(path, verts, faces, vert_colors=None, face_labels=None, vert_normals=None, binary=True)``
  colours are floats in [0, 1] stored as ``uchar red/green/blue``; labels as ``int label`` per face.
* ``load_ply(path) -> (verts (V, 3) float32, faces (F, 3) int64)``; ``read_ply(path) -> dict`` with
  ``verts, faces`` and, when present, ``vert_colors, vert_normals, face_labels``.
* ``save_obj(path, verts, faces, verts_uvs=None, faces_uvs=None)``; ``load_obj(path) -> (verts, faces)``;
  ``read_obj(path) -> dict(verts, faces, verts_uvs, faces_uvs, vert_normals)`` (absent ones are None).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..core.errors import DataError, ShapeError
from ..core.io import atomic_path

__all__ = ["save_ply", "load_ply", "read_ply", "save_obj", "load_obj", "read_obj"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _np(x, dtype) -> Optional[np.ndarray]:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x).astype(dtype)


def _check_mesh_arrays(verts: np.ndarray, faces: np.ndarray, path) -> None:
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ShapeError(f"{path}: verts must be (V, 3), got {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ShapeError(f"{path}: faces must be (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= verts.shape[0]):
        raise ShapeError(f"{path}: faces index vertices outside [0, {verts.shape[0]})")
    if not np.isfinite(verts).all():
        raise ShapeError(f"{path}: verts contain NaN or inf")


def save_ply(path, verts, faces, vert_colors=None, face_labels=None, vert_normals=None,
             binary: bool = True) -> None:
    """Write a triangle mesh to PLY atomically (see module docs for the fields)."""
    path = Path(path)
    v = _np(verts, np.float32)
    f = _np(faces, np.int64)
    _check_mesh_arrays(v, f, path)
    V, F = v.shape[0], f.shape[0]
    cols = _np(vert_colors, np.float64)
    if cols is not None:
        if cols.shape != (V, 3):
            raise ShapeError(f"{path}: vert_colors must be ({V}, 3), got {cols.shape}")
        cols = np.clip(np.round(cols * 255.0), 0, 255).astype(np.uint8)
    nrm = _np(vert_normals, np.float32)
    if nrm is not None and nrm.shape != (V, 3):
        raise ShapeError(f"{path}: vert_normals must be ({V}, 3), got {nrm.shape}")
    lab = _np(face_labels, np.int64)
    if lab is not None:
        lab = lab.reshape(-1)
        if lab.shape[0] != F:
            raise ShapeError(f"{path}: face_labels must have {F} entries, got {lab.shape[0]}")
    vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if nrm is not None:
        vfields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if cols is not None:
        vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    ffields = [("n", "u1"), ("i", "<i4", (3,))] + ([("label", "<i4")] if lab is not None else [])
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment workbench",
              f"element vertex {V}"]
    names = {"<f4": "float", "u1": "uchar", "<i4": "int"}
    header += [f"property {names[t]} {n}" for n, t in vfields]
    header += [f"element face {F}", "property list uchar int vertex_indices"]
    if lab is not None:
        header += ["property int label"]
    header += ["end_header"]
    varr = np.empty(V, dtype=vfields)
    varr["x"], varr["y"], varr["z"] = v[:, 0], v[:, 1], v[:, 2]
    if nrm is not None:
        varr["nx"], varr["ny"], varr["nz"] = nrm[:, 0], nrm[:, 1], nrm[:, 2]
    if cols is not None:
        varr["red"], varr["green"], varr["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    farr = np.empty(F, dtype=ffields)
    farr["n"] = 3
    farr["i"] = f.astype(np.int32)
    if lab is not None:
        farr["label"] = lab.astype(np.int32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            if binary:
                fh.write(varr.tobytes())
                fh.write(farr.tobytes())
            else:
                lines = []
                for row in varr:
                    lines.append(" ".join(repr(float(x)) if isinstance(x, np.floating) else str(int(x)) for x in row))
                for k in range(F):
                    items = ["3"] + [str(int(i)) for i in farr["i"][k]]
                    if lab is not None:
                        items.append(str(int(farr["label"][k])))
                    lines.append(" ".join(items))
                fh.write(("\n".join(lines) + "\n").encode("ascii"))


def _parse_ply_header(fh, path) -> Tuple[str, List[dict]]:
    first = fh.readline().strip()
    if first != b"ply":
        raise DataError(f"{path}: not a PLY file (first line {first[:20]!r})")
    fmt = None
    elements: List[dict] = []
    while True:
        line = fh.readline()
        if not line:
            raise DataError(f"{path}: PLY header has no end_header")
        parts = line.decode("ascii", errors="replace").split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            elements.append({"name": parts[1], "count": int(parts[2]), "props": []})
        elif parts[0] == "property":
            if not elements:
                raise DataError(f"{path}: PLY property before any element")
            if parts[1] == "list":
                elements[-1]["props"].append((parts[4], "list", _PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]]))
            else:
                if parts[1] not in _PLY_TYPES:
                    raise DataError(f"{path}: unknown PLY property type {parts[1]!r}")
                elements[-1]["props"].append((parts[2], _PLY_TYPES[parts[1]]))
        elif parts[0] == "end_header":
            break
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(f"{path}: unsupported PLY format {fmt!r}")
    return fmt, elements


def _triangulate(polys: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons -> (faces (F, 3), index of the source polygon per face)."""
    tris, src = [], []
    for k, p in enumerate(polys):
        for j in range(1, len(p) - 1):
            tris.append((p[0], p[j], p[j + 1]))
            src.append(k)
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3), np.asarray(src, dtype=np.int64)


def read_ply(path) -> Dict[str, Optional[torch.Tensor]]:
    """Read a PLY mesh -> dict(verts, faces, vert_colors, vert_normals, face_labels) (absent -> None)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    try:
        with open(path, "rb") as fh:
            fmt, elements = _parse_ply_header(fh, path)
            data: Dict[str, Dict[str, np.ndarray]] = {}
            if fmt == "ascii":
                tokens = fh.read().split()
                pos = 0
                for el in elements:
                    cols: Dict[str, list] = {p[0]: [] for p in el["props"]}
                    for _ in range(el["count"]):
                        for p in el["props"]:
                            if p[1] == "list":
                                n = int(tokens[pos]); pos += 1
                                cols[p[0]].append(np.asarray([float(t) for t in tokens[pos:pos + n]]).astype(p[3]))
                                pos += n
                            else:
                                cols[p[0]].append(float(tokens[pos])); pos += 1
                    data[el["name"]] = {k: (v if any(p[0] == k and p[1] == "list" for p in el["props"])
                                            else np.asarray(v)) for k, v in cols.items()}
            else:
                end = "<" if fmt == "binary_little_endian" else ">"
                buf = fh.read()
                pos = 0
                for el in elements:
                    has_list = any(p[1] == "list" for p in el["props"])
                    if not has_list:
                        dt = np.dtype([(p[0], end + p[1]) for p in el["props"]])
                        arr = np.frombuffer(buf, dtype=dt, count=el["count"], offset=pos)
                        pos += dt.itemsize * el["count"]
                        data[el["name"]] = {p[0]: arr[p[0]] for p in el["props"]}
                        continue
                    # fast path: every list has 3 entries (triangles)
                    parsed = _read_binary_list_element(buf, pos, el, end)
                    pos, data[el["name"]] = parsed
    except DataError:
        raise
    except (ValueError, IndexError, KeyError, OSError) as e:
        raise DataError(f"{path}: corrupt PLY file ({type(e).__name__}: {e})") from e
    if "vertex" not in data:
        raise DataError(f"{path}: PLY has no vertex element")
    vx = data["vertex"]
    if not all(k in vx for k in "xyz"):
        raise DataError(f"{path}: PLY vertices lack x/y/z")
    verts = np.stack([vx["x"], vx["y"], vx["z"]], 1).astype(np.float32)
    out: Dict[str, Optional[torch.Tensor]] = {"verts": torch.from_numpy(verts), "faces": None,
                                              "vert_colors": None, "vert_normals": None, "face_labels": None}
    if all(k in vx for k in ("red", "green", "blue")):
        c = np.stack([vx["red"], vx["green"], vx["blue"]], 1).astype(np.float64)
        scale = 255.0 if np.asarray(vx["red"]).dtype.kind in "ui" or c.max() > 1.0 else 1.0
        out["vert_colors"] = torch.from_numpy((c / scale).astype(np.float32))
    if all(k in vx for k in ("nx", "ny", "nz")):
        out["vert_normals"] = torch.from_numpy(np.stack([vx["nx"], vx["ny"], vx["nz"]], 1).astype(np.float32))
    faces = np.zeros((0, 3), dtype=np.int64)
    labels = None
    if "face" in data:
        fd = data["face"]
        key = "vertex_indices" if "vertex_indices" in fd else ("vertex_index" if "vertex_index" in fd else None)
        if key is None:
            raise DataError(f"{path}: PLY faces lack vertex_indices")
        idx = fd[key]
        if isinstance(idx, np.ndarray) and idx.ndim == 2 and idx.shape[1] == 3:
            faces, src = idx.astype(np.int64), np.arange(idx.shape[0])
        else:
            faces, src = _triangulate([np.asarray(p, dtype=np.int64) for p in idx])
        if "label" in fd:
            labels = np.asarray(fd["label"]).astype(np.int64)[src]
    if faces.size and (faces.min() < 0 or faces.max() >= verts.shape[0]):
        raise DataError(f"{path}: faces index vertices outside [0, {verts.shape[0]})")
    out["faces"] = torch.from_numpy(np.ascontiguousarray(faces))
    if labels is not None:
        out["face_labels"] = torch.from_numpy(labels)
    return out


def _read_binary_list_element(buf: bytes, pos: int, el: dict, end: str):
    props = el["props"]
    count = el["count"]
    # Try the common layout: fixed-size scalars + one list of constant length 3.
    try:
        fields = []
        for p in props:
            if p[1] == "list":
                fields += [(p[0] + "__n", end + p[2]), (p[0], end + p[3], (3,))]
            else:
                fields.append((p[0], end + p[1]))
        dt = np.dtype(fields)
        if pos + dt.itemsize * count <= len(buf):
            arr = np.frombuffer(buf, dtype=dt, count=count, offset=pos)
            ok = all((arr[p[0] + "__n"] == 3).all() for p in props if p[1] == "list")
            if ok:
                return pos + dt.itemsize * count, {p[0]: np.array(arr[p[0]]) for p in props}
    except (ValueError, TypeError):
        pass
    cols: Dict[str, list] = {p[0]: [] for p in props}
    for _ in range(count):
        for p in props:
            if p[1] == "list":
                ndt = np.dtype(end + p[2])
                n = int(np.frombuffer(buf, dtype=ndt, count=1, offset=pos)[0]); pos += ndt.itemsize
                idt = np.dtype(end + p[3])
                cols[p[0]].append(np.frombuffer(buf, dtype=idt, count=n, offset=pos).astype(np.int64))
                pos += idt.itemsize * n
            else:
                sdt = np.dtype(end + p[1])
                cols[p[0]].append(np.frombuffer(buf, dtype=sdt, count=1, offset=pos)[0]); pos += sdt.itemsize
    return pos, {k: (v if any(p[0] == k and p[1] == "list" for p in props) else np.asarray(v)) for k, v in cols.items()}


def load_ply(path) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read a PLY mesh -> ``(verts (V, 3) float32, faces (F, 3) int64)`` (pytorch3d's signature)."""
    d = read_ply(path)
    return d["verts"], d["faces"]


def save_obj(path, verts, faces, verts_uvs=None, faces_uvs=None, decimal_places: int = 6) -> None:
    """Write an OBJ atomically; ``verts_uvs (T, 2)``/``faces_uvs (F, 3)`` add ``vt`` and ``f v/vt``."""
    path = Path(path)
    v = _np(verts, np.float64)
    f = _np(faces, np.int64)
    _check_mesh_arrays(v, f, path)
    uv = _np(verts_uvs, np.float64)
    fuv = _np(faces_uvs, np.int64)
    if (uv is None) != (fuv is None):
        raise ShapeError(f"{path}: verts_uvs and faces_uvs must be given together")
    if fuv is not None and fuv.shape != f.shape:
        raise ShapeError(f"{path}: faces_uvs must be {f.shape}, got {fuv.shape}")
    fmt = f"%.{decimal_places}f"
    lines = ["# workbench"]
    lines += ["v " + " ".join(fmt % x for x in row) for row in v]
    if uv is not None:
        lines += ["vt " + " ".join(fmt % x for x in row) for row in uv]
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(f, fuv)]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write("\n".join(lines) + "\n")


def read_obj(path) -> Dict[str, Optional[torch.Tensor]]:
    """Read an OBJ -> dict(verts, faces, verts_uvs, faces_uvs, vert_normals); materials are ignored."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    verts, uvs, normals, polys, polys_uv = [], [], [], [], []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                tag = parts[0]
                if tag == "v":
                    verts.append([float(x) for x in parts[1:4]])
                elif tag == "vt":
                    uvs.append([float(x) for x in parts[1:3]])
                elif tag == "vn":
                    normals.append([float(x) for x in parts[1:4]])
                elif tag == "f":
                    vi, ti = [], []
                    for item in parts[1:]:
                        s = item.split("/")
                        a = int(s[0])
                        vi.append(a - 1 if a > 0 else len(verts) + a)
                        if len(s) > 1 and s[1]:
                            t = int(s[1])
                            ti.append(t - 1 if t > 0 else len(uvs) + t)
                    if len(vi) < 3:
                        raise DataError(f"{path}:{lineno}: face with fewer than 3 vertices")
                    polys.append(np.asarray(vi))
                    polys_uv.append(np.asarray(ti) if len(ti) == len(vi) else None)
    except DataError:
        raise
    except (ValueError, IndexError, OSError) as e:
        raise DataError(f"{path}: corrupt OBJ file ({type(e).__name__}: {e})") from e
    V = np.asarray(verts, dtype=np.float32).reshape(-1, 3)
    faces, src = _triangulate(polys)
    if faces.size and (faces.min() < 0 or faces.max() >= V.shape[0]):
        raise DataError(f"{path}: faces index vertices outside [0, {V.shape[0]})")
    out: Dict[str, Optional[torch.Tensor]] = {"verts": torch.from_numpy(V), "faces": torch.from_numpy(faces),
                                              "verts_uvs": None, "faces_uvs": None, "vert_normals": None}
    if uvs and polys_uv and all(p is not None for p in polys_uv):
        fuv, _ = _triangulate(polys_uv)
        out["verts_uvs"] = torch.tensor(uvs, dtype=torch.float32)
        out["faces_uvs"] = torch.from_numpy(fuv)
    if normals and len(normals) == V.shape[0]:
        out["vert_normals"] = torch.tensor(normals, dtype=torch.float32)
    return out


def load_obj(path) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read an OBJ -> ``(verts (V, 3) float32, faces (F, 3) int64)``."""
    d = read_obj(path)
    return d["verts"], d["faces"]
