"""The ``hwnas`` :class:`Strategy` subclass: its options, its state, and ask/tell/observe.

The steps of an ask live in the layers it inherits (``_candidates``, ``_models``, ``_acquisition``); this
module holds what ties them into a registered strategy: option checks, the outcome policy of ``tell`` and
``observe`` (see the package docstring), and the state reported by ``state_dict()``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from search._types import Completed, Failed, Outcome, Proposal, Pruned, Rejected
from search.strategies._base import StrategyError, _Option, register_strategy
from search.strategies.hwnas._acquisition import _MC_SAMPLES, _Selection
from search.strategies.hwnas._candidates import _config_key, _Record
from search.strategies.hwnas._features import ConfigEncoder
from search.strategies.hwnas._models import _DEFAULT_TREES, MODELS, QualityModel
from spaces import Infeasible

DEFAULT_TRAINING_PARAMS = ("lr", "batch_size", "l1_reg", "l1")


@register_strategy
class HwnasStrategy(_Selection):
    """Exact costs + a quality model + EHVI over a pool of costed candidates; see the package docstring."""

    name = "hwnas"
    options_allowed: ClassVar[Mapping[str, _Option]] = {
        "n_initial": _Option(6, int, minimum=2),
        "n_candidates": _Option(256, int, minimum=8),
        "cost_calls": _Option(4, int, minimum=1),
        "model": _Option("rf", str, choices=MODELS),
        "trees": _Option(None, int, minimum=4, optional=True),
        "training_params": _Option(None, list, optional=True),
        "pin_compression": _Option(True, bool),
        "per_second": _Option(True, bool),
        "explore_every": _Option(5, int, minimum=0),
    }

    def _setup(self) -> None:
        if self.options["trees"] is not None and self.options["model"] != "rf":
            raise StrategyError(
                f"option 'trees' of strategy 'hwnas' applies only to model 'rf', got model "
                f"{self.options['model']!r}; allowed: drop 'trees', or set model: rf"
            )
        self._training = self._training_params(self.options["training_params"])
        cost_names: set[str] = set()
        if self.costs is not None:
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
        self._encoder = ConfigEncoder(self.space)
        self._trees = self.options["trees"] or _DEFAULT_TREES
        self._quality_model = QualityModel(
            self.options["model"], self.seed, self._trees, trend_columns=len(self._cost_names)
        )
        # A forest whatever the quality model: the mean of its 0/1 leaves is a probability.
        self._miss_model = QualityModel("rf", self.seed + 1, self._trees)
        self._miss_fitted = False
        self._time_model = QualityModel("rf", self.seed + 2, self._trees, trend_columns=len(self._cost_names))
        self._time_fitted = False
        self._typical_log_seconds = 0.0
        self._records = []
        self._seen = set()
        self._pending_configs = {}
        self._arch_costs = {}
        self._banned = set()
        self._archive = []
        self._arch_configs = {}
        self._oracle_calls = 0
        self._rejected_in_a_row = 0
        self._rejections = Counter()
        self._pinned = None
        self._next_key = 0
        self._asks = 0
        self._model = None
        self._model_size = -1
        self._model_problem = None
        self._warned = None
        self._phase = "space-filling"
        self._explorations = 0
        self._asks_since_exploration = 0
        self._interleaved = 0
        self._exploring: set[str] = set()  # keys of pending interleaved-exploration picks
        self._encoded = {}
        self._draws = np.random.default_rng([self.seed, 2**16]).standard_normal((_MC_SAMPLES, 4))

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
        explore = self._interleaving(model)
        chosen = self._select(pool, n, model, explore=explore)
        proposals = []
        if explore and chosen:
            self._asks_since_exploration = 0
            self._interleaved += 1
        for candidate in chosen:
            key = str(self._next_key)
            self._next_key += 1
            if explore:
                self._exploring.add(key)
            self._seen.add(candidate.hash)
            self._pending_configs[key] = candidate.config
            proposals.append(Proposal(key=key, config=dict(candidate.config)))
        return proposals

    def _interleaving(self, model: QualityModel | None) -> bool:
        """Whether this ask is an interleaved exploration: at most one in ``explore_every`` of those with a
        fitted model, none while one is pending, and only while exploration picks have taken at most
        1/``explore_every`` of the trial time told so far (see the package docstring)."""
        every = self.options["explore_every"]
        if model is None or not every:
            return False
        self._asks_since_exploration += 1
        return (
            self._asks_since_exploration >= every
            and not self._exploring
            and self._exploration_time_share() * every <= 1.0
        )

    def _exploration_time_share(self) -> float:
        """The exploration picks' share of the trial seconds told so far (0 before any)."""
        told = sum(r.seconds or 0.0 for r in self._records)
        return sum(r.seconds or 0.0 for r in self._records if r.exploration) / told if told else 0.0

    def _tell(self, key: str, outcome: Outcome, values: list[float] | None) -> None:
        config = self._pending_configs.pop(key)
        self._record(config, outcome, proposed=True, exploration=key in self._exploring)
        self._exploring.discard(key)

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

    def _revise(self, canonical: dict[str, Any], outcome: Completed, values: list[float] | None) -> None:
        # The mean of a trial's evaluations replaces its first, often lucky, draw: in the front the EHVI is
        # measured against (a cheap encoder that scored EMD 1.9 once and 3.0 on its replicate no longer
        # closes the region around it) and in the quality model's data.
        key = _config_key(canonical)
        record = next(
            (r for r in reversed(self._records) if r.kind == "completed" and _config_key(r.config) == key),
            None,
        )
        if record is None:
            return  # a trial this strategy never learned of (another driver's): nothing to amend
        record.values = {name: float(outcome.values[name]) for name in self._sign if name in outcome.values}
        self._model_size = -1  # refit on the revised data at the next ask

    def _record(
        self, config: dict[str, Any], outcome: Outcome, *, proposed: bool, exploration: bool = False
    ) -> None:
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
        record = _Record(config=dict(config), kind=kind, values={}, exploration=exploration)
        if isinstance(outcome, Completed | Pruned):
            record.values = {
                name: float(outcome.values[name]) for name in self._sign if name in outcome.values
            }
            record.seconds, record.epochs = outcome.seconds, outcome.fidelity
            record.collapsed = isinstance(outcome, Completed) and outcome.collapsed
        elif not isinstance(outcome, Failed | Rejected):  # pragma: no cover - checked by the base class
            raise StrategyError(f"unexpected outcome {outcome!r}")
        self._records.append(record)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "phase": self._phase,
            "model_problem": self._model_problem,
            "oracle_calls": self._oracle_calls,
            "dominated_explorations": self._explorations,
            "interleaved_explorations": self._interleaved,
            "exploration_time_share": self._exploration_time_share(),
            "collapsed_trials": sum(r.collapsed for r in self._records),
            "miss_model": self._miss_fitted,
            "time_model": self._time_fitted,
            "architectures_costed": len(self._arch_costs),
            "architectures_rejected": sum(isinstance(v, str) for v in self._arch_costs.values())
            + len(self._banned),
            "pinned_compression": None if self._pinned is None else dict(self._pinned),  # None: no ask yet
            "cost_objectives": list(self._cost_names),
            "quality_objectives": list(self._quality_names),
        }
