"""Typed configs: dataclasses with strict keys, YAML round trips, string overrides and profiles.

A config is a (possibly nested) dataclass deriving from :class:`Config`. Values coming from
YAML, the CLI (``train.lr=3e-4``) or notebook parameters are coerced to the declared field
types; an unknown key raises :class:`~workbench.core.errors.ConfigError` naming the closest
valid key.

Profiles
--------
Every config class may define ``PROFILES = {"smoke": {...}, "quick": {...}, "full": {...}}``,
nested dicts of overrides applied on top of the dataclass defaults:

* ``smoke``: seconds on a 2-core CPU, used by the tests and the notebooks under CI;
* ``quick``: minutes on a 2-core CPU, used by ``make demo``;
* ``full``: the paper-scale settings, meant for a GPU.

``auto`` resolves to ``full`` when CUDA is available and ``quick`` otherwise.

Example::

    @dataclass
    class Optim(Config):
        lr: float = 1e-3

    @dataclass
    class MyConfig(Config):
        seed: int = 0
        optim: Optim = field(default_factory=Optim)
        PROFILES = {"smoke": {"optim": {"lr": 1e-2}}}

    cfg = MyConfig.for_profile("smoke", overrides=["seed=3"])
    cfg.save("config.yaml"); assert MyConfig.load("config.yaml") == cfg
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, TypeVar

import yaml

from .errors import ConfigError

PROFILE_NAMES = ("smoke", "quick", "full")
C = TypeVar("C", bound="Config")


def resolve_profile(profile: str | None = None) -> str:
    """Map ``None``/``"auto"`` (or the ``WB_PROFILE`` environment variable) to a profile name."""
    if profile is None:
        profile = os.environ.get("WB_PROFILE", "auto")
    profile = str(profile).strip().lower()
    if profile == "auto":
        import torch

        return "full" if torch.cuda.is_available() else "quick"
    if profile not in PROFILE_NAMES:
        raise ConfigError(_unknown("profile", profile, PROFILE_NAMES + ("auto",)))
    return profile


def _unknown(kind: str, key: str, valid: Iterable[str], where: str = "") -> str:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    loc = f" in {where}" if where else ""
    return f"unknown {kind} '{key}'{loc}{hint} (valid: {', '.join(valid)})"


def deep_merge(base: dict, update: Mapping) -> dict:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(overrides: Iterable[str] | Mapping[str, Any] | None) -> dict:
    """Turn ``["train.lr=3e-4", "model.dim=64"]`` (or a flat mapping) into a nested dict.

    Values stay strings here; they are coerced to the field types by :meth:`Config.from_dict`.
    """
    if overrides is None:
        return {}
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for ov in overrides:
            if "=" not in ov:
                raise ConfigError(f"override '{ov}' must look like key.sub=value")
            k, v = ov.split("=", 1)
            items.append((k.strip(), v.strip()))
    nested: dict = {}
    for key, value in items:
        if not key:
            raise ConfigError(f"override with an empty key: '{key}={value}'")
        parts = key.split(".")
        d = nested
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"override '{key}' conflicts with another override")
        d[parts[-1]] = value
    return nested


def _is_optional(tp) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, (args[0] if len(args) == 1 else typing.Union[tuple(args)])
    return False, tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce ``value`` (from YAML or a string override) to the annotated type ``tp``."""
    optional, inner = _is_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "~")):
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: None is not allowed (expected {getattr(tp, '__name__', tp)})")
    tp = inner
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, str):
            value = _yaml_value(value, where)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return tp.from_dict(value, where=where)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if value == c or (isinstance(value, str) and str(c) == value):
                return c
        raise ConfigError(f"{where}: '{value}' is not one of {list(choices)}")
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = _yaml_value(value, where)
            if isinstance(value, (int, float, str)):
                value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        elem = args[0] if args else Any
        out = [_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _yaml_value(value, where)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected a bool, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an int, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an int, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{where}: expected an int, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a float, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a float, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    try:
        return tp(value)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{where}: cannot convert {value!r} to {tp}: {e}") from None


def _type_hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except NameError as e:
        raise ConfigError(f"{cls.__name__}: cannot resolve field annotations ({e}); "
                          "define config classes at module level") from None


def _yaml_value(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: cannot parse '{text}': {e}") from None


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Config:
    """Base class of every typed config (see the module docstring)."""

    PROFILES: ClassVar[dict[str, dict]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None, where: str = "") -> C:
        """Build from a nested mapping; unknown keys are errors, missing keys take defaults."""
        data = dict(data or {})
        where = where or cls.__name__
        hints = _type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kwargs = {}
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(_unknown("config key", key, fields, where))
            kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
        try:
            obj = cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None
        return obj

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Override to check cross-field constraints; raise :class:`ConfigError`."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def merged(self: C, update: Mapping[str, Any]) -> C:
        """A copy with the nested mapping ``update`` applied (values are coerced)."""
        return type(self).from_dict(deep_merge(self.to_dict(), update))

    def with_overrides(self: C, overrides: Iterable[str] | Mapping[str, Any] | None) -> C:
        """A copy with ``["a.b=1", ...]`` or ``{"a.b": 1}`` applied."""
        return self.merged(parse_overrides(overrides))

    @classmethod
    def profile_overrides(cls, profile: str) -> dict:
        """Nested overrides of ``profile``: each nested Config field's own PROFILES under its
        field name first, then this class's PROFILES on top."""
        profile = resolve_profile(profile)
        out: dict = {}
        hints = _type_hints(cls)
        for f in dataclasses.fields(cls):
            _, tp = _is_optional(hints.get(f.name))
            if isinstance(tp, type) and issubclass(tp, Config):
                nested = tp.profile_overrides(profile)
                if nested:
                    out[f.name] = nested
        return deep_merge(out, cls.PROFILES.get(profile, {}))

    @classmethod
    def for_profile(cls: type[C], profile: str | None = None,
                    overrides: Iterable[str] | Mapping[str, Any] | None = None) -> C:
        """Defaults, then the profile's overrides, then ``overrides``."""
        base = cls().to_dict()
        merged = deep_merge(base, cls.profile_overrides(profile))
        merged = deep_merge(merged, parse_overrides(overrides))
        return cls.from_dict(merged)

    # ------------------------------------------------------------------ YAML
    @classmethod
    def load(cls: type[C], path: str | os.PathLike,
             overrides: Iterable[str] | Mapping[str, Any] | None = None) -> C:
        """Load a YAML file written by :meth:`save` (strict keys), then apply ``overrides``."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = deep_merge(data, parse_overrides(overrides))
        try:
            return cls.from_dict(data, where=str(path))
        except ConfigError as e:
            raise ConfigError(str(e)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> None:
        from .io import write_text

        write_text(path, self.to_yaml())
