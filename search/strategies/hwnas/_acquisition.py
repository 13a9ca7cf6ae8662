"""Step 3: the acquisition, expected hypervolume improvement (EHVI) over the observed front.

The EHVI mathematics (exact for one quality objective, Monte-Carlo for several), the dominance rule (never
propose a candidate whose known cost and predicted quality a front member's weakly dominate) and the greedy
batch selection ("kriging believer"; space-filling while there is no model). :class:`_Selection` is the
layer of :class:`HwnasStrategy` that picks the proposals of an ask from its candidate pool.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from search.strategies.hwnas._candidates import _Candidate, _Record
from search.strategies.hwnas._models import QualityModel, _Modelling

log = logging.getLogger(__name__)

_REF_MARGIN = 0.1  # reference point without one given: the front's nadir + this fraction of the range
_MC_SAMPLES = 32
_MC_MAX_CANDIDATES = 128
_CELL_CHUNK = 1_000_000  # candidates x cells evaluated at once by the exact EHVI
_TIE_TOLERANCE = 1e-9
_FEATURE_WEIGHT = 0.25  # weight of config distance next to cost distance in space-filling draws


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def expected_improvement(threshold: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """E[max(0, threshold - Q)] for Q ~ N(mean, std²) (broadcast); std 0 gives max(0, threshold - mean)."""
    from scipy.special import ndtr  # imported when first needed: scipy.special takes ~0.2 s

    gap = threshold - mean
    safe = np.where(std > 0, std, 1.0)
    z = gap / safe
    value = gap * ndtr(z) + safe * _phi(z)
    return np.where(std > 0, np.maximum(value, 0.0), np.maximum(gap, 0.0))


def exact_ehvi(
    costs: np.ndarray, mean: np.ndarray, std: np.ndarray, front: np.ndarray, ref: np.ndarray
) -> np.ndarray:
    """Expected hypervolume improvement of candidates with exact ``costs`` (n, k) and one normal quality
    (``mean``, ``std``: (n,)) over ``front`` (p, k + 1; quality last), all minimised, below ``ref`` (k + 1).

    The improvement of a point (c, q) is the integral over cost points x >= c (inside the box) of
    max(0, t(x) - q), with t(x) the best front quality at cost <= x (or the reference). t is constant on the
    cells of the grid of front coordinates, so the expectation is a sum of cell volume x expected improvement.
    """
    n, k = costs.shape
    ref_q = float(ref[k])
    inside = front[np.all(front < ref, axis=1)] if len(front) else front.reshape(0, k + 1)
    if k == 0:
        threshold = min(ref_q, float(inside[:, 0].min())) if len(inside) else ref_q
        return expected_improvement(np.asarray(threshold), mean, std)
    grids = []
    for j in range(k):
        low = min(float(ref[j]), float(costs[:, j].min()), *(float(v) for v in inside[:, j]))
        grids.append(np.unique(np.concatenate([[low], inside[:, j], [float(ref[j])]])))
    if any(len(grid) < 2 for grid in grids):
        return np.zeros(n)
    thresholds = np.full(tuple(len(grid) - 1 for grid in grids), ref_q)
    for point in inside:
        index = tuple(int(np.searchsorted(grid, point[j])) for j, grid in enumerate(grids))
        thresholds[index] = min(thresholds[index], float(point[k]))
    for axis in range(k):
        thresholds = np.minimum.accumulate(thresholds, axis=axis)
    lengths = [
        np.clip(grid[None, 1:] - np.maximum(costs[:, j : j + 1], grid[None, :-1]), 0.0, None)
        for j, grid in enumerate(grids)
    ]
    cells = thresholds.size
    result = np.empty(n)
    step = max(1, _CELL_CHUNK // max(cells, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        volume = lengths[0][start:stop]
        for j in range(1, k):
            volume = volume[..., None] * lengths[j][start:stop].reshape((stop - start,) + (1,) * j + (-1,))
        shape = (stop - start,) + (1,) * k
        gain = expected_improvement(
            thresholds[None, ...], mean[start:stop].reshape(shape), std[start:stop].reshape(shape)
        )
        result[start:stop] = (volume * gain).reshape(stop - start, -1).sum(axis=1)
    return result


def _hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    import moocore

    inside = points[np.all(points < ref, axis=1)]
    if not len(inside):
        return 0.0
    return float(moocore.hypervolume(inside, ref=ref))


def _improvement(point: np.ndarray, front: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume improvement of ``point`` over ``front`` below ``ref`` (minimised)."""
    if not np.all(point < ref):
        return 0.0
    box = float(np.prod(ref - point))
    if not len(front):
        return box
    return box - _hypervolume(np.maximum(front, point[None, :]), ref)


