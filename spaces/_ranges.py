"""The values a config key may take, whatever space it is searched in, and the check of a space against them.

A space may search any domain for a parameter, but some keys only mean something in a range: a weight
width of 0 bits or a sparsity of 1.5 would fail every trial. :data:`MODEL_KEY_RANGES` holds the ranges of
the compression and architecture keys the built-in families read (see :func:`spaces.build_model`); the
training keys' ranges live with the training settings (``objectives.TRAIN_KEY_RANGES``).
:func:`range_problems` checks every bound and choice of a space's parameters against such ranges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._params import ChoiceParam, FloatParam, IntParam, is_bool, is_number
from ._space import Space


@dataclass(frozen=True)
class ValueRange:
    """Numbers from ``low`` to ``high`` (inclusive unless ``*_open``), integers only when ``integer``."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    meaning: str = ""

    def contains(self, value: object) -> bool:
        if not is_number(value) or not math.isfinite(float(value)):
            return False
        number = float(value)
        if self.integer and number != round(number):
            return False
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return above and below

    def describe(self) -> str:
        def bound(value: float) -> str:
            return "inf" if math.isinf(value) else f"{value:g}"

        left = "(" if self.low_open or math.isinf(self.low) else "["
        right = ")" if self.high_open or math.isinf(self.high) else "]"
        kind = "an integer" if self.integer else "a number"
        text = f"{kind} in {left}{bound(self.low)}, {bound(self.high)}{right}"
        return f"{text} ({self.meaning})" if self.meaning else text


_BITS = "bits must be 1..16"
MODEL_KEY_RANGES: Mapping[str, ValueRange] = {
    # compression (every built-in family): 1-bit weights are binary (+-s), 2-bit ones ternary (-s, 0, s)
    "weight_bits": ValueRange(1, 16, integer=True, meaning="weight width; 1 = binary, 2 = ternary"),
    "act_bits": ValueRange(1, 16, integer=True, meaning=_BITS),
    "input_bits": ValueRange(1, 16, integer=True, meaning=_BITS),
    "output_bits": ValueRange(1, 16, integer=True, meaning=_BITS),
    "sparsity": ValueRange(0, 1, high_open=True, meaning="fraction of weights pruned"),
    "l1": ValueRange(0, meaning="L1 regularisation strength"),
    # mixed precision: one layer's own widths in place of weight_bits / act_bits
    r"(conv|dense|hidden)\d+_weight_bits": ValueRange(1, 16, integer=True, meaning="1 = binary, 2 = ternary"),
    r"(conv|dense|hidden)\d+_act_bits": ValueRange(1, 16, integer=True, meaning=_BITS),
    # architecture
    "latent": ValueRange(1, integer=True, meaning="encoded outputs"),
    "n_conv": ValueRange(0, integer=True, meaning="conv layers"),
    "n_dense": ValueRange(0, integer=True, meaning="dense layers"),
    "n_hidden": ValueRange(1, integer=True, meaning="hidden layers"),
    r"conv\d+_filters": ValueRange(1, integer=True, meaning="filters"),
    r"conv\d+_kernel": ValueRange(1, integer=True, meaning="kernel size"),
    r"conv\d+_stride": ValueRange(1, integer=True, meaning="stride"),
    r"(dense|hidden)\d+_units": ValueRange(1, integer=True, meaning="units"),
    # node pruning: a count 1..width or a fraction of the width (keep_problems checks it against the width)
    r"(conv|dense|hidden)\d+_keep": ValueRange(
        0, low_open=True, meaning="nodes kept: an integer count 1..width or a float fraction in (0, 1]"
    ),
}
_KEEP = re.compile(r"((conv|dense|hidden)\d+)_keep")


def key_range(name: str, ranges: Mapping[str, ValueRange]) -> ValueRange | None:
    """The range of key ``name``: an exact entry, or the first entry whose pattern matches it whole."""
    if name in ranges:
        return ranges[name]
    return next((r for pattern, r in ranges.items() if re.fullmatch(pattern, name)), None)


def range_problems(space: Space, ranges: Iterable[Mapping[str, ValueRange]]) -> list[str]:
    """One message per parameter bound or choice of ``space`` outside the range of its key."""
    tables = list(ranges)
    problems = []
    for name in space.names:
        allowed = next((r for t in tables if (r := key_range(name, t)) is not None), None)
        if allowed is None:
            continue
        param = space.param(name)
        values: list[tuple[str, object]] = []
        if isinstance(param, IntParam | FloatParam):
            values = [("low", param.low), ("high", param.high)]
        elif isinstance(param, ChoiceParam):
            values = [("choice", c) for c in param.choices]
        for label, value in values:
            if is_bool(value) or not allowed.contains(value):
                problems.append(
                    f"parameter {name!r}: {label} {value!r} is outside the allowed range; "
                    f"allowed: {allowed.describe()}"
                )
                break
    return problems


def _keep_values(param: object) -> list[int | float]:
    if isinstance(param, IntParam):
        return [param.low, param.high]
    if isinstance(param, FloatParam):
        return [float(param.low), float(param.high)]
    if isinstance(param, ChoiceParam):
        return [
            c if isinstance(c, int | float) else float(c)
            for c in param.choices
            if is_number(c) and not is_bool(c)
        ]
    return []


def keep_problems(space: Space) -> list[str]:
    """One message per node-pruning ``<layer>_keep`` parameter of ``space`` that can never be built: its
    layer has no width parameter in the space, a fraction (a float) it can take is outside (0, 1], or a
    count (an integer) exceeds the widest its layer can be. Counts above a narrower width the layer can
    also take make only those configs infeasible."""
    problems = []
    for name in space.names:
        match = _KEEP.fullmatch(name)
        if match is None:
            continue
        layer = match.group(1)
        width_key = f"{layer}_filters" if layer.startswith("conv") else f"{layer}_units"
        if width_key not in space.names:
            problems.append(f"parameter {name!r}: the space has no {width_key!r}, the width it prunes")
            continue
        widest = max((int(w) for w in _keep_values(space.param(width_key))), default=0)
        for value in _keep_values(space.param(name)):
            fraction = isinstance(value, float)
            if (fraction and not 0 < value <= 1) or (not fraction and not 1 <= value <= widest):
                problems.append(
                    f"parameter {name!r}: keep {value!r} is outside what {width_key} (at most {widest}) "
                    f"allows; allowed: an integer count 1..{widest} or a float fraction in (0, 1]"
                )
                break
    return problems
