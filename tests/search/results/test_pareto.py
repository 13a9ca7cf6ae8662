"""Pareto fronts and hypervolumes against independent brute-force references and Optuna's own hypervolume."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from search._types import Direction
from search.results._pareto import (
    ParetoError,
    default_reference,
    hypervolume,
    hypervolume_history,
    pareto_front,
)


def _to_minimised(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    return points * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])


def _brute_force_front(points: np.ndarray, directions: Sequence[str]) -> list[int]:
    low = _to_minimised(points, directions)
    front = []
    for i, a in enumerate(low):
        dominated = any(np.all(b <= a) and np.any(b < a) for j, b in enumerate(low) if j != i)
        if not dominated:
            front.append(i)
    return front


def _inclusion_exclusion(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact volume of the union of boxes [p, reference] (minimisation) by inclusion–exclusion."""
    inside = [p for p in points if np.all(p < reference)]
    total = 0.0
    for size in range(1, len(inside) + 1):
        for subset in itertools.combinations(inside, size):
            corner = np.max(np.array(subset), axis=0)
            total += (-1) ** (size + 1) * float(np.prod(reference - corner))
    return total


def _grid_count(points: np.ndarray, reference: np.ndarray) -> int:
    """Number of unit cells of the integer lattice (between 0 and reference) dominated by some point."""
    ranges = [range(int(r)) for r in reference]
    count = 0
    for cell in itertools.product(*ranges):
        # The cell [c, c+1) is dominated when some point is <= c in every objective.
        if any(np.all(p <= np.array(cell)) for p in points):
            count += 1
    return count


MIXED: dict[int, list[Direction]] = {
    1: ["minimize"],
    2: ["minimize", "maximize"],
    3: ["maximize", "minimize", "minimize"],
    4: ["minimize", "maximize", "minimize", "maximize"],
}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(3))
def test_pareto_front_matches_brute_force_with_duplicates_and_infinities(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(40, k)).astype(float)  # coarse values make ties and duplicates
    points[3] = points[7]
    points[5, 0] = np.inf
    points[11, -1] = -np.inf
    front = pareto_front(points, MIXED[k])
    assert front.tolist() == _brute_force_front(points, MIXED[k])


def test_pareto_front_keeps_every_duplicate_of_a_front_point() -> None:
    points = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [2.0, 1.0]])
    assert pareto_front(points, ["minimize", "minimize"]).tolist() == [0, 1, 2, 4]


def test_plus_infinity_in_a_minimised_objective_loses_to_any_finite_value() -> None:
    points = np.array([[np.inf], [1e300], [np.inf]])
    assert pareto_front(points, ["minimize"]).tolist() == [1]
    assert pareto_front(np.array([[np.inf], [np.inf]]), ["minimize"]).tolist() == [0, 1]
    assert pareto_front(np.array([[-np.inf], [5.0]]), ["maximize"]).tolist() == [1]


