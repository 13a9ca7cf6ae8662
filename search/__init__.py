"""How sweeps run: config, CLI, the sweep loop and its executors, strategies, store, results.

Names are imported on first use, so ``import search`` (and reading results through ``search.results``)
does not load torch, Optuna or Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "search._config": ("ConfigError", "SweepConfig", "load_config", "parse_config"),
    "search._types": ("Completed", "Failed", "Objective", "Outcome", "Proposal", "Pruned", "Rejected"),
    "search.execution": ("SweepError", "SweepSummary", "load_sweep", "run_sweep"),
    "search.results": (
        "ParetoError",
        "Results",
        "ResultsError",
        "confirmed_front",
        "default_reference",
        "hypervolume",
        "hypervolume_history",
        "pareto_front",
        "sweep_front",
    ),
    "search.storage": ("Store", "StoreError", "SweepRecord", "TrialRecord", "TrialState"),
    "search.strategies": ("STRATEGY_NAMES", "Strategy", "StrategyError", "make_strategy"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
