"""Error hierarchy of the workbench.

Every error raised for bad input is a :class:`WorkbenchError` subclass whose message names
the offending file, field or value and what was expected.  The CLI prints such errors as a
single line (``error: ...``) unless ``--debug`` is given.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError, ValueError):
    """A config file, key, value or override is invalid."""


class DataError(WorkbenchError):
    """A dataset file or record is missing, corrupt or malformed."""


class ManifestError(DataError):
    """A data-manifest entry is invalid, or a fetched file failed verification."""


class CheckpointError(WorkbenchError):
    """A checkpoint is missing, corrupt or incompatible with the model."""


class TrainingError(WorkbenchError):
    """Training cannot continue."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; ``step`` is the iteration at which it happened."""

    def __init__(self, step: int, value: float, last_checkpoint: str | None = None):
        self.step = step
        self.value = value
        self.last_checkpoint = last_checkpoint
        where = f"; last good checkpoint kept at {last_checkpoint}" if last_checkpoint else ""
        super().__init__(f"loss is {value} at step {step}: training stopped{where}")


class RenderError(WorkbenchError):
    """Bad input to the renderer (shapes, cameras, backend)."""


class ShapeError(WorkbenchError, ValueError):
    """A tensor does not have the expected shape."""


def check_shape(name: str, tensor, expected: tuple) -> None:
    """Raise :class:`ShapeError` unless ``tensor.shape`` matches ``expected``.

    ``expected`` holds ints or ``None`` (any size), e.g. ``(None, 3, None, None)``.
    """
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))
    if not ok:
        exp = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ShapeError(f"{name}: expected shape {exp}, got {shape}")
