"""Evaluation: generic metrics and the ``runs/`` results store."""
from . import metrics, results
from .results import RunDir, collect_runs, load_metrics

__all__ = ["metrics", "results", "RunDir", "collect_runs", "load_metrics"]
