"""Optuna and Ax adapters: same names, inclusive bounds, conditional structure, and round trips."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from spaces import (
    BoolParam,
    ChoiceParam,
    FloatParam,
    Infeasible,
    IntParam,
    Space,
    SpaceError,
    get_preset,
    get_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- Optuna --------------------------------------------------------------------------------------
def test_optuna_distributions_match_the_space_with_inclusive_bounds(mixed: Space) -> None:
    space = mixed
    config = space.sample(np.random.default_rng(3)) | {
        "n_layers": 3,
        "layer1_units": 8,
        "layer2_dropout": 0.2,
    }
    distributions = space.optuna_distributions(config)
    assert list(distributions) == list(space.canonicalize(config))
    assert distributions["n_layers"] == IntDistribution(1, 3)
    assert distributions["layer0_units"] == IntDistribution(4, 64, log=True)
    assert distributions["layer1_units"] == IntDistribution(4, 64, step=4)
    assert distributions["layer2_dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert distributions["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert distributions["scale"] == CategoricalDistribution((0.5, 1, 2.0))
    assert distributions["quantize"] == CategoricalDistribution((False, True))
    # Both ends of every range are inside the Optuna distribution (inclusive in both).
    for name in ("n_layers", "layer0_units", "layer1_units", "layer2_dropout", "lr"):
        param = space.param(name)
        assert distributions[name]._contains(distributions[name].to_internal_repr(param.low))
        assert distributions[name]._contains(distributions[name].to_internal_repr(param.high))


def test_suggest_is_define_by_run(mixed: Space) -> None:
    space = mixed
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_layer_counts = set()
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        assert set(trial.params) == set(config)  # absent layers carry no Optuna parameters
        assert ("layer1_units" in config) == (config["n_layers"] >= 2)
        assert ("bits" in config) == config["quantize"]
        seen_layer_counts.add(config["n_layers"])
        study.tell(trial, float(config["n_layers"]))
    assert seen_layer_counts == {1, 2, 3}


def test_optuna_study_rebuilds_from_canonical_configs() -> None:
    space = get_space("econt")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    rng = np.random.default_rng(5)
    configs = [get_preset("econt_baseline"), *(space.sample(rng) for _ in range(5))]
    for i, config in enumerate(configs):
        study.add_trial(
            optuna.trial.create_trial(
                params=config, distributions=space.optuna_distributions(config), values=[float(i)]
            )
        )
    assert [t.params for t in study.trials] == configs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        trial = study.ask()
    assert not isinstance(space.validate(space.suggest(trial)), Exception)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), space_name=st.sampled_from(["mixed", "econt", "waveform"]))
def test_property_optuna_configs_canonicalise_like_a_direct_validate(
    seed: int, space_name: str, mixed: Space
) -> None:
    space = mixed if space_name == "mixed" else get_space(space_name)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler)
    for step in range(6):
        trial = study.ask()
        config = space.suggest(trial)
        direct = space.validate(dict(trial.params))
        assert space.validate(config) == direct
        if not isinstance(direct, Infeasible):
            assert direct == config
        study.tell(trial, float(step % 3))


# -- Ax values (the encoding needs no Ax import: fast) ------------------------------------------------
def test_ax_parameters_round_trip_including_inactive_switches() -> None:
    space = get_space("econt")
    preset = get_preset("econt_baseline")
    encoded = space.to_ax_parameters(preset)
    assert encoded["use_conv_0"] == "on" and encoded["use_conv_1"] == "off" and "use_conv_2" not in encoded
    assert encoded["use_dense_0"] == "off" and encoded["quantize"] == "off" and encoded["conv0_pool"] == "off"
    assert space.from_ax(encoded) == preset
    with pytest.raises(SpaceError, match=r"unknown Ax parameter\(s\) \['n_conv'\]"):
        space.from_ax({**encoded, "n_conv": 1})


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space_name=st.sampled_from(["mixed", "econt", "waveform"]))
def test_property_ax_round_trip_canonicalises_identically(seed: int, space_name: str, mixed: Space) -> None:
    space = mixed if space_name == "mixed" else get_space(space_name)
    config = space.sample(np.random.default_rng(seed))
    encoded = space.to_ax_parameters(config)
    assert all(isinstance(v, str) for k, v in encoded.items() if k.startswith("use_"))
    assert space.validate(space.from_ax(encoded)) == space.validate(config) == config


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            [BoolParam("a"), BoolParam("b"), IntParam("c", 0, 1, active_if={"a": True, "b": True})],
            r"Ax cannot express parameter 'c': it depends on several parents \['a', 'b'\]",
        ),
        (
            [ChoiceParam("k", ["x", "y", "z"]), IntParam("c", 0, 1, active_if={"k": ["x", "y"]})],
            r"Ax cannot express parameter 'c': it is active for values \['x', 'y'\] of 'k'",
        ),
        (
            [IntParam("n", 0, 3), IntParam("c", 0, 1, active_if={"n": {"<": 2}})],
            r"Ax cannot express parameter 'c': .* of 'n'; a layer count needs thresholds",
        ),
        (
            [FloatParam("x", 0.0, 1.0), IntParam("c", 0, 1, active_if={"x": {">": 0.5}})],
            r"Ax cannot express parameter 'c': its parent 'x' is a continuous",
        ),
        (
            [
                IntParam("n_conv", 0, 2),
                BoolParam("use_conv_0"),
                IntParam("c", 0, 1, active_if={"n_conv": {">": 0}}),
            ],
            r"Ax switch name 'use_conv_0' for layer count 'n_conv' collides",
        ),
        (
            [ChoiceParam("k", [1, "x"])],
            r"Ax cannot express parameter 'k': its choices \[1, 'x'\] mix strings and numbers",
        ),
        (
            [IntParam("n", 0, 3), IntParam("c", 0, 1, active_if={"n": {">": 5}})],
            r"parameter 'c' can never be active",
        ),
    ],
)
def test_spaces_ax_cannot_express_are_rejected_naming_the_parameter(params: list, message: str) -> None:
    space = Space(params)
    with pytest.raises(SpaceError, match=message):
        space.from_ax({})  # the encoding is checked before Ax is imported
    with pytest.raises(SpaceError, match=message):
        space.to_ax_parameters({})


def test_ax_on_off_strings_become_bools_only_for_bool_parameters() -> None:
    space = Space([ChoiceParam("mode", ["on", "off", "auto"]), BoolParam("flag")])
    encoded = space.to_ax_parameters({"mode": "off", "flag": True})
    assert encoded == {"mode": "off", "flag": "on"}
    assert space.from_ax(encoded) == {"mode": "off", "flag": True}
