"""The built-in strategies: random and grid draws, and Optuna's TPE, NSGA-II and GP samplers."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search._types import Completed, Failed, Outcome, Proposal, Pruned, Rejected
from search.strategies._base import (
    FEASIBILITY_CONSTRAINT,
    Strategy,
    StrategyError,
    _Option,
    register_strategy,
)
from spaces import SpaceError


@register_strategy
class RandomStrategy(Strategy):
    """Independent ``space.sample`` draws; proposal ``i`` uses a generator seeded with ``(seed, i)``."""

    name = "random"

    def _setup(self) -> None:
        self._next_index = 0

    def _ask(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            rng = np.random.default_rng([self.seed, self._next_index])
            proposals.append(Proposal(key=str(self._next_index), config=self.space.sample(rng)))
            self._next_index += 1
        return proposals

    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        """Random search does not learn."""

    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        # Each observed trial stands for one draw of the sequence, so a resumed sweep continues it.
        self._next_index += 1

    def _extra_state(self) -> dict[str, Any]:
        return {"next_index": self._next_index}


@register_strategy
class GridStrategy(Strategy):
    """``space.grid(float_points=...)`` in order, skipping observed configs; exhausted -> ``[]``."""

    name = "grid"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "float_points": _Option(None, int, minimum=2, optional=True)
    }

    def _setup(self) -> None:
        float_points = self.options["float_points"]
        try:
            self._size = self.space.grid_size(float_points=float_points)
            self._points: Iterator[dict[str, Any]] = self.space.grid(float_points=float_points)
        except SpaceError as exc:
            raise StrategyError(f"strategy 'grid' cannot enumerate this space: {exc}") from exc
        self._position = 0
        self._seen: set[str] = set()

    def _ask(self, n: int) -> list[Proposal]:
        proposals: list[Proposal] = []
        while len(proposals) < n:
            point = next(self._points, None)
            if point is None:
                break
            self._position += 1
            config_hash = self.space.config_hash(point)
            if config_hash in self._seen:
                continue
            self._seen.add(config_hash)
            proposals.append(Proposal(key=str(self._position - 1), config=point))
        return proposals

    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        """A grid does not learn."""

    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        self._seen.add(self.space.config_hash(canonical))

    def _extra_state(self) -> dict[str, Any]:
        return {"grid_size": self._size, "grid_position": self._position}


class OptunaStrategy(Strategy):
    """An in-memory Optuna study driven by ask/tell with define-by-run ``space.suggest``."""

    def _setup(self) -> None:
        with warnings.catch_warnings():
            # Options flagged experimental (TPE's group) are chosen deliberately for conditional spaces.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self._make_sampler()
        self.study = optuna.create_study(
            directions=[objective.direction for objective in self.objectives], sampler=sampler
        )
        self._trials: dict[str, optuna.Trial] = {}

    @abstractmethod
    def _make_sampler(self) -> optuna.samplers.BaseSampler: ...

    def _ask(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            trial = self.study.ask()
            config = self.space.suggest(trial)
            key = str(trial.number)
            self._trials[key] = trial
            proposals.append(Proposal(key=key, config=config))
        return proposals

    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        trial = self._trials[key]
        if isinstance(outcome, Pruned) and len(self.objectives) == 1 and values:
            trial.report(values[0], step=outcome.fidelity)
        elif isinstance(outcome, Rejected):
            trial.set_constraint(FEASIBILITY_CONSTRAINT, 1.0)
        self._finish(trial, outcome, values)
        del self._trials[key]

    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None:
        # Added RUNNING, then finished by the same study.tell a proposed trial gets, so the study and the
        # sampler's bookkeeping end up as if the trial had been proposed here. add_trial needs exactly the
        # active params, with the distributions space.suggest would have used.
        record: dict[str, Any] = {
            "state": TrialState.RUNNING,
            "params": canonical,
            "distributions": self.space.optuna_distributions(canonical),
        }
        if isinstance(outcome, Pruned) and len(self.objectives) == 1 and values:
            record["intermediate_values"] = {outcome.fidelity: values[0]}
        elif isinstance(outcome, Rejected):
            record["constraints"] = {FEASIBILITY_CONSTRAINT: 1.0}
        self.study.add_trial(optuna.trial.create_trial(**record))
        trial = self.study.get_trials(deepcopy=False)[-1]
        self._after_observe(trial)
        self._finish(trial.number, outcome, values)

    def _finish(self, trial: optuna.Trial | int, outcome: Outcome, values: list[float] | None) -> None:
        """Finish a RUNNING trial: a pruned one takes its last reported value, as Optuna defines it."""
        if isinstance(outcome, Completed):
            self.study.tell(trial, values)
        elif isinstance(outcome, Failed):
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

    def _after_observe(self, trial: FrozenTrial) -> None:
        """Hook for samplers that keep per-trial bookkeeping (NSGA-II generations)."""

    def _extra_state(self) -> dict[str, Any]:
        states = Counter(trial.state.name.lower() for trial in self.study.get_trials(deepcopy=False))
        return {"optuna_trials": dict(sorted(states.items()))}


@register_strategy
class TPEStrategy(OptunaStrategy):
    """Multivariate, grouped TPE: the right TPE for conditional spaces."""

    name = "optuna-tpe"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "n_startup_trials": _Option(10, int, minimum=0),
        "n_ei_candidates": _Option(24, int, minimum=1),
    }

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            multivariate=True,
            group=True,
            seed=self.seed,
            n_startup_trials=self.options["n_startup_trials"],
            n_ei_candidates=self.options["n_ei_candidates"],
        )


@register_strategy
class NSGA2Strategy(OptunaStrategy):
    """NSGA-II genetic search in populations of ``population_size`` completed trials."""

    name = "optuna-nsga2"
    options_allowed: ClassVar[Mapping[str, _Option]] = {"population_size": _Option(50, int, minimum=2)}

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        self._sampler = optuna.samplers.NSGAIISampler(
            population_size=self.options["population_size"], seed=self.seed
        )
        return self._sampler

    def _after_observe(self, trial: FrozenTrial) -> None:
        # Without a generation an observed trial would belong to no population and NSGA-II would restart
        # from generation 0; assign the one a sequential run would have (a public method of the sampler,
        # legal while the trial is still RUNNING).
        self._sampler.get_trial_generation(self.study, trial)


@register_strategy
class GPStrategy(OptunaStrategy):
    """Gaussian-process Bayesian optimisation (log EI / log EHVI); conditional parameters independent."""

    name = "optuna-gp"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "n_startup_trials": _Option(10, int, minimum=0),
        "deterministic_objective": _Option(False, bool),
    }

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            seed=self.seed,
            n_startup_trials=self.options["n_startup_trials"],
            deterministic_objective=self.options["deterministic_objective"],
            # Conditional parameters fall back to independent sampling by design; a warning per trial is noise.
            warn_independent_sampling=False,
        )
