"""Ax adapter (ax-platform 1.3 ``ax.api.configs``): a conditional `Space` as Ax's tree of dependent parameters.

Ax's hierarchical spaces are a tree: a child hangs under exactly one value of one choice parameter
(``dependent_parameters={value: [children]}``). The encoding:

- A parameter without conditions is a root. One with a condition on a single parent P hangs under P's one
  value that activates it; if every value of P activates it, it sits where P sits.
- An integer P whose children turn on at increasing thresholds (``{"n_conv": {">": i}}``, a *layer
  count*) becomes a chain of string switches ``use_<base>_<i>`` in {"off", "on"} (base = P's name without a
  leading ``n_``; ``use_conv_1`` is "on" when n_conv > 1, i.e. layer 1 exists). A switch's "on" children
  are the parameters that turn on with it and the next switch; P itself is not an Ax parameter.
- Bools (and bool choices) are the strings "off"/"on": Ax mishandles bool keys of dependent parameters.
- Range parameters keep their bounds (inclusive in Ax too), step and log scale; a range with low == high
  becomes a one-value choice.

Conditions on several parents, on a float, on several values of a choice, or on an integer that are not
thresholds cannot be a tree: SpaceError names the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._errors import SpaceError
from ._params import BoolParam, ChoiceParam, FloatParam, IntParam, Param, is_bool, is_number

if TYPE_CHECKING:
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    from ._space import Space

ON, OFF = "on", "off"
# Conditions are resolved by evaluating them on every value of the parent; a bigger domain is no tree node.
_MAX_DOMAIN = 4096


@dataclass(frozen=True)
class _Placement:
    """Where an Ax parameter hangs: under ``parent`` (an Ax name) taking ``value``, or at the root."""

    parent: str | None = None
    value: Any = None


@dataclass
class _Count:
    """A layer-count parameter and its switches: ``switches[j]`` is "on" when the count >= ``values[j+1]``."""

    values: Sequence[int]
    switches: list[str] = field(default_factory=list)


def _ax_value(value: Any) -> Any:
    return (ON if value else OFF) if is_bool(value) else value


def _python_value(param: Param, value: Any) -> Any:
    """Ax's "on"/"off" back to a bool for parameters that take bools; anything else passes through
    (``validate`` checks it)."""
    takes_bools = any(is_bool(v) for v in param.finite_domain() or ())
    return {ON: True, OFF: False}.get(value, value) if takes_bools and isinstance(value, str) else value


class AxEncoding:
    """The mapping between one space and Ax (built once per space; SpaceError if Ax cannot express it)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.counts: dict[str, _Count] = {}
        self.placements: dict[str, _Placement] = {}  # Ax parameter -> where it hangs, in Ax declaration order
        self._homes: dict[str, _Placement] = {}  # space parameter -> where it (or its first switch) hangs
        self._children: dict[str, list[Param]] = {name: [] for name in space.names}
        for param in space.params:
            parents = sorted({c.parent for c in param.conditions})
            if len(parents) > 1:
                raise SpaceError(
                    f"Ax cannot express parameter {param.name!r}: it depends on several parents {parents}; "
                    "Ax's conditional parameters form a tree (one parent each)"
                )
            if parents:
                self._children[parents[0]].append(param)
        for param in space.evaluation_order:  # parents first: a child's placement needs its parent's
            self._place(param)
            if isinstance(param, ChoiceParam):
                _choice_values(param)  # fail now, not when Ax configs are made

    def _place(self, param: Param) -> None:
        home = (
            self._placement_under(param, self.space.param(param.conditions[0].parent))
            if param.conditions
            else _Placement()
        )
        self._homes[param.name] = home
        values = self._count_values(param)
        if values is None:
            self.placements[param.name] = home
            return
        count = self.counts[param.name] = _Count(values)
        where = home
        for threshold in values[1:]:
            switch = f"use_{param.name.removeprefix('n_')}_{threshold - 1}"
            if switch in self.space.names or switch in self.placements:
                raise SpaceError(
                    f"Ax switch name {switch!r} for layer count {param.name!r} collides with a parameter; rename it"
                )
            self.placements[switch] = where
            count.switches.append(switch)
            where = _Placement(switch, ON)

    def _satisfying(self, child: Param, parent: Param) -> list[Any]:
        """The values of ``parent`` that activate ``child``."""
        domain = parent.finite_domain()
        if domain is None or len(domain) > _MAX_DOMAIN:
            raise SpaceError(
                f"Ax cannot express parameter {child.name!r}: its parent {parent.name!r} is a continuous or very "
                "large range; condition on a choice, a bool or a layer count instead"
            )
        return [value for value in domain if all(c.holds(value) for c in child.conditions)]

    def _count_values(self, param: Param) -> list[Any] | None:
        """The ordered values of a layer count (an int some child needs at least some threshold of), or
        None for an ordinary Ax parameter."""
        if not isinstance(param, IntParam):
            return None
        domain = list(param.finite_domain())
        for child in self._children[param.name]:
            allowed = self._satisfying(child, param)
            if 0 < len(allowed) < len(domain) and allowed == domain[-len(allowed) :]:
                return domain
        return None

    def _placement_under(self, child: Param, parent: Param) -> _Placement:
        allowed = self._satisfying(child, parent)
        domain = list(parent.finite_domain() or ())
        if not allowed:
            raise SpaceError(
                f"parameter {child.name!r} can never be active: no value of {parent.name!r} activates it"
            )
        if len(allowed) == len(domain):
            return self._homes[parent.name]
        count = self.counts.get(parent.name)
        if count is not None and allowed == domain[-len(allowed) :]:
            return _Placement(count.switches[len(domain) - len(allowed) - 1], ON)
        if isinstance(parent, ChoiceParam | BoolParam) and len(allowed) == 1:
            return _Placement(parent.name, _ax_value(allowed[0]))
        hint = "; Ax hangs a child under exactly one value of a choice"
        if isinstance(parent, IntParam):
            hint = "; a layer count needs thresholds ({'>': i} or {'>=': i})"
        raise SpaceError(
            f"Ax cannot express parameter {child.name!r}: it is active for values {allowed} of {parent.name!r}{hint}"
        )

    # -- Ax configs and values ----------------------------------------------------------------------
    def parameter_configs(self) -> list[RangeParameterConfig | ChoiceParameterConfig]:
        from ax.api.configs import ChoiceParameterConfig  # Ax takes seconds to import; only to_ax needs it

        dependents: dict[str, dict[Any, list[str]]] = {}
        for name, placement in self.placements.items():
            if placement.parent is not None:
                dependents.setdefault(placement.parent, {}).setdefault(placement.value, []).append(name)
        configs: list[RangeParameterConfig | ChoiceParameterConfig] = []
        for name in self.placements:
            deps = dependents.get(name)
            if name in self.space.names:
                configs.append(_config(self.space.param(name), deps))
            else:
                configs.append(
                    ChoiceParameterConfig(name, [OFF, ON], "str", is_ordered=True, dependent_parameters=deps)
                )
        return configs

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(params, Mapping):
            raise SpaceError(f"Ax parameters must be a mapping, got {params!r}")
        unknown = [key for key in params if key not in self.placements]
        if unknown:
            raise SpaceError(
                f"unknown Ax parameter(s) {unknown}; this space's Ax parameters are {list(self.placements)}"
            )
        raw: dict[str, Any] = {}
        for param in self.space.params:
            count = self.counts.get(param.name)
            if count is None:
                if param.name in params:
                    raw[param.name] = _python_value(param, params[param.name])
            elif count.switches[0] in params:  # absent: the count's own parent is off
                on = 0
                while on < len(count.switches) and params.get(count.switches[on]) == ON:
                    on += 1
                raw[param.name] = count.values[on]
        return raw

    def encode(self, canonical: Mapping[str, Any]) -> dict[str, Any]:
        encoded: dict[str, Any] = {}
        for name, value in canonical.items():
            count = self.counts.get(name)
            if count is None:
                encoded[name] = _ax_value(value)
                continue
            for switch, threshold in zip(count.switches, count.values[1:], strict=True):
                encoded[switch] = ON if value >= threshold else OFF
                if value < threshold:
                    break
        return encoded


