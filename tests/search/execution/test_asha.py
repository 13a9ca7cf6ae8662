"""ParetoASHA without Ray running: the promotion order, and the scheduler's rung decisions on fake results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.execution._asha import ParetoASHA, crowding_distances, promotion_order

C, S = TrialScheduler.CONTINUE, TrialScheduler.STOP


@dataclass(frozen=True)
class FakeTrial:
    trial_id: str  # the only attribute the schedulers read


def asha(**overrides: Any) -> ParetoASHA:
    settings: dict[str, Any] = {
        "time_attr": "epoch",
        "metric": "val_loss",
        "costs": [("bops", "minimize")],
        "max_t": 4,
        "grace_period": 1,
        "reduction_factor": 2,
        "brackets": 1,
    }
    settings.update(overrides)
    return ParetoASHA(**settings)


def feed(scheduler: Any, results: list[tuple[str, dict[str, float]]]) -> list[str]:
    """Hand the scheduler each result of a trial as Tune does (add, then result); the decisions in order.

    Adding a trial again is harmless: ParetoASHA keeps its bracket, Ray's ASHA has one bracket here.
    """
    decisions = []
    for trial_id, result in results:
        trial = FakeTrial(trial_id)
        scheduler.on_trial_add(None, trial)
        decisions.append(scheduler.on_trial_result(None, trial, result))
    return decisions


# -- the order ----------------------------------------------------------------------------------------
def test_non_dominated_points_come_before_dominated_ones() -> None:
    # (2, 2) is dominated by (1, 1); the two non-dominated ones are both boundary points: metric decides.
    assert promotion_order([(1.0, 1.0), (2.0, 2.0), (0.5, 3.0)]) == [2, 0, 1]


def test_crowding_distance_breaks_ties_within_a_front_before_the_metric() -> None:
    front = [(0.0, 10.0), (1.0, 9.0), (5.0, 5.0), (9.5, 0.5), (10.0, 0.0)]
    assert crowding_distances(front) == pytest.approx([math.inf, 1.0, 1.7, 1.0, math.inf])
    # Boundaries first (by metric), then the loneliest inner point (metric 5) before metric 1 and 9.5.
    assert promotion_order(front) == [0, 4, 2, 1, 3]


def test_one_objective_is_the_metric_order_with_ties_by_arrival() -> None:
    assert promotion_order([(3.0,), (1.0,), (2.0,), (1.0,)]) == [1, 3, 2, 0]
    assert promotion_order([(3.0, 7.0), (1.0, 7.0), (2.0, 7.0)]) == [1, 2, 0]  # an equal cost adds nothing
    assert promotion_order([]) == []


def test_nan_ranks_as_the_worst_value() -> None:
    assert promotion_order([(math.nan,), (5.0,)]) == [1, 0]
    assert promotion_order([(1.0, math.nan), (1.0, 5.0)]) == [1, 0]


def test_small_fronts_and_infinite_values_have_defined_distances() -> None:
    assert crowding_distances([(1.0, 2.0), (2.0, 1.0)]) == [math.inf, math.inf]
    assert crowding_distances([(1.0, 3.0), (2.0, 2.0), (math.inf, 1.0)]) == [math.inf, math.inf, math.inf]
    assert crowding_distances([(1.0, 3.0), (1.0, 3.0), (1.0, 3.0)]) == [0.0, 0.0, 0.0]


# -- the scheduler ------------------------------------------------------------------------------------
CHEAP_BUT_WORSE = [
    ("a", {"epoch": 1, "val_loss": 1.0, "bops": 100.0}),
    ("b", {"epoch": 1, "val_loss": 1.1, "bops": 120.0}),  # dominated by a
    ("c", {"epoch": 1, "val_loss": 2.0, "bops": 10.0}),  # worst loss, but the cheapest
]


def test_a_cheap_trial_with_a_high_loss_is_promoted_where_the_metric_alone_stops_it() -> None:
    assert feed(asha(), CHEAP_BUT_WORSE) == [C, S, C]
    ray_asha = ASHAScheduler(
        time_attr="epoch", metric="val_loss", mode="min", max_t=4, grace_period=1, reduction_factor=2
    )
    assert feed(ray_asha, CHEAP_BUT_WORSE) == [C, S, S]
    assert feed(asha(costs=[]), CHEAP_BUT_WORSE) == [C, S, S]


def test_a_maximised_cost_counts_the_other_way() -> None:
    results = [(t, {"epoch": 1, "val_loss": r["val_loss"], "speed": r["bops"]}) for t, r in CHEAP_BUT_WORSE]
    assert feed(asha(costs=[("speed", "minimize")]), results) == [C, S, C]
    assert feed(asha(costs=[("speed", "maximize")]), results) == [C, S, S]  # c is now the slowest


def test_without_costs_the_top_share_by_metric_goes_on() -> None:
    losses = [1.0, 2.0, 3.0, 2.5, 1.5]  # keep ceil(n / 2) of n: 1 of 2, 2 of 3, 2 of 4, 3 of 5
    expected = [C, S, S, S, C]
    results = [(f"t{i}", {"epoch": 1, "val_loss": loss}) for i, loss in enumerate(losses)]
    assert feed(asha(costs=[]), results) == expected
    equal_cost = [(t, {**r, "bops": 7.0}) for t, r in results]
    assert feed(asha(), equal_cost) == expected


def test_the_first_trial_at_a_rung_goes_on_and_each_rung_decides_once() -> None:
    scheduler = asha()
    assert feed(scheduler, [("a", {"epoch": 1, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert feed(scheduler, [("b", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    # a's rung-1 decision is made: later results at that rung neither re-decide nor re-record it.
    assert feed(scheduler, [("a", {"epoch": 1, "val_loss": 99.0, "bops": 99.0})]) == [C]
    assert "1: 2 trial(s)" in scheduler.debug_string()
    # Rung 2 is a new decision, among the trials recorded there only.
    assert feed(scheduler, [("a", {"epoch": 2, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert feed(scheduler, [("b", {"epoch": 2, "val_loss": 1.0, "bops": 1.0})]) == [C]
    assert feed(scheduler, [("c", {"epoch": 1, "val_loss": 5.0, "bops": 5.0})]) == [C]  # 2nd of 3: keep 2
    assert "1: 3 trial(s) | 2: 2 trial(s)" in scheduler.debug_string()


def test_results_without_the_time_or_the_metric_continue_and_max_t_stops() -> None:
    scheduler = asha()
    assert feed(scheduler, [("a", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    worse = {"val_loss": 5.0, "bops": 5.0}
    assert feed(scheduler, [("b", worse), ("b", {"epoch": 1, "bops": 5.0})]) == [C, C]
    assert "1: 1 trial(s)" in scheduler.debug_string()  # nothing recorded
    assert feed(scheduler, [("b", {"epoch": 4, **worse})]) == [S]  # the full budget is spent


def test_brackets_take_trials_round_robin_and_rungs_stay_below_max_t() -> None:
    scheduler = asha(max_t=8, brackets=3)
    assert scheduler.milestones == [[1, 2, 4], [2, 4], [4]]
    for trial_id in ["t0", "t1", "t2", "t3"]:
        scheduler.on_trial_add(None, FakeTrial(trial_id))  # type: ignore[arg-type]
    assert feed(scheduler, [("t0", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    # t3 is in bracket 0 with t0, which dominates it; t1's bracket has no rung at epoch 1.
    assert feed(scheduler, [("t3", {"epoch": 1, "val_loss": 5.0, "bops": 5.0})]) == [S]
    assert feed(scheduler, [("t1", {"epoch": 1, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert feed(scheduler, [("t2", {"epoch": 3, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert scheduler.debug_string().splitlines()[1:] == [
        "bracket 0: 1: 2 trial(s) | 2: 0 trial(s) | 4: 0 trial(s)",
        "bracket 1: 2: 0 trial(s) | 4: 0 trial(s)",
        "bracket 2: 4: 0 trial(s)",
    ]


def test_tune_level_metric_or_mode_is_refused_and_bad_settings_raise() -> None:
    scheduler = asha()
    assert scheduler.set_search_properties(None, None) is True
    assert scheduler.set_search_properties("val_loss", None) is False
    assert scheduler.set_search_properties(None, "max") is False
    assert scheduler.metric == "val_loss"
    with pytest.raises(ValueError, match="reduction_factor > 1"):
        asha(reduction_factor=1)
    with pytest.raises(ValueError, match="'minimize' or 'maximize'"):
        asha(costs=[("bops", "min")])
