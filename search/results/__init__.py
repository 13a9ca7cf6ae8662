"""The results layer: read-only access to stored sweeps, their Pareto fronts, hypervolumes and reports.

``Results.open(url)`` reads a store without ever writing to it (no migration, no new database). Names are
imported on first use, so reading results loads neither torch, Optuna, Ray nor alembic (and the Pareto
math, numpy and moocore, only when a front is computed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.results._fronts import (
        ConfirmedPoint,
        TrialSource,
        completed_search_trials,
        confirmed_front,
        evaluations,
        pooled_std,
        sweep_front,
    )
    from search.results._open import ResultsError, require_store, schema_revisions
    from search.results._pareto import (
        ParetoError,
        default_reference,
        hypervolume,
        hypervolume_history,
        pareto_front,
    )
    from search.results._reader import Results, SweepOverview, TrialChanges, TrialPage
    from search.results._report import FrontReport, describe, front_report

_EXPORTS = {
    "search.results._fronts": (
        "ConfirmedPoint",
        "TrialSource",
        "completed_search_trials",
        "confirmed_front",
        "evaluations",
        "pooled_std",
        "sweep_front",
    ),
    "search.results._open": ("ResultsError", "require_store", "schema_revisions"),
    "search.results._pareto": (
        "ParetoError",
        "default_reference",
        "hypervolume",
        "hypervolume_history",
        "pareto_front",
    ),
    "search.results._reader": ("Results", "SweepOverview", "TrialChanges", "TrialPage"),
    "search.results._report": ("FrontReport", "describe", "front_report"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "ConfirmedPoint",
    "FrontReport",
    "ParetoError",
    "Results",
    "ResultsError",
    "SweepOverview",
    "TrialChanges",
    "TrialPage",
    "TrialSource",
    "completed_search_trials",
    "confirmed_front",
    "default_reference",
    "describe",
    "evaluations",
    "front_report",
    "hypervolume",
    "hypervolume_history",
    "pareto_front",
    "pooled_std",
    "require_store",
    "schema_revisions",
    "sweep_front",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'search.results' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
