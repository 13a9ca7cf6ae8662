"""The ``hwnas`` quality model: its training data, its fallbacks to space-filling draws, ``gp``."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hwnas_toy import TOY, hwnas, make_oracle, run, toy_ops, toy_quality

from search._types import Completed, Failed, Objective, Outcome, Pruned, Rejected
from search.strategies import make_strategy
from search.strategies.hwnas import HwnasStrategy
from search.strategies.hwnas._candidates import _config_key
from search.strategies.hwnas._models import QualityModel


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


def test_failed_trials_count_as_bad_quality_and_pruned_ones_as_no_quality_data() -> None:
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
    # Failed = the worst completed quality; a pruned trial's partial value (an early rung's) and a
    # rejected trial are no quality data.
    assert targets_by == {(8, 3e-3): 1.0, (16, 3e-3): 2.0, (8, 0.09): 2.0}


def test_pruned_trials_count_towards_the_initial_phase() -> None:
    strategy = hwnas(n_initial=4)
    for width in (2, 4, 8):
        config = {"n_layers": 1, "width0": width, "bits": 4, "lr": 3e-3}
        strategy.observe(config, Completed({"emd_mean": 1.0 / width, "ops": toy_ops(config)}))
    assert isinstance(strategy._training_data(), str)  # 3 finished < n_initial
    strategy.observe({"n_layers": 1, "width0": 16, "bits": 4, "lr": 3e-3}, Pruned({"emd_mean": 9.0}, 2))
    data = strategy._training_data()
    assert not isinstance(data, str) and len(data[0]) == 3


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


# -- misses: collapsed and pruned trials ---------------------------------------------------------------------
@pytest.mark.parametrize("miss", ["collapsed", "pruned"])
def test_collapsed_and_pruned_trials_train_the_miss_model(miss: str) -> None:
    strategy = hwnas(n_initial=2)
    for width in (8, 16, 32):
        for lr, missed in ((3e-3, False), (0.05, True)):
            config = {"n_layers": 1, "width0": width, "bits": 4, "lr": lr}
            values = {"emd_mean": 6.0 if missed else toy_quality(config), "ops": toy_ops(config)}
            outcome: Outcome = Completed(values)
            if missed:
                outcome = Completed(values, collapsed=True) if miss == "collapsed" else Pruned(values, 2)
            strategy.observe(config, outcome)
    data = strategy._training_data()
    assert not isinstance(data, str)
    # A collapsed trial stays quality data at its value; a pruned one is none.
    assert sorted(c["lr"] for c in data[0]) == [3e-3] * 3 + ([0.05] * 3 if miss == "collapsed" else [])
    assert strategy._fitted_model() is not None
    assert strategy.state_dict()["miss_model"] is True
    assert strategy.state_dict()["collapsed_trials"] == (3 if miss == "collapsed" else 0)

    def probability(lr: float) -> float:
        config = TOY.canonicalize({"n_layers": 1, "width0": 16, "bits": 4, "lr": lr})
        costs = strategy._transform_costs({"ops": toy_ops(config)})
        return float(strategy._miss_probability(strategy._features([config], costs[None, :]))[0])

    assert probability(0.06) > 0.7 and probability(2e-3) < 0.3


def test_without_a_miss_every_config_trains_with_probability_one() -> None:
    strategy = hwnas(n_initial=3)
    run(strategy, TOY, asks=6)
    assert strategy._fitted_model() is not None
    config = TOY.canonicalize(TOY.sample(np.random.default_rng(0)))
    costs = strategy._transform_costs({"ops": toy_ops(config)})
    assert strategy._miss_probability(strategy._features([config], costs[None, :])).tolist() == [0.0]


# -- wall time ------------------------------------------------------------------------------------------------
def test_the_time_model_predicts_which_configs_train_slowly_and_only_from_told_seconds() -> None:
    def relative_seconds(strategy: HwnasStrategy, lr: float) -> float:
        config = TOY.canonicalize({"n_layers": 1, "width0": 16, "bits": 4, "lr": lr})
        costs = strategy._transform_costs({"ops": toy_ops(config)})
        return float(strategy._relative_seconds(strategy._features([config], costs[None, :]))[0])

    timed, untimed, off = hwnas(n_initial=2), hwnas(n_initial=2), hwnas(n_initial=2, per_second=False)
    for width in (8, 16, 32):
        for lr in (3e-3, 0.05):
            config = {"n_layers": 1, "width0": width, "bits": 4, "lr": lr}
            values = {"emd_mean": toy_quality(config), "ops": toy_ops(config)}
            seconds = 30.0 if lr > 0.01 else 3.0  # a tenfold slower region the costs do not show
            timed.observe(config, Completed(values, seconds=seconds))
            off.observe(config, Completed(values, seconds=seconds))
            untimed.observe(config, Completed(values))
    for strategy in (timed, untimed, off):
        assert strategy._fitted_model() is not None
    assert timed.state_dict()["time_model"] is True
    assert relative_seconds(timed, 0.06) > 2.0 and relative_seconds(timed, 2e-3) < 0.5
    for strategy in (untimed, off):  # no seconds told, or option per_second off: every config alike
        assert strategy.state_dict()["time_model"] is False
        assert relative_seconds(strategy, 0.06) == relative_seconds(strategy, 2e-3) == 1.0


def test_pruned_trials_teach_the_time_model_their_speed_per_epoch() -> None:
    """A region every trial of which an early rung cuts is still timed: 25 s to a rung at epoch 1 is 16
    times slower per epoch than 30 s for a full 20-epoch run, although the pruned trial took the less time."""

    def relative_seconds(strategy: HwnasStrategy, lr: float) -> float:
        config = TOY.canonicalize({"n_layers": 1, "width0": 16, "bits": 4, "lr": lr})
        costs = strategy._transform_costs({"ops": toy_ops(config)})
        return float(strategy._relative_seconds(strategy._features([config], costs[None, :]))[0])

    strategy = hwnas(n_initial=2)
    for width in (8, 16, 32):
        for lr in (3e-3, 0.05):
            config = {"n_layers": 1, "width0": width, "bits": 4, "lr": lr}
            ops = toy_ops(config)
            if lr > 0.01:
                strategy.observe(config, Pruned({"ops": ops}, 1, seconds=25.0))
            else:
                values = {"emd_mean": toy_quality(config), "ops": ops}
                strategy.observe(config, Completed(values, 20, seconds=30.0))
    assert strategy._fitted_model() is not None and strategy.state_dict()["time_model"] is True
    assert relative_seconds(strategy, 0.06) > 2.0 and relative_seconds(strategy, 2e-3) < 0.5


# -- the trend in the costs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rf", "gp"])
def test_the_trend_extrapolates_quality_up_to_a_decade_past_the_dearest_trained_config(kind: str) -> None:
    rng = np.random.default_rng(0)
    log_cost = rng.uniform(2.0, 4.0, 40)
    features = np.column_stack([rng.uniform(0, 1, 40), log_cost])
    targets = (3.0 - log_cost)[:, None]  # quality improves by 1 per decade of cost
    probe = np.array([[0.5, 3.0], [0.5, 4.5], [0.5, 9.0]])
    flat = QualityModel(kind, 0, 16)
    flat.fit(features, targets)
    trended = QualityModel(kind, 0, 16, trend_columns=1)
    trended.fit(features, targets)
    assert trended.predict(probe)[0][:, 0] == pytest.approx([0.0, -1.5, -2.0], abs=0.3)
    if kind == "rf":  # a forest predicts no better than the best trained config (-1) without the trend
        assert float(flat.predict(probe)[0][1, 0]) > -1.1


def test_costs_that_move_together_share_the_trend_instead_of_cancelling_out() -> None:
    rng = np.random.default_rng(1)
    log_cost = rng.uniform(2.0, 4.0, 40)
    other = log_cost + 0.5 + rng.normal(0.0, 0.01, 40)  # e.g. model_kb next to bops
    features = np.column_stack(
        [rng.uniform(0, 1, 40), log_cost, other, np.full(40, 3.0)]
    )  # + a constant cost
    model = QualityModel("rf", 0, 16, trend_columns=3)
    model.fit(features, (3.0 - log_cost)[:, None])
    # A candidate that moves one cost alone by half a decade is predicted about like its twin (plain least
    # squares gave slopes of +8 and -9 here: predictions 4 EMD apart).
    twin, moved = model.predict(np.array([[0.5, 3.0, 3.5, 3.0], [0.5, 3.5, 3.5, 3.0]]))[0][:, 0]
    assert abs(moved - twin) < 0.6
    assert model.predict(np.array([[0.5, 3.0, 3.5, 5.0]]))[0][0, 0] == pytest.approx(twin, abs=0.05)
