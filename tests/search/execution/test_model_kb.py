"""model_kb: the stored size of a model counts every layer at its own width (mixed precision, binary)."""

from __future__ import annotations

import torch

from objectives import get_task
from search.execution._trial import model_kb
from spaces import get_preset

_QUANT = {"quantize": True, "weight_bits": 6, "act_bits": 8, "input_bits": 10, "output_bits": 9}


def _filled(config: dict) -> torch.nn.Module:
    """The econt model of ``config`` with every weight and bias non-zero (fresh biases are zero)."""
    model = get_task("econt").build_model(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(0.25)
    return model


def _weights_and_biases(model: torch.nn.Module) -> int:
    """Their count; quantizer scales (also parameters) are not stored with the model."""
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith((".weight", ".bias")))


def test_a_float_model_counts_32_bits_per_non_zero_weight_and_bias() -> None:
    config = get_preset("econt_baseline")
    model = _filled(config)
    params = _weights_and_biases(model)
    assert params == sum(p.numel() for p in model.parameters())  # a float model has no other parameters
    assert model_kb(model, config) == params * 32 / 8 / 1024
    with torch.no_grad():
        model.encoder[0].weight.zero_()  # the conv's 72 weights pruned away
    assert model_kb(model, config) == (params - 72) * 32 / 8 / 1024


def test_each_quantized_layer_counts_at_its_own_width_and_the_rest_at_the_models() -> None:
    config = {**get_preset("econt_baseline"), **_QUANT, "conv0_weight_bits": 1}
    model = _filled(config)
    params = _weights_and_biases(model)
    conv_weights, conv_biases = 8 * 1 * 3 * 3, 8  # binary conv: 1-bit weights, 2-bit biases
    other = (
        params - conv_weights - conv_biases
    )  # the dense encoder layer at 6 bits, the decoder at the model's 6
    expected = (conv_weights * 1 + conv_biases * 2 + other * 6) / 8 / 1024
    assert model_kb(model, config) == expected
    uniform = {**config, "conv0_weight_bits": 6}
    assert model_kb(_filled(uniform), uniform) == params * 6 / 8 / 1024
