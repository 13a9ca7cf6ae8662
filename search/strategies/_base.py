"""Search strategies behind one small ask/tell interface.

A :class:`Strategy` proposes raw configurations (``ask``), learns the outcome of each proposal it made
(``tell``) and absorbs trials it did not propose (``observe``: resume from the store, warm-start configs).
The driver validates every proposed config with ``space.validate`` and tells ``Rejected`` for infeasible
ones without training. :func:`make_strategy` builds one by name; a backend is one more subclass decorated
with :func:`register_strategy`.

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
:class:`StrategyError`. A ``Completed`` result carries the task's collapse flag (``collapsed``); random,
grid, Optuna and Ax ignore it (the values say how bad the trial was), ``hwnas`` models it.

Resume: ``observe`` replays finished trials. Optuna strategies add them to their in-memory study with the
same params, values, state, intermediate value and constraint as ``tell`` would have recorded (NSGA-II also
assigns the generation a sequential run would have). The random strategy derives proposal ``i`` from
``(seed, i)`` and each observed trial advances ``i`` by one, so a resumed sweep continues the sequence instead
of repeating it. The grid strategy skips grid points it has observed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from search._types import Completed, Failed, Objective, Outcome, Proposal, Pruned, Rejected
from spaces import Space, SpaceError

MAX_OBJECTIVES = 4
# The Optuna constraint that marks a Rejected (never trained) config: > 0 means violated.
FEASIBILITY_CONSTRAINT = "feasible"
# The exact pre-training cost of a canonical config: its cost objectives' values (hardware quantities,
# model_kb), or the reason it is rejected without training (over a budget, not convertible). The sweep
# loop supplies one; strategies that exploit known costs use it, the others ignore it.
CostOracle = Callable[[Mapping[str, Any]], Mapping[str, float] | str]


class StrategyError(ValueError):
    """A strategy was misused: unknown name or option, unknown key, malformed outcome or config."""


@dataclass(frozen=True)
class _Option:
    """One tuning knob of a strategy: its default, its type, (for integers) its smallest value and (for
    enumerations) the values allowed."""

    default: Any
    kind: type
    minimum: int | None = None
    optional: bool = False
    choices: tuple[Any, ...] | None = None

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
        if self.choices is not None and value not in self.choices:
            raise StrategyError(
                f"option {name!r} of strategy {strategy!r} must be one of "
                f"{', '.join(map(repr, self.choices))}, got {value!r}"
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
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        seed: int,
        options: Mapping[str, Any],
        reference_point: Mapping[str, float] | None = None,
        costs: CostOracle | None = None,
    ) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = seed
        self.options = dict(options)
        self.reference_point = dict(reference_point) if reference_point is not None else None
        self.costs = costs
        self._setup()
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
        self._observe(self._canonical(config, "observed"), outcome, values)
        self._counts[_outcome_kind(outcome)] += 1

    def revise(self, config: Mapping[str, Any], outcome: Completed) -> None:
        """Replace the values of a completed trial told or observed before: its replicates have finished,
        and ``outcome`` holds the mean of its evaluations (with their standard errors in ``sem``).

        A config the strategy has no completed trial of is ignored. Strategies whose backend cannot amend a
        told trial (Optuna, Ax) keep the first values. Raises StrategyError, as ``observe`` does, for a
        config that does not fit the space or a malformed outcome.
        """
        if not isinstance(outcome, Completed):
            raise StrategyError(f"a revised outcome must be Completed, got {type(outcome).__name__}")
        values = self._objective_values(outcome)
        self._revise(self._canonical(config, "revised"), outcome, values)

    def _canonical(self, config: Mapping[str, Any], what: str) -> dict[str, Any]:
        try:
            return self.space.canonicalize(config)
        except SpaceError as exc:
            raise StrategyError(f"{what} config does not fit the space: {exc}") from exc

    def _revise(  # noqa: B027 - optional hook: backends that cannot amend a told trial keep its first values
        self, canonical: dict[str, Any], outcome: Completed, values: list[float] | None
    ) -> None:
        """Amend the trial of ``canonical`` to the revised ``outcome``."""

    def _setup(self) -> None:  # noqa: B027 - optional hook, a no-op for strategies without state
        """Build the backend's state once the common attributes are set (instead of overriding __init__)."""

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


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` buildable by :func:`make_strategy` under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise StrategyError(f"a strategy named {cls.name!r} is registered already ({_REGISTRY[cls.name]})")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    """Names of the registered strategies, in registration order."""
    return tuple(_REGISTRY)


def make_strategy(
    name: str,
    space: Space,
    objectives: Sequence[Objective],
    *,
    seed: int,
    options: Mapping[str, Any] | None = None,
    reference_point: Mapping[str, float] | None = None,
    costs: CostOracle | None = None,
) -> Strategy:
    """Build the strategy ``name`` over ``space`` for 1..4 ``objectives``, deterministic for ``seed``.

    Unset options take their defaults. Raises StrategyError for an unknown name (listing the registered ones),
    an unknown option (listing the strategy's options), a bad option value, a seed that is not an integer
    >= 0, or objectives that are not 1..4 uniquely named ``Objective`` s.
    """
    if name not in _REGISTRY:
        raise StrategyError(f"unknown strategy {name!r}; allowed: {', '.join(_REGISTRY)}")
    cls = _REGISTRY[name]
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
    return cls(space, objectives, seed=seed, options=resolved, reference_point=reference_point, costs=costs)
