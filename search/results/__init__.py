"""The results layer: Pareto fronts, hypervolumes and reports of stored sweeps."""

from search.results._pareto import (
    ParetoError,
    default_reference,
    hypervolume,
    hypervolume_history,
    pareto_front,
)

__all__ = ["ParetoError", "default_reference", "hypervolume", "hypervolume_history", "pareto_front"]
