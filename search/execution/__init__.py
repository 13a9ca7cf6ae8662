"""How a sweep runs: the sweep loop, its executors (local processes, Ray) and early stopping.

Names are imported on first use, so a pool worker can start from ``search.execution._worker`` without
loading the sweep loop (and torch) first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.execution._loop import SweepError, SweepSummary, confirm_sweep, load_sweep, run_sweep

__all__ = ["SweepError", "SweepSummary", "confirm_sweep", "load_sweep", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'search.execution' has no attribute {name!r}")
    value = getattr(importlib.import_module("search.execution._loop"), name)
    globals()[name] = value
    return value
