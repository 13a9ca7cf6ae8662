"""The ``hwnas`` strategy: Bayesian search that uses what is known exactly (meant to be the default).

Hardware cost objectives (``ops``, ``bops``, ``latency_ns``, ... and ``model_kb``) are exact functions of the
config, known from the sweep's cost oracle in ~50 ms without training; only quality (``emd_mean``, ...) is
unknown. General-purpose optimisers model the costs as if they were noisy unknowns too. This strategy
models only quality and treats costs as the known coordinates they are (the Sherlock idea of Pareto active
learning over a pool, with exact cost axes). Each ``ask``:

1. **Candidate pool.** Architectures already costed (the *archive*) are recombined with fresh training
   settings (``training_params``, default lr, batch_size, l1_reg, l1: the cost does not depend on them, so
   such candidates cost nothing to price), training settings of front members are perturbed, and at most
   ``cost_calls`` new architectures are costed per ask: random draws until there is a front, then nine
   times in ten a mutation of a front member's architecture (one or two parameters stepped along their
   domain or redrawn; layers appearing or vanishing get drawn or dropped parameters), else a draw. Every
   candidate is validated (infeasible ones dropped) and deduplicated by canonical config against
   everything asked or observed: two trials never share architecture *and* training settings. Costs are
   cached by architecture; architectures the oracle rejects (over a budget, not convertible) are never
   proposed. The first ask costs up to ``8 * cost_calls`` architectures; when the archive is still empty
   it keeps costing until one is accepted, and after 64 rejections in a row without any accepted
   architecture it raises :class:`StrategyError` ("every candidate is rejected ...") instead of searching
   forever.
2. **Quality model.** A regressor of the quality objectives over an encoding of the conditional config
   (each parameter scaled to [0, 1], log parameters on a log scale, unordered choices one-hot; an inactive
   parameter takes the neutral 0.5 and each distinct activation condition gets a 0/1 indicator), plus the
   exact log-costs as features (quality correlates with size). ``model``: ``rf`` (random forest, the mean
   and spread over its trees) or ``gp`` (isotropic Matern-5/2 Gaussian process with a noise term).
3. **Acquisition.** Expected hypervolume improvement over the observed front, in a normalised space (costs
   as log10(1 + cost), each axis scaled by the observed range) with the sweep's reference point or, without
   one, the front's nadir plus 10 % of the range. For one quality objective the EHVI is exact and cheap: the
   front splits cost space into cells with a known quality threshold, and the EHVI is the sum over the cells
   the candidate dominates of cell volume times the expected improvement below the threshold. For several
   quality objectives it is a Monte-Carlo estimate (32 common random draws, hypervolumes by ``moocore``).
   Candidates whose known cost is weakly dominated by an observed front member with an equal or better
   quality than the candidate's predicted mean are never proposed (with at least one cost objective). Ties
   (e.g. no improvement expected anywhere) go to the candidate farthest along the cost axes from every
   known and pending config. A batch
   (``ask(n)`` with n > 1, and proposals still pending) is chosen greedily, each pick entering the front at
   its predicted mean ("kriging believer"), so a batch spreads instead of piling up.

Until ``n_initial`` trials have completed (and whenever the model cannot be fitted: logged as a warning,
e.g. every finished trial failed) proposals are space-filling: the candidate farthest, in normalised
log-cost (plus a quarter weight of config distance), from every known config, which stratifies the first
trials along the cost axes. When the undominated candidates run out within a batch, the batch is cut
short (the next ask draws a new pool). Only if every candidate of an ask is dominated (the model expects no
improvement anywhere in the pool) is its first proposal space-filling, logged at INFO and counted in
``state_dict()["dominated_explorations"]``: an ask must propose something, and exploring is then the only
informative move.

The oracle must price a config as it will be trained: with ``sparsity`` > 0 the final ``bops``,
``nonzero_params`` and ``model_kb`` are those of the pruned model (the econt baseline at sparsity 0.5:
bops 939,588 before pruning, 529,988 with the masks at the target sparsity, which is what
``Autoencoder.before_epoch(E, E)`` applies before the estimate). An oracle that prices the unpruned model
makes sparse candidates look dearer than their trials turn out (the front uses the told values).

Without a cost oracle (``costs=None``) every objective is modelled and candidates are encoded without cost
features; the rest is the same.

How every outcome reaches the strategy (one policy, here):

=============  ==============================================================================================
Outcome        hwnas
=============  ==============================================================================================
Completed      enters the quality model and the front (finite values); a quality of ±inf (diverged) is
               treated as Failed.
Pruned         enters the quality model with its partial quality (training was cut short because it ranked
               badly, so the partial value is a pessimistic estimate), or as Failed without one; never the
               front (partial fidelity).
Failed         enters the quality model with the worst completed quality of each objective: a collapsed or
               crashed config is bad, not unknown, so the model learns to avoid its region. Not re-proposed.
Rejected       never trained, not quality data. Its config is never proposed again; with a cost oracle its
               architecture is banned too (a proposal is feasible, so the driver rejected it for a budget or
               a failed conversion, which no training setting changes; an observed one unless the space's
               constraints explain it).
=============  ==============================================================================================

Resume: ``observe`` records the trial exactly as ``tell`` would (model data, front, dedup set), so after a
resume no observed config is proposed again. A completed trial's told costs become its architecture's
cached cost (no oracle call); an architecture known only from failed or pruned trials is priced by the
oracle when the model is first fitted.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from search._types import Completed, Failed, Objective, Outcome, Proposal, Pruned, Rejected
from search.strategies._base import CostOracle, Strategy, StrategyError, _Option, register_strategy
from spaces import BoolParam, ChoiceParam, FloatParam, Infeasible, IntParam, Param, Space

log = logging.getLogger(__name__)

DEFAULT_TRAINING_PARAMS = ("lr", "batch_size", "l1_reg", "l1")
MODELS = ("rf", "gp")
_DEFAULT_TREES = 32  # sklearn fits a tree in ~2-4 ms here: 32 keep an ask well under 0.3 s
_REJECTION_LIMIT = 64  # consecutive oracle rejections without any accepted architecture: give up
_FIRST_ASK_FACTOR = 8  # the first ask costs this many times cost_calls architectures
_REF_MARGIN = 0.1  # reference point without one given: the front's nadir + this fraction of the range
_MC_SAMPLES = 32
_MC_MAX_CANDIDATES = 128
_CELL_CHUNK = 1_000_000  # candidates x cells evaluated at once by the exact EHVI
_TIE_TOLERANCE = 1e-9
_FEATURE_WEIGHT = 0.25  # weight of config distance next to cost distance in space-filling draws
_NEUTRAL = 0.5
_MUTATION_SHARE = 0.9  # new architectures once there is a front: mutations of its members, else draws
# A forest refits every tree while it has fewer rows than this (each result matters then: partial refits
# cost hypervolume on the toy problem of the tests), or once the data grew by _REFIT_GROWTH since the last
# full fit; otherwise a quarter of its trees.
_ROLLING_FROM = 64
_REFIT_GROWTH = 1.2


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


class ConfigEncoder:
    """Fixed-width numeric features of canonical configs of a conditional space.

    Numbers (int, float, ordered choice index) scale to [0, 1] (log parameters on a log scale); unordered
    choices are one-hot; bools are 0/1. An inactive parameter takes the neutral 0.5 (one-hot: all zeros),
    and every distinct activation condition has one 0/1 indicator column, so an absent layer carries no
    misleading value.
    """

    def __init__(self, space: Space) -> None:
        self._columns: list[tuple[Param, int]] = []
        width = 0
        conditions: dict[Any, int] = {}
        self._indicators: list[tuple[Param, int]] = []
        for param in space.params:
            self._columns.append((param, width))
            width += self._width(param)
            if param.conditions and param.conditions not in conditions:
                conditions[param.conditions] = width
                self._indicators.append((param, width))
                width += 1
        self.width = width

    @staticmethod
    def _width(param: Param) -> int:
        if isinstance(param, ChoiceParam) and not param.ordered:
            return len(param.choices)
        return 1

    @staticmethod
    def _scaled(param: Param, value: Any) -> float:
        if isinstance(param, BoolParam):
            return float(bool(value))
        if isinstance(param, ChoiceParam):  # ordered
            index = next(i for i, choice in enumerate(param.choices) if choice == value)
            return index / (len(param.choices) - 1) if len(param.choices) > 1 else _NEUTRAL
        assert isinstance(param, IntParam | FloatParam)
        low, high, number = float(param.low), float(param.high), float(value)
        if param.log:
            low, high, number = math.log(low), math.log(high), math.log(number)
        return (number - low) / (high - low) if high > low else _NEUTRAL

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros((len(configs), self.width))
        for row, config in enumerate(configs):
            for param, column in self._columns:
                if param.name not in config:
                    if self._width(param) == 1:
                        out[row, column] = _NEUTRAL
                    continue
                value = config[param.name]
                if isinstance(param, ChoiceParam) and not param.ordered:
                    index = next(i for i, choice in enumerate(param.choices) if choice == value)
                    out[row, column + index] = 1.0
                else:
                    out[row, column] = self._scaled(param, value)
            for param, column in self._indicators:
                out[row, column] = float(param.name in config)
        return out


class QualityModel:
    """A regressor of the quality objectives: ``rf`` (a random forest of bootstrapped, multi-output
    scikit-learn trees, each split over half the features; mean and spread over the trees) or ``gp`` (one
    isotropic Matern-5/2 Gaussian process with a noise term per objective, scikit-learn)."""

    def __init__(self, kind: str, seed: int, trees: int) -> None:
        self.kind = kind
        self.seed = seed
        self.trees = trees
        self._models: list[Any] = []
        self._full_rows = 0
        self._shape: tuple[int, int] = (0, 0)
        self._next_tree = 0

    def fit(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Fit on all the data (a forest may keep some trees of the previous fit, see ``_fit_forest``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny data sets
            if self.kind == "rf":
                self._fit_forest(features, targets)
            else:
                self._models = [self._fit_gp(features, targets[:, j]) for j in range(targets.shape[1])]

    def _fit_forest(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Fit the forest, tree by tree (what RandomForestRegressor does) with the input checks done once
        instead of per tree: they cost more than fitting a tree on a few hundred rows.

        From 64 rows on, refits are incremental: while the data has grown by less than a fifth since the
        last full fit, only the quarter of the trees fitted longest ago is refitted (on all the data), so a
        refit after each trial costs a quarter of a full one and no tree lags more than four refits behind."""
        from sklearn.tree import DecisionTreeRegressor

        rows = len(features)
        x = np.ascontiguousarray(features, dtype=np.float32)
        y = np.ascontiguousarray(targets, dtype=np.float64)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or rows < 2:
            raise ValueError(f"a forest needs >= 2 rows of finite values, got {rows} rows")
        shape = (x.shape[1], y.shape[1])
        full = (
            len(self._models) != self.trees
            or shape != self._shape
            or rows < _ROLLING_FROM
            or rows >= _REFIT_GROWTH * self._full_rows
        )
        if full:
            self._models = [None] * self.trees
            self._full_rows, self._shape, self._next_tree = rows, shape, 0
            order = range(self.trees)
        else:
            order = range(self._next_tree, self._next_tree + max(1, self.trees // 4))
        for position in order:
            index = position % self.trees
            rng = np.random.default_rng([self.seed, rows, index])
            sample = rng.integers(0, rows, rows)
            tree = DecisionTreeRegressor(max_features=0.5, random_state=int(rng.integers(0, 2**31)))
            tree.fit(x[sample], y[sample], check_input=False)
            self._models[index] = tree
        if not full:
            self._next_tree = (self._next_tree + max(1, self.trees // 4)) % self.trees

    def reset(self) -> None:
        """Forget every fitted regressor (the next fit is a full one)."""
        self._models = []
        self._full_rows = 0

    def _fit_gp(self, features: np.ndarray, target: np.ndarray) -> Any:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        # Isotropic: an ARD kernel over the ~45 encoded dimensions of the econt space took seconds per fit
        # here, against a few hundredths of a second for three hyperparameters.
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=1.0, length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(1e-2, (1e-6, 1.0))
        model = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=self.seed)
        model.fit(features, target)
        return model

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation, each (rows, quality objectives)."""
        if self.kind == "rf":
            x = np.ascontiguousarray(features, dtype=np.float32)
            per_tree = np.stack(
                [tree.predict(x, check_input=False).reshape(len(x), -1) for tree in self._models]
            )
            return per_tree.mean(axis=0), per_tree.std(axis=0)
        means, stds = [], []
        for model in self._models:
            mean, std = model.predict(features, return_std=True)
            means.append(mean)
            stds.append(std)
        return np.stack(means, axis=1), np.stack(stds, axis=1)


@dataclass
class _Record:
    """A finished trial the strategy knows of: canonical config, outcome kind and told values."""

    config: dict[str, Any]
    kind: str
    values: dict[str, float]


@dataclass
class _Candidate:
    config: dict[str, Any]
    hash: str
    costs: np.ndarray  # transformed (oriented log) costs, one per cost objective


@register_strategy
class HwnasStrategy(Strategy):
    """Exact costs + a quality model + EHVI over a pool of costed candidates; see the module docstring."""

    name = "hwnas"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "n_initial": _Option(10, int, minimum=2),
        "n_candidates": _Option(256, int, minimum=8),
        "cost_calls": _Option(1, int, minimum=1),
        "model": _Option("rf", str, choices=MODELS),
        "trees": _Option(None, int, minimum=4, optional=True),
        "training_params": _Option(None, list, optional=True),
    }

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        seed: int,
        options: Mapping[str, Any],
        reference_point: Mapping[str, float] | None = None,
        costs: CostOracle | None = None,
    ) -> None:
        super().__init__(
            space, objectives, seed=seed, options=options, reference_point=reference_point, costs=costs
        )
        if self.options["trees"] is not None and self.options["model"] != "rf":
            raise StrategyError(
                f"option 'trees' of strategy 'hwnas' applies only to model 'rf', got model "
                f"{self.options['model']!r}; allowed: drop 'trees', or set model: rf"
            )
        self._training = self._training_params(self.options["training_params"])
        cost_names: set[str] = set()
        if costs is not None:
            from hw_models import COST_QUANTITIES  # the oracle needs hw_models anyway
            from search._config import MODEL_METRICS

            cost_names = {*COST_QUANTITIES, *MODEL_METRICS}
        self._cost_names = [o.name for o in self.objectives if o.name in cost_names]
        self._quality_names = [o.name for o in self.objectives if o.name not in cost_names]
        self._sign = {o.name: (1.0 if o.direction == "minimize" else -1.0) for o in self.objectives}
        if self.reference_point is not None:
            unknown = sorted(set(self.reference_point) - set(self._sign))
            if unknown:
                raise StrategyError(
                    f"reference point names unknown objective(s) {unknown}; objectives: {sorted(self._sign)}"
                )
        self._encoder = ConfigEncoder(space)
        self._trees = self.options["trees"] or _DEFAULT_TREES
        self._quality_model = QualityModel(self.options["model"], seed, self._trees)
        self._records: list[_Record] = []
        self._seen: set[str] = set()
        self._pending_configs: dict[str, dict[str, Any]] = {}
        self._arch_costs: dict[str, dict[str, float] | str] = {}
        self._banned: set[str] = set()  # architectures whose trials the driver rejected
        self._archive: list[str] = []  # accepted architecture keys, in costing order
        self._arch_configs: dict[str, dict[str, Any]] = {}
        self._oracle_calls = 0
        self._rejected_in_a_row = 0
        self._rejections: Counter[str] = Counter()
        self._next_key = 0
        self._asks = 0
        self._model: QualityModel | None = None
        self._model_size = -1
        self._model_problem: str | None = None
        self._warned: str | None = None
        self._phase = "space-filling"
        self._explorations = 0  # picks made space-filling because every candidate was dominated
        self._encoded: dict[str, np.ndarray] = {}
        self._draws = np.random.default_rng([seed, 2**16]).standard_normal((_MC_SAMPLES, 4))

    # -- options -----------------------------------------------------------------------------------------
    def _training_params(self, given: list[Any] | None) -> frozenset[str]:
        names = set(self.space.names)
        if given is None:
            return frozenset(name for name in DEFAULT_TRAINING_PARAMS if name in names)
        bad = [name for name in given if not isinstance(name, str) or name not in names]
        if bad:
            raise StrategyError(
                f"option 'training_params' of strategy 'hwnas' names {bad}, which are not parameters of the "
                f"space; allowed: {', '.join(self.space.names)}"
            )
        if names <= set(given):
            raise StrategyError(
                "option 'training_params' of strategy 'hwnas' lists every parameter of the space, which "
                "leaves nothing that defines an architecture; allowed: a strict subset of "
                f"{', '.join(self.space.names)}"
            )
        return frozenset(given)

    # -- ask/tell/observe ----------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Proposal]:
        rng = np.random.default_rng([self.seed, self._asks, len(self._records)])
        self._asks += 1
        model = self._fitted_model()
        pool = self._pool(rng, model is not None, n)
        chosen = self._select(pool, n, model)
        proposals = []
        for candidate in chosen:
            key = str(self._next_key)
            self._next_key += 1
            self._seen.add(candidate.hash)
            self._pending_configs[key] = candidate.config
            proposals.append(Proposal(key=key, config=dict(candidate.config)))
        return proposals

    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        config = self._pending_configs.pop(key)
        self._record(config, outcome, proposed=True)

    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        self._seen.add(_config_key(canonical))
        self._record(canonical, outcome, proposed=False)
        # A completed trial's told costs are its architecture's (the values the oracle would give, after
        # training): a resumed sweep needs no oracle call for the architectures it has trained.
        key = self._arch_key(canonical)
        if (
            isinstance(outcome, Completed)
            and self._cost_names
            and key not in self._arch_costs
            and key not in self._banned
            and all(math.isfinite(float(outcome.values[name])) for name in self._cost_names)
        ):
            self._arch_costs[key] = {name: float(outcome.values[name]) for name in self._cost_names}
            self._archive.append(key)
            self._arch_configs[key] = {k: v for k, v in canonical.items() if k not in self._training}

    def _record(self, config: dict[str, Any], outcome: Outcome, *, proposed: bool) -> None:
        kind = type(outcome).__name__.lower()
        # Proposals are feasible, so a Rejected one was over a budget the driver checks (or could not be
        # converted): that is the architecture's fault, whatever the training settings. An observed one is
        # banned likewise unless the space's constraints explain it.
        if (
            isinstance(outcome, Rejected)
            and self._cost_names
            and (proposed or not isinstance(self.space.validate(config), Infeasible))
        ):
            arch = self._arch_key(config)
            self._banned.add(arch)
            if arch in self._archive:
                self._archive.remove(arch)
        told: dict[str, float] = {}
        if isinstance(outcome, Completed | Pruned):
            told = {name: float(outcome.values[name]) for name in self._sign if name in outcome.values}
        elif not isinstance(outcome, Failed | Rejected):  # pragma: no cover - checked by the base class
            raise StrategyError(f"unexpected outcome {outcome!r}")
        self._records.append(_Record(config=dict(config), kind=kind, values=told))

    # -- costs ---------------------------------------------------------------------------------------------
    def _arch_key(self, config: Mapping[str, Any]) -> str:
        arch = {name: value for name, value in config.items() if name not in self._training}
        return json.dumps(arch, sort_keys=True, separators=(",", ":"))

    def _transform_costs(self, values: Mapping[str, float]) -> np.ndarray:
        return np.array(
            [self._sign[name] * math.log10(1.0 + max(float(values[name]), 0.0)) for name in self._cost_names]
        )

    def _oracle(self, config: dict[str, Any]) -> dict[str, float] | str:
        """The cached cost of ``config``'s architecture, calling the oracle on a miss."""
        key = self._arch_key(config)
        if key in self._arch_costs:
            return self._arch_costs[key]
        assert self.costs is not None
        result = self.costs(config)
        self._oracle_calls += 1
        if isinstance(result, str):
            self._arch_costs[key] = result
            self._rejections[result] += 1
            self._rejected_in_a_row += 1
            return result
        if not isinstance(result, Mapping):
            raise StrategyError(f"the cost oracle must return a mapping or a reason string, got {result!r}")
        missing = [name for name in self._cost_names if name not in result]
        if missing:
            raise StrategyError(
                f"the cost oracle returned no value for cost objective(s) {missing}; it gave {sorted(result)}"
            )
        costs = {name: float(result[name]) for name in self._cost_names}
        bad = {name: value for name, value in costs.items() if math.isnan(value)}
        if bad:
            raise StrategyError(f"the cost oracle returned NaN for {sorted(bad)} of config {config}")
        self._arch_costs[key] = costs
        if key not in self._banned:
            self._archive.append(key)
        self._arch_configs[key] = {k: v for k, v in config.items() if k not in self._training}
        self._rejected_in_a_row = 0
        return costs

    def _record_costs(self, record: _Record) -> np.ndarray | None:
        """Transformed costs of a finished trial: the oracle's (cached) or, failing that, the told values."""
        if not self._cost_names:
            return np.zeros(0)
        key = self._arch_key(record.config)
        cached = self._arch_costs.get(key)
        if isinstance(cached, dict):
            return self._transform_costs(cached)
        if all(name in record.values for name in self._cost_names):
            return self._transform_costs(record.values)
        if cached is None and record.kind != "rejected":
            result = self._oracle(record.config)
            if isinstance(result, dict):
                return self._transform_costs(result)
        return None

    # -- the quality model ---------------------------------------------------------------------------------
    def _features(self, configs: Sequence[Mapping[str, Any]], costs: np.ndarray) -> np.ndarray:
        return np.hstack([self._encode_known(configs), costs]) if len(configs) else np.zeros((0, 1))

    def _encode_known(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encodings of asked or observed configs, cached (they are encoded again at every ask)."""
        rows = []
        for config in configs:
            key = _config_key(config)
            if key not in self._encoded:
                self._encoded[key] = self._encoder.encode([config])[0]
            rows.append(self._encoded[key])
        return np.array(rows).reshape(len(rows), self._encoder.width)

    def _training_data(self) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray] | str:
        """Configs, transformed costs and oriented quality targets; a reason string when none can be made."""
        finished = [r for r in self._records if r.kind != "rejected"]
        good = [
            r
            for r in finished
            if r.kind == "completed" and all(math.isfinite(r.values[name]) for name in self._quality_names)
        ]
        if len(good) < self.options["n_initial"]:
            if len(finished) >= self.options["n_initial"]:
                return (
                    f"only {len(good)} of {len(finished)} finished trials completed with finite quality "
                    f"(the others failed, diverged or were pruned); fitting needs {self.options['n_initial']}"
                )
            return ""  # still in the initial phase: not a problem worth a warning
        completed = np.array([[self._sign[q] * r.values[q] for q in self._quality_names] for r in good])
        worst = completed.max(axis=0)
        configs, costs, targets = [], [], []
        for record in finished:
            row = self._record_costs(record)
            if row is None:
                continue
            target = []
            for position, name in enumerate(self._quality_names):
                value = self._sign[name] * record.values[name] if name in record.values else math.inf
                if record.kind == "failed" or not math.isfinite(value):
                    value = float(worst[position])
                target.append(value)
            configs.append(record.config)
            costs.append(row)
            targets.append(target)
        return configs, np.array(costs).reshape(len(configs), -1), np.array(targets)

    def _fitted_model(self) -> QualityModel | None:
        if not self._quality_names:
            self._phase = "exact"
            return None
        if self._model_size == len(self._records):
            return self._model
        self._model_size = len(self._records)
        self._model = None
        data = self._training_data()
        kind = "no data"
        if isinstance(data, str):
            problem = data
        else:
            configs, costs, targets = data
            model = self._quality_model
            kind = "fit error"
            try:
                model.fit(self._features(configs, costs), targets)
                self._model, problem = model, ""
            except Exception as exc:  # a model that cannot be fitted never stops the sweep
                model.reset()
                problem = f"fitting the {self.options['model']} quality model failed: {exc}"
        self._phase = "model" if self._model is not None else "space-filling"
        self._model_problem = problem or None
        # One warning per kind of problem, not one per ask; a successful fit re-arms it.
        if problem and kind != self._warned:
            log.warning("strategy 'hwnas': %s; proposing space-filling draws", problem)
        self._warned = kind if problem else None
        return self._model

    # -- the candidate pool --------------------------------------------------------------------------------
    def _complete(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any] | None:
        """A canonical feasible config keeping ``values`` where active and drawing the rest; None if
        infeasible."""
        done: dict[str, Any] = {}
        for param in self.space.evaluation_order:
            if all(c.parent in done and c.holds(done[c.parent]) for c in param.conditions):
                done[param.name] = values[param.name] if param.name in values else param.sample(rng)
        # Values come from the parameters' own domains (sample, finite_domain, coerce), so ordering them and
        # checking the constraints is what validate would do, without canonicalising twice per candidate.
        config = {name: done[name] for name in self.space.names if name in done}
        if any(constraint.violation(config) is not None for constraint in self.space.constraints):
            return None
        return config

    @staticmethod
    def _perturb(param: Param, value: Any, rng: np.random.Generator) -> Any:
        """A neighbouring value: a step along ordered domains, a Gaussian move on the (log) scale of floats."""
        if isinstance(param, BoolParam):
            return not value
        if isinstance(param, FloatParam):
            low, high, number = param.low, param.high, float(value)
            if param.log:
                low, high, number = math.log(low), math.log(high), math.log(number)
            moved = min(max(number + rng.normal(0.0, 0.15 * (high - low)), low), high)
            moved = math.exp(moved) if param.log else moved
            if param.step is not None:
                moved = param.low + round((moved - param.low) / param.step) * param.step
            return param.coerce(min(max(moved, param.low), param.high))
        domain = list(param.finite_domain())
        if len(domain) < 2:
            return value
        ordered = isinstance(param, IntParam) or (isinstance(param, ChoiceParam) and param.ordered)
        index = next(i for i, v in enumerate(domain) if v == value)
        if ordered and rng.random() < 0.8:
            step = 1 if rng.random() < 0.5 else -1
            if not 0 <= index + step < len(domain):
                step = -step
            return domain[index + step]
        others = [v for i, v in enumerate(domain) if i != index]
        return others[int(rng.integers(0, len(others)))]

    def _mutate(
        self, config: Mapping[str, Any], rng: np.random.Generator, *, arch: bool
    ) -> dict[str, Any] | None:
        names = [name for name in config if (name not in self._training) == arch]
        if not names:
            return None
        values = dict(config)
        for _ in range(1 + int(rng.random() < 0.3)):
            name = names[int(rng.integers(0, len(names)))]
            if name in values:
                values[name] = self._perturb(self.space.param(name), values[name], rng)
        return self._complete(values, rng)

    def _front_records(self) -> list[_Record]:
        """Completed trials with finite values whose (told) objective vector no other one dominates."""
        good = [
            r
            for r in self._records
            if r.kind == "completed"
            and all(math.isfinite(r.values.get(name, math.nan)) for name in self._sign)
        ]
        if not good:
            return []
        points = np.array([[self._sign[name] * r.values[name] for name in self._sign] for r in good])
        keep = ~_dominated_strictly(points)
        return [r for r, k in zip(good, keep, strict=True) if k]

    def _pool(self, rng: np.random.Generator, learning: bool, n: int) -> list[_Candidate]:
        pool: dict[str, _Candidate] = {}

        def offer(config: dict[str, Any] | None, *, may_cost: bool) -> bool:
            """Add ``config`` to the pool if new, feasible and within budget; True if the oracle was called."""
            if config is None:
                return False
            config_hash = _config_key(config)
            if config_hash in self._seen or config_hash in pool:
                return False
            if not self._cost_names:
                pool[config_hash] = _Candidate(config, config_hash, np.zeros(0))
                return False
            key = self._arch_key(config)
            if key in self._banned:
                return False
            called = key not in self._arch_costs
            if called and not may_cost:
                return False
            result = self._oracle(config)
            if isinstance(result, dict):
                pool[config_hash] = _Candidate(config, config_hash, self._transform_costs(result))
            return called

        front = self._front_records() if learning else []
        # New architectures: mutations of front members first, then random draws.
        if self._cost_names:
            budget = self.options["cost_calls"] * (_FIRST_ASK_FACTOR if not self._archive else 1)
            calls = attempts = 0
            while attempts < 50 * budget and (calls < budget or not self._archive):
                attempts += 1
                if front and rng.random() < _MUTATION_SHARE:
                    source = front[int(rng.integers(0, len(front)))].config
                    config = self._mutate(source, rng, arch=True)
                else:
                    config = self._complete({}, rng)
                calls += offer(config, may_cost=True)
                if not self._archive and self._rejected_in_a_row >= _REJECTION_LIMIT:
                    reasons = "; ".join(
                        f"{reason} ({count}x)" for reason, count in self._rejections.most_common(3)
                    )
                    raise StrategyError(
                        f"every candidate is rejected by the cost oracle: {self._rejected_in_a_row} architectures "
                        f"drawn in a row were over budget or not convertible, none accepted ({reasons}); "
                        "relax the budgets or change the space"
                    )
            # Known architectures with fresh or perturbed training settings: priced without the oracle.
            if self._archive:
                good = sorted(
                    (r for r in front),
                    key=lambda r: tuple(self._sign[q] * r.values[q] for q in self._quality_names),
                )
                for _ in range(self.options["n_candidates"]):
                    arch = self._arch_configs[self._archive[int(rng.integers(0, len(self._archive)))]]
                    if good and rng.random() < 0.3:
                        donor = good[int(rng.integers(0, len(good)))].config
                        training = {k: v for k, v in donor.items() if k in self._training}
                        config = self._complete({**arch, **training}, rng)
                        config = self._mutate(config, rng, arch=False) if config is not None else None
                    else:
                        config = self._complete(arch, rng)
                    offer(config, may_cost=False)
        else:
            for _ in range(self.options["n_candidates"]):
                offer(self._complete({}, rng), may_cost=False)
            for record in front:
                for _ in range(4):
                    offer(self._mutate(record.config, rng, arch=True), may_cost=False)
        # Training-setting moves of front members (their architecture is costed already).
        for record in front:
            for _ in range(4):
                offer(self._mutate(record.config, rng, arch=False), may_cost=False)
        if len(pool) < n:  # a nearly exhausted space: draw harder before proposing fewer
            for _ in range(50 * n):
                offer(self._complete({}, rng), may_cost=len(pool) < n)
                if len(pool) >= 4 * n:
                    break
        return list(pool.values())

    # -- selection -----------------------------------------------------------------------------------------
    def _select(self, pool: list[_Candidate], n: int, model: QualityModel | None) -> list[_Candidate]:
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
        width = math.sqrt(max(features.shape[1], 1))
        if model is None and self._quality_names:
            return self._space_filling(pool, n, unit_costs, unit_known, features, known_features)
        return self._by_ehvi(pool, n, model, costs, unit_costs, unit_known, features, known_features, width)

    def _known_costs(self, record: _Record) -> np.ndarray | None:
        if not self._cost_names:
            return np.zeros(0)
        cached = self._arch_costs.get(self._arch_key(record.config))
        if isinstance(cached, dict):
            return self._transform_costs(cached)
        if all(name in record.values for name in self._cost_names):
            return self._transform_costs(record.values)
        return None

    def _pending_cost(self, config: Mapping[str, Any]) -> np.ndarray:
        if not self._cost_names:
            return np.zeros(0)
        cached = self._arch_costs[self._arch_key(config)]
        assert isinstance(cached, dict)
        return self._transform_costs(cached)

    def _space_filling(
        self,
        pool: list[_Candidate],
        n: int,
        unit_costs: np.ndarray,
        unit_known: np.ndarray,
        features: np.ndarray,
        known_features: np.ndarray,
    ) -> list[_Candidate]:
        """Greedy maximin: each pick is the candidate farthest from every known, pending and picked config."""
        width = math.sqrt(max(features.shape[1], 1))
        chosen: list[int] = []
        used_costs, used_features = unit_known, known_features
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
        known_features: np.ndarray,
        width: float,
    ) -> list[_Candidate]:
        k = len(self._cost_names)
        q = len(self._quality_names)
        if model is not None:
            mean, std = model.predict(np.hstack([features, costs]))
        else:
            mean, std = np.zeros((len(pool), 0)), np.zeros((len(pool), 0))
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
        # Never propose a config whose cost and predicted quality an observed front member weakly dominates.
        # Without a known cost axis the rule would read "never propose below the best mean", which a forest
        # (whose means stay inside the observed range) nearly always meets: there the EHVI alone decides.
        if k:
            dominated = _dominated_by(np.hstack([unit_c, unit_mean]), unit_front)
        else:
            dominated = np.zeros(len(pool), dtype=bool)
        chosen: list[int] = []
        used_costs = unit_known
        used_features = known_features
        extra = unit_believers
        for _ in range(min(n, len(pool))):
            current = (
                _non_dominated(np.vstack([unit_front, extra])) if len(unit_front) + len(extra) else unit_front
            )
            open_ = ~dominated
            open_[chosen] = False
            spread = (
                _min_distance(unit_costs, used_costs) if k else _min_distance(features, used_features) / width
            )
            if not open_.any() and chosen:
                break  # the rest of the batch would be dominated: propose fewer, the next ask draws anew
            if not open_.any():
                log.info("strategy 'hwnas': every candidate is dominated at its predicted quality; exploring")
                self._explorations += 1
                remaining = np.ones(len(pool), dtype=bool)
                remaining[chosen] = False
                if not remaining.any():
                    break
                score = np.where(
                    remaining,
                    spread + _FEATURE_WEIGHT * _min_distance(features, used_features) / width,
                    -np.inf,
                )
                best = int(np.argmax(score))
            else:
                score = self._acquisition(unit_c, unit_mean, unit_std, current, ref, open_)
                top = np.max(score[open_])
                ties = open_ & (score >= top - _TIE_TOLERANCE * max(abs(top), 1e-300))
                best = int(np.argmax(np.where(ties, spread, -np.inf)))
            chosen.append(best)
            used_costs = np.vstack([used_costs, unit_costs[best : best + 1]])
            used_features = np.vstack([used_features, features[best : best + 1]])
            extra = np.vstack([extra, np.hstack([unit_c[best], unit_mean[best]])[None, :]])
        return [pool[i] for i in chosen]

    def _acquisition(
        self,
        costs: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        front: np.ndarray,
        ref: np.ndarray,
        open_: np.ndarray,
    ) -> np.ndarray:
        """EHVI of the open candidates (the others score -inf)."""
        score = np.full(len(costs), -np.inf)
        index = np.flatnonzero(open_)
        k, q = costs.shape[1], mean.shape[1]
        if q == 1:
            score[index] = exact_ehvi(costs[index], mean[index, 0], std[index, 0], front, ref)
        elif q == 0:
            score[index] = [_improvement(costs[i], front, ref) for i in index]
        else:
            # Rank by the sum of per-quality exact EHVIs, then estimate the joint EHVI for the best ones.
            proxy = np.zeros(len(index))
            for j in range(q):
                columns = [*range(k), k + j]
                sub_front = _non_dominated(front[:, columns]) if len(front) else front[:, columns]
                proxy += exact_ehvi(costs[index], mean[index, j], std[index, j], sub_front, ref[columns])
            best = index[np.argsort(-proxy, kind="stable")[:_MC_MAX_CANDIDATES]]
            score[index] = -1.0  # below every estimate, above the closed candidates
            score[best] = monte_carlo_ehvi(costs[best], mean[best], std[best], front, ref, self._draws[:, :q])
        return score

    def _extra_state(self) -> dict[str, Any]:
        return {
            "phase": self._phase,
            "model_problem": self._model_problem,
            "oracle_calls": self._oracle_calls,
            "dominated_explorations": self._explorations,
            "architectures_costed": len(self._arch_costs),
            "architectures_rejected": sum(isinstance(v, str) for v in self._arch_costs.values())
            + len(self._banned),
            "cost_objectives": list(self._cost_names),
            "quality_objectives": list(self._quality_names),
        }


def _config_key(canonical: Mapping[str, Any]) -> str:
    """The text ``Space.config_hash`` hashes, of an already canonical config: equal configs, equal keys."""
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _dominated_strictly(points: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (minimised) dominated by another row (better or equal everywhere, better once)."""
    le = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    lt = np.any(points[:, None, :] < points[None, :, :], axis=2)
    return np.any(le & lt, axis=0)
