"""1- and 2-bit weights (binary, ternary) and per-layer precision: what the model holds, and bit-exactness
through hls4ml (the compiling test is slow)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from hw_models import estimate, to_hls4ml, verify_bit_exact
from objectives import TrainSettings, fit, get_task
from spaces import get_preset

MIXED = {
    **get_preset("waveform_baseline"),
    "hidden0_units": 32,
    "hidden1_units": 16,
    "latent": 8,
    "quantize": True,
    "weight_bits": 1,  # binary everywhere ...
    "act_bits": 1,
    "output_bits": 4,
    "hidden1_weight_bits": 2,  # ... but a ternary second layer with 3-bit activations
    "hidden1_act_bits": 3,
}


def quant_layers(encoder: torch.nn.Module) -> list[Any]:
    return [m for m in encoder if hasattr(m, "weight_quant")]


def test_binary_ternary_and_per_layer_widths_are_what_the_model_holds() -> None:
    torch.manual_seed(0)
    model = get_task("waveform").build_model(MIXED)
    first, second, latent = quant_layers(model.encoder)
    assert [int(m.weight_quant.bit_width()) for m in (first, second, latent)] == [1, 2, 1]
    binary = torch.unique(first.quant_weight().value)
    assert binary.tolist() == [-0.25, 0.25]  # +-2^round(log2(sqrt(2/48)))
    ternary = torch.unique(second.quant_weight().value)
    assert ternary.numel() == 3 and ternary[1] == 0 and ternary[0] == -ternary[2]
    relus = [type(m).__name__ for m in model.encoder]
    assert relus == ["QuantIdentity", "QuantLinear", "QuantReLU"] * 1 + ["QuantLinear", "QuantReLU"] * 2
    act_bits = [int(m.act_quant.bit_width()) for m in model.encoder if type(m).__name__ == "QuantReLU"]
    assert act_bits == [1, 3, 4]
    # node pruning's rebuild keeps each layer's own width
    pruned = get_task("waveform").build_model({**MIXED, "hidden1_keep": 8}).prune_nodes()
    assert [int(m.weight_quant.bit_width()) for m in quant_layers(pruned.encoder)] == [1, 2, 1]
    # hls4ml's graph carries binary weights in 2-bit two's complement, ternary ones in 2 bits
    report = estimate(model.encoder, (48,))
    dense = [layer for layer in report.layers if layer.class_name == "Dense"]
    assert [layer.weight_bits for layer in dense] == [2, 2, 2]
    # ... but a product with a binary weight (a sign) is 1 bit wide in the BOPs; the ternary one's 2
    weights = [m.quant_weight().value for m in (first, second, latent)]
    for layer, held, product_bits in zip(dense, weights, [1, 2, 1], strict=True):
        kept = int(torch.count_nonzero(held)) / held.numel()
        a, synapses = layer.input_bits, layer.n_in * layer.n_out
        expected = synapses * (kept * a * product_bits + a + product_bits + math.log2(layer.n_in))
        assert layer.bops == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_binary_and_ternary_layers_are_bit_exact_in_hls4ml(tmp_path: Path) -> None:
    task = get_task("waveform")
    data = task.prepare(rows=600, seed=0, val_rows=100)
    torch.manual_seed(0)
    model, _ = fit(task.build_model(MIXED), task, data, TrainSettings(epochs=2, batch_size=128))
    encoder = model.encoder.eval()
    x = data.val_x[:100]
    with torch.no_grad():
        assert torch.unique(encoder(x)).numel() > 5  # a non-trivial output, so equality means something
    report = verify_bit_exact(encoder, to_hls4ml(encoder, (48,), output_dir=str(tmp_path)), x)
    assert report.exact and report.max_abs_error == 0.0 and report.n_outputs == 100 * 8
