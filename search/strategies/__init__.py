"""Search strategies: one ask/tell interface and a registry every backend (built-in or not) joins."""

# Importing registers the built-in strategies, in the order their names are listed.
from search.strategies import _builtin  # noqa: F401

# isort: split
from search.strategies import (
    _ax,  # noqa: F401
    hwnas,  # noqa: F401
)
from search.strategies._base import (
    MAX_OBJECTIVES,
    Strategy,
    StrategyError,
    make_strategy,
    register_strategy,
    strategy_names,
)

STRATEGY_NAMES: tuple[str, ...] = strategy_names()

__all__ = [
    "MAX_OBJECTIVES",
    "STRATEGY_NAMES",
    "Strategy",
    "StrategyError",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]
