"""Multi-objective asynchronous successive halving (ASHA) that runs inside each trial, for every executor.

A loss-only rung cuts cheap models with a higher loss, although our sweeps are multi-objective and a cheap
model is on the Pareto front *because* it is cheap. With ``promotion: pareto`` a rung ranks its trials by
non-dominated rank over (rung metric, the sweep's cost objectives, known before training), then crowding
distance, then the rung metric, in the spirit of MO-ASHA (Schmucker et al., 2021); with ``promotion:
metric`` by the rung metric alone, as Ray's ASHAScheduler does.

Rule: at each of its rungs a trial records its point in the store once, and continues iff it is among the
first ``max(1, ceil(n / reduction_factor))`` of the ``n`` trials recorded at that rung (itself included) in
:func:`promotion_order`. The decision needs nothing but the store, so the trial takes it itself: ASHA works
the same on local worker processes and on Ray, and a resumed sweep keeps its rungs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import moocore
import numpy as np

_SIGN = {"minimize": 1.0, "maximize": -1.0}


def crowding_distances(front: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point of one mutually non-dominated front (all minimised).

    Per objective, the points at either end are infinitely far; an inner point adds the gap between its
    neighbours over the front's span. An objective on which the whole front is equal adds nothing (so a
    single-objective front has distance 0 everywhere and the next tie-break decides).
    """
    n = len(front)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for column in range(len(front[0])):
        order = sorted(range(n), key=lambda i: front[i][column])
        low, high = front[order[0]][column], front[order[-1]][column]
        span = high - low
        if not span > 0:  # all equal (or all the same infinity): nothing to spread
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, here, after in zip(order, order[1:], order[2:], strict=False):
            gap = front[after][column] - front[before][column]
            if math.isfinite(span):
                distance[here] += gap / span
            elif gap == math.inf:  # next to an infinite value: as sparse as it gets
                distance[here] = math.inf
    return distance


def promotion_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of ``points`` best first: Pareto rank, then crowding distance (larger first), then column 0.

    Each point is ``(rung metric, cost, ...)``, every column to be minimised (negate maximised ones); NaN
    counts as the worst value. The index breaks remaining ties, so the order is deterministic.
    """
    if not points:
        return []
    array = np.asarray(points, dtype=float).reshape(len(points), -1)
    array = np.where(np.isnan(array), np.inf, array)
    ranks = moocore.pareto_rank(array)
    crowding = np.zeros(len(array))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distances(array[members].tolist())
    return sorted(range(len(array)), key=lambda i: (int(ranks[i]), -crowding[i], array[i, 0], i))


class RungStop(Exception):
    """Raised from a trial's epoch callback when ASHA stops it at a rung."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"stopped by ASHA at the rung of epoch {epoch}")
        self.epoch = epoch


@dataclass(frozen=True)
class RungPlan:
    """Where a sweep's trials are compared and how; plain data, so it travels with each trial job.

    ``milestones[b]`` are bracket ``b``'s rung epochs (all below the sweep's epochs, so the last epoch ends
    in the full-fidelity evaluation, never in a rung decision); trial number ``n`` joins bracket
    ``n % len(milestones)``. ``costs`` are the cost objectives ranked with ``metric`` (pareto promotion).
    """

    metric: str
    costs: tuple[tuple[str, str], ...]
    milestones: tuple[tuple[int, ...], ...]
    reduction_factor: int
    emd_rows: int

    @classmethod
    def build(
        cls,
        *,
        metric: str,
        costs: Sequence[tuple[str, str]],
        epochs: int,
        grace_period: int,
        reduction_factor: int,
        brackets: int,
        emd_rows: int,
    ) -> RungPlan:
        """Bracket ``s`` has rungs at ``grace_period * reduction_factor ** (k + s) < epochs``."""
        if epochs <= 0 or grace_period <= 0 or reduction_factor <= 1 or brackets <= 0:
            raise ValueError(
                f"ASHA needs epochs > 0, grace_period > 0, reduction_factor > 1 and brackets > 0; got "
                f"{epochs}, {grace_period}, {reduction_factor}, {brackets}"
            )
        bad = [direction for _, direction in costs if direction not in _SIGN]
        if bad:
            raise ValueError(f"cost directions must be 'minimize' or 'maximize', got {bad}")
        milestones = []
        for s in range(brackets):
            rungs: list[int] = []
            k = 0
            while (milestone := grace_period * reduction_factor ** (k + s)) < epochs:
                rungs.append(int(milestone))
                k += 1
            milestones.append(tuple(rungs))
        return cls(metric, tuple(costs), tuple(milestones), reduction_factor, emd_rows)

    def bracket(self, number: int) -> int:
        # Round-robin by trial number: the same sweep splits its trials the same way on every run.
        return number % len(self.milestones)

    def is_rung(self, number: int, epoch: int) -> bool:
        return epoch in self.milestones[self.bracket(number)]

    def point(self, metric_value: float, costs: Mapping[str, float]) -> list[float]:
        """The minimised columns a rung ranks: the metric, then each signed cost (missing = worst)."""
        signed = (_SIGN[direction] * float(costs.get(name, math.nan)) for name, direction in self.costs)
        return [float(metric_value), *(math.inf if math.isnan(c) else c for c in signed)]

    def goes_on(self, points: Sequence[Sequence[float]], own: int) -> bool:
        """Whether the trial whose point is ``points[own]`` is in its rung's top share."""
        keep = max(1, math.ceil(len(points) / self.reduction_factor))
        return own in promotion_order(points)[:keep]
