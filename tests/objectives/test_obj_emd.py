"""emd_hex against POT's ot.emd2 on the full 48 x 48 problem, row by row."""

from __future__ import annotations

import math
import time

import numpy as np
import ot
import pytest

from objectives import EMDResult, ObjectivesError, emd_hex, synth_econt
from objectives._geometry import CELL_CENTRES

M_REF = ot.dist(CELL_CENTRES, CELL_CENTRES, metric="euclidean")


def reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([ot.emd2(a / a.sum(), b / b.sum(), M_REF) for a, b in zip(x, y, strict=True)])


def rows_with(rng: np.random.Generator, n: int, occupied: int) -> np.ndarray:
    """n rows with exactly ``occupied`` non-zero cells of random positive weight."""
    out = np.zeros((n, 48))
    for row in out:
        cells = rng.choice(48, occupied, replace=False)
        row[cells] = rng.uniform(0.1, 10.0, occupied)
    return out


def assert_matches_pot(x: np.ndarray, y: np.ndarray) -> None:
    result = emd_hex(x, y)
    np.testing.assert_allclose(result.values, reference(x, y), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("occupied_x", "occupied_y"),
    [(1, 1), (1, 48), (30, 1), (2, 2), (2, 48), (5, 2), (3, 3), (4, 48), (48, 48), (7, 12)],
)
def test_every_occupancy_combination_matches_pot(occupied_x: int, occupied_y: int) -> None:
    rng = np.random.default_rng(occupied_x * 100 + occupied_y)
    assert_matches_pot(rows_with(rng, 60, occupied_x), rows_with(rng, 60, occupied_y))


def test_realistic_sparse_and_dense_reconstructions_match_pot() -> None:
    rng = np.random.default_rng(7)
    x = synth_econt(400, seed=11).astype(np.float64)
    sparse = x * rng.uniform(0.5, 1.5, x.shape) + np.where(rng.random(x.shape) < 0.05, 3.0, 0.0)
    dense = x + rng.random(x.shape) * 0.2  # like a sigmoid decoder: every cell slightly positive
    assert_matches_pot(x, sparse)
    assert_matches_pot(x, dense)


def test_ties_and_symmetric_layouts_match_pot() -> None:
    x = np.zeros((6, 48))
    y = np.zeros((6, 48))
    x[0, [0, 5]] = 1.0  # two equal sources ...
    y[0, [1, 4, 8, 9]] = 1.0  # ... and equidistant sinks
    x[1, [5, 6]] = 2.0
    y[1, [1, 2, 9, 10]] = 3.0
    x[2] = 1.0  # uniform against uniform: distance 0
    y[2] = 1.0
    x[3, [0, 1]] = [1.0, 1.0]  # two sources, two sinks with equal savings
    y[3, [4, 27]] = [1.0, 1.0]
    x[4, [16, 32, 0]] = 5.0  # one cell per block vs the same cells
    y[4, [16, 32, 0]] = 5.0
    x[5, [10, 20, 30]] = 1.0
    y[5, [10, 20, 30, 40]] = 1.0
    assert_matches_pot(x, y)
    values = emd_hex(x, y).values
    assert values[2] == pytest.approx(0.0, abs=1e-12)
    assert values[4] == pytest.approx(0.0, abs=1e-12)


def test_single_cells_give_the_centre_distance_and_scale_does_not_matter() -> None:
    x = np.zeros((2, 48))
    y = np.zeros((2, 48))
    x[0, 0], y[0, 44] = 3.0, 1000.0
    x[1, 7], y[1, 7] = 2.0, 0.5
    values = emd_hex(x, y).values
    assert values[0] == pytest.approx(np.hypot(*(CELL_CENTRES[0] - CELL_CENTRES[44])), rel=1e-12)
    assert values[1] == 0.0
    scaled = emd_hex(x * 17.0, y * 0.01).values
    np.testing.assert_allclose(scaled, values, rtol=1e-12)


