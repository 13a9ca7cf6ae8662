"""Step 1: the candidate pool, priced by the exact cost oracle (costs cached by architecture).

Everything the strategy knows about costs lives here: the architecture key (a config without its training
settings), the cache of oracle results and rejections, the archive of accepted architectures, and the moves
that make new candidates (fresh draws, mutations of front members, new training settings for known
architectures). :class:`_Candidates` is the layer of :class:`HwnasStrategy` holding these methods; the
strategy's ``__init__`` sets the state declared here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.strategies._base import Strategy, StrategyError
from spaces import UNCOMPRESSED, BoolParam, ChoiceParam, FloatParam, IntParam, Param, SpaceError

_REJECTION_LIMIT = 64  # consecutive oracle rejections without any accepted architecture: give up
_FIRST_ASK_FACTOR = 8  # the first ask costs this many times cost_calls architectures
_MUTATION_SHARE = 0.9  # new architectures once there is a front: mutations of its members, else draws
_PIN_CHECKS = 3  # architectures on which a compression knob is priced on and off before it is pinned off


@dataclass
class _Record:
    """A finished trial the strategy knows of: canonical config, outcome kind, told values, whether the
    task flagged the trained model as collapsed, a completed or pruned trial's wall time (None if not
    told) over the epochs it ran (0 if not told), and whether it was an interleaved exploration pick."""

    config: dict[str, Any]
    kind: str
    values: dict[str, float]
    collapsed: bool = False
    seconds: float | None = None
    epochs: int = 0
    exploration: bool = field(default=False, compare=False)  # how it was asked, not what the trial was


@dataclass
class _Candidate:
    config: dict[str, Any]
    hash: str
    costs: np.ndarray  # transformed (oriented log) costs, one per cost objective


class _Candidates(Strategy):
    """The cost cache and the candidate pool of :class:`HwnasStrategy` (a layer of it, not a strategy)."""

    _training: frozenset[str]  # the parameters the cost does not depend on
    _cost_names: list[str]
    _quality_names: list[str]
    _sign: dict[str, float]  # +1 minimised, -1 maximised
    _records: list[_Record]
    _seen: set[str]
    _pending_configs: dict[str, dict[str, Any]]
    _arch_costs: dict[str, dict[str, float] | str]
    _banned: set[str]  # architectures whose trials the driver rejected
    _archive: list[str]  # accepted architecture keys, in costing order
    _arch_configs: dict[str, dict[str, Any]]
    _oracle_calls: int
    _rejected_in_a_row: int
    _rejections: Counter[str]
    _pinned: dict[str, Any] | None  # compression knobs held uncompressed; None until the first pool decides

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

    # -- the candidate pool --------------------------------------------------------------------------------
    def _complete(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any] | None:
        """A canonical feasible config keeping ``values`` where active and drawing the rest; None if
        infeasible. Pinned compression knobs take their pinned value."""
        values = {**values, **(self._pinned or {})}
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
        """A neighbouring value: a step along ordered domains, a Gaussian move on the (log) scale of floats,
        reflected at the bounds (clipped, half the moves from a value near a bound would land on it)."""
        if isinstance(param, BoolParam):
            return not value
        if isinstance(param, FloatParam):
            low, high, number = param.low, param.high, float(value)
            if param.log:
                low, high, number = math.log(low), math.log(high), math.log(number)
            moved = number + rng.normal(0.0, 0.15 * (high - low))
            moved = 2 * low - moved if moved < low else 2 * high - moved if moved > high else moved
            moved = min(max(moved, low), high)
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
        names = [
            name
            for name in config
            if (name not in self._training) == arch and name not in (self._pinned or {})
        ]
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

    def _pin_compression(self, rng: np.random.Generator) -> dict[str, Any]:
        """The compression knobs (``spaces.UNCOMPRESSED``) that lower no cost objective, at their
        uncompressed value. ``ops`` counts every weight, pruned or not, at any width: under it pruning and
        quantization can only cost quality, and drawing them would spend most trials on damaged models (a
        sparsity uniform in 0..0.9 collapses short runs). A knob is pinned when, on ``_PIN_CHECKS``
        architectures priced with it on and off, switching it on lowered no cost objective and never let an
        architecture the budgets reject pass. These calls do not count towards the rejection limit."""
        pinned: dict[str, Any] = {}
        if not self.options["pin_compression"] or not self._cost_names:
            return pinned
        rejected_in_a_row = self._rejected_in_a_row
        for name, uncompressed in UNCOMPRESSED.items():
            if name not in self.space.names or name in self._training:
                continue
            param = self.space.param(name)
            try:
                off = param.coerce(uncompressed)  # canonical (an integer sparsity pins 0, not 0.0)
            except SpaceError:  # the space leaves the uncompressed value out: the user wants compression
                continue
            on = _compressed(param, off)
            if on is None:
                continue
            checks = attempts = 0
            pays = False
            while checks < _PIN_CHECKS and attempts < 8 * _PIN_CHECKS and not pays:
                attempts += 1
                with_knob = self._complete({**pinned, name: on}, rng)
                if with_knob is None or with_knob.get(name) != on:
                    continue
                priced_on = self._oracle(with_knob)
                without = self._complete({**with_knob, name: off}, rng)
                if isinstance(priced_on, str) or without is None:
                    continue
                priced_off = self._oracle(without)
                checks += 1
                pays = isinstance(priced_off, str) or any(
                    self._sign[c] * (priced_on[c] - priced_off[c]) < -1e-9 * max(abs(priced_off[c]), 1e-300)
                    for c in self._cost_names
                )
            if checks == _PIN_CHECKS and not pays:
                pinned[name] = off
        self._rejected_in_a_row = rejected_in_a_row
        return pinned

    def _agrees_with_pins(self, arch_key: str) -> bool:
        arch = self._arch_configs[arch_key]
        return all(arch.get(name, value) == value for name, value in (self._pinned or {}).items())

    def _pool(self, rng: np.random.Generator, learning: bool, n: int) -> list[_Candidate]:
        first = not self._archive  # before the pin checks add their architectures to it
        if self._pinned is None:
            self._pinned = self._pin_compression(rng)
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
            budget = self.options["cost_calls"] * (_FIRST_ASK_FACTOR if first else 1)
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
            archive = [key for key in self._archive if self._agrees_with_pins(key)]
            if archive:
                good = sorted(
                    (r for r in front),
                    key=lambda r: tuple(self._sign[q] * r.values[q] for q in self._quality_names),
                )
                for _ in range(self.options["n_candidates"]):
                    arch = self._arch_configs[archive[int(rng.integers(0, len(archive)))]]
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


def _compressed(param: Param, off: Any) -> Any:
    """A value of compression knob ``param`` far from its uncompressed value ``off``; None if its domain
    has no other number."""
    if isinstance(param, BoolParam):
        return not off
    if isinstance(param, FloatParam) and param.finite_domain() is None:
        return param.high if abs(param.high - off) >= abs(param.low - off) else param.low
    numbers = [
        value
        for value in param.finite_domain() or ()
        if isinstance(value, int | float) and not isinstance(value, bool) and value != off
    ]
    return max(numbers, key=lambda value: abs(value - off)) if numbers else None


def _config_key(canonical: Mapping[str, Any]) -> str:
    """The text ``Space.config_hash`` hashes, of an already canonical config: equal configs, equal keys."""
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _dominated_strictly(points: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (minimised) dominated by another row (better or equal everywhere, better once)."""
    le = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    lt = np.any(points[:, None, :] < points[None, :, :], axis=2)
    return np.any(le & lt, axis=0)
