"""Figure export: PNG, SVG, PDF (and JPG/WebP) through kaleido v1 with a Chrome/Chromium, with
fallbacks when no browser is available.

* Static formats go through kaleido (``plotly.io.write_image``). The first export starts a
  persistent kaleido server (``kaleido.start_sync_server``), so later exports reuse one browser:
  the first image takes ~2.5 s, later ones ~0.2 s (2-core CPU, Debian chromium). The server is
  stopped at interpreter exit (or by :func:`stop_export_server`).
* Without Chrome/Chromium (or if kaleido fails) static formats are redrawn with matplotlib
  (:mod:`workbench.viz._mpl`, an approximation); figures with trace types matplotlib cannot
  draw are written as self-contained HTML next to the requested path instead. Either way one
  WARNING line says what happened, and the returned :class:`ExportResult` names the backend.
* ``html`` is always written by plotly itself, self-contained (plotly.js inlined, offline-safe).

Files are written atomically (``workbench.core.io.atomic_path``).

The browser is found through ``$BROWSER_PATH`` or the usual names on ``$PATH`` (chromium,
chromium-browser, google-chrome, ...); Debian: ``apt-get install chromium``.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..core.io import atomic_path

logger = logging.getLogger(__name__)

STATIC_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp")
ALL_FORMATS = STATIC_FORMATS + ("html",)
CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

_server_lock = threading.Lock()
_server_started = False
_kaleido_broken: str | None = None   # set after a failure so later calls fall back immediately


@dataclass
class ExportResult:
    """What :func:`export` wrote: ``paths`` (one per format), ``backend`` (``kaleido``,
    ``matplotlib``, ``html`` or a ``+``-joined mix), and ``note`` (the fallback line, if any)."""

    paths: list[Path] = field(default_factory=list)
    backend: str = ""
    note: str = ""

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Path:
        return self.paths[i]


def find_chrome() -> str | None:
    """Path of a Chrome/Chromium executable usable by kaleido, or ``None``."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if Path(env).is_file() and os.access(env, os.X_OK) else None
    for name in CHROME_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def kaleido_available() -> bool:
    """True when kaleido >= 1 is importable and a browser was found (and kaleido has not failed)."""
    if _kaleido_broken is not None:
        return False
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return find_chrome() is not None


def _ensure_server() -> None:
    global _server_started
    with _server_lock:
        if _server_started:
            return
        import kaleido

        chrome = find_chrome()
        if chrome and not os.environ.get("BROWSER_PATH"):
            os.environ["BROWSER_PATH"] = chrome
        if hasattr(kaleido, "start_sync_server"):
            kaleido.start_sync_server(silence_warnings=True)
        _server_started = True


def stop_export_server() -> None:
    """Stop the persistent kaleido browser (it also stops at interpreter exit)."""
    global _server_started
    with _server_lock:
        if not _server_started:
            return
        import kaleido

        if hasattr(kaleido, "stop_sync_server"):
            kaleido.stop_sync_server(silence_warnings=True)
        _server_started = False


def _targets(path: str | os.PathLike, formats: Iterable[str] | None) -> list[tuple[Path, str]]:
    p = Path(path)
    suffix = p.suffix.lower().lstrip(".")
    if formats is None:
        if suffix not in ALL_FORMATS:
            raise ValueError(f"cannot infer the format of '{p}'; use a suffix in {ALL_FORMATS} or formats=")
        return [(p, "jpeg" if suffix == "jpg" else suffix)]
    fmts = [f.lower().lstrip(".") for f in formats]
    bad = [f for f in fmts if f not in ALL_FORMATS]
    if bad:
        raise ValueError(f"unsupported format(s) {bad}; supported: {ALL_FORMATS}")
    stem = p.with_suffix("") if suffix in ALL_FORMATS else p
    return [(stem.with_name(f"{stem.name}.{f}"), "jpeg" if f == "jpg" else f) for f in fmts]


