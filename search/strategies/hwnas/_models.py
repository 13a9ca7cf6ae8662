"""Step 2: the quality model, a regressor of the quality objectives, and the data it is fitted on.

Only quality is unknown (costs come from the oracle), so this is the one model of the strategy: ``rf`` (a
random forest) or ``gp`` (a Gaussian process). :class:`_Modelling` is the layer of :class:`HwnasStrategy`
that turns finished trials into training data (failed trials as the worst quality) and refits the model
once per new trial, falling back to space-filling draws (with one warning) when it cannot.

A trial *misses* when it adds nothing to the front: the task flagged it collapsed (a near-constant
output), or the scheduler pruned it at an early rung. A second forest, fitted on the 0/1 miss flag of every
completed and pruned trial, estimates the probability that a config misses (the mean of its trees' leaves).
A third one (with the quality model's cost trend) predicts a config's log wall time per epoch from the told
seconds of the completed and pruned trials, so the acquisition can weigh what a trial gains against what it
costs the clock.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from search.strategies.hwnas._candidates import _Candidates, _config_key, _Record
from search.strategies.hwnas._features import ConfigEncoder

log = logging.getLogger(__name__)

MODELS = ("rf", "gp")
_DEFAULT_TREES = 32  # sklearn fits a tree in ~2-4 ms here: 32 keep an ask well under 0.3 s
# A forest refits every tree while it has fewer rows than this (each result matters then: partial refits
# cost hypervolume on the toy problem of the tests), or once the data grew by _REFIT_GROWTH since the last
# full fit; otherwise a quarter of its trees.
_ROLLING_FROM = 64
_REFIT_GROWTH = 1.2
_MIN_COMPLETED = 3  # completed trials the model needs among the first n_initial finished ones
# The trend in the cost features extrapolates at most this far (log10 units: one decade) past the costs it
# was fitted on, so each step up the cost axis is taken once the last one has been trained and scored.
_TREND_REACH = 1.0
# Ridge penalty on the trend's slopes (over centred log-cost columns, so the intercept is free): costs that
# move together (bops and model_kb) would otherwise get huge opposite slopes that a candidate moving one
# cost alone turns into absurd predictions.
_TREND_RIDGE = 1.0


class QualityModel:
    """A regressor of the quality objectives: ``rf`` (a random forest of bootstrapped, multi-output
    scikit-learn trees, each split over half the features; mean and spread over the trees) or ``gp`` (one
    isotropic Matern-5/2 Gaussian process with a noise term per objective, scikit-learn).

    With ``trend_columns`` > 0, the last that many feature columns (the log-costs) also get a linear trend,
    fitted first (ridge-penalised least squares), and the regressor models what the trend leaves. A forest (and a GP far
    from its data) predicts no better than the best it has seen, so without a trend every config dearer
    than the dearest trained one looks no better than it and the front never grows towards larger models;
    with one, quality keeps improving with size at the rate the data shows, up to a decade past it."""

    def __init__(self, kind: str, seed: int, trees: int, trend_columns: int = 0) -> None:
        self.kind = kind
        self.seed = seed
        self.trees = trees
        self.trend_columns = trend_columns
        self._models: list[Any] = []
        self._full_rows = 0
        self._shape: tuple[int, int] = (0, 0)
        self._next_tree = 0
        self._trend: np.ndarray | None = None  # (1 + trend_columns, outputs) coefficients
        self._trend_range = (np.zeros(0), np.zeros(0))  # the trend inputs' observed low and high
        self._trend_center = np.zeros(0)  # ... and their mean

    def fit(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Fit on all the data (a forest may keep some trees of the previous fit, see ``_fit_forest``)."""
        # A forest's partial refit keeps trees fitted on the residuals of the last trend: keep the trend too.
        if self.kind == "rf" and not self._full_refit(len(features), (features.shape[1], targets.shape[1])):
            residuals = targets - self._trend_values(features)
        else:
            residuals = targets - self._fit_trend(features, targets)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny data sets
            if self.kind == "rf":
                self._fit_forest(features, residuals)
            else:
                self._models = [self._fit_gp(features, residuals[:, j]) for j in range(targets.shape[1])]

    def _fit_trend(self, features: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Fit the trend (none with fewer rows than coefficients + 1) and return its values on the data."""
        columns = self.trend_columns
        self._trend = None
        if columns == 0 or len(features) <= columns + 1:
            return np.zeros_like(targets)
        inputs = features[:, -columns:]
        self._trend_range = (inputs.min(axis=0), inputs.max(axis=0))
        self._trend_center = inputs.mean(axis=0)
        design = self._trend_design(features)
        penalty = _TREND_RIDGE * np.eye(columns + 1)
        penalty[0, 0] = 0.0
        self._trend = np.linalg.solve(design.T @ design + penalty, design.T @ targets)
        return design @ self._trend

    def _trend_values(self, features: np.ndarray) -> np.ndarray | float:
        return self._trend_design(features) @ self._trend if self._trend is not None else 0.0

    def _trend_design(self, features: np.ndarray) -> np.ndarray:
        low, high = self._trend_range
        inputs = np.clip(features[:, -self.trend_columns :], low - _TREND_REACH, high + _TREND_REACH)
        return np.hstack([np.ones((len(features), 1)), inputs - self._trend_center])

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
        full = self._full_refit(rows, shape)
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

    def _full_refit(self, rows: int, shape: tuple[int, int]) -> bool:
        return (
            len(self._models) != self.trees
            or shape != self._shape
            or rows < _ROLLING_FROM
            or rows >= _REFIT_GROWTH * self._full_rows
        )

    def reset(self) -> None:
        """Forget every fitted regressor and the trend (the next fit is a full one)."""
        self._models = []
        self._full_rows = 0
        self._trend = None

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
        trend = self._trend_values(features)
        if self.kind == "rf":
            x = np.ascontiguousarray(features, dtype=np.float32)
            per_tree = np.stack(
                [tree.predict(x, check_input=False).reshape(len(x), -1) for tree in self._models]
            )
            return per_tree.mean(axis=0) + trend, per_tree.std(axis=0)
        means, stds = [], []
        for model in self._models:
            mean, std = model.predict(features, return_std=True)
            means.append(mean)
            stds.append(std)
        return np.stack(means, axis=1) + trend, np.stack(stds, axis=1)


class _Modelling(_Candidates):
    """The quality model of :class:`HwnasStrategy`: features, training data, fitting (a layer of it)."""

    _encoder: ConfigEncoder
    _encoded: dict[str, np.ndarray]  # encodings of asked or observed configs, by canonical key
    _quality_model: QualityModel
    _model: QualityModel | None  # the fitted model, None while there is none
    _model_size: int  # records the model was last fitted on
    _model_problem: str | None
    _warned: str | None
    _phase: str
    _miss_model: QualityModel
    _miss_fitted: bool  # whether the miss model is fitted (no miss seen: it is not)
    _time_model: QualityModel
    _time_fitted: bool  # whether the time model is fitted (option per_second, timed finished trials)
    _typical_log_seconds: float  # the median log wall time per epoch it was fitted on

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
        good = self._completed_records()
        if len(finished) < self.options["n_initial"]:
            return ""  # still in the initial phase: not a problem worth a warning
        # Failed and pruned trials count as finished: with ASHA most trials end pruned, and waiting for
        # n_initial completed ones would keep a short sweep space-filling to its end.
        needed = min(_MIN_COMPLETED, self.options["n_initial"])
        if len(good) < needed:
            return (
                f"only {len(good)} of {len(finished)} finished trials completed with finite quality "
                f"(the others failed, diverged or were pruned); fitting needs {needed}"
            )
        completed = np.array([[self._sign[q] * r.values[q] for q in self._quality_names] for r in good])
        worst = completed.max(axis=0)
        configs, costs, targets = [], [], []
        # Failed trials are quality data (bad: the model learns to avoid their region); pruned ones are
        # not. Their partial values come from an early rung, and there ECON-T models still sit on the
        # constant-output plateau they leave later (benchmarks/collapse.txt): fed as targets, a pruned
        # D64 -> L12 encoder read as EMD 5.9 while its completed twins scored 1.1-1.3, and with ASHA
        # cutting about half the trials the model rated every architecture alike. Collapsed trials stay
        # quality data (and are misses too): left out, a region where every trial collapses or is pruned
        # is never trained, so its prediction, extrapolated from elsewhere, is never corrected (a real
        # ttbar sweep spent 70 trials on conv stacks of < 1,000 ops that way, benchmarks/search_real.txt).
        for record in (r for r in finished if r.kind != "pruned"):
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

    def _completed_records(self) -> list[_Record]:
        """Completed trials with a finite value of every quality objective."""
        return [
            r
            for r in self._records
            if r.kind == "completed" and all(math.isfinite(r.values[name]) for name in self._quality_names)
        ]

    def _finished_records(self) -> list[_Record]:
        """The completed trials with finite quality and the pruned ones: what ran, to the end or to a rung."""
        return [*self._completed_records(), *(r for r in self._records if r.kind == "pruned")]

    def _costed(self, records: Sequence[_Record]) -> tuple[list[_Record], np.ndarray]:
        """The records whose costs are known, and their features (encoding plus cost columns)."""
        rows = [(r, costs) for r in records if (costs := self._record_costs(r)) is not None]
        if not rows:
            return [], np.zeros((0, 1))
        kept = [r for r, _ in rows]
        return kept, self._features([r.config for r in kept], np.array([c for _, c in rows]))

    def _fit_miss_model(self) -> bool:
        """Fit the miss model on the completed and pruned trials (a miss: pruned or collapsed), once there
        was a miss; whether it is fitted."""
        kept, features = self._costed(self._finished_records())
        labels = np.array([[float(r.collapsed or r.kind == "pruned")] for r in kept])
        if not labels.any() or len(kept) < 2:
            return False
        self._miss_model.fit(features, labels)
        return True

    def _fit_time_model(self) -> bool:
        """Fit the time model on the log wall time per epoch of the completed and pruned trials that told
        one (at least ``_MIN_COMPLETED``), unless option ``per_second`` is off; whether it is fitted.

        Pruned trials count: the slowest architectures are the ones an early rung cuts (a 476k-ops conv
        encoder of a real ttbar sweep ran 116 s to its rung at epoch 8 of 10, a dense one 2 s in all), and
        left out, the model never learns what they cost. Per epoch, a trial cut at a rung and one that ran
        to the end measure the same speed (an untold epoch count counts as one epoch)."""
        if not self.options["per_second"]:
            return False
        timed = [r for r in self._finished_records() if r.seconds is not None and r.seconds > 0]
        kept, features = self._costed(timed)
        if len(kept) < _MIN_COMPLETED:
            return False
        log_seconds = np.log([[(r.seconds or 0.0) / max(r.epochs, 1)] for r in kept])  # all > 0, kept above
        self._time_model.fit(features, log_seconds)
        self._typical_log_seconds = float(np.median(log_seconds))
        return True

    def _relative_seconds(self, features: np.ndarray) -> np.ndarray:
        """Each config's predicted wall time per epoch over the median trial's (ones without a time model),
        (rows,): all trials of a sweep run the same epochs, so it is the ratio of their wall times too."""
        if not self._time_fitted:
            return np.ones(len(features))
        return np.exp(self._time_model.predict(features)[0][:, 0] - self._typical_log_seconds)

    def _miss_probability(self, features: np.ndarray) -> np.ndarray:
        """The probability that each config (encoded with its cost features) misses, (rows,)."""
        if not self._miss_fitted:
            return np.zeros(len(features))
        return np.clip(self._miss_model.predict(features)[0][:, 0], 0.0, 1.0)

    def _fit_side_models(self) -> None:
        """Fit the miss and time models, each on its own: one that cannot be fitted is left out of the
        acquisition (logged), the search goes on as if no config missed or all took the same time."""
        self._miss_fitted = _guarded_fit("miss", self._fit_miss_model, self._miss_model)
        self._time_fitted = _guarded_fit("time", self._fit_time_model, self._time_model)

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
            if self._model is not None:
                self._fit_side_models()
        self._phase = "model" if self._model is not None else "space-filling"
        self._model_problem = problem or None
        # One warning per kind of problem, not one per ask; a successful fit re-arms it.
        if problem and kind != self._warned:
            log.warning("strategy 'hwnas': %s; proposing space-filling draws", problem)
        self._warned = kind if problem else None
        return self._model


def _guarded_fit(what: str, fit: Callable[[], bool], model: QualityModel) -> bool:
    """Run ``fit``; on an error log it and reset ``model`` (a full refit next time, never trees of two
    fits). Whether the model is fitted."""
    try:
        return fit()
    except Exception as exc:
        model.reset()
        log.warning("strategy 'hwnas': fitting the %s model failed: %s", what, exc)
        return False
