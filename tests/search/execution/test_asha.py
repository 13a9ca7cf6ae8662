"""ASHA as each trial decides it: the promotion order, the rung plan, and rung decisions on a real store."""

from __future__ import annotations

import math
from typing import Any

import pytest

from search.execution._asha import RungPlan, crowding_distances, promotion_order
from search.storage import Store

C, S = "continue", "stop"


def plan(**overrides: Any) -> RungPlan:
    settings: dict[str, Any] = {
        "metric": "val_loss",
        "costs": [("bops", "minimize")],
        "epochs": 4,
        "grace_period": 1,
        "reduction_factor": 2,
        "brackets": 1,
        "emd_rows": 100,
    }
    settings.update(overrides)
    return RungPlan.build(**settings)


class Rungs:
    """A sweep in a real SQLite store whose trials report rung results as run_trial does."""

    def __init__(self, url: str, rungs: RungPlan) -> None:
        self.store, self.plan = Store(url), rungs
        sweep = self.store.create_sweep(
            "asha", config_yaml="", config_hash="x", objectives=[], reference_point=None
        )
        self.sweep_id = sweep.id
        self.trials: dict[str, Any] = {}

    def feed(self, results: list[tuple[str, dict[str, float]]]) -> list[str]:
        decisions = []
        for name, result in results:
            if name not in self.trials:
                self.trials[name] = self.store.create_trial(self.sweep_id, {"name": name}, config_hash=name)
            trial, epoch = self.trials[name], int(result["epoch"])
            if not self.plan.is_rung(trial.number, epoch):
                decisions.append(C)
                continue
            point = self.plan.point(result["val_loss"], result)
            points, own = self.store.record_rung(trial.id, self.plan.bracket(trial.number), epoch, point)
            decisions.append(C if self.plan.goes_on(points, own) else S)
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


# -- rung decisions -----------------------------------------------------------------------------------
CHEAP_BUT_WORSE = [
    ("a", {"epoch": 1, "val_loss": 1.0, "bops": 100.0}),
    ("b", {"epoch": 1, "val_loss": 1.1, "bops": 120.0}),  # dominated by a
    ("c", {"epoch": 1, "val_loss": 2.0, "bops": 10.0}),  # worst loss, but the cheapest
]


def test_a_cheap_trial_with_a_high_loss_is_promoted_where_the_metric_alone_stops_it(sqlite_url: str) -> None:
    assert Rungs(sqlite_url, plan()).feed(CHEAP_BUT_WORSE) == [C, S, C]


def test_metric_promotion_stops_the_cheap_trial_as_rays_asha_does(tmp_path: Any) -> None:
    assert Rungs(f"sqlite:///{tmp_path / 'm.db'}", plan(costs=[])).feed(CHEAP_BUT_WORSE) == [C, S, S]


def test_a_maximised_cost_counts_the_other_way(tmp_path: Any) -> None:
    results = [(t, {"epoch": 1, "val_loss": r["val_loss"], "speed": r["bops"]}) for t, r in CHEAP_BUT_WORSE]
    fast = Rungs(f"sqlite:///{tmp_path / 'a.db'}", plan(costs=[("speed", "minimize")]))
    assert fast.feed(results) == [C, S, C]
    slow = Rungs(f"sqlite:///{tmp_path / 'b.db'}", plan(costs=[("speed", "maximize")]))
    assert slow.feed(results) == [C, S, S]  # c is now the slowest


def test_without_costs_the_top_share_by_metric_goes_on(tmp_path: Any) -> None:
    losses = [1.0, 2.0, 3.0, 2.5, 1.5]  # keep ceil(n / 2) of n: 1 of 2, 2 of 3, 2 of 4, 3 of 5
    expected = [C, S, S, S, C]
    results = [(f"t{i}", {"epoch": 1, "val_loss": loss}) for i, loss in enumerate(losses)]
    assert Rungs(f"sqlite:///{tmp_path / 'a.db'}", plan(costs=[])).feed(results) == expected
    equal_cost = [(t, {**r, "bops": 7.0}) for t, r in results]
    assert Rungs(f"sqlite:///{tmp_path / 'b.db'}", plan()).feed(equal_cost) == expected


def test_a_rung_records_a_trial_once_and_each_rung_decides_among_its_own_records(sqlite_url: str) -> None:
    rungs = Rungs(sqlite_url, plan())
    assert rungs.feed([("a", {"epoch": 1, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert rungs.feed([("b", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    # A retried trial reaching rung 1 again keeps its first point (9, 9): b still dominates it.
    assert rungs.feed([("a", {"epoch": 1, "val_loss": 0.1, "bops": 0.1})]) == [S]
    # Rung 2 is a new decision, among the trials recorded there only.
    assert rungs.feed([("a", {"epoch": 2, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert rungs.feed([("b", {"epoch": 2, "val_loss": 1.0, "bops": 1.0})]) == [C]
    assert rungs.feed([("c", {"epoch": 1, "val_loss": 5.0, "bops": 5.0})]) == [C]  # 2nd of 3: keep 2


def test_infinite_points_survive_the_store_as_the_worst_values(sqlite_url: str) -> None:
    rungs = Rungs(sqlite_url, plan())
    assert rungs.feed([("a", {"epoch": 1, "val_loss": math.inf, "bops": 1.0})]) == [C]
    assert rungs.feed([("b", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    trial = rungs.trials["a"]
    points, own = rungs.store.record_rung(trial.id, 0, 1, [0.0, 0.0])
    assert points == [[math.inf, 1.0], [1.0, 1.0]] and own == 0


def test_brackets_take_trials_round_robin_and_rungs_stay_below_the_epochs(sqlite_url: str) -> None:
    rungs = plan(epochs=8, brackets=3)
    assert rungs.milestones == ((1, 2, 4), (2, 4), (4,))
    assert [rungs.bracket(n) for n in range(4)] == [0, 1, 2, 0]
    feeder = Rungs(sqlite_url, rungs)
    names = ["t0", "t1", "t2", "t3"]
    for name in names:  # numbers 0..3 in this order
        feeder.feed([(name, {"epoch": 0, "val_loss": 0.0})])
    assert feeder.feed([("t0", {"epoch": 1, "val_loss": 1.0, "bops": 1.0})]) == [C]
    # t3 is in bracket 0 with t0, which dominates it; t1's bracket has no rung at epoch 1.
    assert feeder.feed([("t3", {"epoch": 1, "val_loss": 5.0, "bops": 5.0})]) == [S]
    assert feeder.feed([("t1", {"epoch": 1, "val_loss": 9.0, "bops": 9.0})]) == [C]
    assert feeder.feed([("t1", {"epoch": 2, "val_loss": 9.0, "bops": 9.0})]) == [C]  # alone in its rung


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="reduction_factor > 1"):
        plan(reduction_factor=1)
    with pytest.raises(ValueError, match="'minimize' or 'maximize'"):
        plan(costs=[("bops", "min")])
