"""The ``hwnas`` strategy: exact-cost candidate selection, dedup, fallbacks, budgets, options, resume."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import moocore
import numpy as np
import pytest

from search._types import Completed, Failed, Objective, Outcome, Pruned, Rejected
from search.strategies import Strategy, StrategyError, make_strategy
from search.strategies._hwnas import (
    HwnasStrategy,
    QualityModel,
    _Candidate,
    _config_key,
    exact_ehvi,
    monte_carlo_ehvi,
)
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


# -- the acquisition's mathematics --------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2])
def test_exact_ehvi_equals_a_monte_carlo_estimate(k: int) -> None:
    rng = np.random.default_rng(5)
    front = rng.uniform(0.0, 1.0, size=(6, k + 1))
    ref = np.full(k + 1, 1.1)
    costs = rng.uniform(0.0, 1.0, size=(5, k))
    mean = rng.uniform(0.0, 1.0, size=5)
    std = rng.uniform(0.05, 0.3, size=5)
    exact = exact_ehvi(costs, mean, std, front, ref)
    draws = rng.standard_normal((4000, 1))
    estimate = monte_carlo_ehvi(costs, mean[:, None], std[:, None], front, ref, draws)
    assert np.all(exact >= 0)
    assert exact == pytest.approx(estimate, abs=4e-3)
    # Zero uncertainty: the exact hypervolume improvement, as moocore computes it.
    base = moocore.hypervolume(front, ref=ref)
    for i in range(5):
        point = np.append(costs[i], mean[i])
        gain = moocore.hypervolume(np.vstack([front, point]), ref=ref) - base
        assert exact_ehvi(costs[i : i + 1], mean[i : i + 1], np.zeros(1), front, ref)[0] == pytest.approx(
            gain
        )


# -- exact-cost candidate selection -------------------------------------------------------------------------
class ConstantModel(QualityModel):
    """Predicts the same quality (mean, std) for every config."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__("rf", 0, 4)
        self.mean, self.std = mean, std

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(features), 1), self.mean), np.full((len(features), 1), self.std)


def test_selection_never_proposes_a_config_whose_cost_a_front_member_dominates_at_equal_quality() -> None:
    strategy = hwnas(seed=1, n_initial=2)
    front_configs = [
        {"n_layers": 1, "width0": 4, "bits": 4, "lr": 3e-3},  # ops 256, quality 1.0
        {"n_layers": 1, "width0": 32, "bits": 8, "lr": 3e-3},  # ops 4096, quality 0.5
    ]
    for config, quality in zip(front_configs, [1.0, 0.5], strict=True):
        strategy.observe(config, Completed({"emd_mean": quality, "ops": toy_ops(config)}))
    # Candidates at every cost: cheaper than, equal to, and dearer than each front member.
    rng = np.random.default_rng(0)
    pool = []
    for n_layers, width, bits in [
        (1, 2, 2),
        (1, 4, 4),
        (1, 8, 4),
        (1, 16, 8),
        (1, 32, 8),
        (2, 64, 8),
        (1, 2, 3),
    ]:
        config = TOY.canonicalize(
            {
                "n_layers": n_layers,
                "width0": width,
                "width1": 2,
                "bits": bits,
                "lr": float(rng.uniform(1e-3, 1e-2)),
            }
        )
        result = strategy._oracle(config)
        assert isinstance(result, dict)
        pool.append(_Candidate(config, _config_key(config), strategy._transform_costs(result)))
    ops = np.array([toy_ops(c.config) for c in pool])
    # Predicted quality 1.0 = the cheap front member's: everything at ops >= 256 is dominated by it.
    chosen = strategy._select(pool, len(pool), ConstantModel(1.0, 0.3))
    assert chosen, "the cheaper candidates are not dominated and must be proposed"
    assert all(toy_ops(c.config) < 256 for c in chosen)
    assert {toy_ops(c.config) for c in chosen} == set(ops[ops < 256])
    # ... even though the uncertain quality gives the dominated ones a positive expected improvement.
    front = np.array([[np.log10(1 + 256), 1.0], [np.log10(1 + 4096), 0.5]])
    costs = np.log10(1 + ops)[:, None]
    gains = exact_ehvi(costs, np.full(len(pool), 1.0), np.full(len(pool), 0.3), front, np.array([4.0, 1.2]))
    assert np.all(gains[(ops >= 256) & (ops < 4096)] > 0)
    # Predicted 0.5 = the dear member's quality: dearer candidates are dominated, the ones between are not.
    chosen = strategy._select(pool, len(pool), ConstantModel(0.5, 0.3))
    assert all(toy_ops(c.config) < 4096 for c in chosen)
    assert any(256 <= toy_ops(c.config) < 4096 for c in chosen)


