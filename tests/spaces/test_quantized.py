"""Quantized models: power-of-two Brevitas quantizers with the config's bit widths, integer-valued encoder
outputs, QAT steps and pruning of quantized weights. Marked slow: importing Brevitas alone takes ~5 s here."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spaces import Autoencoder, get_preset, get_space

pytestmark = pytest.mark.slow

Build = Callable[[str, Mapping[str, Any]], Autoencoder]  # the conftest fixture: built-in space name, config


def _quantized(config: dict, **bits: int) -> dict:
    return {**config, "quantize": True, "weight_bits": 5, "act_bits": 8, "output_bits": 9, **bits}


def _is_power_of_two(value: float) -> bool:
    return value > 0 and math.log2(value).is_integer()


@pytest.mark.parametrize("task", ["econt", "waveform"])
def test_quantized_encoders_use_power_of_two_quantizers_with_the_config_bits(
    task: str, check_shapes: Callable[[str, dict], Autoencoder]
) -> None:
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

    preset = get_preset(f"{task}_baseline")
    config = _quantized(preset, weight_bits=6, act_bits=7, output_bits=5, input_bits=10)
    model = check_shapes(task, config)
    model.eval()
    encoder = model.encoder
    assert isinstance(encoder[0], QuantIdentity) and int(encoder[0].act_quant.bit_width()) == 10
    assert encoder[0].act_quant.is_signed == (task == "waveform")
    weighted = [m for m in encoder if isinstance(m, QuantConv2d | QuantLinear)]
    relus = [m for m in encoder if isinstance(m, QuantReLU)]
    assert weighted and len(relus) == len(weighted)
    x = torch.rand(4, *model.input_shape)
    with torch.no_grad():
        encoded = encoder(x)
    for layer in weighted:
        weight = layer.quant_weight()
        assert int(weight.bit_width) == 6 and _is_power_of_two(float(weight.scale.detach()))
        integers = weight.value / weight.scale
        assert torch.equal(integers, integers.round()) and integers.abs().max() <= 2**5
    for relu in relus[:-1]:
        assert int(relu.act_quant.bit_width()) == 7 and _is_power_of_two(float(relu.act_quant.scale()))
    output = relus[-1].act_quant
    assert int(output.bit_width()) == 5 and _is_power_of_two(float(output.scale()))
    # The encoded outputs are 5-bit unsigned integers times the power-of-two scale.
    codes = encoded / output.scale()
    assert torch.equal(codes, codes.round()) and codes.min() >= 0 and codes.max() <= 2**5 - 1
    assert model.decoder(encoded).shape == x.shape
    assert not any(type(m).__module__.startswith("brevitas") for m in model.decoder.modules())


@pytest.mark.parametrize("task", ["econt", "waveform"])
def test_quantized_models_train_a_step(task: str, build: Build) -> None:
    torch.manual_seed(0)
    model = build(task, _quantized(get_preset(f"{task}_baseline")))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(16, *model.input_shape)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    loss = nn.functional.mse_loss(model(x), x)
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.encoder.parameters(), strict=True))


def test_pruning_zeroes_quantized_weights(build: Build) -> None:
    torch.manual_seed(0)
    model = build("econt", _quantized({**get_preset("econt_baseline"), "sparsity": 0.75}))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(32, 1, 8, 8)
    for epoch in range(1, 4):
        model.before_epoch(epoch, 3)
        optimiser.zero_grad()
        nn.functional.mse_loss(model(x), x).backward()
        optimiser.step()
        model.after_step()
    for layer in (m for m in model.encoder if hasattr(m, "quant_weight")):
        n_pruned = round(0.75 * layer.weight.numel())
        assert int((layer.weight == 0).sum()) == n_pruned
        # hls4ml sees the quantized weights: the pruned ones are exactly zero there too
        assert int((layer.quant_weight().value == 0).sum()) >= n_pruned


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), task=st.sampled_from(["econt", "waveform"]))
def test_property_sampled_quantized_configs_build_and_run(
    seed: int, task: str, check_shapes: Callable[[str, dict], Autoencoder]
) -> None:
    space = get_space(task)
    rng = np.random.default_rng(seed)
    bits = {"weight_bits": int(rng.integers(3, 17))} | ({"input_bits": 12} if task == "econt" else {})
    config = space.validate(_quantized(space.sample(rng), **bits))
    assert isinstance(config, dict)
    model = check_shapes(task, config)
    assert model.quantized