def test_pareto_front_of_no_points_is_empty() -> None:
    assert pareto_front(np.empty((0, 2)), ["minimize", "minimize"]).tolist() == []
    assert pareto_front([], ["minimize", "maximize"]).tolist() == []


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_matches_inclusion_exclusion(k: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    directions = MIXED[k]
    minimised = rng.uniform(0.0, 10.0, size=(9, k))
    reference = np.array([8.0] * k)
    expected = _inclusion_exclusion(minimised, reference)
    # Express points and reference in each objective's own direction: maximised objectives are negated.
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    value = hypervolume(minimised * sign, directions, (reference * sign).tolist())
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert value > 0


@pytest.mark.parametrize("k", [2, 3])
def test_hypervolume_matches_lattice_cell_count(k: int) -> None:
    rng = np.random.default_rng(7)
    points = rng.integers(0, 7, size=(12, k)).astype(float)
    reference = np.full(k, 7.0)
    expected = _grid_count(points, reference)
    assert hypervolume(points, ["minimize"] * k, reference.tolist()) == pytest.approx(expected)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_matches_optuna(k: int) -> None:
    rng = np.random.default_rng(k)
    directions = MIXED[k]
    points = rng.normal(size=(60, k))
    reference = np.max(_to_minimised(points, directions), axis=0) * 0.5  # some points lie outside
    expected = compute_hypervolume(
        _to_minimised(points, directions)[np.all(_to_minimised(points, directions) < reference, axis=1)],
        reference,
    )
    value = hypervolume(points, directions, _to_minimised(reference[None, :], directions)[0].tolist())
    assert value == pytest.approx(expected, rel=1e-10)


def test_points_not_beating_the_reference_contribute_nothing() -> None:
    directions: list[Direction] = ["minimize", "minimize"]
    inside = np.array([[1.0, 1.0]])
    outside = np.array([[0.0, 5.0], [5.0, 0.0], [2.0, 3.0], [np.inf, 0.0]])  # 3.0 equals the reference
    assert hypervolume(inside, directions, [3.0, 3.0]) == pytest.approx(4.0)
    assert hypervolume(np.vstack([inside, outside]), directions, [3.0, 3.0]) == pytest.approx(4.0)
    assert hypervolume(outside, directions, [3.0, 3.0]) == 0.0
    assert hypervolume(np.empty((0, 2)), directions, [3.0, 3.0]) == 0.0


def test_an_infinitely_good_value_gives_infinite_volume() -> None:
    assert hypervolume([[-np.inf, 1.0]], ["minimize", "minimize"], [3.0, 3.0]) == math.inf
    assert hypervolume([[np.inf, 1.0]], ["maximize", "minimize"], [3.0, 3.0]) == math.inf


def test_scale_normalises_each_objective() -> None:
    # An EMD-like objective near 1 and an ops-like one near 1e5, one of each direction.
    points = np.array([[0.5, 9e4], [0.8, 1.2e5], [0.3, 5e4]])
    directions: list[Direction] = ["minimize", "maximize"]
    reference = [1.0, 2e4]
    raw = hypervolume(points, directions, reference)
    assert raw == pytest.approx(_inclusion_exclusion(points * [1, -1], np.array([1.0, -2e4])))
    scaled = hypervolume(points, directions, reference, scale=[1.0, 1e5])
    assert scaled == pytest.approx(raw / 1e5)
    assert 0 < scaled < 1


def test_hypervolume_history_is_the_running_prefix_volume() -> None:
    rng = np.random.default_rng(3)
    directions: list[Direction] = ["minimize", "maximize", "minimize"]
    points = rng.uniform(0.0, 1.0, size=(25, 3))
    reference = [0.9, 0.1, 0.9]
    history = hypervolume_history(points, directions, reference, scale=[2.0, 1.0, 0.5])
    expected = [
        hypervolume(points[: i + 1], directions, reference, scale=[2.0, 1.0, 0.5]) for i in range(len(points))
    ]
    assert history == pytest.approx(expected, rel=1e-12)
    assert all(b >= a for a, b in itertools.pairwise(history))
    assert history[-1] > history[0] >= 0
    assert hypervolume_history(np.empty((0, 3)), directions, reference) == []


def test_default_reference_lies_beyond_the_worst_finite_value() -> None:
    points = np.array([[1.0, 10.0, 4.0], [3.0, 30.0, 4.0], [np.inf, -np.inf, 4.0]])
    directions: list[Direction] = ["minimize", "maximize", "minimize"]
    reference = default_reference(points, directions, margin=0.1)
    # spans: 2 and 20; the constant column uses max(|4|, 1) = 4.
    assert reference == pytest.approx([3.2, 8.0, 4.4])
    finite_rows = points[np.isfinite(points).all(axis=1)]
    for row in finite_rows:
        assert hypervolume(row[None, :], directions, reference) > 0
    assert default_reference([[0.0]], ["minimize"]) == pytest.approx([0.1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pareto_front([[1.0, math.nan]], ["minimize", "minimize"]), "NaN in rows [0]"),
        (lambda: pareto_front([[1.0, 2.0]], ["minimize"]), "1 directions given for points with 2 objectives"),
        (
            lambda: pareto_front([[1.0]], ["min"]),
            "direction 'min' is not allowed; allowed: minimize, maximize",
        ),
        (lambda: pareto_front([1.0, 2.0], ["minimize"]), "must be a 2-D"),
        (lambda: hypervolume([[1.0]], ["minimize"], [math.inf]), "reference must be finite"),
        (
            lambda: hypervolume([[1.0]], ["minimize"], [2.0, 3.0]),
            "reference must have one value per objective",
        ),
        (lambda: hypervolume([[1.0]], ["minimize"], [2.0], scale=[0.0]), "scale must be finite and > 0"),
        (lambda: default_reference([[math.inf]], ["minimize"]), "objective 0 (minimize) has no finite value"),
        (lambda: default_reference([[1.0]], ["minimize"], margin=-1.0), "margin must be finite and >= 0"),
    ],
)
def test_bad_input_raises_pareto_error_naming_the_problem(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ParetoError) as info:
        call()
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_an_infinitely_good_value_gives_infinite_volume_with_three_objectives() -> None:
    # moocore crashes (SIGSEGV) on a -inf coordinate with 3 objectives; the volume is decided before it.
    directions = ["minimize", "maximize", "minimize"]
    reference = [3.0, -1.0, 3.0]
    assert hypervolume([[-np.inf, 1.0, 1.0]], directions, reference) == math.inf
    assert hypervolume([[1.0, np.inf, 1.0]], directions, reference) == math.inf
    history = hypervolume_history([[1.0, 1.0, 1.0], [-np.inf, 0.0, 2.0]], directions, reference)
    assert history == [8.0, math.inf]


def test_hypervolume_history_matches_the_volume_of_every_prefix_with_duplicates_and_infinities() -> None:
    rng = np.random.default_rng(3)
    for directions, reference in (
        (["minimize", "maximize", "minimize"], [1.1, -0.1, 1.1]),
        (["minimize", "maximize"], [1.1, -0.1]),
    ):
        points = rng.random((120, len(directions)))
        points[::7] = points[3]
        points[5, 0] = np.inf
        points[100, 0] = -np.inf
        history = hypervolume_history(points, directions, reference, scale=[2.0] * len(directions))
        expected = [
            hypervolume(points[: i + 1], directions, reference, scale=[2.0] * len(directions))
            for i in range(len(points))
        ]
        assert history == pytest.approx(expected, rel=1e-12)
