"""Per-row normalisation and explicit, seeded data splits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from objectives._errors import ObjectivesError

NormMode = Literal["sumlog2", "max", "sum"]
NORM_MODES: tuple[str, ...] = ("sumlog2", "max", "sum")


def normalize(x: np.ndarray, mode: NormMode = "sumlog2") -> tuple[np.ndarray, np.ndarray]:
    """Scale every row of a 2-D array; returns ``(x / scale[:, None], scale)`` in x's float dtype.

    Modes: ``sumlog2`` divides by ``2**floor(log2(row sum))`` so each row sums to a value in [1, 2) (the
    ECON-T reference); ``max`` divides by the row maximum; ``sum`` by the row sum. A row whose scale would
    be 0 (all zeros) keeps scale 1 and stays zero. Raises ObjectivesError for an unknown mode or a non-2-D
    input.
    """
    if mode not in NORM_MODES:
        raise ObjectivesError(f"unknown normalisation mode {mode!r}; allowed: {', '.join(NORM_MODES)}")
    array = np.asarray(x)
    if array.ndim != 2:
        raise ObjectivesError(f"normalize expects a 2-D (rows, values) array, got shape {array.shape}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float64)
    wide = array.astype(np.float64)  # row sums of large counts in float32 would round
    if mode == "max":
        scale = wide.max(axis=1)
    else:
        scale = wide.sum(axis=1)
        if mode == "sumlog2":
            positive = scale > 0
            scale[positive] = np.exp2(np.floor(np.log2(scale[positive])))
    scale[scale == 0] = 1.0
    return (wide / scale[:, None]).astype(dtype), scale.astype(dtype)


def denormalize(xn: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Undo :func:`normalize`: multiply row i of ``xn`` (any trailing shape) by ``scale[i]``.

    Raises ObjectivesError when the number of scales differs from the number of rows.
    """
    array = np.asarray(xn)
    factors = np.asarray(scale)
    if factors.ndim != 1 or factors.shape[0] != array.shape[0]:
        raise ObjectivesError(
            f"denormalize needs one scale per row: {array.shape[0]} rows, scale {factors.shape}"
        )
    return array * factors.reshape((-1,) + (1,) * (array.ndim - 1)).astype(array.dtype, copy=False)


def split_indices(n: int, fractions: Sequence[float], *, seed: int | None) -> list[NDArray[np.int64]]:
    """Split ``range(n)`` into consecutive parts of the given fractions (which must sum to 1).

    ``seed=None`` keeps the order (the reference's "first 20 % is validation": ``fractions=(0.2, 0.8)``);
    an integer seed permutes first, reproducibly. Part sizes are rounded at the cumulative boundaries, so
    they always add up to n. Raises ObjectivesError for negative n, empty or negative fractions, or
    fractions whose sum is not 1.
    """
    if n < 0:
        raise ObjectivesError(f"split_indices needs n >= 0, got {n}")
    parts = [float(f) for f in fractions]
    if not parts or any(not math.isfinite(f) or f < 0 for f in parts):
        raise ObjectivesError(f"fractions must be one or more finite values >= 0, got {list(fractions)}")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise ObjectivesError(f"fractions must sum to 1, got {list(fractions)} (sum {sum(parts):.6g})")
    order = np.arange(n, dtype=np.int64) if seed is None else np.random.default_rng(seed).permutation(n)
    bounds = np.rint(np.cumsum(parts) * n).astype(np.int64)
    bounds[-1] = n
    return [order[start:stop] for start, stop in zip(np.concatenate(([0], bounds[:-1])), bounds, strict=True)]
