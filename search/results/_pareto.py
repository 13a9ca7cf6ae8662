"""Pareto fronts and hypervolumes of finished trials, in any mix of minimised and maximised objectives.

Conventions shared by every function here:

- ``points`` is an ``(n, k)`` array-like of objective values, one row per trial, columns in the order of
  ``directions`` (``"minimize"`` / ``"maximize"``). ``n`` may be 0. NaN is refused (:class:`ParetoError`):
  NaN never enters an objective (the driver fails such trials), while ±inf is a legitimate value and is
  ordered like any number (a +inf in a minimised objective loses to every finite value).
- Dominance is the usual weak Pareto dominance: ``a`` dominates ``b`` when ``a`` is no worse in every
  objective and strictly better in at least one. Equal points do not dominate each other.
- The hypervolume is measured in *normalised* units: each objective is divided by ``scale`` (for example
  the reference values) before the volume is taken, so that an EMD near 1 and an operation count near 1e5
  weigh alike and hypervolumes of one sweep stay comparable over time (the driver stores the reference
  point and scale with the sweep). Without ``scale`` the volume is in raw units.

The heavy lifting is ``moocore`` (exact, O(n log n) for 2 and 3 objectives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import ArrayLike, NDArray

from search._types import Direction

_DIRECTIONS: tuple[Direction, ...] = ("minimize", "maximize")


class ParetoError(ValueError):
    """Malformed objective values, directions, reference point or scale."""


def _check_directions(directions: Sequence[str], n_objectives: int | None = None) -> NDArray[np.bool_]:
    """Return a boolean "is maximised" mask, validating every direction and the count."""
    if len(directions) == 0:
        raise ParetoError("directions is empty; give one of 'minimize'/'maximize' per objective")
    for direction in directions:
        if direction not in _DIRECTIONS:
            raise ParetoError(f"direction {direction!r} is not allowed; allowed: {', '.join(_DIRECTIONS)}")
    if n_objectives is not None and len(directions) != n_objectives:
        raise ParetoError(f"{len(directions)} directions given for points with {n_objectives} objectives")
    return np.array([d == "maximize" for d in directions], dtype=bool)


def _as_points(points: ArrayLike, directions: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Return ``points`` as a float (n, k) array and the maximise mask, refusing NaN and bad shapes."""
    array = np.asarray(points, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(directions))
    if array.ndim != 2:
        raise ParetoError(f"points must be a 2-D (n_trials, n_objectives) array, got shape {array.shape}")
    maximise = _check_directions(directions, array.shape[1])
    if np.isnan(array).any():
        rows = sorted({int(r) for r in np.argwhere(np.isnan(array))[:, 0]})
        raise ParetoError(f"points contain NaN in rows {rows}; NaN objective values are not allowed")
    return array, maximise


def _as_vector(values: Sequence[float], what: str, n_objectives: int) -> NDArray[np.float64]:
    vector = np.asarray(values, dtype=float)
    if vector.shape != (n_objectives,):
        raise ParetoError(f"{what} must have one value per objective ({n_objectives}), got {list(values)}")
    return vector


def pareto_front(points: ArrayLike, directions: Sequence[str]) -> NDArray[np.intp]:
    """Indices (ascending) of the rows of ``points`` that no other row dominates.

    Duplicated non-dominated rows are all kept (two trials with equal results are both on the front).
    Raises :class:`ParetoError` for NaN, a shape that does not match ``directions`` or an unknown direction.
    """
    array, maximise = _as_points(points, directions)
    if array.shape[0] == 0:
        return np.empty(0, dtype=np.intp)
    mask = moocore.is_nondominated(array, maximise=maximise, keep_weakly=True)
    return np.flatnonzero(mask)


