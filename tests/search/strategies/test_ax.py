"""The Ax strategy: valid proposals, every outcome in the Client, replay on resume, background proposals.

Ax's import takes ~9 s here and every Bayesian-optimisation proposal several seconds: the tests stay in the
quasi-random initialisation phase (a large ``n_sobol``) except those marked slow, which fit the GP.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search import Completed, Failed, Objective, Outcome, Pruned, Rejected, StrategyError, make_strategy
from search.strategies._ax import _FILL_STREAM, AxStrategy
from spaces import Infeasible, Space

pytestmark = pytest.mark.filterwarnings("ignore")  # Ax and BoTorch warn about their own internals

SMALL = Space.from_yaml(Path(__file__).parent.parent / "small_space.yaml")
TWO = (Objective("loss"), Objective("size", "maximize"))
SOBOL_ONLY = {"n_sobol": 50, "background": False}


def toy(config: Mapping[str, Any]) -> dict[str, float]:
    units = [config.get(f"units{i}", 0) for i in range(2)]
    loss = (math.log10(config["lr"]) + 2) ** 2 + abs(sum(units) - 12) / 4 + (config["act"] == "tanh") * 0.5
    return {"loss": loss, "size": float(sum(units) + config.get("bits", 16))}


def ax(options: Mapping[str, Any], seed: int = 0) -> AxStrategy:
    strategy = make_strategy("ax", SMALL, TWO, seed=seed, options=dict(options))
    assert isinstance(strategy, AxStrategy)
    return strategy


def evaluate(config: Mapping[str, Any]) -> Outcome:
    checked = SMALL.validate(config)
    return Rejected(checked.reason) if isinstance(checked, Infeasible) else Completed(toy(checked))


def summary(strategy: AxStrategy) -> pd.DataFrame:
    """Status, reason, objective values and parameters of every Ax trial (sorted, index-free)."""
    with strategy.client() as client:
        frame = client.summarize()
    columns = sorted(set(frame.columns) - {"trial_index", "arm_name", "generation_node"})
    return frame[columns].sort_values(["trial_status", "lr"]).reset_index(drop=True)


def test_importing_search_does_not_import_ax() -> None:
    code = (
        "import sys, search, search.strategies._ax\n"
        "from spaces import get_space\n"
        "search.make_strategy('optuna-tpe', get_space('econt'), [search.Objective('emd')], seed=0)\n"
        "print('ax' in search.STRATEGY_NAMES, 'ax' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("background", [False, True])
def test_proposals_are_canonical_configs_of_the_space(background: bool) -> None:
    strategy = ax({"n_sobol": 50, "background": background, "batch_size": 3})
    configs: dict[str, dict[str, Any]] = {}
    for _ in range(4):
        proposals = strategy.ask(3)
        assert 1 <= len(proposals) <= 3
        for proposal in proposals:
            assert proposal.key not in configs
            configs[proposal.key] = proposal.config
            assert SMALL.canonicalize(proposal.config) == proposal.config
            strategy.tell(proposal.key, evaluate(proposal.config))
    strategy.close()
    seen = strategy.state_dict()["seen"]
    assert seen["completed"] + seen["rejected"] == len(configs)
    # The switch chain reaches every layer count, and the bool-gated parameter is proposed both ways.
    assert {c["n_layers"] for c in configs.values()} == {0, 1, 2}
    assert {"bits" in c for c in configs.values()} == {True, False}


@pytest.mark.parametrize("background", [False, True])
def test_every_outcome_reaches_the_client(background: bool) -> None:
    strategy = ax({"n_sobol": 50, "background": background})
    proposals = []
    while len(proposals) < 6:
        proposals += strategy.ask(6 - len(proposals))
    outcomes: list[Outcome] = [
        Completed({"size": 7.0, "loss": 0.5}),  # dict order differs from the objective order
        Completed({"loss": math.inf, "size": 3.0}),
        Pruned({"loss": 0.25}, fidelity=2),
        Failed("out of memory"),
        Rejected("over the LUT budget"),
        Completed({"loss": 1.5, "size": 9.0, "unused_metric": 4.0}),
    ]
    for proposal, outcome in zip(proposals, outcomes, strict=True):
        strategy.tell(proposal.key, outcome)
    with strategy.client() as client:
        frame = client.summarize().set_index("trial_index").sort_index()
        data = client._experiment.lookup_data().df  # the raw data Ax stores (no public accessor)
    indices = [int(p.key) for p in proposals]
    statuses = frame.loc[indices, "trial_status"].tolist()
    assert statuses == ["COMPLETED", "ABANDONED", "ABANDONED", "FAILED", "ABANDONED", "COMPLETED"]
    assert frame.loc[indices[3], "status_reason"] == "out of memory"
    stored = {(row.trial_index, row.metric_name): row.mean for row in data.itertuples()}
    assert stored == {
        (indices[0], "loss"): 0.5,
        (indices[0], "size"): 7.0,
        (indices[5], "loss"): 1.5,
        (indices[5], "size"): 9.0,
    }
    assert data["sem"].isna().all()  # plain floats: Ax infers the noise
    strategy.close()
    assert strategy.state_dict()["seen"] == {"completed": 3, "pruned": 1, "failed": 1, "rejected": 1}


def test_same_seed_same_proposals_without_background() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        strategy = ax(SOBOL_ONLY, seed=seed)
        configs = []
        for _ in range(3):
            for proposal in strategy.ask(2):
                strategy.tell(proposal.key, evaluate(proposal.config))
                configs.append(proposal.config)
        return configs

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_the_first_proposal_is_the_centre_of_the_space_then_sobol() -> None:
    strategy = ax(SOBOL_ONLY)
    strategy.ask(1)
    strategy.ask(1)
    with strategy.client() as client:
        nodes = client.summarize().sort_values("trial_index")["generation_node"].tolist()
    assert nodes == ["CenterOfSearchSpace", "Sobol"]


def _history(strategy: AxStrategy, rounds: int) -> list[tuple[dict[str, Any], Outcome]]:
    kinds = [
        lambda c: Completed(toy(c)),
        lambda c: Pruned({"loss": 2.5}, fidelity=3),
        lambda c: Completed(toy(c)),
        lambda c: Failed("diverged"),
        lambda c: Rejected("over the LUT budget"),
    ]
    history = []
    for i in range(rounds):
        (proposal,) = strategy.ask(1)
        checked = SMALL.validate(proposal.config)
        outcome = (
            Rejected(checked.reason) if isinstance(checked, Infeasible) else kinds[i % len(kinds)](checked)
        )
        strategy.tell(proposal.key, outcome)
        history.append((proposal.config, outcome))
    return history


def test_observe_rebuilds_the_same_trials_and_data() -> None:
    live = ax(SOBOL_ONLY, seed=2)
    history = _history(live, 12)
    assert {type(o) for _, o in history} == {Completed, Pruned, Failed, Rejected}
    rebuilt = ax({**SOBOL_ONLY, "background": True}, seed=2)
    for config, outcome in history:
        rebuilt.observe(config, outcome)
    assert rebuilt.state_dict()["seen"] == live.state_dict()["seen"]
    pd.testing.assert_frame_equal(summary(rebuilt), summary(live))
    for proposal in rebuilt.ask(2):
        assert SMALL.canonicalize(proposal.config) == proposal.config
    rebuilt.close()


@pytest.mark.parametrize(
    ("thresholds", "dropped"),
    [({"loss": -100.0, "size": 1e6}, True), ({"loss": 100.0, "size": 0.0}, False)],
    ids=["nothing-meets-them", "met"],
)
def test_thresholds_no_result_meets_are_dropped_with_a_warning(
    thresholds: dict[str, float], dropped: bool, caplog: pytest.LogCaptureFixture
) -> None:
    strategy = ax({"n_sobol": 3, "background": False, "thresholds": thresholds})
    with strategy.client() as client:
        assert len(client._experiment.optimization_config.objective_thresholds) == 2
    for config, outcome in _noisy_history(3):
        strategy.observe(config, Completed(outcome.values))
    with caplog.at_level("WARNING", logger="search.strategies._ax"), strategy.client() as client:
        kept = client._experiment.optimization_config.objective_thresholds
    assert strategy.state_dict()["thresholds_dropped"] is dropped
    assert len(kept) == (0 if dropped else 2)
    warned = [r.getMessage() for r in caplog.records if "none of the first 3 results" in r.getMessage()]
    assert len(warned) == dropped
    if dropped:
        assert "'loss': -100.0" in warned[0] and "Loosen the sweep's reference_point" in warned[0]


@pytest.mark.parametrize("background", [False, True])
def test_an_ax_failure_while_proposing_is_a_strategy_error_with_axs_message(
    background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = ax({"n_sobol": 50, "background": background})

    def fail(**_: Any) -> dict[int, Any]:
        raise RuntimeError("model fitting diverged")  # stands in for any error raised inside Ax

    monkeypatch.setattr(strategy._client, "get_next_trials", fail)
    with pytest.raises(
        StrategyError, match="Ax failed to propose trials: RuntimeError: model fitting diverged"
    ):
        strategy.ask(1)
    strategy.close()


def _noisy_history(count: int) -> list[tuple[dict[str, Any], Completed]]:
    """Completed toy trials told as means with a standard error of the loss (the size is exact)."""
    rng = np.random.default_rng(0)
    configs = [SMALL.sample(rng) for _ in range(3 * count)]
    feasible = [c for c in configs if not isinstance(SMALL.validate(c), Infeasible)][:count]
    return [(c, Completed(toy(c), sem={"loss": 0.1 * (i + 1)})) for i, c in enumerate(feasible)]


def test_standard_errors_reach_ax_for_the_objectives_that_have_them() -> None:
    strategy = ax(SOBOL_ONLY)
    history = _noisy_history(4)
    for config, outcome in history:
        strategy.observe(config, outcome)
    with strategy.client() as client:
        data = client._experiment.lookup_data().df  # Ax's stored data: no public accessor in Ax 1.3
    loss = data[data["metric_name"] == "loss"].sort_values("trial_index")
    size = data[data["metric_name"] == "size"].sort_values("trial_index")
    assert loss["mean"].tolist() == pytest.approx([o.values["loss"] for _, o in history])
    assert loss["sem"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert size["sem"].isna().all()  # no replicate noise: a plain value, Ax infers its noise


@pytest.mark.slow
def test_ax_fits_its_model_on_trials_with_standard_errors() -> None:
    strategy = ax({"n_sobol": 3, "background": False})
    for config, outcome in _noisy_history(8):
        strategy.observe(config, outcome)
    (proposal,) = strategy.ask(1)
    assert SMALL.canonicalize(proposal.config) == proposal.config
    with strategy.client() as client:
        assert client.summarize()["generation_node"].iloc[-1] == "MBM"


@pytest.mark.slow
def test_rebuilt_strategy_fits_its_model_on_observed_trials() -> None:
    live = ax(SOBOL_ONLY, seed=3)
    history = _history(live, 10)
    rebuilt = ax({"n_sobol": 3, "background": False}, seed=3)
    for config, outcome in history:
        rebuilt.observe(config, outcome)
    (proposal,) = rebuilt.ask(1)
    assert SMALL.canonicalize(proposal.config) == proposal.config
    with rebuilt.client() as client:
        frame = client.summarize()
    assert frame["generation_node"].iloc[-1] == "MBM"  # proposed by the GP, not quasi-randomly
    assert (frame["trial_status"] == "COMPLETED").sum() == sum(isinstance(o, Completed) for _, o in history)


@pytest.mark.slow
def test_background_serves_ready_proposals_while_ax_thinks() -> None:
    strategy = ax({"n_sobol": 2, "batch_size": 2, "thresholds": {"loss": 10.0, "size": 0.0}})
    for proposal in strategy.ask(2):
        strategy.tell(proposal.key, Completed(toy(SMALL.canonicalize(proposal.config))))
    deadline = time.monotonic() + 300
    while strategy.state_dict()["ready"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    calls = strategy.state_dict()["ax_calls"]
    # Taking a ready proposal wakes the thread for a GP proposal; neither ask nor tell waits for it.
    started = time.perf_counter()
    (proposal,) = strategy.ask(1)
    strategy.tell(proposal.key, evaluate(proposal.config))
    (proposal,) = strategy.ask(1)
    assert time.perf_counter() - started < 1.0
    deadline = time.monotonic() + 300
    while strategy.state_dict()["ax_calls"] == calls and time.monotonic() < deadline:
        time.sleep(0.1)
    state = strategy.state_dict()
    assert state["ax_calls"] > calls
    assert state["ax_seconds"] > 0
    strategy.close()
    with pytest.raises(StrategyError, match="strategy 'ax' was closed"):
        strategy.ask(1)


def test_fill_random_hands_out_random_draws_while_ax_thinks_and_tells_ax_their_outcomes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strategy = ax({"n_sobol": 2, "batch_size": 2, "fill_random": True})
    real_get_next_trials = strategy._client.get_next_trials
    release = threading.Event()
    calls: list[int] = []

    def slow_after_sobol(**kwargs: Any) -> dict[int, Any]:
        calls.append(1)
        if len(calls) == 1:
            return real_get_next_trials(**kwargs)  # the quick Sobol batch
        release.wait(60)  # stands in for a Bayesian call that outlasts the trials
        return {}

    monkeypatch.setattr(strategy._client, "get_next_trials", slow_after_sobol)
    try:
        proposals = strategy.ask(2)  # waits for the Sobol batch: the initialisation is always Ax's own
        assert [p.key for p in proposals] == ["0", "1"]
        started = time.perf_counter()
        fills = strategy.ask(2)
        assert time.perf_counter() - started < 1.0  # no waiting for the blocked Ax call
        assert [p.key for p in fills] == ["random-0", "random-1"]
        assert all(SMALL.canonicalize(p.config) == p.config for p in fills)
        told = {}
        for proposal in proposals + fills:
            told[proposal.key] = evaluate(proposal.config)
            strategy.tell(proposal.key, told[proposal.key])
    finally:
        release.set()
    with strategy.client() as client:
        frame = client.summarize()
    completed = frame[frame["trial_status"] == "COMPLETED"]
    expected = sorted(o.values["loss"] for o in told.values() if isinstance(o, Completed))
    assert sorted(completed["loss"]) == pytest.approx(expected)  # the random draws' results reached Ax too
    assert strategy.state_dict()["random_fills"] == 2
    strategy.close()


def test_random_draws_of_a_resumed_sweep_skip_configs_it_already_has(monkeypatch: pytest.MonkeyPatch) -> None:
    draw = 3  # a resumed sweep's draws start after its replayed trials: draw 3 after three
    already_trained = SMALL.canonicalize(SMALL.sample(np.random.default_rng([0, _FILL_STREAM, draw])))
    history = [*_history(ax(SOBOL_ONLY), 2), (already_trained, Completed(toy(already_trained)))]
    resumed = ax({"n_sobol": 2, "fill_random": True})
    for config, outcome in history:
        resumed.observe(config, outcome)
    monkeypatch.setattr(resumed._client, "get_next_trials", lambda **_: {})  # keep Ax's GP fit out of it
    try:
        (proposal,) = resumed.ask(1)  # replayed trials count towards n_sobol: nothing ready, so a draw
    finally:
        resumed.close()
    assert proposal.key == "random-4"  # draw 3 is a config the sweep has: skipped
    rng = np.random.default_rng([0, _FILL_STREAM, 4])
    assert proposal.config == SMALL.canonicalize(SMALL.sample(rng))


@pytest.mark.parametrize(
    ("objectives", "options", "message"),
    [
        (
            TWO,
            {"n_init": 3},
            "unknown option(s) ['n_init'] for strategy 'ax'; allowed: n_sobol, batch_size, thresholds, "
            "background, fill_random",
        ),
        (
            TWO,
            {"fill_random": True, "background": False},
            "option 'fill_random' of strategy 'ax' needs background=True",
        ),
        (TWO, {"n_sobol": 0}, "option 'n_sobol' of strategy 'ax' must be >= 1, got 0"),
        (TWO, {"batch_size": 2.0}, "option 'batch_size' of strategy 'ax' must be int, got 2.0"),
        (TWO, {"background": "yes"}, "option 'background' of strategy 'ax' must be bool, got 'yes'"),
        (TWO, {"thresholds": [3.0]}, "option 'thresholds' of strategy 'ax' must be dict or None, got [3.0]"),
        (
            TWO,
            {"thresholds": {"loss": 3.0, "emd": 1.0}},
            "option 'thresholds' of strategy 'ax' names unknown objective(s) ['emd']; the objectives are "
            "['loss', 'size']",
        ),
        (TWO, {"thresholds": {"loss": math.inf}}, "threshold of 'loss' must be a finite number, got inf"),
        (
            (Objective("loss"),),
            {"thresholds": {"loss": 3.0}},
            "option 'thresholds' of strategy 'ax' needs two or more objectives",
        ),
        (
            (Objective("E"), Objective("size")),  # a name Ax's expression parser reserves
            {},
            "Ax rejected the experiment (objective '-E, -size')",
        ),
    ],
)
def test_bad_options_and_objectives_are_named(
    objectives: tuple[Objective, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrategyError) as info:
        make_strategy("ax", SMALL, objectives, seed=0, options=options)
    assert message in str(info.value)


def test_a_space_ax_cannot_express_names_the_parameter() -> None:
    two_parents = Space.from_dict(
        {
            "parameters": {
                "a": {"type": "bool"},
                "b": {"type": "bool"},
                "c": {"type": "int", "low": 1, "high": 3, "active_if": {"a": True, "b": True}},
            }
        }
    )
    with pytest.raises(
        StrategyError, match="strategy 'ax' cannot express this space: Ax cannot express parameter 'c'"
    ):
        make_strategy("ax", two_parents, TWO, seed=0)
