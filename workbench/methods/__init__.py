"""The five methods, each in its own package ``workbench.methods.<name>``.

A method package never imports another method. It exposes ``METHOD``, a :class:`MethodSpec`
that the pipeline (``workbench run``), the CLI and the notebooks use to train, evaluate and
report it without knowing its internals::

    from workbench.methods import get_method
    spec = get_method("piro")
    cfg = spec.config_cls.for_profile("smoke")
    metrics = spec.run(cfg, run_dir)            # train + evaluate, writes eval.json

Variants (baselines and ablations of the paper's main tables) are config overrides of the one
model, never copies of it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.errors import ConfigError

METHOD_NAMES = ("compnet3d", "piro", "unicorn", "cmic", "ttp")


@dataclass(frozen=True)
class Variant:
    """One row of a paper table: a named set of nested config overrides.

    ``profile_overrides`` maps a profile name to further overrides applied on top of
    ``overrides`` at that profile only (a variant whose data needs other budget settings than
    the profile's, e.g. cmic's fine-grained runs at ``quick``).
    """

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    profile_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def overrides_for(self, profile: str | None) -> dict:
        """The variant's nested overrides at ``profile`` (resolved as :func:`~workbench.core.config.resolve_profile`)."""
        from ..core.config import deep_merge, resolve_profile

        return deep_merge(dict(self.overrides), dict(self.profile_overrides.get(resolve_profile(profile), {})))


@dataclass(frozen=True)
class MethodSpec:
    """What the pipeline needs to know about a method.

    Attributes:
        name: package name (``compnet3d``, ...).
        config_cls: the method's :class:`~workbench.core.config.Config` subclass (with PROFILES).
        train: ``train(cfg, run_dir) -> dict`` trains (resumably) and returns final train metrics.
        evaluate: ``evaluate(cfg, run_dir) -> dict`` evaluates the trained run and writes ``eval.json``.
        variants: every baseline/ablation of the paper's tables (the first is the full method);
            ``workbench run --profile full`` trains all of them.
        main_variants: the names of the variants the paper's *main* table needs (the method and its
            headline baselines); ``workbench run`` trains only these at the ``smoke`` and ``quick``
            profiles so that ``make demo`` fits its budget on a 2-core CPU. Empty: all variants.
        presets: the synthetic data presets it needs (``views``, ``multiview``, ``collection``, ``retrieval``).
        headline: ``(label, column)`` pairs of the few numbers that summarise a run, ``column`` being
            a flattened ``eval.json`` key as in :func:`workbench.eval.results.collect_runs` (the
            report's cross-method table).
        tables: ``tables(runs_df) -> {table_name: DataFrame}`` builds the paper-layout tables (ours
            beside the paper's numbers) from :func:`workbench.eval.results.collect_runs` output.
    """

    name: str
    config_cls: type
    train: Callable[[Any, Path], dict]
    evaluate: Callable[[Any, Path], dict]
    variants: tuple[Variant, ...] = (Variant("full"),)
    main_variants: tuple[str, ...] = ()
    headline: tuple[tuple[str, str], ...] = ()
    presets: tuple[str, ...] = ()
    tables: Callable[[Any], dict] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        unknown = [n for n in self.main_variants if n not in names]
        if unknown:
            raise ConfigError(f"{self.name}: main_variants {unknown} are not variants (valid: {', '.join(names)})")

    def selected_variants(self, which: str = "main") -> tuple[Variant, ...]:
        """``"main"``: the main table's variants (all when ``main_variants`` is empty); ``"all"``:
        every variant; otherwise a comma-separated list of variant names."""
        if which == "all" or (which == "main" and not self.main_variants):
            return self.variants
        wanted = self.main_variants if which == "main" else tuple(w.strip() for w in which.split(",") if w.strip())
        by_name = {v.name: v for v in self.variants}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise ConfigError(f"unknown variant(s) {missing} of {self.name} (valid: {', '.join(by_name)})")
        return tuple(by_name[w] for w in wanted)

    def run(self, cfg: Any, run_dir: Path) -> dict:
        """Train then evaluate; returns the evaluation metrics."""
        self.train(cfg, Path(run_dir))
        return self.evaluate(cfg, Path(run_dir))


def get_method(name: str) -> MethodSpec:
    """Import ``workbench.methods.<name>`` and return its ``METHOD`` spec."""
    if name not in METHOD_NAMES:
        import difflib

        close = difflib.get_close_matches(name, METHOD_NAMES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown method '{name}'{hint} (valid: {', '.join(METHOD_NAMES)})")
    module = importlib.import_module(f"{__name__}.{name}")
    spec = getattr(module, "METHOD", None)
    if not isinstance(spec, MethodSpec):
        raise ConfigError(f"workbench.methods.{name} does not define METHOD (a MethodSpec)")
    return spec


def available_methods() -> list[str]:
    """Methods whose package is importable and defines ``METHOD``."""
    out = []
    for name in METHOD_NAMES:
        try:
            get_method(name)
        except (ImportError, ConfigError):
            continue
        out.append(name)
    return out