def monte_carlo_ehvi(
    costs: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    front: np.ndarray,
    ref: np.ndarray,
    draws: np.ndarray,
) -> np.ndarray:
    """EHVI of candidates with exact ``costs`` (n, k) and independent normal qualities (n, Q), estimated with
    the standard normal ``draws`` (S, Q) shared by all candidates (common random numbers)."""
    n = len(costs)
    result = np.zeros(n)
    for i in range(n):
        samples = mean[i][None, :] + std[i][None, :] * draws
        points = np.hstack([np.repeat(costs[i][None, :], len(draws), axis=0), samples])
        result[i] = float(np.mean([_improvement(point, front, ref) for point in points]))
    return result


def _dominated_by(candidates: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Rows of ``candidates`` (n, m) weakly dominated by some row of ``front`` (p, m), all minimised."""
    if not len(front) or not len(candidates):
        return np.zeros(len(candidates), dtype=bool)
    return np.any(np.all(front[None, :, :] <= candidates[:, None, :], axis=2), axis=1)


def _non_dominated(points: np.ndarray) -> np.ndarray:
    """The rows of ``points`` no other row dominates (minimised); duplicates keep one copy."""
    if len(points) <= 1:
        return points
    points = np.unique(points, axis=0)
    le = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    lt = np.any(points[:, None, :] < points[None, :, :], axis=2)
    dominated = np.any(le & lt, axis=0)
    return points[~dominated]


def _min_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``points`` to its nearest row of ``others`` (inf without any)."""
    if not len(others) or points.shape[1] == 0:
        return np.full(len(points), np.inf if len(others) == 0 else 0.0)
    diff = points[:, None, :] - others[None, :, :]
    return np.sqrt(np.min(np.sum(diff * diff, axis=2), axis=1))


def _best_predicted(distance: np.ndarray, unit_mean: np.ndarray) -> int:
    """The farthest candidate; among the equally far ones (one architecture with several training
    settings), the one with the best predicted qualities (their normalised sum, minimised)."""
    top = np.max(distance)
    ties = distance >= top - _TIE_TOLERANCE * max(abs(top), 1e-300)
    quality = unit_mean.sum(axis=1) if unit_mean.shape[1] else np.zeros(len(distance))
    return int(np.argmin(np.where(ties, quality, np.inf)))


class _Selection(_Modelling):
    """The choice of the proposals of an ask among the candidates (a layer of :class:`HwnasStrategy`)."""

    _explorations: int  # picks made space-filling because every candidate was dominated
    _draws: np.ndarray  # standard normal draws shared by the Monte-Carlo EHVI

    def _select(
        self, pool: list[_Candidate], n: int, model: QualityModel | None, *, explore: bool = False
    ) -> list[_Candidate]:
        """The ask's picks: by EHVI, or with ``explore`` (an interleaved exploration) the undominated
        candidates farthest from every known config; space-filling without a model."""
        pool = self._inside_reference(pool)
        if not pool:
            return []
        k = len(self._cost_names)
        costs = np.array([c.costs for c in pool]).reshape(len(pool), k)
        features = self._encoder.encode([c.config for c in pool])
        known = [
            (r.config, row)
            for r in self._records
            if r.kind != "rejected" and (row := self._known_costs(r)) is not None
        ]
        pending = [(config, self._pending_cost(config)) for config in self._pending_configs.values()]
        known_configs = [config for config, _ in known + pending]
        known_costs = np.array([row for _, row in known + pending]).reshape(len(known_configs), k)
        known_features = (
            self._encode_known(known_configs) if known_configs else np.zeros((0, features.shape[1]))
        )
        low = np.min(np.vstack([costs, known_costs]), axis=0) if k else np.zeros(0)
        high = np.max(np.vstack([costs, known_costs]), axis=0) if k else np.zeros(0)
        cost_scale = np.where(high > low, high - low, 1.0)
        unit_costs = (costs - low) / cost_scale
        unit_known = (known_costs - low) / cost_scale
        # Distances between configs (space-filling, exploration, ties) are measured over the architecture:
        # spreading training settings would push them to the ends of their ranges (a maximin draw picked
        # lr at its bound 1e-3 in 11 of 37 trials of a real ttbar sweep), where a short run learns least.
        apart = self._encoder.architecture(features, self._training)
        apart_known = self._encoder.architecture(known_features, self._training)
        width = math.sqrt(max(apart.shape[1], 1))
        if model is None and self._quality_names:
            return self._space_filling(pool, n, unit_costs, unit_known, apart, apart_known)
        return self._by_ehvi(
            pool, n, model, costs, unit_costs, unit_known, features, apart, apart_known, width, explore
        )

    def _inside_reference(self, pool: list[_Candidate]) -> list[_Candidate]:
        """The candidates whose exact costs are better than the reference point's cost coordinates, or the
        whole pool if none is. A candidate at or past the reference on a cost axis can add no hypervolume
        whatever its quality: dropping it keeps space-filling draws, and their training time, in the box."""
        if self.reference_point is None or not pool:
            return pool
        bounds = [
            (j, self._sign[name] * math.log10(1.0 + max(float(self.reference_point[name]), 0.0)))
            for j, name in enumerate(self._cost_names)
            if name in self.reference_point
        ]
        inside = [c for c in pool if all(c.costs[j] < bound for j, bound in bounds)]
        return inside or pool

    def _space_filling(
        self,
        pool: list[_Candidate],
        n: int,
        unit_costs: np.ndarray,
        unit_known: np.ndarray,
        features: np.ndarray,
        known_features: np.ndarray,
    ) -> list[_Candidate]:
        """Greedy maximin: each pick is the candidate farthest (in cost and architecture) from every known,
        pending and picked config.
        The ends of the pool's cost range count as known, so the first picks split the range inside instead
        of going to its ends: the cheapest architectures are the ones that learn least, and the dearest the
        slowest to train while adding least hypervolume on a log-cost axis."""
        width = math.sqrt(max(features.shape[1], 1))
        chosen: list[int] = []
        k = unit_costs.shape[1]
        used_costs = np.vstack([unit_known, np.zeros((1, k)), np.ones((1, k))])
        used_features = known_features
        weight = _FEATURE_WEIGHT if unit_costs.shape[1] else 1.0
        for _ in range(min(n, len(pool))):
            score = weight * _min_distance(features, used_features) / width
            if unit_costs.shape[1]:
                score = score + _min_distance(unit_costs, used_costs)
            score[chosen] = -np.inf
            best = int(np.argmax(score))
            chosen.append(best)
            used_costs = np.vstack([used_costs, unit_costs[best : best + 1]])
            used_features = np.vstack([used_features, features[best : best + 1]])
        return [pool[i] for i in chosen]

    def _by_ehvi(
        self,
        pool: list[_Candidate],
        n: int,
        model: QualityModel | None,
        costs: np.ndarray,
        unit_costs: np.ndarray,
        unit_known: np.ndarray,
        features: np.ndarray,
        apart: np.ndarray,
        apart_known: np.ndarray,
        width: float,
        explore: bool,
    ) -> list[_Candidate]:
        k = len(self._cost_names)
        q = len(self._quality_names)
        if model is not None:
            with_costs = np.hstack([features, costs])
            mean, std = model.predict(with_costs)
            # What a trial is expected to add to the front per second of the clock it takes.
            weight = (1.0 - self._miss_probability(with_costs)) / self._relative_seconds(with_costs)
        else:
            mean, std = np.zeros((len(pool), 0)), np.zeros((len(pool), 0))
            weight = np.ones(len(pool))
        # The observed front in objective order (costs transformed), then reordered as costs + qualities.
        front = self._front_records()
        front_points = np.array(
            [
                [
                    *self._transform_costs(r.values),
                    *(self._sign[name] * r.values[name] for name in self._quality_names),
                ]
                for r in front
            ]
        ).reshape(len(front), k + q)
        believers = np.zeros((0, k + q))
        if self._pending_configs and model is not None:
            configs = list(self._pending_configs.values())
            pending_costs = np.array([self._pending_cost(c) for c in configs]).reshape(len(configs), k)
            pending_mean, _ = model.predict(np.hstack([self._encode_known(configs), pending_costs]))
            believers = np.hstack([pending_costs, pending_mean])
        elif self._pending_configs:
            configs = list(self._pending_configs.values())
            believers = np.array([self._pending_cost(c) for c in configs]).reshape(len(configs), k)
        # Normalisation and reference point.
        everything = np.vstack([front_points, believers, np.hstack([costs, mean])])
        low = everything.min(axis=0)
        high = everything.max(axis=0)
        scale = np.where(high > low, high - low, 1.0)
        nadir = front_points.max(axis=0) if len(front_points) else high
        ref = (nadir - low) / scale + _REF_MARGIN
        if self.reference_point is not None:
            order = [*self._cost_names, *self._quality_names]
            for position, name in enumerate(order):
                if name in self.reference_point:
                    value = float(self.reference_point[name])
                    if position < k:
                        value = self._sign[name] * math.log10(1.0 + max(value, 0.0))
                    else:
                        value = self._sign[name] * value
                    ref[position] = (value - low[position]) / scale[position]
        unit_front = (front_points - low) / scale
        unit_believers = (believers - low) / scale
        unit_c = (costs - low[:k]) / scale[:k]
        unit_mean = (mean - low[k:]) / scale[k:]
        unit_std = std / scale[k:]
        # Never propose a config whose cost and predicted quality a front member's cost and predicted
        # quality weakly dominate. Model against model: a front member's observed quality is the luckier
        # of the noisy draws (that is how it got on the front), and a regressor's mean for a new config
        # is pulled towards the average, so measured against the observed values nearly every candidate
        # between front members would be closed and only the ones cheaper than the whole front stay open.
        # Without a known cost axis the rule would read "never propose below the best mean", which a forest
        # (whose means stay inside the observed range) nearly always meets: there the EHVI alone decides.
        if k:
            dominated = _dominated_by(
                np.hstack([unit_c, unit_mean]), self._predicted_front(front, model, low, scale)
            )
        else:
            dominated = np.zeros(len(pool), dtype=bool)
        chosen: list[int] = []
        used_costs = unit_known
        used_features = apart_known
        extra = unit_believers
        for _ in range(min(n, len(pool))):
            current = (
                _non_dominated(np.vstack([unit_front, extra])) if len(unit_front) + len(extra) else unit_front
            )
            open_ = ~dominated
            open_[chosen] = False
            spread = (
                _min_distance(unit_costs, used_costs) if k else _min_distance(apart, used_features) / width
            )
            far = _FEATURE_WEIGHT * _min_distance(apart, used_features) / width  # with spread: space-filling
            if not open_.any() and chosen:
                break  # the rest of the batch would be dominated: propose fewer, the next ask draws anew
            if not open_.any():
                log.info("strategy 'hwnas': every candidate is dominated at its predicted quality; exploring")
                self._explorations += 1
                remaining = np.ones(len(pool), dtype=bool)
                remaining[chosen] = False
                if not remaining.any():
                    break
                best = _best_predicted(np.where(remaining, far + spread, -np.inf), unit_mean)
            elif explore:
                best = _best_predicted(np.where(open_, far + spread, -np.inf), unit_mean)
            else:
                score = self._acquisition(unit_c, unit_mean, unit_std, current, ref, open_, weight)
                top = np.max(score[open_])
                ties = open_ & (score >= top - _TIE_TOLERANCE * max(abs(top), 1e-300))
                best = int(np.argmax(np.where(ties, spread, -np.inf)))
            chosen.append(best)
            used_costs = np.vstack([used_costs, unit_costs[best : best + 1]])
            used_features = np.vstack([used_features, apart[best : best + 1]])
            extra = np.vstack([extra, np.hstack([unit_c[best], unit_mean[best]])[None, :]])
        return [pool[i] for i in chosen]

    def _predicted_front(
        self, front: list[_Record], model: QualityModel | None, low: np.ndarray, scale: np.ndarray
    ) -> np.ndarray:
        """The front members at their known costs and their predicted qualities (the told ones without a
        model), normalised as the candidates are."""
        k = len(self._cost_names)
        costs = np.array([self._transform_costs(r.values) for r in front]).reshape(len(front), k)
        if model is None:
            qualities = np.array(
                [[self._sign[name] * r.values[name] for name in self._quality_names] for r in front]
            ).reshape(len(front), len(self._quality_names))
        else:
            # The model's cost features are the ones it was fitted on (the oracle's, else the told ones).
            fitted = [self._record_costs(r) for r in front]
            features = np.array([c if c is not None else t for c, t in zip(fitted, costs, strict=True)])
            qualities = model.predict(
                np.hstack([self._encode_known([r.config for r in front]), features.reshape(len(front), k)])
            )[0]
        return (np.hstack([costs, qualities]) - low) / scale

    def _acquisition(
        self,
        costs: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        front: np.ndarray,
        ref: np.ndarray,
        open_: np.ndarray,
        weight: np.ndarray,
    ) -> np.ndarray:
        """EHVI of the open candidates (the others score -inf), times each one's ``weight``: its probability
        of not missing (a pruned or collapsed trial improves no front, so the EHVI of the model's
        prediction, made from trials that trained, is what a trial gains when it trains) over its predicted
        wall time relative to the median trial's."""
        score = np.full(len(costs), -np.inf)
        index = np.flatnonzero(open_)
        k, q = costs.shape[1], mean.shape[1]
        if q == 1:
            score[index] = exact_ehvi(costs[index], mean[index, 0], std[index, 0], front, ref) * weight[index]
        elif q == 0:
            score[index] = [_improvement(costs[i], front, ref) for i in index]
        else:
            # Rank by the sum of per-quality exact EHVIs, then estimate the joint EHVI for the best ones.
            proxy = np.zeros(len(index))
            for j in range(q):
                columns = [*range(k), k + j]
                sub_front = _non_dominated(front[:, columns]) if len(front) else front[:, columns]
                proxy += exact_ehvi(costs[index], mean[index, j], std[index, j], sub_front, ref[columns])
            best = index[np.argsort(-proxy * weight[index], kind="stable")[:_MC_MAX_CANDIDATES]]
            score[index] = -1.0  # below every estimate, above the closed candidates
            score[best] = weight[best] * monte_carlo_ehvi(
                costs[best], mean[best], std[best], front, ref, self._draws[:, :q]
            )
        return score