def test_ties_go_to_the_candidate_farthest_along_the_cost_axis() -> None:
    strategy = hwnas(seed=1, n_initial=2)
    for width, quality in [(32, 1.0), (64, 0.9)]:
        config = {"n_layers": 1, "width0": width, "bits": 8, "lr": 3e-3}
        strategy.observe(config, Completed({"emd_mean": quality, "ops": toy_ops(config)}))
    pool = []
    for width, bits in [(16, 8), (8, 8), (2, 2), (4, 2)]:  # all cheaper than the front: none dominated
        config = TOY.canonicalize({"n_layers": 1, "width0": width, "bits": bits, "lr": 3e-3})
        result = strategy._oracle(config)
        assert isinstance(result, dict)
        pool.append(_Candidate(config, _config_key(config), strategy._transform_costs(result)))
    # A predicted quality far beyond the reference point and no uncertainty: every EHVI is 0, a tie.
    chosen = strategy._select(pool, 2, ConstantModel(100.0, 0.0))
    assert [toy_ops(c.config) for c in chosen] == [64.0, 1024.0]  # the cheapest, then the middle


def test_every_proposal_of_a_sweep_is_undominated_at_its_predicted_quality() -> None:
    strategy = hwnas(seed=2, n_initial=6)
    checked = 0
    for _ in range(24):
        (proposal,) = strategy.ask(1)
        model = strategy._model
        if model is not None:
            costs = strategy._transform_costs(strategy._oracle(proposal.config))  # type: ignore[arg-type]
            features = np.hstack([strategy._encoder.encode([proposal.config]), costs[None, :]])
            mean = float(model.predict(features)[0][0, 0])
            for record in strategy._front_records():
                front_cost = strategy._transform_costs(record.values)
                dominated = np.all(front_cost <= costs) and record.values["emd_mean"] <= mean
                assert not dominated or strategy.state_dict()["dominated_explorations"] > 0
            checked += 1
        config = proposal.config
        strategy.tell(proposal.key, Completed({"emd_mean": toy_quality(config), "ops": toy_ops(config)}))
    assert checked >= 15
    assert strategy.state_dict()["phase"] == "model"


def test_first_proposals_spread_along_the_cost_axis() -> None:
    strategy = hwnas(seed=3, n_initial=8)
    proposals = strategy.ask(6)
    log_ops = sorted(math.log10(toy_ops(p.config)) for p in proposals)
    costed = [math.log10(c["ops"]) for c in strategy._arch_costs.values() if isinstance(c, dict)]
    assert log_ops[-1] - log_ops[0] >= 0.7 * (max(costed) - min(costed))
    assert min(np.diff(log_ops)) > 0  # six distinct cost levels, not a cluster


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


def test_resume_rebuilds_the_dedup_set_and_the_model() -> None:
    first = hwnas(seed=4, n_initial=4)
    history = run(first, TOY, asks=12)
    resumed = hwnas(seed=4, n_initial=4)
    for config, outcome in history:
        resumed.observe(config, outcome)
    assert resumed._front_records() == first._front_records()
    old = {_config_key(c) for c, _ in history}
    later = run(resumed, TOY, asks=10, batch=2)
    assert not old & {_config_key(c) for c, _ in later}
    assert resumed.state_dict()["phase"] == "model"