def test_sentinels_are_counted_and_kept_out_of_the_summary() -> None:
    rng = np.random.default_rng(5)
    x = rows_with(rng, 6, 3)
    y = rows_with(rng, 6, 4)
    x[0] = 0.0  # zero input (takes precedence even though the output is also zero)
    y[0] = 0.0
    x[1] = 0.0
    y[2] = 0.0  # zero output
    result = emd_hex(x, y)
    assert (result.n_zero_input, result.n_zero_output, result.n_valid) == (2, 1, 3)
    assert np.isnan(result.values[:3]).all()
    valid = reference(x[3:], y[3:])
    assert result.mean == pytest.approx(valid.mean(), abs=1e-12)
    assert result.std == pytest.approx(valid.std(), abs=1e-12)
    assert result.median == pytest.approx(np.median(valid), abs=1e-12)
    assert result.p16 == pytest.approx(np.percentile(valid, 16), abs=1e-12)
    assert result.p84 == pytest.approx(np.percentile(valid, 84), abs=1e-12)
    summary = result.as_dict()
    assert summary == {
        "emd_mean": result.mean,
        "emd_std": result.std,
        "emd_median": result.median,
        "emd_p16": result.p16,
        "emd_p84": result.p84,
        "emd_sentinels": 3.0,
    }
    assert set(result.as_dict(prefix="val_emd")) == {
        f"val_emd_{k}" for k in ("mean", "std", "median", "p16", "p84", "sentinels")
    }


def test_no_valid_row_scores_infinity_not_nan() -> None:
    x = np.ones((3, 48))
    result = emd_hex(x, np.zeros((3, 48)))
    assert isinstance(result, EMDResult)
    assert result.n_zero_output == 3
    assert all(math.isinf(v) for k, v in result.as_dict().items() if k != "emd_sentinels")


@pytest.mark.parametrize(
    ("x", "y", "n_jobs", "message"),
    [
        (
            np.ones((2, 47)),
            np.ones((2, 47)),
            1,
            r"must have shape \(N, 48\) with N >= 1 \(CALQ order\), got \(2, 47\)",
        ),
        (np.ones((0, 48)), np.ones((0, 48)), 1, r"got \(0, 48\)"),
        (np.ones((2, 48)), np.ones((3, 48)), 1, r"shapes differ: \(2, 48\) vs \(3, 48\)"),
        (-np.ones((2, 48)), np.ones((2, 48)), 1, r"EMD input x row 0 holds a negative charge \(-1.0\)"),
        (np.ones((2, 48)), np.full((2, 48), np.nan), 1, r"EMD output y row 0 holds NaN or inf"),
        (np.ones((2, 48)), np.ones((2, 48)), 0, r"n_jobs must be an integer >= 1, got 0"),
    ],
)
def test_bad_inputs_are_named(x: np.ndarray, y: np.ndarray, n_jobs: int, message: str) -> None:
    with pytest.raises(ObjectivesError, match=message):
        emd_hex(x, y, n_jobs=n_jobs)


@pytest.mark.slow
def test_two_processes_give_identical_values() -> None:
    rng = np.random.default_rng(9)
    x = rows_with(rng, 2500, 4)  # every row needs the network simplex, enough to use the pool
    y = rows_with(rng, 2500, 6)
    serial = emd_hex(x, y, n_jobs=1).values
    parallel = emd_hex(x, y, n_jobs=2).values
    np.testing.assert_array_equal(parallel, serial)


def test_faster_than_a_per_row_pot_loop() -> None:
    """A loose check (>= 3x) to stay robust on a busy machine; benchmarks/emd.py carries the 10x claim."""
    x = synth_econt(3000, seed=2).astype(np.float64)
    y = x * np.random.default_rng(3).uniform(0.6, 1.4, x.shape)
    start = time.perf_counter()
    emd_hex(x, y)
    fast = (time.perf_counter() - start) / x.shape[0]
    start = time.perf_counter()
    reference(x[:300], y[:300])
    slow = (time.perf_counter() - start) / 300
    assert slow / fast >= 3.0