def _publish(path: Path) -> None:
    """atomic_path creates 0600 temp files; give exported figures the usual umask permissions."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:  # pragma: no cover
        pass


def _write_html(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    _publish(path)


def _write_kaleido(fig: Any, path: Path, fmt: str, width: int | None, height: int | None, scale: float) -> None:
    import plotly.io as pio

    _ensure_server()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*kopts argument is ignored.*")
        data = pio.to_image(fig, format=fmt, width=width, height=height, scale=scale)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    _publish(path)


def _write_mpl(fig: Any, path: Path, fmt: str, width: int | None, height: int | None, scale: float) -> None:
    from ._mpl import plotly_to_matplotlib

    with atomic_path(path) as tmp:
        plotly_to_matplotlib(fig, tmp, "jpg" if fmt == "jpeg" else fmt, width, height, scale)
    _publish(path)


def export(fig: Any, path: str | os.PathLike, *, formats: Sequence[str] | None = None,
           width: int | None = None, height: int | None = None, scale: float = 2.0,
           engine: str = "auto") -> ExportResult:
    """Write a plotly figure to ``path``.

    Args:
        fig: a ``go.Figure`` or ``go.FigureWidget``.
        path: target file; its suffix gives the format (``.png``, ``.svg``, ``.pdf``, ``.jpg``,
            ``.webp``, ``.html``). With ``formats=("png", "svg", "pdf")`` one file per format is
            written next to ``path`` (its suffix, if any, is replaced).
        width, height: pixels (default: the figure's layout, else plotly's 700x500).
        scale: resolution multiplier for raster formats.
        engine: ``"auto"`` (kaleido, then the fallbacks), ``"kaleido"`` (no fallback; errors
            propagate), ``"matplotlib"`` or ``"html"`` (force a fallback).
    Returns:
        :class:`ExportResult` with the written paths, the backend used and the fallback note.
    """
    global _kaleido_broken
    if engine not in ("auto", "kaleido", "matplotlib", "html"):
        raise ValueError(f"engine must be auto, kaleido, matplotlib or html, got '{engine}'")
    targets = _targets(path, formats)
    res = ExportResult()
    backends: list[str] = []
    fallbacks: dict[tuple[str, str], list[str]] = {}   # (reason, backend) -> file names
    for p, fmt in targets:
        if fmt == "html":
            _write_html(fig, p)
            res.paths.append(p)
            backends.append("html")
            continue
        if engine == "kaleido" or (engine == "auto" and kaleido_available()):
            try:
                _write_kaleido(fig, p, fmt, width, height, scale)
                res.paths.append(p)
                backends.append("kaleido")
                continue
            except Exception as e:  # noqa: BLE001 - any kaleido/browser failure -> fallback
                if engine == "kaleido":
                    raise
                text = str(e).strip()
                why = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
                if any(w in why.lower() for w in ("chrome", "browser", "choreographer")):
                    _kaleido_broken = why   # the browser itself is unusable: skip kaleido from now on
                reason = f"kaleido failed ({why})"
        else:
            reason = _no_kaleido_reason() if engine == "auto" else f"engine='{engine}' requested"
        if engine != "html":
            try:
                _write_mpl(fig, p, fmt, width, height, scale)
                res.paths.append(p)
                backends.append("matplotlib")
                fallbacks.setdefault((reason, "with matplotlib (static approximation)"), []).append(p.name)
                continue
            except NotImplementedError as e:
                reason = f"{reason}; matplotlib cannot draw it ({e})"
        hp = p.with_suffix(".html")
        if hp not in res.paths:
            _write_html(fig, hp)
            res.paths.append(hp)
        backends.append("html")
        fallbacks.setdefault((reason, f"as self-contained HTML {hp.name} instead"), []).append(p.name)
    res.backend = "+".join(dict.fromkeys(backends))
    res.note = "; ".join(f"{r}: wrote {', '.join(names)} {how}" for (r, how), names in fallbacks.items())
    if res.note:
        logger.warning("figure export: %s", res.note)
    return res


def _no_kaleido_reason() -> str:
    if not _kaleido_importable():
        return "kaleido is not installed"
    if _kaleido_broken is not None:
        return f"kaleido failed earlier in this process ({_kaleido_broken})"
    return "no Chrome/Chromium for kaleido (apt-get install chromium, or set BROWSER_PATH)"


def _kaleido_importable() -> bool:
    try:
        import kaleido  # noqa: F401
        return True
    except ImportError:
        return False
