"""How a sweep runs: the sweep loop, its executors (local processes, Ray) and early stopping."""

from search.execution._loop import SweepError, SweepSummary, confirm_sweep, load_sweep, run_sweep

__all__ = ["SweepError", "SweepSummary", "confirm_sweep", "load_sweep", "run_sweep"]
