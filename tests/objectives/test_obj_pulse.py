"""1-D EMD against scipy's Wasserstein distance; integral error against a hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from objectives import ObjectivesError, emd_1d, integral_error, load_waveform, synth_waveform


def test_emd_1d_matches_scipy_on_positions_0_to_47() -> None:
    rng = np.random.default_rng(0)
    x = synth_waveform(40, seed=1).astype(np.float64)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, None)
    y[0] = np.roll(x[0], 3)  # a shifted pulse
    y[1] = 0.0
    y[1, 10] = 1.0  # all charge in one sample
    positions = np.arange(48)
    expected = [wasserstein_distance(positions, positions, a, b) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(emd_1d(x, y), expected, rtol=1e-10, atol=1e-12)


def test_emd_1d_of_a_shifted_delta_is_the_shift_and_zero_rows_are_nan() -> None:
    x = np.zeros((3, 48))
    y = np.zeros((3, 48))
    x[0, 5], y[0, 12] = 2.0, 7.0
    x[1, 3] = 1.0
    x[2, 3], y[2, 3] = 1.0, 4.0
    values = emd_1d(x, y)
    assert values[0] == pytest.approx(7.0)
    assert np.isnan(values[1])
    assert values[2] == 0.0


def test_integral_error_by_hand() -> None:
    x = np.full((2, 48), 0.2)
    x[:, 20:24] += [0.5, 1.0, 0.5, 0.25]  # integral 2.25 above the 0.2 baseline
    y = x.copy()
    y[0, 21] += 0.225  # +10 %
    y[1] -= 0.045 / 48  # -2 % spread over every sample
    mean, std = integral_error(x, y)
    assert mean == pytest.approx(4.0)
    assert std == pytest.approx(6.0)


def test_integral_error_baseline_ignores_a_raised_first_sample() -> None:
    x = np.full((1, 48), 0.2)
    x[0, 0] = 0.3  # the fADC250 dumps start high; the median of the first 10 samples is unaffected
    x[0, 20] = 1.2
    y = x.copy()
    y[0, 30] += 0.01
    mean, _ = integral_error(x, y)
    assert mean == pytest.approx(100 * 0.01 / 1.1)


def test_real_examples_have_the_documented_integrals(shared_data: Path) -> None:
    pulses = load_waveform(shared_data / "fadc250_examples.csv")
    assert pulses.shape == (6, 48)
    assert integral_error(pulses, pulses) == (0.0, 0.0)
    baseline = np.median(pulses[:, :10], axis=1)
    integrals = pulses.sum(axis=1) - 48 * baseline
    assert ((integrals > 2.6) & (integrals < 3.5)).all()


@pytest.mark.parametrize(
    ("function", "x", "y", "message"),
    [
        (emd_1d, np.ones((2, 48)), np.ones((3, 48)), r"same shape with N >= 1, got \(2, 48\) and \(3, 48\)"),
        (emd_1d, np.ones((2, 48)), -np.ones((2, 48)), r"non-negative samples"),
        (emd_1d, np.full((1, 48), np.inf), np.ones((1, 48)), r"input row 0 holds NaN or inf"),
        (integral_error, np.ones((2, 8)), np.ones((2, 8)), r"needs more than 10 samples, got 8"),
        (integral_error, np.ones((2, 48)), np.ones((2, 48)), r"input row 0 has integral 0 <= 0"),
    ],
)
def test_bad_inputs_are_named(function: object, x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ObjectivesError, match=message):
        function(x, y)  # type: ignore[operator]
