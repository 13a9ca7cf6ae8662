"""The toy problem of the ``hwnas`` strategy tests: a layered space, an analytic cost oracle and quality."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from search._types import Completed, Objective, Outcome, Rejected
from search.strategies import Strategy, make_strategy
from search.strategies.hwnas import HwnasStrategy
from spaces import Infeasible, Space

# A tiny layered model: widths and bits define the hardware cost, lr only the training.
TOY = Space.from_dict(
    {
        "name": "toy",
        "parameters": {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "width0": {"type": "choice", "choices": [2, 4, 8, 16, 32, 64], "ordered": True},
            "width1": {
                "type": "choice",
                "choices": [2, 4, 8, 16, 32, 64],
                "ordered": True,
                "active_if": {"n_layers": {">": 1}},
            },
            "width2": {
                "type": "choice",
                "choices": [2, 4, 8, 16, 32, 64],
                "ordered": True,
                "active_if": {"n_layers": {">": 2}},
            },
            "bits": {"type": "int", "low": 2, "high": 8},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        },
    }
)
OBJECTIVES = (Objective("emd_mean"), Objective("ops"))


def toy_ops(config: Mapping[str, Any]) -> float:
    widths = [16] + [config[f"width{i}"] for i in range(config["n_layers"])]
    return float(sum(a * b for a, b in itertools.pairwise(widths)) * config["bits"])


def make_oracle(limit: float = math.inf) -> tuple[Callable[[Mapping[str, Any]], Any], list[dict[str, Any]]]:
    """An exact, analytic cost oracle (and the list of configs it was called with)."""
    calls: list[dict[str, Any]] = []

    def oracle(config: Mapping[str, Any]) -> dict[str, float] | str:
        calls.append(dict(config))
        ops = toy_ops(config)
        if ops > limit:
            return f"ops = {ops:.0f} exceeds budget ops <= {limit:.0f}"
        return {"ops": ops, "bops": ops * config["bits"]}

    return oracle, calls


def toy_quality(config: Mapping[str, Any]) -> float:
    """Quality improves with size (log ops) and with lr near 3e-3, plus a small deterministic noise."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).digest()
    noise = (int.from_bytes(digest[:4], "little") / 2**32 - 0.5) * 0.04
    size = math.log10(toy_ops(config))
    return 4.0 / (1.0 + size) + 0.3 * abs(math.log10(config["lr"]) + 2.5) + noise


def run(strategy: Strategy, space: Space, asks: int, batch: int = 1) -> list[tuple[dict[str, Any], Outcome]]:
    """The driver's loop: reject over budget / infeasible, 'train' the rest."""
    history: list[tuple[dict[str, Any], Outcome]] = []
    for _ in range(asks):
        for proposal in strategy.ask(batch):
            checked = space.validate(proposal.config)
            outcome: Outcome
            if isinstance(checked, Infeasible):
                outcome = Rejected(checked.reason)
            else:
                outcome = Completed({"emd_mean": toy_quality(checked), "ops": toy_ops(checked)})
            strategy.tell(proposal.key, outcome)
            history.append((proposal.config, outcome))
    return history


def hwnas(seed: int = 0, oracle: Any = None, **options: Any) -> HwnasStrategy:
    if oracle is None:
        oracle, _ = make_oracle()
    strategy = make_strategy("hwnas", TOY, OBJECTIVES, seed=seed, options=options, costs=oracle)
    assert isinstance(strategy, HwnasStrategy)
    return strategy
