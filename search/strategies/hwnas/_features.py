"""Step 2's input: fixed-width numeric features of the configs of a conditional space.

The quality model needs numbers; a conditional space has parameters that exist only in some configs
(a layer's width without the layer). The encoding here is what every regressor of the strategy sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spaces import BoolParam, ChoiceParam, FloatParam, IntParam, Param, Space

_NEUTRAL = 0.5


class ConfigEncoder:
    """Fixed-width numeric features of canonical configs of a conditional space.

    Numbers (int, float, ordered choice index) scale to [0, 1] (log parameters on a log scale); unordered
    choices are one-hot; bools are 0/1. An inactive parameter takes the neutral 0.5 (one-hot: all zeros),
    and every distinct activation condition has one 0/1 indicator column, so an absent layer carries no
    misleading value.
    """

    def __init__(self, space: Space) -> None:
        self._columns: list[tuple[Param, int]] = []
        width = 0
        conditions: dict[Any, int] = {}
        self._indicators: list[tuple[Param, int]] = []
        for param in space.params:
            self._columns.append((param, width))
            width += self._width(param)
            if param.conditions and param.conditions not in conditions:
                conditions[param.conditions] = width
                self._indicators.append((param, width))
                width += 1
        self.width = width

    @staticmethod
    def _width(param: Param) -> int:
        if isinstance(param, ChoiceParam) and not param.ordered:
            return len(param.choices)
        return 1

    @staticmethod
    def _scaled(param: Param, value: Any) -> float:
        if isinstance(param, BoolParam):
            return float(bool(value))
        if isinstance(param, ChoiceParam):  # ordered
            index = next(i for i, choice in enumerate(param.choices) if choice == value)
            return index / (len(param.choices) - 1) if len(param.choices) > 1 else _NEUTRAL
        assert isinstance(param, IntParam | FloatParam)
        low, high, number = float(param.low), float(param.high), float(value)
        if param.log:
            low, high, number = math.log(low), math.log(high), math.log(number)
        return (number - low) / (high - low) if high > low else _NEUTRAL

    def architecture(self, encoded: np.ndarray, training: frozenset[str]) -> np.ndarray:
        """The columns of ``encoded`` rows that describe the architecture: without those of the
        ``training`` parameters and of their activation indicators."""
        keep = np.ones(self.width, dtype=bool)
        for param, column in self._columns:
            if param.name in training:
                keep[column : column + self._width(param)] = False
        for param, column in self._indicators:
            if param.name in training:
                keep[column] = False
        return encoded[:, keep]

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros((len(configs), self.width))
        for row, config in enumerate(configs):
            for param, column in self._columns:
                if param.name not in config:
                    if self._width(param) == 1:
                        out[row, column] = _NEUTRAL
                    continue
                value = config[param.name]
                if isinstance(param, ChoiceParam) and not param.ordered:
                    index = next(i for i, choice in enumerate(param.choices) if choice == value)
                    out[row, column + index] = 1.0
                else:
                    out[row, column] = self._scaled(param, value)
            for param, column in self._indicators:
                out[row, column] = float(param.name in config)
        return out
