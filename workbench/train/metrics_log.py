"""``metrics.csv``: the step-wise metric log of a run (one row per logged step and phase).

Columns: ``step`` (completed iterations), ``phase`` (``train`` or ``eval``), ``time`` (training
seconds since the start of the run, summed over resumes), then every metric name in order of
first appearance. A ``train`` row holds means over the last ``log_every`` iterations (``lr`` is
the value at the row's last iteration); an ``eval`` row holds what ``eval_fn`` returned. Cells
of metrics absent from a row are empty.

Writing: each row is appended with one ``write`` + ``flush``, so a hard kill leaves at most a
partial last line, which readers skip. When a new metric name appears, or when a resumed run
drops the rows written after its checkpoint (:meth:`MetricsLog.truncate`), the file is
rewritten atomically. Floats are written with ``repr`` (exact round trip).
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.io import atomic_open

BASE_COLUMNS = ("step", "phase", "time")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """Header and complete rows of a metrics CSV (partial or malformed lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        return [], []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # partial last line of an interrupted append
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    rows = []
    for fields in reader:
        if len(fields) != len(header):
            continue
        row = dict(zip(header, fields))
        try:
            int(row["step"])
        except (KeyError, ValueError):
            continue
        rows.append(row)
    return header, rows


class MetricsLog:
    """Append-only writer of ``metrics.csv`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.columns, rows = read_rows(self.path)
        if self.columns and self._needs_rewrite():
            self._rewrite(self.columns, rows)

    def _needs_rewrite(self) -> bool:
        text = self.path.read_bytes()
        return bool(text) and not text.endswith(b"\n")

    def _rewrite(self, columns: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
        with atomic_open(self.path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for r in rows:
                w.writerow([_fmt(r.get(c)) for c in columns])
        self.columns = list(columns)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row; new metric names extend the header (atomic rewrite)."""
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            cols = list(self.columns) or list(BASE_COLUMNS)
            cols += [k for k in row if k not in cols]
            _, rows = read_rows(self.path)
            self._rewrite(cols, rows)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_fmt(row.get(c)) for c in self.columns])
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()

    def truncate(self, max_step: int) -> int:
        """Drop rows with ``step > max_step`` (and partial lines); return the number of rows kept."""
        cols, rows = read_rows(self.path)
        keep = [r for r in rows if int(r["step"]) <= max_step]
        if cols:
            self._rewrite(cols, keep)
        return len(keep)

    def rows(self) -> list[dict[str, str]]:
        return read_rows(self.path)[1]
