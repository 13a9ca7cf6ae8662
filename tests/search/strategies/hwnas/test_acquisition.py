"""The ``hwnas`` acquisition: the EHVI mathematics, the dominance rule, ties and the first spread."""

from __future__ import annotations

import math

import moocore
import numpy as np
import pytest
from hwnas_toy import OBJECTIVES, TOY, hwnas, make_oracle, run, toy_ops, toy_quality

from search._types import Completed
from search.strategies import make_strategy
from search.strategies.hwnas._acquisition import exact_ehvi, monte_carlo_ehvi
from search.strategies.hwnas._candidates import _Candidate, _config_key
from search.strategies.hwnas._models import QualityModel


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


class ByCostModel(QualityModel):
    """Predicts quality by ops (the features' last column is log10(1 + ops)): the value of the first bound
    the config's ops do not exceed."""

    def __init__(self, by_bound: dict[float, float], std: float) -> None:
        super().__init__("rf", 0, 4)
        self.by_bound, self.std = by_bound, std

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ops = 10 ** features[:, -1] - 1
        mean = [
            next(v for bound, v in sorted(self.by_bound.items()) if value <= bound + 0.5) for value in ops
        ]
        return np.array(mean)[:, None], np.full((len(features), 1), self.std)


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
    # The front members are judged at their predicted quality too: a model rating the configs between the
    # members at 0.4 and everything from 4,096 ops at 0.5 closes only the dearer ones (the member at 4,096
    # ops, predicted 0.5, dominates them).
    chosen = strategy._select(pool, len(pool), ByCostModel({256: 1.0, 4095: 0.4, math.inf: 0.5}, 0.3))
    assert all(toy_ops(c.config) < 4096 for c in chosen)
    assert any(256 <= toy_ops(c.config) < 4096 for c in chosen)
    # A model that rates every config below the dear member's observed 0.5 but no better than the members'
    # own predictions closes every candidate that costs as much as a member.
    chosen = strategy._select(pool, len(pool), ConstantModel(0.3, 0.3))
    assert {toy_ops(c.config) for c in chosen} == set(ops[ops < 256])


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


def test_every_proposal_of_a_sweep_is_undominated_at_the_predicted_qualities() -> None:
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
                front_features = np.hstack([strategy._encoder.encode([record.config]), front_cost[None, :]])
                front_mean = float(model.predict(front_features)[0][0, 0])
                dominated = np.all(front_cost <= costs) and front_mean <= mean
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


def test_with_a_reference_point_no_proposal_costs_past_it() -> None:
    oracle, _ = make_oracle()
    boxed = make_strategy(
        "hwnas",
        TOY,
        OBJECTIVES,
        seed=4,
        options={"n_initial": 4},
        costs=oracle,
        reference_point={"emd_mean": 3.0, "ops": 1000.0},
    )
    free = hwnas(seed=4, n_initial=4)
    # Space-filling first, then the model: past 1,000 ops a trial adds no hypervolume, so none is trained.
    assert all(toy_ops(config) < 1000 for config, _ in run(boxed, TOY, asks=12))
    assert any(toy_ops(config) >= 1000 for config, _ in run(free, TOY, asks=12))  # what the box prevents


@pytest.mark.parametrize("flagged", [True, False])
def test_a_config_likely_to_collapse_loses_to_an_equal_one_that_trains(flagged: bool) -> None:
    strategy = hwnas(seed=1, n_initial=2)
    for width in (8, 16, 32):
        for lr, collapses in ((3e-3, False), (0.05, True)):
            config = {"n_layers": 1, "width0": width, "bits": 4, "lr": lr}
            quality = 6.0 if collapses else toy_quality(config)
            values = {"emd_mean": quality, "ops": toy_ops(config)}
            strategy.observe(config, Completed(values, collapsed=collapses and flagged))
    assert strategy._fitted_model() is not None
    # One architecture (one cost), two training settings; the model rates them alike, so without the
    # collapse flags it is a tie and the first one wins.
    pool = []
    for lr in (0.06, 2e-3):
        config = TOY.canonicalize({"n_layers": 1, "width0": 4, "bits": 2, "lr": lr})
        result = strategy._oracle(config)
        assert isinstance(result, dict)
        pool.append(_Candidate(config, _config_key(config), strategy._transform_costs(result)))
    (chosen,) = strategy._select(pool, 1, ConstantModel(0.5, 0.3))
    assert chosen.config["lr"] == (2e-3 if flagged else 0.06)


def test_space_filling_spreads_architectures_not_training_settings() -> None:
    # A maximin over whole configs put 54 of these 80 first proposals in the outer fifth of lr's log range,
    # where a short run learns least; drawn at random a fifth of them (16) would land there.
    at_ends = 0
    for seed in range(10):
        proposals = hwnas(seed=seed, n_initial=8).ask(8)
        lrs = [math.log10(p.config["lr"]) for p in proposals]
        at_ends += sum(lr < -3.7 or lr > -1.3 for lr in lrs)
        assert len({_config_key({k: v for k, v in p.config.items() if k != "lr"}) for p in proposals}) == 8
    assert at_ends <= 20


def test_an_exploration_pick_takes_the_best_predicted_training_settings_of_the_farthest_architecture() -> (
    None
):
    from search.strategies.hwnas._acquisition import _best_predicted

    distance = np.array([0.2, 0.9, 0.9, 0.9, 0.5])  # candidates 1-3: one architecture, three lr values
    unit_mean = np.array([[0.0], [0.6], [0.3], [0.8], [0.1]])
    assert _best_predicted(distance, unit_mean) == 2
    assert _best_predicted(np.array([0.1, -np.inf, 0.3]), np.zeros((3, 0))) == 2  # no quality: the farthest
