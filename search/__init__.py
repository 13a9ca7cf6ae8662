"""How sweeps run: config, driver, strategies, store, Pareto front."""

from search._config import ConfigError, SweepConfig, load_config, parse_config
from search._driver import SweepError, SweepSummary, confirmed_front, load_sweep, run_sweep, sweep_front
from search._pareto import ParetoError, default_reference, hypervolume, hypervolume_history, pareto_front
from search._schema import TrialState
from search._store import Store, StoreError, SweepRecord, TrialRecord
from search._strategies import STRATEGY_NAMES, Strategy, StrategyError, make_strategy
from search._types import Completed, Failed, Objective, Outcome, Proposal, Pruned, Rejected

__all__ = [
    "STRATEGY_NAMES",
    "Completed",
    "ConfigError",
    "Failed",
    "Objective",
    "Outcome",
    "ParetoError",
    "Proposal",
    "Pruned",
    "Rejected",
    "Store",
    "StoreError",
    "Strategy",
    "StrategyError",
    "SweepConfig",
    "SweepError",
    "SweepRecord",
    "SweepSummary",
    "TrialRecord",
    "TrialState",
    "confirmed_front",
    "default_reference",
    "hypervolume",
    "hypervolume_history",
    "load_config",
    "load_sweep",
    "make_strategy",
    "pareto_front",
    "parse_config",
    "run_sweep",
    "sweep_front",
]