def _config(param: Param, deps: dict[Any, list[str]] | None) -> RangeParameterConfig | ChoiceParameterConfig:
    """A range stays a range (children of a range never hang under it); everything else is a choice."""
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    if isinstance(param, IntParam) and param.low < param.high:
        step = None if param.step == 1 else param.step
        return RangeParameterConfig(
            param.name, (param.low, param.high), "int", step_size=step, scaling=_scaling(param)
        )
    if isinstance(param, FloatParam) and param.low < param.high:
        return RangeParameterConfig(
            param.name, (param.low, param.high), "float", step_size=param.step, scaling=_scaling(param)
        )
    values, kind = _choice_values(param)
    ordered = len(values) == 2 or (isinstance(param, ChoiceParam) and param.ordered)
    return ChoiceParameterConfig(param.name, values, kind, is_ordered=ordered, dependent_parameters=deps)


def _choice_values(param: Param) -> tuple[list[Any], Literal["float", "int", "str"]]:
    """The values of a parameter Ax gets as a choice, and their Ax type; SpaceError for a str/number mix."""
    values = [_ax_value(v) for v in (param.finite_domain() or ())]
    if all(isinstance(v, str) for v in values):
        return values, "str"
    if all(isinstance(v, int) for v in values):
        return values, "int"
    if all(is_number(v) for v in values):
        return [float(v) for v in values], "float"
    raise SpaceError(
        f"Ax cannot express parameter {param.name!r}: its choices {values} mix strings and numbers"
    )


def _scaling(param: IntParam | FloatParam) -> Literal["log"] | None:
    return "log" if param.log else None
