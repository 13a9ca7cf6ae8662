"""Parameter types and their activation conditions.

Bounds are inclusive everywhere: ``IntParam("n", 0, 3)`` takes 0, 1, 2 and 3; ``FloatParam("lr", 1e-4,
1e-2)`` may return either end. Every parameter coerces a value to its canonical form (``coerce``) or raises
`SpaceError` naming the parameter, the value and what is allowed.

``active_if`` maps parent parameter names to a clause; all clauses must hold (and every parent must itself
be active) for the parameter to be active:

- a list: membership, ``{"decoder": ["upsample"]}``;
- a mapping of comparison operators (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``), all of which must hold:
  ``{"n_conv": {">": 1}}``, ``{"latent": {">=": 8, "<": 16}}``;
- any other scalar: shorthand for a one-element list, ``{"quantize": True}``.
"""

from __future__ import annotations

import math
import numbers
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard, cast

import numpy as np

from ._errors import SpaceError

Value = int | float | str | bool
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Float values within this relative distance of a bound are clamped onto it (optimisers' log/exp round trips
# land a few ulps outside); anything further is out of range.
_BOUND_TOLERANCE = 1e-9
# Values on a float step grid are stored with this many significant digits, so 0.1 + 0.2 canonicalises to 0.3.
_STEP_DIGITS = 12


def is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def is_number(value: object) -> TypeGuard[numbers.Real]:
    """A real number that is not a bool (bool is an int subclass in Python)."""
    return isinstance(value, numbers.Real) and not is_bool(value)


def same_value(a: object, b: object) -> bool:
    """Type-aware equality: bools equal only bools, strings only strings, numbers numerically."""
    if is_bool(a) or is_bool(b):
        return is_bool(a) and is_bool(b) and bool(a) == bool(b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return is_number(a) and is_number(b) and a == b


def _plain(value: object) -> object:
    """numpy scalars to their Python equivalents; everything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Clause:
    """One condition on one parent: ``op`` is "in" (``operand`` a tuple) or a comparison operator."""

    parent: str
    op: str
    operand: Any

    def holds(self, value: object) -> bool:
        if self.op == "in":
            return any(same_value(value, member) for member in self.operand)
        if self.op == "==":
            return same_value(value, self.operand)
        if self.op == "!=":
            return not same_value(value, self.operand)
        return bool(COMPARISONS[self.op](value, self.operand))

    def describe(self) -> str:
        if self.op == "in":
            return f"{self.parent} in {list(self.operand)!r}"
        return f"{self.parent} {self.op} {self.operand!r}"


def _parse_active_if(name: str, active_if: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Clause, ...]]:
    """Normalised ``active_if`` (lists and operator mappings only) and its clauses."""
    if not isinstance(active_if, Mapping):
        raise SpaceError(
            f"parameter {name!r}: active_if must be a mapping of parent name to condition, got {active_if!r}"
        )
    normalised: dict[str, Any] = {}
    clauses: list[Clause] = []
    for parent, spec in active_if.items():
        if not isinstance(parent, str):
            raise SpaceError(f"parameter {name!r}: active_if keys must be parameter names, got {parent!r}")
        if isinstance(spec, Mapping):
            if not spec:
                raise SpaceError(
                    f"parameter {name!r}: active_if.{parent} has no operator; allowed {list(COMPARISONS)}"
                )
            for op, operand in spec.items():
                if op not in COMPARISONS:
                    raise SpaceError(
                        f"parameter {name!r}: unknown operator {op!r} in active_if.{parent}; "
                        f"allowed {list(COMPARISONS)} or a list of values"
                    )
                clauses.append(Clause(parent, op, _plain(operand)))
            normalised[parent] = {op: _plain(operand) for op, operand in spec.items()}
        else:
            members = tuple(_plain(m) for m in spec) if isinstance(spec, list | tuple) else (_plain(spec),)
            if not members:
                raise SpaceError(
                    f"parameter {name!r}: active_if.{parent} is an empty list; it could never hold"
                )
            clauses.append(Clause(parent, "in", members))
            normalised[parent] = list(members)
    return normalised, tuple(clauses)


@dataclass(frozen=True)
class _Param(ABC):
    """Common part of every parameter type: a name and an optional activation condition."""

    kind: ClassVar[str]
    name: str
    active_if: Mapping[str, Any] | None = field(default=None, kw_only=True)
    conditions: tuple[Clause, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpaceError(
                f"parameter name must be a Python identifier (letters, digits, underscore), got {self.name!r}"
            )
        if self.active_if is not None:
            normalised, clauses = _parse_active_if(self.name, self.active_if)
            object.__setattr__(self, "active_if", normalised or None)
            object.__setattr__(self, "conditions", clauses)

    @abstractmethod
    def coerce(self, value: object) -> Value:
        """The canonical form of ``value``; raises SpaceError naming the allowed values."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Value:
        """One value drawn from the parameter's distribution (uniform, log-uniform for ``log``)."""

    @abstractmethod
    def finite_domain(self) -> Sequence[Value] | None:
        """Every value in order, or None for a continuous range."""

    def grid_values(self, float_points: int | None) -> Sequence[Value]:
        """The values ``Space.grid`` enumerates (``float_points`` only matters for continuous floats)."""
        # Finite for every type but FloatParam, which overrides this.
        return cast(Sequence[Value], self.finite_domain())

    def is_numeric(self) -> bool:
        return False

    def _options(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form (see ``Space`` for the schema); defaults are left out."""
        out: dict[str, Any] = {"type": self.kind, **self._options()}
        if self.active_if:
            out["active_if"] = {
                parent: (dict(spec) if isinstance(spec, Mapping) else list(spec))
                for parent, spec in self.active_if.items()
            }
        return out


def _check_integer(name: str, label: str, value: object) -> int:
    if not isinstance(value, numbers.Integral) or is_bool(value):
        raise SpaceError(f"parameter {name!r}: {label} must be an integer, got {value!r}")
    return int(value)


def _check_real(name: str, label: str, value: object) -> float:
    if not is_number(value) or not math.isfinite(float(value)):
        raise SpaceError(f"parameter {name!r}: {label} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class IntParam(_Param):
    """Integers ``low, low+step, ..., high`` (inclusive); ``log`` samples log-uniformly (step must be 1)."""

    low: int
    high: int
    log: bool = field(default=False, kw_only=True)
    step: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        low = _check_integer(self.name, "low", self.low)
        high = _check_integer(self.name, "high", self.high)
        step = _check_integer(self.name, "step", self.step)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "step", step)
        if low > high:
            raise SpaceError(f"parameter {self.name!r}: low ({low}) must be <= high ({high})")
        if step < 1:
            raise SpaceError(f"parameter {self.name!r}: step must be >= 1, got {step}")
        if (high - low) % step:
            raise SpaceError(
                f"parameter {self.name!r}: high - low ({high - low}) must be a multiple of step ({step})"
            )
        if self.log and low < 1:
            raise SpaceError(f"parameter {self.name!r}: log scale needs low >= 1, got low={low}")
        if self.log and step != 1:
            raise SpaceError(f"parameter {self.name!r}: log scale needs step 1, got step={step}")

    kind: ClassVar[str] = "int"

    def is_numeric(self) -> bool:
        return True

    def _allowed(self) -> str:
        step = f" in steps of {self.step}" if self.step != 1 else ""
        return f"an integer in [{self.low}, {self.high}]{step}"

    def coerce(self, value: object) -> int:
        number: int | None = None
        if isinstance(value, numbers.Integral) and not is_bool(value):
            number = int(value)
        elif is_number(value) and float(value).is_integer():  # 3.0 from an optimiser's float arithmetic
            number = int(float(value))
        if number is not None and self.low <= number <= self.high and (number - self.low) % self.step == 0:
            return number
        raise SpaceError(f"parameter {self.name!r}: expected {self._allowed()}, got {value!r}")

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            # Log-uniform over the cells [v - 0.5, v + 0.5] so both ends are as likely as their neighbours.
            drawn = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return min(max(round(drawn), self.low), self.high)
        return self.low + self.step * int(rng.integers(0, (self.high - self.low) // self.step + 1))

    def finite_domain(self) -> Sequence[int]:
        return range(self.low, self.high + 1, self.step)

    def _options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step != 1:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class FloatParam(_Param):
    """Reals in ``[low, high]`` (inclusive); ``log`` samples log-uniformly; ``step`` makes a grid
    ``low + k*step`` (not with log). Values within 1e-9 (relative) outside a bound are clamped onto it."""

    low: float
    high: float
    log: bool = field(default=False, kw_only=True)
    step: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        low = _check_real(self.name, "low", self.low)
        high = _check_real(self.name, "high", self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if low > high:
            raise SpaceError(f"parameter {self.name!r}: low ({low}) must be <= high ({high})")
        if self.log and low <= 0:
            raise SpaceError(f"parameter {self.name!r}: log scale needs low > 0, got low={low}")
        if self.step is not None:
            step = _check_real(self.name, "step", self.step)
            object.__setattr__(self, "step", step)
            if step <= 0:
                raise SpaceError(f"parameter {self.name!r}: step must be > 0, got {step}")
            if self.log:
                raise SpaceError(f"parameter {self.name!r}: log scale and step cannot be combined")
            intervals = (high - low) / step
            if abs(intervals - round(intervals)) > 1e-9 * max(1.0, intervals):
                raise SpaceError(
                    f"parameter {self.name!r}: high - low ({high - low}) must be a multiple of step ({step})"
                )

    kind: ClassVar[str] = "float"

    def is_numeric(self) -> bool:
        return True

    def _on_grid(self, k: int, step: float) -> float:
        value = float(f"{self.low + k * step:.{_STEP_DIGITS}g}")
        return min(max(value, self.low), self.high)

    def _step_grid(self, step: float) -> tuple[float, ...]:
        return tuple(self._on_grid(k, step) for k in range(round((self.high - self.low) / step) + 1))

    def coerce(self, value: object) -> float:
        allowed = f"a number in [{self.low}, {self.high}]" + (
            f" on a grid of step {self.step}" if self.step else ""
        )
        if not is_number(value) or not math.isfinite(float(value)):
            raise SpaceError(f"parameter {self.name!r}: expected {allowed}, got {value!r}")
        number = float(value)
        slack = _BOUND_TOLERANCE * max(abs(self.low), abs(self.high), 1e-300)
        if not self.low - slack <= number <= self.high + slack:
            raise SpaceError(f"parameter {self.name!r}: expected {allowed}, got {value!r}")
        number = min(max(number, self.low), self.high)
        if self.step is None:
            return number
        k = (number - self.low) / self.step
        if abs(k - round(k)) > 1e-6:
            raise SpaceError(f"parameter {self.name!r}: expected {allowed}, got {value!r}")
        return self._on_grid(round(k), self.step)

    def sample(self, rng: np.random.Generator) -> float:
        if self.step is not None:
            grid = self._step_grid(self.step)
            return grid[int(rng.integers(0, len(grid)))]
        if self.log:
            return min(
                max(math.exp(rng.uniform(math.log(self.low), math.log(self.high))), self.low), self.high
            )
        return float(rng.uniform(self.low, self.high))

    def finite_domain(self) -> Sequence[float] | None:
        if self.step is not None:
            return self._step_grid(self.step)
        if self.low == self.high:
            return (self.low,)
        return None

    def grid_values(self, float_points: int | None) -> Sequence[float]:
        domain = self.finite_domain()
        if domain is not None:
            return domain
        if float_points is None:
            raise SpaceError(
                f"parameter {self.name!r} is a continuous range [{self.low}, {self.high}] without step: "
                "give float_points (>= 2) to grid it"
            )
        if isinstance(float_points, bool) or not isinstance(float_points, int) or float_points < 2:
            raise SpaceError(f"float_points must be an integer >= 2, got {float_points!r}")
        points = (
            np.geomspace(self.low, self.high, float_points)
            if self.log
            else np.linspace(self.low, self.high, float_points)
        )
        values = [float(v) for v in points]
        values[0], values[-1] = self.low, self.high  # exact ends despite exp/log rounding
        return tuple(values)

    def _options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class ChoiceParam(_Param):
    """One of ``choices`` (ints, floats, strings or bools); ``ordered`` tells optimisers the list order means
    something (e.g. filter counts)."""

    choices: Sequence[Value]
    ordered: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Sequence):
            raise SpaceError(f"parameter {self.name!r}: choices must be a list, got {self.choices!r}")
        choices = tuple(_plain(c) for c in self.choices)
        if not choices:
            raise SpaceError(f"parameter {self.name!r}: choices must not be empty")
        for choice in choices:
            if not (is_bool(choice) or isinstance(choice, str) or is_number(choice)) or (
                is_number(choice) and not math.isfinite(float(choice))
            ):
                raise SpaceError(
                    f"parameter {self.name!r}: choice {choice!r} must be an int, a finite float, a string or a bool"
                )
        for i, choice in enumerate(choices):
            if any(same_value(choice, other) for other in choices[:i]):
                raise SpaceError(f"parameter {self.name!r}: choice {choice!r} is listed twice")
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "ordered", bool(self.ordered))

    kind: ClassVar[str] = "choice"

    def is_numeric(self) -> bool:
        return all(is_number(c) for c in self.choices)

    def coerce(self, value: object) -> Value:
        for choice in self.choices:
            if same_value(value, choice):
                return choice
        raise SpaceError(f"parameter {self.name!r}: expected one of {list(self.choices)!r}, got {value!r}")

    def sample(self, rng: np.random.Generator) -> Value:
        return self.choices[int(rng.integers(0, len(self.choices)))]

    def finite_domain(self) -> Sequence[Value]:
        return self.choices

    def _options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"choices": list(self.choices)}
        if self.ordered:
            out["ordered"] = True
        return out


@dataclass(frozen=True)
class BoolParam(_Param):
    """True or False (only real bools are accepted, never 0/1 or strings)."""

    kind: ClassVar[str] = "bool"

    def coerce(self, value: object) -> bool:
        if is_bool(value):
            return bool(value)
        raise SpaceError(f"parameter {self.name!r}: expected true or false, got {value!r}")

    def sample(self, rng: np.random.Generator) -> bool:
        return bool(rng.integers(0, 2))

    def finite_domain(self) -> Sequence[bool]:
        return (False, True)


Param = IntParam | FloatParam | ChoiceParam | BoolParam
