"""The ``hwnas`` candidate pool: dedup against everything asked or observed, cost cache, budgets."""

from __future__ import annotations

import json

import pytest
from hwnas_toy import OBJECTIVES, TOY, hwnas, make_oracle, run, toy_ops, toy_quality

from search._types import Completed, Objective, Rejected
from search.strategies import StrategyError, make_strategy
from search.strategies.hwnas._candidates import _config_key
from spaces import Space

# -- dedup ---------------------------------------------------------------------------------------------------
SMALL_FINITE = Space.from_dict(
    {
        "parameters": {
            "n_layers": {"type": "int", "low": 1, "high": 2},
            "width0": {"type": "choice", "choices": [2, 4, 8], "ordered": True},
            "width1": {"type": "choice", "choices": [2, 4], "active_if": {"n_layers": {">": 1}}},
            "bits": {"type": "int", "low": 2, "high": 3},
            "lr": {"type": "choice", "choices": [0.001, 0.01]},
        }
    }
)


def test_never_proposes_a_canonical_config_already_asked_or_observed() -> None:
    oracle, calls = make_oracle()
    every = {_config_key(c) for c in SMALL_FINITE.grid()}  # 3 * (1 + 2) * 2 * 2 = 36 configs
    strategy = make_strategy(
        "hwnas", SMALL_FINITE, OBJECTIVES, seed=0, options={"n_initial": 3}, costs=oracle
    )
    observed = list(SMALL_FINITE.grid())[::5]
    for config in observed:
        strategy.observe(config, Completed({"emd_mean": toy_quality(config), "ops": toy_ops(config)}))
    seen = [_config_key(c) for c in observed]
    while True:
        proposals = strategy.ask(2)
        if not proposals:
            break
        for proposal in proposals:
            seen.append(_config_key(proposal.config))
            config = proposal.config
            strategy.tell(proposal.key, Completed({"emd_mean": toy_quality(config), "ops": toy_ops(config)}))
    assert len(seen) == len(set(seen)) == len(every)  # every config exactly once, then exhausted
    # Costs are cached by architecture: lr never causes a second oracle call.
    architectures = {json.dumps({k: v for k, v in c.items() if k != "lr"}, sort_keys=True) for c in calls}
    assert len(calls) == len(architectures)


# -- budgets --------------------------------------------------------------------------------------------------
def test_every_candidate_over_budget_stops_with_that_message() -> None:
    oracle, calls = make_oracle(limit=1.0)
    strategy = hwnas(oracle=oracle)
    with pytest.raises(
        StrategyError, match=r"every candidate is rejected by the cost oracle: 64 architectures"
    ):
        strategy.ask(1)
    assert len(calls) == 64
    with pytest.raises(StrategyError, match=r"exceeds budget ops <= 1"):
        hwnas(oracle=oracle).ask(1)


def test_an_architecture_the_driver_rejected_is_never_proposed_again() -> None:
    strategy = hwnas(n_initial=4)  # the oracle knows no budget: the driver applies it
    rejected: set[str] = set()
    for _ in range(30):
        (proposal,) = strategy.ask(1)
        config = proposal.config
        arch = json.dumps({k: v for k, v in config.items() if k != "lr"}, sort_keys=True)
        assert arch not in rejected
        if toy_ops(config) > 2000:
            rejected.add(arch)
            strategy.tell(proposal.key, Rejected("ops exceeds budget ops <= 2000"))
        else:
            strategy.tell(proposal.key, Completed({"emd_mean": toy_quality(config), "ops": toy_ops(config)}))
    assert rejected


def test_configs_the_oracle_rejects_are_never_proposed() -> None:
    oracle, _ = make_oracle(limit=3000.0)
    strategy = hwnas(oracle=oracle, n_initial=4)
    history = run(strategy, TOY, asks=20)
    assert all(toy_ops(c) <= 3000 for c, _ in history)
    assert strategy.state_dict()["architectures_rejected"] > 0


# -- compression knobs that lower no cost objective are pinned off ------------------------------------------
def _compressible(sparsity_low: float = 0.0, *, integer: bool = False) -> Space:
    parameters = dict(TOY.to_dict()["parameters"])
    parameters["quantize"] = {"type": "bool"}
    parameters["sparsity"] = (
        {"type": "int", "low": 0, "high": 1}
        if integer
        else {"type": "float", "low": sparsity_low, "high": 0.9}
    )
    return Space.from_dict({"name": "compressible", "parameters": parameters})


