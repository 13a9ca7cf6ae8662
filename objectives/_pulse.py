"""Quality metrics of the waveform task: 1-D EMD between pulses and the pulse-integral error."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from objectives._errors import ObjectivesError

_BASELINE_SAMPLES = 10  # pulses peak at sample 15 or later, so the first 10 samples are pedestal


def _pulse_pair(x: object, y: object, what: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    inputs = np.asarray(x, dtype=np.float64)
    outputs = np.asarray(y, dtype=np.float64)
    if inputs.ndim != 2 or inputs.shape[0] == 0 or inputs.shape != outputs.shape:
        raise ObjectivesError(
            f"{what} needs two (N, samples) arrays of the same shape with N >= 1, "
            f"got {inputs.shape} and {outputs.shape}"
        )
    for name, array in (("input", inputs), ("output", outputs)):
        if not np.isfinite(array).all():
            row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
            raise ObjectivesError(f"{what}: {name} row {row} holds NaN or inf")
    return inputs, outputs


def emd_1d(x: object, y: object) -> np.ndarray:
    """Per-row 1-D EMD between pulses ``x`` and ``y`` (N, S) with samples at positions 0..S-1.

    Each pulse is normalised to unit sum; the distance is the L1 norm of the difference of the
    cumulative sums (the closed form of the 1-D Wasserstein-1 distance). Rows where either pulse sums
    to 0 get NaN. Raises ObjectivesError for mismatched or empty shapes, NaN/inf or negative samples.
    """
    inputs, outputs = _pulse_pair(x, y, "emd_1d")
    if (inputs < 0).any() or (outputs < 0).any():
        raise ObjectivesError("emd_1d needs non-negative samples (a pulse is a distribution of charge)")
    input_sums = inputs.sum(axis=1, keepdims=True)
    output_sums = outputs.sum(axis=1, keepdims=True)
    valid = (input_sums[:, 0] > 0) & (output_sums[:, 0] > 0)
    values = np.full(inputs.shape[0], np.nan)
    cumulative_in = np.cumsum(inputs[valid] / input_sums[valid], axis=1)
    cumulative_out = np.cumsum(outputs[valid] / output_sums[valid], axis=1)
    values[valid] = np.abs(cumulative_in - cumulative_out).sum(axis=1)
    return values


def integral_error(x: object, y: object) -> tuple[float, float]:
    """Mean and std (population) over pulses of the integral error in %, reconstruction ``y`` vs input ``x``.

    The integral is ``sum(samples - baseline)`` with the baseline estimated per pulse as the median of
    the input's first 10 samples (robust to the raised first sample of fADC250 dumps). The same baseline
    serves input and reconstruction, so the error ``100 * (sum(y) - sum(x)) / integral(x)`` measures
    charge gained or lost and not the noise of a second baseline estimate, which 48 samples would amplify.
    Raises ObjectivesError for mismatched shapes, fewer than 11 samples, NaN/inf, or an input pulse whose
    integral is not positive (no pulse to compare).
    """
    inputs, outputs = _pulse_pair(x, y, "integral_error")
    if inputs.shape[1] <= _BASELINE_SAMPLES:
        raise ObjectivesError(
            f"integral_error needs more than {_BASELINE_SAMPLES} samples, got {inputs.shape[1]}"
        )
    baseline = np.median(inputs[:, :_BASELINE_SAMPLES], axis=1)
    integral = inputs.sum(axis=1) - inputs.shape[1] * baseline
    if (integral <= 0).any():
        row = int(np.flatnonzero(integral <= 0)[0])
        raise ObjectivesError(
            f"integral_error: input row {row} has integral {integral[row]:.4g} <= 0 above its baseline"
        )
    error = 100.0 * (outputs.sum(axis=1) - inputs.sum(axis=1)) / integral
    return float(error.mean()), float(error.std())
