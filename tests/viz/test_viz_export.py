"""Figure export: PNG/SVG/PDF through kaleido + Chromium, and the documented fallbacks."""
from __future__ import annotations

import logging
import struct

import numpy as np
import plotly.graph_objects as go
import pytest

import importlib

from workbench.viz.export import export, find_chrome
from workbench.viz.mesh import mesh_figure

export_mod = importlib.import_module("workbench.viz.export")  # the module (the package exports the function)
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<svg"}


def _png_size(path):
    data = path.read_bytes()
    return struct.unpack(">II", data[16:24])


def _check(path, fmt):
    data = path.read_bytes()
    if fmt == "svg":
        assert b"<svg" in data[:400], data[:200]
    else:
        assert data.startswith(MAGIC[fmt])
    assert len(data) > 1000


@pytest.fixture
def fig(cube):
    v, f = cube
    fig = mesh_figure((v, f), scalars=v[:, 1])
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0]))  # 2D trace on the default axes as well
    fig.update_layout(width=400, height=300, title="export test")
    return fig


@pytest.mark.skipif(find_chrome() is None, reason="no Chrome/Chromium: apt-get install chromium")
def test_kaleido_writes_png_svg_pdf(tmp_path, fig):
    res = export(fig, tmp_path / "fig", formats=("png", "svg", "pdf"), scale=1.5)
    assert res.backend == "kaleido" and res.note == ""
    assert [p.name for p in res] == ["fig.png", "fig.svg", "fig.pdf"]
    for p, fmt in zip(res, ("png", "svg", "pdf")):
        _check(p, fmt)
    assert _png_size(res[0]) == (600, 450)      # layout size x scale
    from PIL import Image

    px = np.asarray(Image.open(res[0]).convert("RGB")).astype(int)
    assert (np.abs(px - 255).sum(-1) > 30).mean() > 0.05   # the WebGL mesh was drawn, not a blank page
    assert not list(tmp_path.glob(".*tmp"))   # atomic: no temp files left


def test_fallback_without_chrome_is_matplotlib_with_one_line(tmp_path, fig, monkeypatch, caplog):
    monkeypatch.setattr(export_mod, "find_chrome", lambda: None)
    with caplog.at_level(logging.WARNING, logger="workbench.viz.export"):
        res = export(fig, tmp_path / "fig.png", formats=("png", "svg", "pdf"))
    assert res.backend == "matplotlib"
    for p, fmt in zip(res, ("png", "svg", "pdf")):
        _check(p, fmt)
    recs = [r for r in caplog.records if r.name == "workbench.viz.export"]
    assert len(recs) == 1 and "\n" not in recs[0].getMessage()
    assert "no Chrome/Chromium" in recs[0].getMessage() and "fig.png, fig.svg, fig.pdf" in recs[0].getMessage()
    # the matplotlib drawing is not blank: the mesh and the line leave many non-white pixels
    from PIL import Image

    px = np.asarray(Image.open(res[0]).convert("L"))
    assert (px < 200).mean() > 0.02


def test_unsupported_trace_falls_back_to_html(tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "find_chrome", lambda: None)
    pie = go.Figure(go.Pie(values=[1, 2, 3]))
    res = export(pie, tmp_path / "pie.pdf")
    assert res.backend == "html" and [p.name for p in res] == ["pie.html"]
    text = res[0].read_text()
    assert "plotly" in text and len(text) > 1_000_000     # plotly.js inlined: works offline
    assert "matplotlib cannot draw it" in res.note


def test_kaleido_failure_falls_back_and_engine_kaleido_raises(tmp_path, fig, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("Kaleido requires Google Chrome to be installed")

    monkeypatch.setattr(export_mod, "kaleido_available", lambda: True)
    monkeypatch.setattr(export_mod, "_write_kaleido", boom)
    monkeypatch.setattr(export_mod, "_kaleido_broken", None)
    res = export(fig, tmp_path / "a.svg")
    assert res.backend == "matplotlib" and "kaleido failed" in res.note
    _check(res[0], "svg")
    with pytest.raises(RuntimeError, match="Chrome"):
        export(fig, tmp_path / "b.png", engine="kaleido")


def test_html_and_bad_arguments(tmp_path, fig):
    res = export(fig, tmp_path / "f.html")
    assert res.backend == "html" and "<html>" in res[0].read_text()[:100]
    with pytest.raises(ValueError, match="cannot infer"):
        export(fig, tmp_path / "f.bmp")
    with pytest.raises(ValueError, match="unsupported format"):
        export(fig, tmp_path / "f", formats=("tiff",))
