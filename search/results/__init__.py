"""The results layer: Pareto fronts, hypervolumes and reports of stored sweeps."""

from search.results._fronts import (
    ConfirmedPoint,
    completed_search_trials,
    confirmed_front,
    evaluations,
    pooled_std,
    sweep_front,
)
from search.results._pareto import (
    ParetoError,
    default_reference,
    hypervolume,
    hypervolume_history,
    pareto_front,
)

__all__ = [
    "ConfirmedPoint",
    "ParetoError",
    "completed_search_trials",
    "confirmed_front",
    "default_reference",
    "evaluations",
    "hypervolume",
    "hypervolume_history",
    "pareto_front",
    "pooled_std",
    "sweep_front",
]
