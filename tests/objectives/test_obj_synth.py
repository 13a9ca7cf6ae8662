"""The synthetic generators against the real samples they were calibrated on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from objectives import ObjectivesError, load_econt, load_waveform, synth_econt, synth_waveform


def occupancy(x: np.ndarray) -> np.ndarray:
    return (x > 0).sum(axis=1)


def test_econt_rows_are_integer_counts_above_threshold_and_reproducible() -> None:
    x = synth_econt(3000, seed=3)
    assert x.shape == (3000, 48) and x.dtype == np.float32
    assert (x == np.round(x)).all()
    assert x[x > 0].min() >= 2.0  # zero suppression below ~2 counts, as in the real samples
    assert (x.sum(axis=1) > 0).all()
    np.testing.assert_array_equal(x, synth_econt(3000, seed=3))
    assert not np.array_equal(x, synth_econt(3000, seed=4))


def test_econt_matches_the_real_ttbar_sample(shared_data: Path) -> None:
    real = load_econt(shared_data / "econt" / "ttbar_0PU.csv")
    fake = synth_econt(20_000, seed=0)
    real_occupancy, fake_occupancy = occupancy(real), occupancy(fake)
    assert fake_occupancy.mean() == pytest.approx(real_occupancy.mean(), abs=0.25)  # 2.39 vs 2.48
    assert (fake_occupancy == 1).mean() == pytest.approx((real_occupancy == 1).mean(), abs=0.06)  # 47 vs 50 %
    assert (fake_occupancy == 2).mean() == pytest.approx((real_occupancy == 2).mean(), abs=0.04)  # 21 vs 21 %
    assert np.quantile(fake_occupancy, 0.99) == pytest.approx(np.quantile(real_occupancy, 0.99), rel=0.35)
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    real_sums = np.quantile(real.sum(axis=1), levels)  # 3, 6, 16, 60, 190 counts
    fake_sums = np.quantile(fake.sum(axis=1), levels)
    np.testing.assert_array_less(np.abs(np.log(fake_sums / real_sums)), np.log(1.3))
    tail = np.quantile(fake.sum(axis=1), 0.99) / np.quantile(real.sum(axis=1), 0.99)  # 1.3 k vs 1.7 k
    assert 1 / 1.5 < tail < 1.5
    real_cells = np.quantile(real[real > 0], levels)
    fake_cells = np.quantile(fake[fake > 0], levels)
    np.testing.assert_array_less(np.abs(np.log(fake_cells / real_cells)), np.log(1.35))


def test_pileup_fills_the_module() -> None:
    means = [occupancy(synth_econt(2000, seed=1, pileup=p)).mean() for p in (0.0, 1.0, 5.0)]
    assert means[0] < 3 < means[1] < means[2]
    assert means[2] > 30  # the dense end-of-life regime


@pytest.mark.parametrize(
    ("rows", "pileup", "message"),
    [(0, 0.0, r"rows must be >= 1, got 0"), (5, -1.0, r"pileup must be a finite value >= 0 .* got -1.0")],
)
def test_econt_bad_arguments(rows: int, pileup: float, message: str) -> None:
    with pytest.raises(ObjectivesError, match=message):
        synth_econt(rows, seed=0, pileup=pileup)


def test_waveform_shape_facts() -> None:
    x = synth_waveform(4000, seed=2)
    assert x.shape == (4000, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x.max(axis=1), 0.99502, rtol=1e-6)
    peak = x.argmax(axis=1)
    assert peak.min() >= 15 and peak.max() <= 31
    baseline = np.median(x[:, 1:11], axis=1)
    assert ((baseline > 0.17) & (baseline < 0.24)).all()
    noise = x[:, 1:11].std(axis=1)
    assert 0.004 < np.median(noise) < 0.013
    np.testing.assert_array_equal(x, synth_waveform(4000, seed=2))


def test_waveform_resembles_the_real_pulses(shared_data: Path) -> None:
    real = load_waveform(shared_data / "fadc250_examples.csv").astype(np.float64)
    fake = synth_waveform(3000, seed=5).astype(np.float64)

    def integrals(x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1) - 48 * np.median(x[:, :10], axis=1)

    def profile(x: np.ndarray) -> np.ndarray:
        """Mean shape around the peak, baseline removed, peak = 1."""
        rows = []
        for pulse in x:
            top = pulse.argmax()
            excess = pulse - np.median(pulse[1:11])
            rows.append(excess[top - 3 : top + 10] / excess[top])
        return np.mean(rows, axis=0)

    real_integrals, fake_integrals = integrals(real), integrals(fake)  # real 2.7 .. 3.4
    assert np.median(fake_integrals) == pytest.approx(np.median(real_integrals), rel=0.08)
    assert (
        real_integrals.min() - 0.3
        < np.quantile(fake_integrals, 0.05)
        < np.quantile(fake_integrals, 0.95)
        < real_integrals.max() + 0.3
    )
    np.testing.assert_allclose(profile(fake), profile(real), atol=0.1)
    first_sample_excess = fake[:, 0] - np.median(fake[:, 1:11], axis=1)
    assert np.median(first_sample_excess) == pytest.approx(
        np.median(real[:, 0] - np.median(real[:, 1:11], axis=1)), abs=0.02
    )
