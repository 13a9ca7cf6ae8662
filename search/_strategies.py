"""Search strategies behind one small ask/tell interface.

A :class:`Strategy` proposes raw configurations (``ask``), learns the outcome of each proposal it made
(``tell``) and absorbs trials it did not propose (``observe``: resume from the store, warm-start configs).
The driver validates every proposed config with ``space.validate`` and tells ``Rejected`` for infeasible
ones without training. :func:`make_strategy` builds one by name; adding a backend (Ax) is one more subclass
registered in ``_STRATEGY_CLASSES``.

How every outcome reaches every backend (one policy, here):

=============  ====================  ==========================================================
Outcome        random / grid         Optuna (TPE, NSGA-II, GP)
=============  ====================  ==========================================================
Completed      counted               ``COMPLETE`` with the values in objective order; ±inf passed
                                     through verbatim: Optuna 5 accepts it, TPE and NSGA-II rank it,
                                     GP clips it to the finite range when fitting.
Pruned         counted               ``PRUNED``; single objective: the partial value is reported at
                                     step ``fidelity`` first, so TPE ranks it among pruned trials
                                     (Optuna's intermediate values are single-objective only).
Failed         counted               ``FAIL`` (every sampler ignores it).
Rejected       counted               ``PRUNED`` with the violated constraint ``feasible = 1``: TPE
                                     puts infeasible trials in its "bad" group and so learns to avoid
                                     the region, whereas a ``FAIL`` would be ignored and the same
                                     infeasible region proposed again. NSGA-II and GP use only
                                     ``COMPLETE`` trials, so for them this equals ``FAIL``.
=============  ====================  ==========================================================

NaN never reaches a strategy: the driver fails such trials, and a NaN in a ``Completed`` result raises
:class:`StrategyError`.

Resume: ``observe`` replays finished trials. Optuna strategies add them to their in-memory study with the
same params, values, state, intermediate value and constraint as ``tell`` would have recorded (NSGA-II also
assigns the generation a sequential run would have). The random strategy derives proposal ``i`` from
``(seed, i)`` and each observed trial advances ``i`` by one, so a resumed sweep continues the sequence instead
of repeating it. The grid strategy skips grid points it has observed.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search._types import Completed, Failed, Objective, Outcome, Proposal, Pruned, Rejected
from spaces import Space, SpaceError

MAX_OBJECTIVES = 4
# The Optuna constraint that marks a Rejected (never trained) config: > 0 means violated.
FEASIBILITY_CONSTRAINT = "feasible"


class StrategyError(ValueError):
    """A strategy was misused: unknown name or option, unknown key, malformed outcome or config."""


@dataclass(frozen=True)
class _Option:
    """One tuning knob of a strategy: its default, its type and (for integers) its smallest value."""

    default: Any
    kind: type
    minimum: int | None = None
    optional: bool = False

    def check(self, strategy: str, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        # bool is an int subclass: accept it only where a bool is asked for.
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise StrategyError(
                f"option {name!r} of strategy {strategy!r} must be {self.kind.__name__}"
                f"{' or None' if self.optional else ''}, got {value!r}"
            )
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            raise StrategyError(
                f"option {name!r} of strategy {strategy!r} must be >= {self.minimum}, got {value!r}"
            )
        return value


def _outcome_kind(outcome: Outcome) -> str:
    return type(outcome).__name__.lower()


class Strategy(ABC):
    """Proposes configurations and learns from their outcomes.

    Contract: ``ask`` returns at most ``n`` proposals with keys unique for this strategy (``[]`` when it has
    nothing more to propose); every key is told exactly once; ``tell`` and ``observe`` check the outcome
    (every objective present in a ``Completed`` result, no NaN) and raise :class:`StrategyError` rather than
    ignore a mismatch; errors from the backend propagate.
    """

    name: ClassVar[str]
    options_allowed: ClassVar[Mapping[str, _Option]] = {}

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, seed: int, options: Mapping[str, Any]
    ) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = seed
        self.options = dict(options)
        self._pending: set[str] = set()
        self._counts: Counter[str] = Counter()

    def ask(self, n: int) -> list[Proposal]:
        """Up to ``n`` new proposals (raw configs), fewer or none when the strategy is exhausted."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise StrategyError(f"ask needs a number of proposals >= 0, got {n!r}")
        proposals = self._ask(n) if n else []
        self._pending.update(proposal.key for proposal in proposals)
        return proposals

    def tell(self, key: str, outcome: Outcome) -> None:
        """Record the outcome of the proposal ``key``. Raises StrategyError for an unknown or told key."""
        if key not in self._pending:
            pending = sorted(self._pending)
            raise StrategyError(
                f"strategy {self.name!r} has no pending proposal {key!r}; pending keys: "
                f"{pending[:10]}{' ...' if len(pending) > 10 else ''}"
            )
        values = self._objective_values(outcome)
        self._tell(key, outcome, values)
        self._pending.remove(key)
        self._counts[_outcome_kind(outcome)] += 1

    def observe(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        """Absorb a finished trial this strategy did not propose (resume, warm start).

        ``config`` is the stored config, canonical or raw (feasibility is not checked: a Rejected config is
        infeasible by definition). Raises StrategyError when it does not fit the space (unknown or missing
        parameter, value out of range) or the outcome is malformed.
        """
        values = self._objective_values(outcome)
        try:
            canonical = self.space.canonicalize(config)
        except SpaceError as exc:
            raise StrategyError(f"observed config does not fit the space: {exc}") from exc
        self._observe(canonical, outcome, values)
        self._counts[_outcome_kind(outcome)] += 1

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for strategies without resources
        """Release background resources (threads, processes); the strategy is not used afterwards."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able diagnostics: outcomes seen by kind, pending proposals, strategy-specific numbers."""
        return {
            "strategy": self.name,
            "seed": self.seed,
            "options": dict(self.options),
            "seen": {kind: self._counts[kind] for kind in ("completed", "pruned", "failed", "rejected")},
            "pending": len(self._pending),
            **self._extra_state(),
        }

    def _objective_values(self, outcome: Outcome) -> list[float] | None:
        """Objective values in objective order for Completed (all required), partial for Pruned, else None."""
        if isinstance(outcome, Failed | Rejected):
            return None
        if not isinstance(outcome, Completed | Pruned):
            raise StrategyError(
                f"outcome must be Completed, Pruned, Failed or Rejected, got {type(outcome).__name__}"
            )
        names = [objective.name for objective in self.objectives]
        if isinstance(outcome, Completed):
            missing = [name for name in names if name not in outcome.values]
            if missing:
                raise StrategyError(
                    f"completed result lacks objective(s) {missing}; it has {sorted(outcome.values)}, "
                    f"the objectives are {names}"
                )
        elif outcome.fidelity < 0:
            raise StrategyError(f"pruned fidelity must be >= 0, got {outcome.fidelity}")
        values: list[float] = []
        for name in names:
            if name not in outcome.values:
                continue
            value = outcome.values[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise StrategyError(f"objective {name!r} must be a number, got {value!r}")
            if isinstance(outcome, Completed) and math.isnan(value):
                raise StrategyError(f"objective {name!r} is NaN; NaN results must be told as Failed")
            values.append(float(value))
        return values

    @abstractmethod
    def _ask(self, n: int) -> list[Proposal]: ...

    @abstractmethod
    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None: ...

    @abstractmethod
    def _observe(self, canonical: dict[str, Any], outcome: Outcome, values: list[float] | None) -> None: ...

    def _extra_state(self) -> dict[str, Any]:
        return {}


class RandomStrategy(Strategy):
    """Independent ``space.sample`` draws; proposal ``i`` uses a generator seeded with ``(seed, i)``."""

    name = "random"

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, seed: int, options: Mapping[str, Any]
    ) -> None:
        super().__init__(space, objectives, seed=seed, options=options)
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


class GridStrategy(Strategy):
    """``space.grid(float_points=...)`` in order, skipping observed configs; exhausted -> ``[]``."""

    name = "grid"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "float_points": _Option(None, int, minimum=2, optional=True)
    }

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, seed: int, options: Mapping[str, Any]
    ) -> None:
        super().__init__(space, objectives, seed=seed, options=options)
        float_points = self.options["float_points"]
        try:
            self._size = space.grid_size(float_points=float_points)
            self._points: Iterator[dict[str, Any]] = space.grid(float_points=float_points)
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

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, seed: int, options: Mapping[str, Any]
    ) -> None:
        super().__init__(space, objectives, seed=seed, options=options)
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


_STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomStrategy, GridStrategy, TPEStrategy, NSGA2Strategy, GPStrategy)
}
# "ax" lives in search._ax, which subclasses Strategy: it is imported when first built (and loads Ax only then).
STRATEGY_NAMES: tuple[str, ...] = (*_STRATEGY_CLASSES, "ax")


def make_strategy(
    name: str,
    space: Space,
    objectives: Sequence[Objective],
    *,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> Strategy:
    """Build the strategy ``name`` over ``space`` for 1..4 ``objectives``, deterministic for ``seed``.

    Unset options take their defaults. Raises StrategyError for an unknown name (listing STRATEGY_NAMES),
    an unknown option (listing the strategy's options), a bad option value, a seed that is not an integer
    >= 0, or objectives that are not 1..4 uniquely named ``Objective`` s.
    """
    if name not in STRATEGY_NAMES:
        raise StrategyError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGY_NAMES)}")
    cls: type[Strategy]
    if name == "ax":
        from search._ax import AxStrategy

        cls = AxStrategy
    else:
        cls = _STRATEGY_CLASSES[name]
    given = dict(options or {})
    unknown = sorted(set(given) - set(cls.options_allowed))
    if unknown:
        allowed = ", ".join(cls.options_allowed) or "none"
        raise StrategyError(f"unknown option(s) {unknown} for strategy {name!r}; allowed: {allowed}")
    resolved = {
        option: spec.check(name, option, given.get(option, spec.default))
        for option, spec in cls.options_allowed.items()
    }
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise StrategyError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    objectives = tuple(objectives)
    if not 1 <= len(objectives) <= MAX_OBJECTIVES:
        raise StrategyError(f"a strategy needs 1 to {MAX_OBJECTIVES} objectives, got {len(objectives)}")
    names = [objective.name for objective in objectives]
    if len(set(names)) != len(names):
        raise StrategyError(f"objective names must be unique, got {names}")
    for objective in objectives:
        if objective.direction not in ("minimize", "maximize"):
            raise StrategyError(
                f"objective {objective.name!r} has direction {objective.direction!r}; "
                "allowed: minimize, maximize"
            )
    return cls(space, objectives, seed=seed, options=resolved)
