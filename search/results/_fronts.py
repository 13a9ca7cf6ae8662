"""Fronts of a stored sweep: the completed search trials, their Pareto front, and the confirmed front of
trials re-evaluated with extra seeds (means and spreads over replicates)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from search.results._pareto import default_reference, hypervolume, pareto_front
from search.storage._records import SweepRecord, TrialRecord
from search.storage._schema import TrialState


class TrialSource(Protocol):
    """What the fronts read: the writer ``Store`` and the read-only ``Results`` both qualify."""

    def trials(self, sweep_id: int, states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
        """All trials of a sweep in number order (only those in ``states`` if given), with results."""
        ...


def completed_search_trials(store: TrialSource, sweep: SweepRecord) -> list[TrialRecord]:
    """COMPLETED trials of the search (not confirm replicates) that carry every objective."""
    names = [o["name"] for o in sweep.objectives]
    return [
        t
        for t in store.trials(sweep.id, [TrialState.COMPLETED])
        if t.replicate_of is None and all(n in t.results for n in names)
    ]


def sweep_front(store: TrialSource, sweep: SweepRecord) -> tuple[list[TrialRecord], float | None]:
    """Pareto front of the completed full-fidelity trials and its hypervolume.

    The hypervolume is normalised by the reference point (each objective divided by its reference value's
    magnitude), so it is dimensionless and comparable over time. Without a stored reference point a
    provisional one is derived from the trials (the driver stores one at the end of a sweep's first run).
    """
    return front_of(completed_search_trials(store, sweep), sweep)


def front_of(completed: list[TrialRecord], sweep: SweepRecord) -> tuple[list[TrialRecord], float | None]:
    """:func:`sweep_front` of already loaded ``completed_search_trials``."""
    names = [o["name"] for o in sweep.objectives]
    directions = [o["direction"] for o in sweep.objectives]
    if not completed:
        return [], None
    points = np.array([[t.results[n] for n in names] for t in completed], dtype=float)
    reference = sweep.reference_point or default_reference(points, directions)
    scale = [abs(v) or 1.0 for v in reference]
    front = sorted(
        (completed[i] for i in pareto_front(points, directions)), key=lambda t: t.results[names[0]]
    )
    return front, float(hypervolume(points, directions, reference, scale=scale))


@dataclass(frozen=True)
class ConfirmedPoint:
    """A front trial with its replicates: mean and sample std of each objective over all evaluations."""

    trial: TrialRecord
    evaluations: int
    mean: dict[str, float]
    std: dict[str, float]


def evaluations(trials: list[TrialRecord]) -> dict[int, list[TrialRecord]]:
    """Each COMPLETED search trial's evaluations by number: the trial itself, then its completed replicates."""
    runs = {t.number: [t] for t in trials if t.state is TrialState.COMPLETED and t.replicate_of is None}
    for trial in trials:
        if trial.state is TrialState.COMPLETED and trial.replicate_of in runs:
            runs[trial.replicate_of].append(trial)
    return runs


def pooled_std(runs: Iterable[list[TrialRecord]], names: list[str]) -> dict[str, float]:
    """Pooled sample std of each objective over the trials evaluated more than once; objectives with no
    measured spread (none replicated, or deterministic like ``bops``) are left out."""
    squares, dof = np.zeros(len(names)), 0
    for group in runs:
        if len(group) > 1:
            values = np.array([[t.results[n] for n in names] for t in group], dtype=float)
            squares += ((values - values.mean(axis=0)) ** 2).sum(axis=0)
            dof += len(group) - 1
    if dof == 0:
        return {}
    std = np.sqrt(squares / dof)
    return {name: float(s) for name, s in zip(names, std, strict=True) if np.isfinite(s) and s > 0}


def confirmed_front(store: TrialSource, sweep: SweepRecord) -> tuple[list[ConfirmedPoint], float | None]:
    """The front rebuilt from the means of trials that have completed replicates, and its hypervolume."""
    names = [o["name"] for o in sweep.objectives]
    directions = [o["direction"] for o in sweep.objectives]
    points = []
    for group in evaluations(store.trials(sweep.id, [TrialState.COMPLETED])).values():
        if len(group) < 2:
            continue
        runs = np.array([[t.results[n] for n in names] for t in group], dtype=float)
        points.append(
            ConfirmedPoint(
                group[0],
                len(runs),
                dict(zip(names, runs.mean(axis=0).tolist(), strict=True)),
                dict(zip(names, runs.std(axis=0, ddof=1).tolist(), strict=True)),
            )
        )
    if not points:
        return [], None
    means = np.array([[p.mean[n] for n in names] for p in points], dtype=float)
    reference = sweep.reference_point or default_reference(means, directions)
    scale = [abs(v) or 1.0 for v in reference]
    front = sorted((points[i] for i in pareto_front(means, directions)), key=lambda p: p.mean[names[0]])
    return front, float(hypervolume(means, directions, reference, scale=scale))
