"""Ax adapter output: the configs Ax is given and a real Ax client. Importing Ax takes 5-10 s on 2 cores."""

from __future__ import annotations

import pytest

from spaces import (
    Infeasible,
    Space,
    get_preset,
    get_space,
)

pytestmark = pytest.mark.slow


def _by_name(space: Space) -> dict:
    return {config.name: config for config in space.to_ax()}


def test_ax_encoding_of_layer_counts_is_a_switch_chain() -> None:
    configs = _by_name(get_space("econt"))
    assert "n_conv" not in configs and "n_dense" not in configs
    assert configs["use_conv_0"].values == ["off", "on"]
    assert configs["use_conv_0"].parameter_type == "str"
    assert configs["use_conv_0"].dependent_parameters == {
        "on": ["use_conv_1", "conv0_filters", "conv0_kernel", "conv0_stride", "conv0_pool", "decoder"]
    }
    assert configs["use_conv_2"].dependent_parameters == {
        "on": ["conv2_filters", "conv2_kernel", "conv2_stride", "conv2_pool"]
    }
    assert configs["quantize"].dependent_parameters == {
        "on": ["weight_bits", "act_bits", "input_bits", "output_bits"]
    }
    assert configs["weight_bits"].bounds == (3, 16) and configs["weight_bits"].parameter_type == "int"
    assert configs["lr"].scaling == "log" and configs["lr"].bounds == (1e-3, 1e-2)
    # Every dependent is declared, and each hangs under exactly one parent value (a tree).
    children = [
        child
        for config in configs.values()
        for group in (getattr(config, "dependent_parameters", None) or {}).values()
        for child in group
    ]
    assert len(children) == len(set(children)) and set(children) <= set(configs)


def test_ax_encoding_of_counts_starting_above_zero_and_other_types(mixed: Space) -> None:
    configs = _by_name(mixed)
    assert "use_layers_0" not in configs  # n_layers >= 1 always: layer 0 is unconditional
    assert configs["use_layers_1"].dependent_parameters == {"on": ["use_layers_2", "layer1_units"]}
    assert configs["use_layers_2"].dependent_parameters == {"on": ["layer2_dropout"]}
    assert configs["layer1_units"].step_size == 4
    assert configs["layer2_dropout"].step_size == 0.1
    assert configs["layer0_units"].scaling == "log"
    assert configs["act"].dependent_parameters == {"tanh": ["slope"]}
    assert configs["scale"].parameter_type == "float" and configs["scale"].values == [0.5, 1.0, 2.0]
    assert configs["quantize"].values == ["off", "on"]


# -- a real Ax client --------------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["econt", "waveform"])
def test_ax_client_accepts_the_adapter_output(space_name: str) -> None:
    from ax.api.client import Client

    space = get_space(space_name)
    client = Client(random_seed=0)
    client.configure_experiment(parameters=space.to_ax(), name=f"test-{space_name}")
    client.configure_optimization(objective="-emd")
    proposals = client.get_next_trials(max_trials=6)
    assert len(proposals) == 6
    for parameters in proposals.values():
        raw = space.from_ax(parameters)
        checked = space.validate(raw)  # canonical or Infeasible, never an exception
        assert isinstance(checked, dict | Infeasible)
        assert space.to_ax_parameters(raw) == dict(parameters)
    preset = get_preset(f"{space_name}_baseline")
    index = client.attach_trial(space.to_ax_parameters(preset))
    client.complete_trial(index, raw_data={"emd": 1.0})
    assert index == 6
