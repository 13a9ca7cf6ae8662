"""Optuna adapter: one distribution per parameter, same names as in the space."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ._params import ChoiceParam, FloatParam, IntParam, Param


def distribution(param: Param) -> BaseDistribution:
    """The Optuna distribution of ``param`` (bounds inclusive in both, as in the space)."""
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, ChoiceParam):
        return CategoricalDistribution(param.choices)
    return CategoricalDistribution((False, True))


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """Ask ``trial`` for a value of ``param`` under the parameter's own name."""
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(param.name, param.low, param.high, step=param.step, log=param.log)
    return trial.suggest_categorical(
        param.name, param.choices if isinstance(param, ChoiceParam) else (False, True)
    )
