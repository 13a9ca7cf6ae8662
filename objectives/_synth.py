"""Synthetic data for both tasks, calibrated on the real samples (see each generator's docstring)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from objectives._errors import ObjectivesError
from objectives._geometry import CELL_CENTRES, N_CELLS

# ECON-T model parameters, fitted by a random search on the real ttbar_0PU sample (38 k rows) to: the
# fractions of rows with 1 and 2 occupied cells, mean occupancy, row-sum and cell-value quantiles, and the
# mean occupancy per row-sum bin.
_LOG_ENERGY_MEDIAN = 1.65  # ln of the median deposit energy in ADC counts (~5.2)
_LOG_ENERGY_SIGMA = 2.19  # log-normal width: from MIP-like deposits to multi-GeV showers
_EXTRA_DEPOSITS = 0.29  # mean number of further, independent deposits in the module (Poisson)
_WIDTH_AT_50 = 0.276  # lateral decay length (units: neighbouring cells are 2.0 apart) of a 50-count deposit
_WIDTH_POWER = 0.212  # showers widen with energy: width ~ energy ** power
_OFFSET_RADIUS = 1.51  # deposit positions scatter this far around a random cell centre
_MAX_DEPOSIT = 20_000.0  # counts; the log-normal is truncated here (largest real row sum: 22.7 k)
_THRESHOLD = 2.1  # zero suppression of the analogue charge, before rounding to integer counts
_MAX_BLOCK_ROWS = 50_000  # bounds the (deposits x 48) work array

# fADC250 pulse model: a CR-RC^3 shaper response, fitted to the mean shape of the six real pulses.
_N_SAMPLES = 48
_PEAK_VALUE = 0.99502  # the real dumps scale each pulse so that its highest sample is this value
_SHAPE_POWER = 3
_SHAPE_TAU = 0.85  # samples
_PEAK_FIRST, _PEAK_LAST = 16, 30  # intended peak sample; noise may move the maximum by one (15..31)


def _check_rows(rows: int) -> None:
    if rows < 1:
        raise ObjectivesError(f"rows must be >= 1, got {rows}")


def _econt_candidates(rng: np.random.Generator, n: int, pileup: float) -> NDArray[np.float64]:
    """n simulated modules in integer counts; some may be all zero (below threshold)."""
    deposits = 1 + rng.poisson(_EXTRA_DEPOSITS, n)
    total = int(deposits.sum())
    cell = rng.integers(0, N_CELLS, total)
    radius = _OFFSET_RADIUS * np.sqrt(rng.random(total))
    angle = 2 * math.pi * rng.random(total)
    position = CELL_CENTRES[cell] + np.column_stack((radius * np.cos(angle), radius * np.sin(angle)))
    energy = rng.lognormal(_LOG_ENERGY_MEDIAN, _LOG_ENERGY_SIGMA, total)
    too_high = energy > _MAX_DEPOSIT
    while too_high.any():  # a truncated log-normal: redraw the rare tail instead of piling it at the cut
        energy[too_high] = rng.lognormal(_LOG_ENERGY_MEDIAN, _LOG_ENERGY_SIGMA, int(too_high.sum()))
        too_high = energy > _MAX_DEPOSIT
    width = _WIDTH_AT_50 * (energy / 50.0) ** _WIDTH_POWER
    distance = np.sqrt(((position[:, None, :] - CELL_CENTRES[None, :, :]) ** 2).sum(axis=-1))
    profile = np.exp(-distance / width[:, None])
    profile /= profile.sum(axis=1, keepdims=True)
    starts = np.concatenate(([0], np.cumsum(deposits)[:-1]))
    charge = np.add.reduceat(energy[:, None] * profile, starts, axis=0)
    if pileup > 0:
        charge += rng.exponential(pileup, charge.shape)
    counts = np.rint(charge)
    counts[charge < _THRESHOLD] = 0.0
    return counts


def synth_econt(rows: int, *, seed: int, pileup: float = 0.0) -> np.ndarray:
    """Simulated ECON-T modules: float32 (rows, 48) integer ADC counts in CALQ order, no all-zero row.

    Model: each module receives 1 + Poisson(0.29) independent deposits. A deposit lands at a random cell
    centre plus a uniform offset within 1.5 (cell spacing 2.0), carries a log-normal energy (median ~5
    counts, log-width 2.2, truncated at 20 k counts) and spreads it over the 48 cells with an
    exp(-distance / width) profile whose width grows as energy**0.21, so low-energy deposits mostly fill
    one cell and showers fill many. Cell charges are zero-suppressed below 2.1 counts and rounded to
    integers; all-zero modules are redrawn.
    Calibrated on the real ttbar sample: ~2.4 occupied cells per row (real 2.48), ~47 % single-cell rows
    (real 50 %), row-sum median ~18 counts (real 16), 99th percentile ~1.3 k (real 1.7 k), smallest
    non-zero value 2. ``pileup > 0`` adds an exponentially distributed charge of mean ``pileup`` counts to
    every cell before zero suppression (pile-up and noise of the dense end-of-life regime: ~5 occupies
    most cells). Deterministic for a given (rows, seed, pileup). Raises ObjectivesError for rows < 1 or a
    negative or non-finite pileup.
    """
    _check_rows(rows)
    if not math.isfinite(pileup) or pileup < 0:
        raise ObjectivesError(f"pileup must be a finite value >= 0 (mean counts per cell), got {pileup}")
    rng = np.random.default_rng(seed)
    out = np.empty((rows, N_CELLS), dtype=np.float32)
    filled = 0
    while filled < rows:
        # Ask for a little more than needed: a few candidates end up all zero and are dropped.
        wanted = min(_MAX_BLOCK_ROWS, int((rows - filled) * 1.1) + 8)
        block = _econt_candidates(rng, wanted, pileup)
        block = block[block.sum(axis=1) > 0][: rows - filled]
        out[filled : filled + block.shape[0]] = block
        filled += block.shape[0]
    return out


def synth_waveform(rows: int, *, seed: int) -> np.ndarray:
    """Simulated fADC250 pulses: float32 (rows, 48), modelled on the six real examples.

    Model: a baseline drawn uniformly in [0.19, 0.22] plus a CR-RC^3 pulse ``(t/0.9)**3 * exp(-t/0.9)``
    (rise ~2 samples, tail ~8 samples) whose intended peak is sample 16..30 with a random sub-sample
    phase, Gaussian noise of 0.5-1.3 % (drawn per pulse), and the first sample raised by 0.025-0.07 as in
    every real dump. Each pulse is then scaled so that its highest sample is 0.99502 (so the peak is at
    sample 15..31). The integral ``sum(samples - baseline)`` is 2.8-3.4 (median 3.1), like the real pulses.
    Deterministic for a given (rows, seed). Raises ObjectivesError for rows < 1.
    """
    _check_rows(rows)
    rng = np.random.default_rng(seed)
    baseline = rng.uniform(0.19, 0.22, (rows, 1))
    peak = rng.integers(_PEAK_FIRST, _PEAK_LAST + 1, (rows, 1))
    phase = rng.random((rows, 1))
    # Shift the shaper's maximum (at t = power * tau) onto the intended sample, within +-0.5 samples.
    t = np.arange(_N_SAMPLES)[None, :] - peak + _SHAPE_POWER * _SHAPE_TAU + phase - 0.5
    positive = np.clip(t, 0.0, None)
    shape = (positive / _SHAPE_TAU) ** _SHAPE_POWER * np.exp(-positive / _SHAPE_TAU)
    shape /= shape.max(axis=1, keepdims=True)
    noise = rng.normal(0.0, 1.0, (rows, _N_SAMPLES)) * rng.uniform(0.005, 0.013, (rows, 1))
    pulse = baseline + (_PEAK_VALUE - baseline) * shape + noise
    pulse[:, 0] += rng.uniform(0.025, 0.07, rows)
    pulse *= _PEAK_VALUE / pulse.max(axis=1, keepdims=True)
    return pulse.astype(np.float32)