def _pinning_run(
    objective: str, space: Space, asks: int = 12, **options: object
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Proposals of ``asks`` asks under (emd_mean, ``objective``): ops ignores both knobs, bops falls with
    them."""

    def oracle(config: dict[str, object]) -> dict[str, float]:
        ops = toy_ops(config)
        kept = 1.0 - float(config["sparsity"])  # type: ignore[arg-type]
        return {"ops": ops, "bops": ops * kept * (0.25 if config["quantize"] else 1.0)}

    objectives = (OBJECTIVES[0], Objective(objective))
    strategy = make_strategy(
        "hwnas", space, objectives, seed=3, options={"n_initial": 4, **options}, costs=oracle
    )
    proposals: list[dict[str, object]] = []
    for _ in range(asks):
        (proposal,) = strategy.ask(1)
        config = proposal.config
        proposals.append(config)
        values = {"emd_mean": toy_quality(config) + float(config["sparsity"]), **oracle(config)}
        strategy.tell(proposal.key, Completed({k: values[k] for k in ("emd_mean", objective)}))
    return proposals, strategy.state_dict()["pinned_compression"]


def test_compression_that_lowers_no_cost_is_pinned_off() -> None:
    proposals, pinned = _pinning_run("ops", _compressible())
    assert pinned == {"quantize": False, "sparsity": 0.0}
    assert all(c["sparsity"] == 0.0 and c["quantize"] is False for c in proposals)
    assert len({_config_key(c) for c in proposals}) == 12


def test_a_pinned_knob_keeps_its_canonical_type() -> None:
    space = _compressible(integer=True)
    proposals, pinned = _pinning_run("ops", space)
    assert pinned == {"quantize": False, "sparsity": 0} and type(pinned["sparsity"]) is int
    assert all(space.validate(c) == c and type(c["sparsity"]) is int for c in proposals)


def test_the_pin_checks_leave_the_first_ask_its_own_costing_budget() -> None:
    """The first ask still costs 8 x cost_calls new architectures for its pool; the checks come on top."""
    checks_off = _pinning_calls(pin_compression=False)
    checks_on = _pinning_calls(pin_compression=True)
    assert checks_on >= checks_off >= 8 * 2


def _pinning_calls(**options: object) -> int:
    strategy = make_strategy(
        "hwnas",
        _compressible(),
        OBJECTIVES,
        seed=3,
        options={"cost_calls": 2, **options},
        costs=lambda config: {"ops": toy_ops(config)},
    )
    strategy.ask(1)
    return int(strategy.state_dict()["oracle_calls"])


def test_compression_that_lowers_a_cost_stays_searched() -> None:
    proposals, pinned = _pinning_run("bops", _compressible())
    assert pinned == {}
    assert any(c["sparsity"] > 0.0 for c in proposals)
    assert {c["quantize"] for c in proposals} == {True, False}


@pytest.mark.parametrize(
    ("space", "options"),
    [(_compressible(), {"pin_compression": False}), (_compressible(sparsity_low=0.1), {})],
    ids=["option off", "space without the uncompressed value"],
)
def test_compression_is_searched_when_pinning_is_off_or_impossible(
    space: Space, options: dict[str, object]
) -> None:
    proposals, pinned = _pinning_run("ops", space, **options)
    assert "sparsity" not in pinned
    assert any(c["sparsity"] > 0.1 for c in proposals)
    if options:  # the option turns off every pin
        assert pinned == {}
        assert {c["quantize"] for c in proposals} == {True, False}


def test_a_perturbed_float_is_reflected_at_its_bounds_not_piled_on_them() -> None:
    import numpy as np

    from search.strategies.hwnas import HwnasStrategy

    lr = TOY.param("lr")
    rng = np.random.default_rng(0)
    moved = [HwnasStrategy._perturb(lr, 1.2e-4, rng) for _ in range(400)]
    assert all(1e-4 <= value <= 1e-1 for value in moved)
    assert not any(value in (1e-4, 1e-1) for value in moved)  # clipped, ~40 % would sit on 1e-4
    assert sum(value < 1.2e-4 for value in moved) > 20  # moves towards the bound still happen