# -- fallbacks ------------------------------------------------------------------------------------------------
def test_too_few_completed_trials_give_space_filling_draws_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = hwnas(n_initial=5)
    with caplog.at_level(logging.WARNING):
        run(strategy, TOY, asks=4)
        assert len(strategy.ask(1)) == 1
    assert strategy.state_dict()["phase"] == "space-filling"
    assert not caplog.records


def test_all_failed_trials_fall_back_to_space_filling_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = hwnas(n_initial=3)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            (proposal,) = strategy.ask(1)
            strategy.tell(proposal.key, Failed("collapsed"))
        proposals = strategy.ask(2)
    assert len(proposals) == 2
    assert strategy.state_dict()["phase"] == "space-filling"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "space-filling" in warnings[0] and "0 of 3 finished trials" in warnings[0]
    assert len(warnings) == 1  # the same problem is not repeated at every ask


def test_a_model_that_cannot_be_fitted_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: QualityModel, features: np.ndarray, targets: np.ndarray) -> None:
        raise ValueError("singular")

    monkeypatch.setattr(QualityModel, "fit", broken)
    strategy = hwnas(n_initial=3)
    with caplog.at_level(logging.WARNING):
        run(strategy, TOY, asks=5)
    assert strategy.state_dict()["phase"] == "space-filling"
    assert "fitting the rf quality model failed: singular" in caplog.text


def test_failed_and_pruned_trials_count_as_bad_quality() -> None:
    strategy = hwnas(n_initial=2)
    good = {"n_layers": 1, "width0": 8, "bits": 4, "lr": 3e-3}
    other = {"n_layers": 1, "width0": 16, "bits": 4, "lr": 3e-3}
    strategy.observe(good, Completed({"emd_mean": 1.0, "ops": toy_ops(good)}))
    strategy.observe(other, Completed({"emd_mean": 2.0, "ops": toy_ops(other)}))
    strategy.observe({**good, "lr": 0.09}, Failed("diverged"))
    strategy.observe({**good, "lr": 0.05}, Pruned({"emd_mean": 1.7}, fidelity=2))
    strategy.observe({**good, "lr": 0.02}, Rejected("never trained"))
    data = strategy._training_data()
    assert not isinstance(data, str)
    configs, _, targets = data
    targets_by = {(c["width0"], c["lr"]): t[0] for c, t in zip(configs, targets, strict=True)}
    # Failed = the worst completed quality, pruned = its partial value; rejected is no quality data.
    assert targets_by == {(8, 3e-3): 1.0, (16, 3e-3): 2.0, (8, 0.09): 2.0, (8, 0.05): 1.7}


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


# -- options --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "xgb"}, "option 'model' of strategy 'hwnas' must be one of 'rf', 'gp', got 'xgb'"),
        ({"bogus": 1}, "unknown option(s) ['bogus'] for strategy 'hwnas'; allowed: n_initial, n_candidates"),
        ({"n_initial": 1}, "option 'n_initial' of strategy 'hwnas' must be >= 2, got 1"),
        ({"cost_calls": 0}, "option 'cost_calls' of strategy 'hwnas' must be >= 1, got 0"),
        (
            {"model": "gp", "trees": 16},
            "option 'trees' of strategy 'hwnas' applies only to model 'rf', got model 'gp'",
        ),
        (
            {"training_params": ["lr", "momentum"]},
            "option 'training_params' of strategy 'hwnas' names ['momentum'], which are not parameters of the "
            "space; allowed: n_layers, width0, width1, width2, bits, lr",
        ),
        (
            {"training_params": list(TOY.names)},
            "option 'training_params' of strategy 'hwnas' lists every parameter of the space",
        ),
    ],
)
def test_bad_options_name_the_option_and_the_allowed_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError) as info:
        make_strategy("hwnas", TOY, OBJECTIVES, seed=0, options=options, costs=make_oracle()[0])
    assert message in str(info.value)