def _minimisation_form(
    array: NDArray[np.float64],
    maximise: NDArray[np.bool_],
    reference: Sequence[float],
    scale: Sequence[float] | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (points, reference) negated where maximised and divided by ``scale``, all minimised."""
    n_objectives = array.shape[1]
    ref = _as_vector(reference, "reference", n_objectives)
    if not np.isfinite(ref).all():
        raise ParetoError(f"reference must be finite, got {list(reference)}")
    sign = np.where(maximise, -1.0, 1.0)
    if scale is None:
        divisor = np.ones(n_objectives)
    else:
        divisor = _as_vector(scale, "scale", n_objectives)
        if not (np.isfinite(divisor).all() and (divisor > 0).all()):
            raise ParetoError(f"scale must be finite and > 0 for every objective, got {list(scale)}")
    return array * sign / divisor, ref * sign / divisor


def hypervolume(
    points: ArrayLike,
    directions: Sequence[str],
    reference: Sequence[float],
    *,
    scale: Sequence[float] | None = None,
) -> float:
    """Volume of objective space dominated by ``points`` and bounded by ``reference``, in normalised units.

    Each objective is divided by ``scale`` (if given), so the result is the raw hypervolume divided by
    ``prod(scale)``. Points that do not strictly beat ``reference`` in every objective contribute 0; an
    infinitely good value in a point that otherwise beats the reference makes the volume ``inf``.
    Raises :class:`ParetoError` for NaN, a non-finite reference, a scale that is not finite and positive, or
    lengths that do not match ``directions``.
    """
    array, maximise = _as_points(points, directions)
    low, ref = _minimisation_form(array, maximise, reference, scale)
    inside = low[(low < ref).all(axis=1)]
    if inside.shape[0] == 0:
        return 0.0
    return _volume(inside, ref)


def _volume(inside: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """moocore's hypervolume of points that all beat ``ref``; a -inf coordinate (an infinitely good value)
    makes it infinite, decided here because moocore crashes on one with 3 or more objectives."""
    if np.isneginf(inside).any():
        return math.inf
    return float(moocore.hypervolume(inside, ref=ref))


def hypervolume_history(
    points: ArrayLike,
    directions: Sequence[str],
    reference: Sequence[float],
    *,
    scale: Sequence[float] | None = None,
) -> list[float]:
    """Running hypervolume after each row of ``points`` (given in trial completion order).

    Element ``i`` equals ``hypervolume(points[: i + 1], ...)``, so the list never decreases. Raises as
    :func:`hypervolume`.
    """
    array, maximise = _as_points(points, directions)
    low, ref = _minimisation_form(array, maximise, reference, scale)
    history: list[float] = []
    current = 0.0
    # The volume of a prefix is that of its non-dominated points inside the reference: keep only those, and
    # recompute only when a new point joins them (a dominated or outside point changes nothing). Linear in
    # the number of points times the size of the front; the checks run on tuples, far cheaper than numpy
    # calls on arrays of a few points.
    bound = tuple(ref.tolist())
    front: list[tuple[float, ...]] = []
    for point in map(tuple, low.tolist()):
        inside = all(p < b for p, b in zip(point, bound, strict=True))
        if inside and not any(all(f <= p for f, p in zip(kept, point, strict=True)) for kept in front):
            front = [kept for kept in front if not all(p <= f for p, f in zip(point, kept, strict=True))]
            front.append(point)
            current = _volume(np.array(front), ref)
        history.append(current)
    return history


def default_reference(points: ArrayLike, directions: Sequence[str], margin: float = 0.1) -> list[float]:
    """A reference point just beyond the worst finite value of each objective.

    Per objective, with ``worst``/``best`` the worst/best finite values: ``worst + margin * (worst - best)``
    for a minimised objective (``worst - margin * (best - worst)`` for a maximised one). When every finite
    value is equal the span is replaced by ``max(|worst|, 1)`` so the reference still lies strictly beyond.
    Every finite point therefore beats the reference (for ``margin > 0``), and infinitely bad values do not.
    Raises :class:`ParetoError` when an objective has no finite value, ``margin`` is negative or not finite,
    or as :func:`pareto_front`.
    """
    if not (np.isfinite(margin) and margin >= 0):
        raise ParetoError(f"margin must be finite and >= 0, got {margin!r}")
    array, maximise = _as_points(points, directions)
    reference: list[float] = []
    for column, is_max in enumerate(maximise):
        finite = array[:, column][np.isfinite(array[:, column])]
        if finite.size == 0:
            raise ParetoError(
                f"objective {column} ({directions[column]}) has no finite value among {array.shape[0]} "
                "points; a reference point needs at least one"
            )
        worst, best = (finite.min(), finite.max()) if is_max else (finite.max(), finite.min())
        span = abs(worst - best) or max(abs(worst), 1.0)
        reference.append(float(worst - margin * span if is_max else worst + margin * span))
    return reference
