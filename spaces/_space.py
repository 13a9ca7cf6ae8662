"""`Space`: typed, conditional, constrained search spaces, loadable from YAML/JSON.

Schema (YAML or a dict; parameters are a mapping, kept in the order written)::

    name: tiny-econt                     # optional
    parameters:
      n_conv: {type: int, low: 0, high: 2}                      # bounds inclusive
      conv0_filters: {type: choice, choices: [4, 8, 16], ordered: true, active_if: {n_conv: {">": 0}}}
      conv1_filters: {type: choice, choices: [4, 8, 16], ordered: true, active_if: {n_conv: {">": 1}}}
      decoder: {type: choice, choices: [convtranspose, upsample], active_if: {n_conv: {">=": 1}}}
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      sparsity: {type: float, low: 0.0, high: 0.8, step: 0.1}
      quantize: {type: bool}
      weight_bits: {type: int, low: 3, high: 8, active_if: {quantize: true}}
    constraints:                         # optional
      - {expr: "n_conv == 0 or conv0_filters <= 8", reason: "wide first layers do not fit"}
      - {builtin: conv_shape, input_size: 8}

Parameter keys: ``type`` (int | float | choice | bool) and, per type, int: ``low``, ``high``, ``log``
(false), ``step`` (1); float: ``low``, ``high``, ``log`` (false), ``step`` (none); choice: ``choices``,
``ordered`` (false); every type: ``active_if`` (see `spaces._params`: a list means membership, a mapping
of ``== != < <= > >=`` means comparisons; several parents must all hold; a parameter whose parent is
inactive is inactive). Note that PyYAML reads ``1e-4`` as a string: float bounds accept numeric strings.
Constraints: see `spaces._constraints`. Errors are `SpaceError` naming the key path (``parameters.lr.low``)
and the allowed values.

A *canonical* config holds exactly the active parameters, in declaration order, each value coerced to its
parameter's type (int, float, the exact choice object, bool). ``validate`` returns it (or `Infeasible`),
``config_hash`` hashes it, and every adapter (``sample``, ``grid``, Optuna, Ax) produces configs that
canonicalise to themselves.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ._constraints import Constraint
from ._errors import Infeasible, SpaceError
from ._params import COMPARISONS, BoolParam, ChoiceParam, Clause, FloatParam, IntParam, Param, is_number

if TYPE_CHECKING:
    import optuna

    from ._ax import AxEncoding

logger = logging.getLogger(__name__)

_PARAM_TYPES: dict[str, type[Param]] = {
    "int": IntParam,
    "float": FloatParam,
    "choice": ChoiceParam,
    "bool": BoolParam,
}
_PARAM_KEYS = {
    "int": {"type", "low", "high", "log", "step", "active_if"},
    "float": {"type", "low", "high", "log", "step", "active_if"},
    "choice": {"type", "choices", "ordered", "active_if"},
    "bool": {"type", "active_if"},
}
_TOP_KEYS = {"name", "parameters", "constraints"}


class Space:
    """An immutable search space: parameters (declaration order matters), conditions, constraints.

    Attributes: ``name``, ``params`` and ``names`` (declaration order), ``constraints``,
    ``evaluation_order`` (parents before children, otherwise declaration order).
    Raises SpaceError at construction for duplicate names, conditions on undefined parents, conditions
    whose values the parent cannot take, comparisons on non-numeric parents, cycles, and constraints that
    name undefined parameters.
    """

    def __init__(
        self, params: Iterable[Param], constraints: Iterable[Constraint] = (), *, name: str = ""
    ) -> None:
        self.name = name
        self.params: tuple[Param, ...] = tuple(params)
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        self._by_name: dict[str, Param] = {}
        for param in self.params:
            if not isinstance(param, IntParam | FloatParam | ChoiceParam | BoolParam):
                raise SpaceError(
                    f"space parameters must be IntParam/FloatParam/ChoiceParam/BoolParam, got {param!r}"
                )
            if param.name in self._by_name:
                raise SpaceError(f"parameter {param.name!r} is defined twice")
            self._by_name[param.name] = param
        for param in self.params:
            for clause in param.conditions:
                self._check_clause(param.name, clause)
        self.evaluation_order = self._evaluation_order()
        self._parents = frozenset(c.parent for p in self.params for c in p.conditions)
        for i, constraint in enumerate(self.constraints):
            if not isinstance(constraint, Constraint):
                raise SpaceError(f"constraints[{i}] must be a Constraint, got {constraint!r}")
            unknown = sorted(constraint.parameters - self._by_name.keys())
            if unknown:
                raise SpaceError(f"constraints[{i}] ({constraint!r}) names unknown parameter(s) {unknown}")
        self._ax: AxEncoding | None = None

    # -- construction checks ------------------------------------------------------------------------
    def _check_clause(self, child: str, clause: Clause) -> None:
        where = f"parameter {child!r}: active_if.{clause.parent}"
        parent = self._by_name.get(clause.parent)
        if parent is None:
            raise SpaceError(
                f"{where}: parent {clause.parent!r} is not a parameter; defined: {list(self._by_name)}"
            )
        if clause.op in COMPARISONS and clause.op not in ("==", "!="):
            if not parent.is_numeric():
                raise SpaceError(
                    f"{where}: {clause.op!r} needs a numeric parent, {clause.parent!r} is not numeric"
                )
            if not is_number(clause.operand):
                raise SpaceError(f"{where}: {clause.op!r} needs a number, got {clause.operand!r}")
            return
        for value in clause.operand if clause.op == "in" else (clause.operand,):
            try:
                parent.coerce(value)
            except SpaceError as error:
                raise SpaceError(
                    f"{where}: {value!r} is not a value of {clause.parent!r} ({error})"
                ) from None

    def _evaluation_order(self) -> tuple[Param, ...]:
        """Parents before children, otherwise declaration order; SpaceError naming a cycle."""
        index = {p.name: i for i, p in enumerate(self.params)}
        children: dict[str, list[str]] = {p.name: [] for p in self.params}
        pending = {p.name: len({c.parent for c in p.conditions}) for p in self.params}
        for param in self.params:
            for parent in {c.parent for c in param.conditions}:
                children[parent].append(param.name)
        ready = [index[name] for name, count in pending.items() if count == 0]
        heapq.heapify(ready)
        order: list[Param] = []
        while ready:
            param = self.params[heapq.heappop(ready)]
            order.append(param)
            for child in children[param.name]:
                pending[child] -= 1
                if pending[child] == 0:
                    heapq.heappush(ready, index[child])
        if len(order) < len(self.params):
            raise SpaceError(f"conditions form a cycle: {' -> '.join(self._find_cycle(pending))}")
        return tuple(order)

    def _find_cycle(self, pending: Mapping[str, int]) -> list[str]:
        stuck = {name for name, count in pending.items() if count > 0}
        path = [min(stuck, key=[p.name for p in self.params].index)]
        while True:
            parent = next(c.parent for c in self._by_name[path[-1]].conditions if c.parent in stuck)
            if parent in path:
                return [*path[path.index(parent) :], parent][::-1]
            path.append(parent)

    # -- basic queries ------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        """The parameter called ``name``; SpaceError listing the defined names otherwise."""
        if name not in self._by_name:
            raise SpaceError(f"unknown parameter {name!r}; defined: {list(self._by_name)}")
        return self._by_name[name]

    def _is_active(self, param: Param, assigned: Mapping[str, Any]) -> bool:
        return all(c.parent in assigned and c.holds(assigned[c.parent]) for c in param.conditions)

    def _ordered(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {p.name: values[p.name] for p in self.params if p.name in values}

    # -- canonical configs --------------------------------------------------------------------------
    def canonicalize(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical form of ``config`` without checking constraints (see ``validate``)."""
        if not isinstance(config, Mapping):
            raise SpaceError(f"a config must be a mapping of parameter name to value, got {config!r}")
        unknown = [key for key in config if key not in self._by_name]
        if unknown:
            raise SpaceError(f"unknown parameter(s) {unknown}; this space defines {list(self._by_name)}")
        values: dict[str, Any] = {}
        for param in self.evaluation_order:
            if not self._is_active(param, values):
                continue
            if param.name not in config:
                because = " and ".join(c.describe() for c in param.conditions)
                raise SpaceError(
                    f"missing value for active parameter {param.name!r}"
                    + (f" (active because {because})" if because else "")
                )
            values[param.name] = param.coerce(config[param.name])
        return self._ordered(values)

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any] | Infeasible:
        """A NEW canonical dict, or `Infeasible` with every violated constraint's reason ("; "-joined).

        Inactive parameters are dropped silently. Raises SpaceError for unknown names, a missing active
        parameter, or a value of the wrong type or out of range (naming the parameter, value and range).
        """
        canonical = self.canonicalize(config)
        reasons = [r for r in (c.violation(canonical) for c in self.constraints) if r is not None]
        return Infeasible("; ".join(reasons)) if reasons else canonical

    def config_hash(self, config: Mapping[str, Any]) -> str:
        """sha256 hex of the canonical config as JSON with sorted keys: equal configs hash equal in every
        process (feasibility is not checked). Raises SpaceError like ``canonicalize``."""
        text = json.dumps(self.canonicalize(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def sample(self, rng: np.random.Generator, *, max_attempts: int = 100) -> dict[str, Any]:
        """A random canonical config: each active parameter drawn from its own distribution (uniform, or
        log-uniform), redrawn until every constraint holds.

        If ``max_attempts`` draws are all infeasible (feasible configs are rare), the last draw is returned
        and a warning logged; ``validate`` then reports it `Infeasible`.
        """
        if max_attempts < 1:
            raise SpaceError(f"max_attempts must be >= 1, got {max_attempts}")
        for _ in range(max_attempts):
            values: dict[str, Any] = {}
            for param in self.evaluation_order:
                if self._is_active(param, values):
                    values[param.name] = param.sample(rng)
            candidate = self._ordered(values)
            if all(c.violation(candidate) is None for c in self.constraints):
                return candidate
        logger.warning(
            "space %r: no feasible config in %d draws; returning an infeasible one", self.name, max_attempts
        )
        return candidate

    # -- grids --------------------------------------------------------------------------------------
    def grid(self, *, float_points: int | None = None) -> Iterator[dict[str, Any]]:
        """Every canonical config (feasible or not; ``validate`` tells) in a fixed order, the last-declared
        parameter varying fastest. Inactive parameters are not expanded. Continuous floats take
        ``float_points`` evenly spaced values (log-spaced for ``log``); without it they raise SpaceError."""
        grids = {p.name: p.grid_values(float_points) for p in self.params}  # raises now, not at first next()
        return self._expand(0, {}, grids)

    def _expand(
        self, position: int, values: dict[str, Any], grids: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        if position == len(self.evaluation_order):
            yield self._ordered(values)
            return
        param = self.evaluation_order[position]
        if not self._is_active(param, values):
            yield from self._expand(position + 1, values, grids)
            return
        for value in grids[param.name]:
            values[param.name] = value
            yield from self._expand(position + 1, values, grids)
        del values[param.name]

    def grid_size(self, *, float_points: int | None = None) -> int:
        """The number of configs ``grid`` yields, computed without enumerating them (branching only over
        parameters that other parameters' conditions depend on)."""
        grids = {p.name: p.grid_values(float_points) for p in self.params}
        return self._count(0, {}, grids)

    def _count(self, position: int, values: dict[str, Any], grids: Mapping[str, Any]) -> int:
        if position == len(self.evaluation_order):
            return 1
        param = self.evaluation_order[position]
        if not self._is_active(param, values):
            return self._count(position + 1, values, grids)
        if param.name not in self._parents:
            return len(grids[param.name]) * self._count(position + 1, values, grids)
        total = 0
        for value in grids[param.name]:
            values[param.name] = value
            total += self._count(position + 1, values, grids)
        del values[param.name]
        return total

    # -- Optuna -------------------------------------------------------------------------------------
    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run: suggest each parameter (same name in Optuna) only when its condition holds, so
        absent layers carry no parameters. Returns the config in declaration order (constraints unchecked)."""
        from ._optuna import suggest

        values: dict[str, Any] = {}
        for param in self.evaluation_order:
            if self._is_active(param, values):
                values[param.name] = param.coerce(suggest(trial, param))
        return self._ordered(values)

    def optuna_distributions(
        self, config: Mapping[str, Any]
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        """The distribution ``suggest`` uses for every active parameter of ``config`` (for
        ``optuna.trial.create_trial`` when rebuilding a study). Raises SpaceError like ``canonicalize``."""
        from ._optuna import distribution

        return {name: distribution(self._by_name[name]) for name in self.canonicalize(config)}

    # -- Ax -----------------------------------------------------------------------------------------
    def _ax_encoding(self) -> AxEncoding:
        if self._ax is None:
            from ._ax import AxEncoding

            self._ax = AxEncoding(self)
        return self._ax

    def to_ax(self) -> list[Any]:
        """Ax ``RangeParameterConfig``/``ChoiceParameterConfig`` list (see `spaces._ax` for the encoding:
        layer counts become ``use_<layer>_<i>`` "off"/"on" switch chains, bools become "off"/"on").
        Raises SpaceError naming the parameter when the conditions do not form a tree Ax can express."""
        return self._ax_encoding().parameter_configs()

    def from_ax(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A raw config (for ``validate``) from the parameter dict Ax returned; SpaceError for unknown keys."""
        return self._ax_encoding().decode(params)

    def to_ax_parameters(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The Ax parameter dict of a config (for ``client.attach_trial`` on resume)."""
        return self._ax_encoding().encode(self.canonicalize(config))

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The schema form (module docstring); SpaceError if a constraint is a Python callable."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["parameters"] = {param.name: param.to_dict() for param in self.params}
        if self.constraints:
            out["constraints"] = [c.to_dict() for c in self.constraints]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Space:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpaceError(f"space JSON is not valid: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_yaml(cls, source: str | Path) -> Space:
        """From a YAML file (a Path, or a one-line string ending in .yaml/.yml) or YAML text."""
        if isinstance(source, Path) or ("\n" not in source and source.strip().endswith((".yaml", ".yml"))):
            path = Path(source)
            if not path.is_file():
                raise SpaceError(f"space file {str(path)!r} does not exist")
            source = path.read_text()
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as error:
            raise SpaceError(f"space YAML is not valid: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """From the schema form; SpaceError naming the key path of the first problem."""
        if not isinstance(data, Mapping):
            raise SpaceError(f"a space must be a mapping with keys {sorted(_TOP_KEYS)}, got {data!r}")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise SpaceError(f"unknown key(s) {unknown} in the space; allowed: {sorted(_TOP_KEYS)}")
        name = data.get("name", "")
        if not isinstance(name, str):
            raise SpaceError(f"name: must be a string, got {name!r}")
        parameters = data.get("parameters")
        if not isinstance(parameters, Mapping) or not parameters:
            raise SpaceError(
                f"parameters: must be a non-empty mapping of name to parameter, got {parameters!r}"
            )
        params = [_param_from_dict(str(key), spec) for key, spec in parameters.items()]
        constraint_specs = data.get("constraints") or []
        if not isinstance(constraint_specs, list):
            raise SpaceError(f"constraints: must be a list, got {constraint_specs!r}")
        constraints = []
        for i, spec in enumerate(constraint_specs):
            try:
                constraints.append(Constraint.from_dict(spec))
            except SpaceError as error:
                raise SpaceError(f"constraints[{i}]: {error}") from None
        return cls(params, constraints, name=name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return (self.name, self.params, self.constraints) == (other.name, other.params, other.constraints)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking equality without a stable hash

    def __repr__(self) -> str:
        return (
            f"Space(name={self.name!r}, parameters={list(self.names)}, constraints={len(self.constraints)})"
        )


def _float_bound(value: Any) -> Any:
    """PyYAML reads ``1e-4`` (no dot) as a string; accept such numeric strings for float bounds."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _param_from_dict(name: str, spec: Any) -> Param:
    path = f"parameters.{name}"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{path}: must be a mapping with a 'type' key, got {spec!r}")
    kind = spec.get("type")
    if kind not in _PARAM_TYPES:
        raise SpaceError(f"{path}.type: must be one of {list(_PARAM_TYPES)}, got {kind!r}")
    unknown = sorted(set(spec) - _PARAM_KEYS[kind])
    if unknown:
        raise SpaceError(
            f"{path}: unknown key(s) {unknown} for a {kind} parameter; allowed: {sorted(_PARAM_KEYS[kind])}"
        )
    for flag in ("log", "ordered"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise SpaceError(f"{path}.{flag}: must be true or false, got {spec[flag]!r}")
    options = {k: v for k, v in spec.items() if k != "type"}
    required = {"int": ("low", "high"), "float": ("low", "high"), "choice": ("choices",), "bool": ()}[kind]
    missing = [key for key in required if key not in options]
    if missing:
        raise SpaceError(f"{path}: missing key(s) {missing} for a {kind} parameter")
    if kind == "float":
        for key in ("low", "high", "step"):
            if key in options:
                options[key] = _float_bound(options[key])
    positional = [options.pop(key) for key in required]
    try:
        return _PARAM_TYPES[kind](name, *positional, **options)
    except SpaceError as error:
        raise SpaceError(f"{path}: {error}") from None
