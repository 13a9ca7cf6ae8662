"""Strategies behind the ask/tell interface: valid proposals, outcome mapping, resume, errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search._types import Completed, Failed, Objective, Outcome, Pruned, Rejected
from search.strategies import STRATEGY_NAMES, Strategy, StrategyError, make_strategy
from search.strategies._base import FEASIBILITY_CONSTRAINT
from search.strategies._builtin import OptunaStrategy
from spaces import Infeasible, Space, get_space

SMALL = Space.from_yaml(Path(__file__).parent.parent / "small_space.yaml")
# Finite, conditional, with an infeasible corner: small enough to enumerate.
FINITE = Space.from_dict(
    {
        "parameters": {
            "n_layers": {"type": "int", "low": 0, "high": 2},
            "units0": {"type": "choice", "choices": [4, 8], "active_if": {"n_layers": {">": 0}}},
            "units1": {"type": "choice", "choices": [4, 8], "active_if": {"n_layers": {">": 1}}},
            "quantize": {"type": "bool"},
            "bits": {"type": "int", "low": 4, "high": 6, "active_if": {"quantize": True}},
        },
        "constraints": [{"expr": "units1 <= units0", "reason": "layers must not widen"}],
    }
)
# GP proposals fit a model each (~0.3-1 s here): the GP cases of the per-strategy tests are slow.
# Fitting a GP (optuna-gp) and importing Ax (~9 s) are slow here.
WITH_SLOW_GP = [
    pytest.param(n, marks=pytest.mark.slow) if n in ("optuna-gp", "ax") else n for n in STRATEGY_NAMES
]
ONE = (Objective("loss"),)
TWO = (Objective("loss"), Objective("size", "maximize"))
FAST = {  # small startup phases so the model-based samplers are exercised within a few rounds
    "random": {},
    "grid": {"float_points": 3},
    "optuna-tpe": {"n_startup_trials": 4},
    "optuna-nsga2": {"population_size": 4},
    "optuna-gp": {"n_startup_trials": 3},
    "ax": {"n_sobol": 9, "background": False},  # Sobol only: deterministic and fast
    "hwnas": {"n_initial": 4},
}


def toy(config: Mapping[str, Any]) -> dict[str, float]:
    """Objectives of a canonical SMALL config; ``loss`` is +inf for one corner (a diverged run)."""
    units = [config.get(f"units{i}", 0) for i in range(2)]
    loss = (math.log10(config["lr"]) + 2) ** 2 + abs(sum(units) - 12) / 4 + (config["act"] == "tanh") * 0.5
    if config["n_layers"] == 0 and config["act"] == "tanh":
        loss = math.inf
    return {"loss": loss, "size": float(sum(units) + config.get("bits", 16)), "unused_metric": 1.0}


def drive(
    strategy: Strategy,
    space: Space,
    evaluate: Callable[[Mapping[str, Any]], dict[str, float]],
    rounds: int,
    batch: int,
) -> list[tuple[dict[str, Any], Outcome]]:
    """What the driver does: validate each proposal, reject infeasible ones untrained, tell the rest."""
    history: list[tuple[dict[str, Any], Outcome]] = []
    for _ in range(rounds):
        proposals = strategy.ask(batch)
        for proposal in reversed(proposals):  # completion order differs from proposal order
            checked = space.validate(proposal.config)
            outcome: Outcome = (
                Rejected(checked.reason) if isinstance(checked, Infeasible) else Completed(evaluate(checked))
            )
            strategy.tell(proposal.key, outcome)
            history.append((proposal.config, outcome))
    return history


@pytest.mark.parametrize("objectives", [ONE, TWO], ids=["one-objective", "two-objectives"])
@pytest.mark.parametrize("name", WITH_SLOW_GP)
def test_every_strategy_proposes_canonical_configs_over_rounds(
    name: str, objectives: tuple[Objective, ...]
) -> None:
    strategy = make_strategy(name, SMALL, objectives, seed=3, options=FAST[name])
    keys: set[str] = set()
    for _ in range(3):
        proposals = strategy.ask(3)
        assert len(proposals) == 3
        for proposal in proposals:
            assert proposal.key not in keys
            keys.add(proposal.key)
            assert SMALL.canonicalize(proposal.config) == proposal.config
            checked = SMALL.validate(proposal.config)
            outcome = Rejected(checked.reason) if isinstance(checked, Infeasible) else Completed(toy(checked))
            strategy.tell(proposal.key, outcome)
    state = strategy.state_dict()
    assert sum(state["seen"].values()) == 9
    assert state["pending"] == 0
    assert state["strategy"] == name


@pytest.mark.parametrize("name", WITH_SLOW_GP)
def test_every_strategy_searches_the_econt_space(name: str) -> None:
    space = get_space("econt")
    objectives = (Objective("emd"), Objective("bops"))
    options = {"float_points": 2} if name == "grid" else FAST[name]
    strategy = make_strategy(name, space, objectives, seed=0, options=options)

    def fake_training(c: Mapping[str, Any]) -> dict[str, float]:
        return {"emd": abs(math.log10(c["lr"]) + 3.0), "bops": float(len(c))}

    history = drive(strategy, space, fake_training, rounds=3, batch=3)
    assert len(history) == 9
    for config, _ in history:
        assert space.canonicalize(config) == config


@pytest.mark.parametrize("name", WITH_SLOW_GP)
def test_same_seed_same_proposals(name: str) -> None:
    runs = []
    for _ in range(2):
        strategy = make_strategy(name, SMALL, TWO, seed=11, options=FAST[name])
        runs.append([config for config, _ in drive(strategy, SMALL, toy, rounds=3, batch=2)])
    assert runs[0] == runs[1]
    other = make_strategy(name, SMALL, TWO, seed=12, options=FAST[name])
    if name != "grid":  # a grid ignores the seed
        assert [c for c, _ in drive(other, SMALL, toy, rounds=3, batch=2)] != runs[0]


def test_grid_enumerates_exactly_the_space_grid_then_is_exhausted() -> None:
    strategy = make_strategy("grid", FINITE, ONE, seed=0)
    proposed = []
    while proposals := strategy.ask(4):
        for proposal in proposals:
            proposed.append(proposal.config)
            strategy.tell(proposal.key, Failed("not run"))
    assert proposed == list(FINITE.grid())
    assert len(proposed) == FINITE.grid_size() == 4 + 8 + 16  # per n_layers: 0, 1, 2
    assert strategy.ask(5) == []


def test_grid_resume_skips_observed_points() -> None:
    grid = list(FINITE.grid())
    resumed = make_strategy("grid", FINITE, ONE, seed=0)
    for config in grid[:5] + grid[9:11]:
        resumed.observe(config, Completed({"loss": 1.0}))
    rest = [p.config for p in resumed.ask(len(grid))]
    assert rest == grid[5:9] + grid[11:]


def test_random_resume_continues_the_sequence_instead_of_repeating_it() -> None:
    original = make_strategy("random", SMALL, ONE, seed=5)
    first = drive(original, SMALL, toy, rounds=1, batch=6)
    continuation = [p.config for p in original.ask(4)]
    resumed = make_strategy("random", SMALL, ONE, seed=5)
    for config, outcome in first:
        resumed.observe(config, outcome)
    assert [p.config for p in resumed.ask(4)] == continuation
    assert resumed.state_dict()["next_index"] == 10


def _study(strategy: Strategy) -> optuna.Study:
    assert isinstance(strategy, OptunaStrategy)
    return strategy.study


def _summary(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [
        (t.params, t.values, t.state, t.intermediate_values, t.constraints, t.distributions)
        for t in study.get_trials(deepcopy=False)
    ]


OPTUNA_NAMES = [name for name in STRATEGY_NAMES if name.startswith("optuna-")]


@pytest.mark.parametrize("objectives", [ONE, TWO], ids=["one-objective", "two-objectives"])
@pytest.mark.parametrize("name", OPTUNA_NAMES)
def test_observe_rebuilds_the_same_optuna_study(name: str, objectives: tuple[Objective, ...]) -> None:
    # The live run stays in the startup phase (cheap) except NSGA-II, whose generations must match; the
    # rebuilt strategy fits its model on the observed trials when it proposes next.
    live_options = FAST[name] if name == "optuna-nsga2" else {"n_startup_trials": 100}
    live = make_strategy(name, SMALL, objectives, seed=1, options=live_options)
    history: list[tuple[dict[str, Any], Outcome]] = []
    kinds: list[Callable[[dict[str, Any]], Outcome]] = [
        lambda c: Completed(toy(c)),
        lambda c: Pruned({"loss": 2.5, "size": 3.0}, fidelity=3),
        lambda c: Completed(toy(c)),
        lambda c: Failed("diverged"),
        lambda c: Rejected("over the LUT budget"),  # feasible, but rejected by a hardware budget
        lambda c: Completed(toy(c)),
        lambda c: Pruned({"loss": math.nan}, fidelity=1),
    ]
    for i in range(28):  # one at a time, like a sequential sweep, so NSGA-II generations are comparable
        (proposal,) = live.ask(1)
        checked = SMALL.validate(proposal.config)
        outcome = (
            Rejected(checked.reason) if isinstance(checked, Infeasible) else kinds[i % len(kinds)](checked)
        )
        live.tell(proposal.key, outcome)
        history.append((proposal.config, outcome))
    assert {type(o) for _, o in history} == {Completed, Pruned, Failed, Rejected}

    rebuilt = make_strategy(name, SMALL, objectives, seed=1, options=FAST[name])
    for config, outcome in history:
        rebuilt.observe(config, outcome)
    assert _summary(_study(rebuilt)) == _summary(_study(live))
    assert rebuilt.state_dict()["seen"] == live.state_dict()["seen"]
    if name == "optuna-nsga2":
        key = "NSGAIISampler:generation"
        live_generations = [t.system_attrs[key] for t in _study(live).trials]
        assert [t.system_attrs[key] for t in _study(rebuilt).trials] == live_generations
        assert max(live_generations) >= 1
    for config, _ in drive(rebuilt, SMALL, toy, rounds=1, batch=2):
        assert SMALL.canonicalize(config) == config


def test_every_outcome_maps_into_optuna() -> None:
    strategy = make_strategy("optuna-tpe", SMALL, TWO, seed=0)
    proposals = strategy.ask(5)
    outcomes: list[Outcome] = [
        Completed({"size": 7.0, "loss": math.inf}),  # dict order differs from the objective order
        Completed({"loss": -math.inf, "size": 1.0}),
        Pruned({"loss": 0.5}, fidelity=2),
        Failed("out of memory"),
        Rejected("too wide"),
    ]
    for proposal, outcome in zip(proposals, outcomes, strict=True):
        strategy.tell(proposal.key, outcome)
    trials = _study(strategy).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED, TrialState.FAIL] + [
        TrialState.PRUNED
    ]
    assert trials[0].values == [math.inf, 7.0]
    assert trials[1].values == [-math.inf, 1.0]
    assert trials[2].intermediate_values == {}  # intermediate values are single-objective in Optuna
    assert trials[4].constraints == {FEASIBILITY_CONSTRAINT: 1.0}
    assert all(t.constraints == {} for t in trials[:4])
    assert strategy.state_dict()["seen"] == {"completed": 2, "pruned": 1, "failed": 1, "rejected": 1}

    single = make_strategy("optuna-tpe", SMALL, ONE, seed=0)
    (proposal,) = single.ask(1)
    single.tell(proposal.key, Pruned({"loss": 0.25}, fidelity=4))
    (trial,) = _study(single).trials
    assert (trial.state, trial.intermediate_values, trial.value) == (TrialState.PRUNED, {4: 0.25}, 0.25)


def _best_loss(name: str, seed: int, n_trials: int) -> float:
    # A smooth 3-D bowl: TPE's model should find the basin that random search rarely hits.
    space = Space.from_dict({"parameters": {x: {"type": "float", "low": -10.0, "high": 10.0} for x in "xyz"}})
    options = {"n_startup_trials": 10} if name == "optuna-tpe" else {}
    strategy = make_strategy(name, space, ONE, seed=seed, options=options)

    def bowl(c: Mapping[str, Any]) -> dict[str, float]:
        return {"loss": (c["x"] - 1.5) ** 2 + (c["y"] + 2.0) ** 2 + (c["z"] - 7.0) ** 2}

    history = drive(strategy, space, bowl, rounds=n_trials // 2, batch=2)
    return min(o.values["loss"] for _, o in history if isinstance(o, Completed))


def test_tpe_beats_random_on_a_toy_problem() -> None:
    seeds = range(4)
    tpe = float(np.mean([_best_loss("optuna-tpe", s, 40) for s in seeds]))
    rand = float(np.mean([_best_loss("random", s, 40) for s in seeds]))
    assert tpe < 0.5 * rand, (tpe, rand)


def test_tpe_learns_to_avoid_rejected_configs() -> None:
    # Half the square is infeasible. Told as FAIL, TPE ignores those trials and keeps proposing there
    # (about 90% of proposals after startup in a probe); told as constraint-violating, it learns.
    space = Space.from_dict(
        {
            "parameters": {
                "x": {"type": "float", "low": 0.0, "high": 1.0},
                "y": {"type": "float", "low": 0.0, "high": 1.0},
            },
            "constraints": [{"expr": "x + y <= 0.8", "reason": "over the budget"}],
        }
    )
    fractions = []
    for seed in range(3):
        strategy = make_strategy("optuna-tpe", space, ONE, seed=seed, options={"n_startup_trials": 10})
        history = drive(strategy, space, lambda c: {"loss": (c["x"] - 0.6) ** 2 + (c["y"] - 0.6) ** 2}, 60, 1)
        fractions.append(np.mean([isinstance(o, Rejected) for _, o in history[10:]]))
    assert np.mean(fractions) < 0.6, fractions


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "bayes"},
            "unknown strategy 'bayes'; allowed: random, grid, optuna-tpe, optuna-nsga2, optuna-gp",
        ),
        (
            {"name": "optuna-tpe", "options": {"population_size": 8}},
            "unknown option(s) ['population_size'] for strategy 'optuna-tpe'; allowed: n_startup_trials, "
            "n_ei_candidates",
        ),
        (
            {"name": "random", "options": {"x": 1}},
            "unknown option(s) ['x'] for strategy 'random'; allowed: none",
        ),
        (
            {"name": "optuna-nsga2", "options": {"population_size": 1}},
            "option 'population_size' of strategy 'optuna-nsga2' must be >= 2, got 1",
        ),
        (
            {"name": "optuna-gp", "options": {"n_startup_trials": "5"}},
            "option 'n_startup_trials' of strategy 'optuna-gp' must be int, got '5'",
        ),
        (
            {"name": "optuna-gp", "options": {"deterministic_objective": 1}},
            "option 'deterministic_objective' of strategy 'optuna-gp' must be bool, got 1",
        ),
        ({"name": "random", "seed": -1}, "seed must be an integer in [0, 2**32), got -1"),
        ({"name": "random", "objectives": ()}, "a strategy needs 1 to 4 objectives, got 0"),
        (
            {"name": "random", "objectives": tuple(Objective(f"m{i}") for i in range(5))},
            "a strategy needs 1 to 4 objectives, got 5",
        ),
        (
            {"name": "random", "objectives": (Objective("a"), Objective("a"))},
            "objective names must be unique",
        ),
        (
            {"name": "random", "objectives": (Objective("a", "up"),)},  # type: ignore[arg-type]
            "objective 'a' has direction 'up'; allowed: minimize, maximize",
        ),
        ({"name": "grid"}, "strategy 'grid' cannot enumerate this space"),
    ],
)
def test_make_strategy_errors_name_the_bad_value(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"space": SMALL, "objectives": ONE, "seed": 0, **kwargs}
    with pytest.raises(StrategyError) as info:
        make_strategy(arguments.pop("name"), arguments.pop("space"), arguments.pop("objectives"), **arguments)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["random", "optuna-tpe"])
def test_tell_and_observe_refuse_mismatches(name: str) -> None:
    strategy = make_strategy(name, SMALL, TWO, seed=0)
    first, second = strategy.ask(2)
    with pytest.raises(StrategyError, match=r"has no pending proposal 'nope'; pending keys: \['0', '1'\]"):
        strategy.tell("nope", Completed({"loss": 1.0, "size": 1.0}))
    with pytest.raises(StrategyError, match=r"lacks objective\(s\) \['size'\]; it has \['loss'\]"):
        strategy.tell(first.key, Completed({"loss": 1.0}))
    with pytest.raises(StrategyError, match="objective 'loss' is NaN; NaN results must be told as Failed"):
        strategy.tell(first.key, Completed({"loss": math.nan, "size": 1.0}))
    with pytest.raises(StrategyError, match="objective 'size' must be a number, got 'big'"):
        strategy.tell(first.key, Completed({"loss": 1.0, "size": "big"}))  # type: ignore[dict-item]
    with pytest.raises(
        StrategyError, match="outcome must be Completed, Pruned, Failed or Rejected, got dict"
    ):
        strategy.tell(first.key, {"loss": 1.0})  # type: ignore[arg-type]
    with pytest.raises(StrategyError, match="pruned fidelity must be >= 0, got -1"):
        strategy.tell(first.key, Pruned({"loss": 1.0}, fidelity=-1))
    strategy.tell(first.key, Failed("boom"))  # the refused tells left the proposal pending
    with pytest.raises(StrategyError, match=f"has no pending proposal '{first.key}'"):
        strategy.tell(first.key, Failed("boom again"))
    with pytest.raises(StrategyError, match="ask needs a number of proposals >= 0, got -1"):
        strategy.ask(-1)
    assert strategy.ask(0) == []
    with pytest.raises(
        StrategyError, match=r"observed config does not fit the space: unknown parameter\(s\)"
    ):
        strategy.observe({**second.config, "depth": 3}, Failed("x"))
    with pytest.raises(StrategyError, match="observed config does not fit the space"):
        strategy.observe({**second.config, "lr": 5.0}, Failed("x"))
    assert strategy.state_dict()["seen"]["failed"] == 1