def test_same_seed_same_proposals() -> None:
    runs = [[c for c, _ in run(hwnas(seed=7, n_initial=4), TOY, asks=10)] for _ in range(2)]
    assert runs[0] == runs[1]
    assert [c for c, _ in run(hwnas(seed=8, n_initial=4), TOY, asks=10)] != runs[0]


def test_gp_model_and_several_quality_objectives() -> None:
    objectives = (Objective("emd_mean"), Objective("emd_std"), Objective("ops"))
    oracle, _ = make_oracle()
    for model in ("gp", "rf"):
        strategy = make_strategy(
            "hwnas", TOY, objectives, seed=0, options={"n_initial": 4, "model": model}, costs=oracle
        )
        keys = set()
        for _ in range(8):
            for proposal in strategy.ask(2):
                keys.add(_config_key(proposal.config))
                quality = toy_quality(proposal.config)
                values = {"emd_mean": quality, "emd_std": 1.0 / quality, "ops": toy_ops(proposal.config)}
                strategy.tell(proposal.key, Completed(values))
        assert len(keys) == 16
        assert strategy.state_dict()["phase"] == "model"


# -- end to end: better hypervolume than random for the same number of trials ------------------------------
def _hypervolume(history: list[tuple[dict[str, Any], Outcome]]) -> float:
    points = [
        (math.log10(1 + o.values["ops"]), o.values["emd_mean"])
        for _, o in history
        if isinstance(o, Completed)
    ]
    return float(moocore.hypervolume(np.array(points), ref=np.array([5.0, 3.0])))


@pytest.mark.slow
def test_finds_a_better_front_than_random_search() -> None:
    trials = 30
    ours, theirs = [], []
    for seed in range(3):
        ours.append(_hypervolume(run(hwnas(seed=seed, n_initial=8), TOY, asks=trials)))
        random = make_strategy("random", TOY, OBJECTIVES, seed=seed)
        theirs.append(_hypervolume(run(random, TOY, asks=trials)))
    assert np.median(ours) > np.median(theirs) + 0.1, (ours, theirs)
    assert min(ours) > np.median(theirs)


@pytest.mark.slow
def test_econt_with_the_real_cost_oracle() -> None:
    from hw_models import HWError, HWSettings, estimate
    from objectives import get_task
    from spaces import build_model, get_space

    space, task = get_space("econt"), get_task("econt")

    def costs_of(config: Mapping[str, Any]) -> dict[str, float] | str:
        try:
            report = estimate(build_model("econt", config).encoder, task.input_shape, HWSettings())
        except HWError as exc:
            return f"hardware model: {exc}"
        return {name: float(value) for name, value in report.totals.items()}

    calls: list[dict[str, Any]] = []

    def oracle(config: Mapping[str, Any]) -> dict[str, float] | str:
        calls.append(dict(config))
        return costs_of(config)

    objectives = (Objective("emd_mean"), Objective("bops"))
    strategy = make_strategy("hwnas", space, objectives, seed=0, options={"n_initial": 3}, costs=oracle)
    proposed = []
    for _ in range(6):
        (proposal,) = strategy.ask(1)
        assert space.validate(proposal.config) == proposal.config
        costs = costs_of(proposal.config)
        assert isinstance(costs, dict)
        emd = 3.0 / (1.0 + math.log10(1.0 + costs["ops"])) + abs(math.log10(proposal.config["lr"]) + 2.5)
        strategy.tell(proposal.key, Completed({"emd_mean": emd, "bops": costs["bops"]}))
        proposed.append(_config_key(proposal.config))
    assert len(set(proposed)) == 6
    assert strategy.state_dict()["phase"] == "model"
    # One oracle call per architecture: the training settings never cause another.
    training = {"lr", "batch_size", "l1_reg", "l1"}
    architectures = [
        json.dumps({k: v for k, v in c.items() if k not in training}, sort_keys=True) for c in calls
    ]
    assert len(architectures) == len(set(architectures)) == strategy.state_dict()["oracle_calls"]
    # Bounded cost calls: 8 on the first ask, then 1 per ask (plus retries only while nothing is accepted).
    assert len(calls) <= 8 + 5 + 2
