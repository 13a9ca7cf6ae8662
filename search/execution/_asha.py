"""Multi-objective asynchronous successive halving: ASHA whose rungs rank trials by Pareto rank.

Ray's ASHAScheduler keeps the trials with the best rung metric (a loss). Our sweeps are multi-objective,
with hardware costs such as ``bops`` known before training: a cheap model with a higher loss is on the
Pareto front *because* it is cheap, and a loss-only rung cuts it. :class:`ParetoASHA` ranks the trials of
a rung by non-dominated rank over (rung metric, the sweep's cost objectives), then crowding distance, then
the rung metric, in the spirit of MO-ASHA (Schmucker et al., 2021). So cheap models survive rungs.

Rule: at each rung a trial is recorded once, and continues iff it is among the first
``max(1, ceil(n / reduction_factor))`` of the ``n`` trials recorded there (itself included) in
:func:`promotion_order`. Without cost objectives the order is the rung metric's, as in Ray's ASHA.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import moocore
import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)

_SIGN = {"minimize": 1.0, "maximize": -1.0}
# A rung: its milestone and the points recorded there (trial id -> minimised columns).
_Rung = tuple[float, dict[str, tuple[float, ...]]]


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


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving that promotes by Pareto rank over the rung metric and costs.

    Args:
        time_attr: the result key counting progress (epochs here); rungs are at its milestones.
        metric: the rung metric, minimised.
        costs: ``(result key, "minimize" | "maximize")`` of the cost objectives ranked with the metric.
        max_t: a result at ``max_t`` or later stops the trial (it has run its full budget).
        grace_period, reduction_factor, brackets: as Ray's ASHA; bracket ``s`` has rungs at
            ``grace_period * reduction_factor ** (k + s) < max_t``. Trials join brackets round-robin.
    """

    def __init__(
        self,
        *,
        time_attr: str,
        metric: str,
        costs: Sequence[tuple[str, str]] = (),
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
    ) -> None:
        if max_t <= 0 or grace_period <= 0 or reduction_factor <= 1 or brackets <= 0:
            raise ValueError(
                f"ParetoASHA needs max_t > 0, grace_period > 0, reduction_factor > 1 and brackets > 0; got "
                f"{max_t}, {grace_period}, {reduction_factor}, {brackets}"
            )
        bad = [direction for _, direction in costs if direction not in _SIGN]
        if bad:
            raise ValueError(f"cost directions must be 'minimize' or 'maximize', got {bad}")
        super().__init__()
        self._time_attr = time_attr
        self._metric = metric  # Tune reads it (``.metric``) to check every result carries it
        self._rung_metric = metric
        self._costs = [(key, _SIGN[direction]) for key, direction in costs]
        self._max_t = max_t
        self._reduction_factor = reduction_factor
        self._brackets: list[list[_Rung]] = []  # each bracket's rungs, lowest milestone first
        for s in range(brackets):
            rungs: list[_Rung] = []
            k = 0
            while (milestone := grace_period * reduction_factor ** (k + s)) < max_t:
                rungs.append((milestone, {}))
                k += 1
            self._brackets.append(rungs)
        self._bracket_of: dict[str, int] = {}
        self._added = 0
        self._num_stopped = 0

    @property
    def costs(self) -> list[tuple[str, str]]:
        return [(key, "minimize" if sign > 0 else "maximize") for key, sign in self._costs]

    @property
    def milestones(self) -> list[list[float]]:
        """Each bracket's rung milestones, lowest first."""
        return [[milestone for milestone, _ in rungs] for rungs in self._brackets]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        # The rung metric and its direction are ours; refuse Tune-level ones as Ray's ASHA does.
        return metric is None and mode is None

    def on_trial_add(self, tune_controller: TuneController, trial: Trial) -> None:
        self._bracket(trial.trial_id)

    def _bracket(self, trial_id: str) -> int:
        # Round-robin, not Ray's random draw: the same sweep splits its trials the same way every run.
        if trial_id not in self._bracket_of:
            self._bracket_of[trial_id] = self._added % len(self._brackets)
            self._added += 1
        return self._bracket_of[trial_id]

    def _point(self, result: dict[str, Any]) -> tuple[float, ...]:
        # A missing cost is unknown: ranked as the worst value rather than as a free model.
        costs = (sign * float(result.get(key, math.nan)) for key, sign in self._costs)
        return (float(result[self._rung_metric]), *(math.inf if math.isnan(c) else c for c in costs))

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]) -> str:
        if self._time_attr not in result or self._rung_metric not in result:
            return TrialScheduler.CONTINUE
        progress = result[self._time_attr]
        if progress >= self._max_t:
            self._num_stopped += 1
            return TrialScheduler.STOP
        rungs = self._brackets[self._bracket(trial.trial_id)]
        for milestone, recorded in reversed(rungs):
            if progress < milestone:
                continue
            if trial.trial_id in recorded:
                return TrialScheduler.CONTINUE  # decided at this rung already
            recorded[trial.trial_id] = self._point(result)
            keep = max(1, math.ceil(len(recorded) / self._reduction_factor))
            order = promotion_order(list(recorded.values()))
            if len(recorded) - 1 in order[:keep]:  # the trial just recorded is the last one
                return TrialScheduler.CONTINUE
            self._num_stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE  # below the first rung

    # A finished trial's rung records stay: later trials at those rungs are compared with it.
    def on_trial_complete(
        self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]
    ) -> None:
        self._bracket_of.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: TuneController, trial: Trial) -> None:
        self._bracket_of.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: TuneController, trial: Trial) -> None:
        self._bracket_of.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        ranked = [self._rung_metric, *(key for key, _ in self._costs)]
        lines = [f"Using ParetoASHA on {', '.join(ranked)}: {self._num_stopped} stopped"]
        for index, rungs in enumerate(self._brackets):
            counts = " | ".join(f"{m:g}: {len(recorded)} trial(s)" for m, recorded in rungs)
            lines.append(f"bracket {index}: {counts or 'no rungs'}")
        return "\n".join(lines)
