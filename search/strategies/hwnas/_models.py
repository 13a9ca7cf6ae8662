"""Step 2: the quality model, a regressor of the quality objectives, and the data it is fitted on.

Only quality is unknown (costs come from the oracle), so this is the one model of the strategy: ``rf`` (a
random forest) or ``gp`` (a Gaussian process). :class:`_Modelling` is the layer of :class:`HwnasStrategy`
that turns finished trials into training data (failed trials as the worst quality) and refits the model
once per new trial, falling back to space-filling draws (with one warning) when it cannot.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search.strategies.hwnas._candidates import _Candidates, _config_key
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
        # cutting about half the trials the model rated every architecture alike.
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
