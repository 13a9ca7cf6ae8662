"""hw_models on the encoders the built-in search spaces build (float and Brevitas-quantized)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantReLU
from brevitas.quant_tensor import QuantTensor
from torch import nn

from hw_models import estimate, to_hls4ml, verify_bit_exact
from objectives import get_task
from spaces import Autoencoder, get_preset, get_space
from spaces._models import act_scale_floor

# The built-in spaces share their tasks' names; the task builds the model for its input shape.
_INPUT_SHAPES = {name: get_task(name).input_shape for name in ("econt", "waveform")}


def _task_model(task: str, config: Mapping[str, Any]) -> Autoencoder:
    return get_task(task).build_model(config)


def _torch_counts(encoder: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Independent reference: (ops, params) from the torch modules and the output shapes of a forward pass."""
    ops = params = 0

    def count(module: nn.Module, _inputs: object, output: torch.Tensor | QuantTensor) -> None:
        nonlocal ops, params
        shape = output.value.shape if isinstance(output, QuantTensor) else output.shape
        has_bias = module.bias is not None
        if isinstance(module, nn.Conv2d):
            pixels = shape[2] * shape[3]
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            fan_out = module.out_channels
        else:
            pixels, fan_in, fan_out = 1, module.in_features, module.out_features
        ops += 2 * pixels * fan_in * fan_out + (pixels * fan_out if has_bias else 0)
        params += fan_in * fan_out + (fan_out if has_bias else 0)

    handles = [
        m.register_forward_hook(count) for m in encoder.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    encoder.eval()
    with torch.no_grad():
        encoder(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return ops, params


def _sampled_configs(task: str, count: int, seed: int) -> list[Mapping[str, Any]]:
    space, rng, configs = get_space(task), np.random.default_rng(seed), []
    while len(configs) < count:
        canonical = space.validate(space.sample(rng))
        if isinstance(canonical, dict):
            configs.append(canonical)
    return configs


def test_econt_baseline_encoder_costs_6544_ops() -> None:
    model = _task_model("econt", get_preset("econt_baseline"))
    report = estimate(model.encoder, model.input_shape)
    assert report.value("ops") == 6544
    assert report.value("params") == 2144


@pytest.mark.parametrize("task", ["econt", "waveform"])
def test_sampled_encoders_match_an_independent_torch_count(task: str) -> None:
    configs = _sampled_configs(task, count=8, seed=21)
    assert any(config.get("quantize") for config in configs)  # both routes are exercised
    for config in configs:
        model = _task_model(task, config)
        report = estimate(model.encoder, _INPUT_SHAPES[task])
        ops, params = _torch_counts(model.encoder, _INPUT_SHAPES[task])
        assert (report.value("ops"), report.value("params")) == (ops, params), config
        assert report.quantized == bool(config.get("quantize"))
        assert report.value("latency_ns") > 0


@pytest.mark.slow
@pytest.mark.parametrize("task", ["econt", "waveform"])
def test_quantized_space_encoder_is_bit_exact(task: str, tmp_path: Path) -> None:
    config = next(
        c
        for c in _sampled_configs(task, count=40, seed=3)
        if c.get("quantize") and c.get("n_conv", 1) > 0 and c["output_bits"] >= 5
    )
    shape = _INPUT_SHAPES[task]
    encoder = _task_model(task, config).encoder
    x = 2 * torch.rand(200, *shape, generator=torch.Generator().manual_seed(5))
    encoder.train()  # let the activation scales follow the data, as a few training steps would
    with torch.no_grad():
        for _ in range(30):
            encoder(x)
    encoder.eval()
    report = verify_bit_exact(encoder, to_hls4ml(encoder, shape, output_dir=str(tmp_path)), x)
    assert report.exact and report.passed, (config, report)


@pytest.mark.slow
def test_a_quantized_encoder_with_a_dead_layer_is_costed_and_bit_exact(tmp_path: Path) -> None:
    """A layer whose outputs all collapse to zero used to get Brevitas's 1e-10 scale and fail conversion."""
    config = next(c for c in _sampled_configs("econt", count=40, seed=3) if c.get("quantize") and c["n_conv"])
    encoder = _task_model("econt", config).encoder
    layers = list(encoder.modules())
    relu = next(m for m in layers if isinstance(m, QuantReLU))
    producer = [m for m in layers[: layers.index(relu)] if isinstance(m, QuantConv2d)][-1]  # feeds it
    with torch.no_grad():
        producer.bias.fill_(-100.0)  # every pre-activation negative: the ReLU outputs only zeros
    x = 2 * torch.rand(200, *_INPUT_SHAPES["econt"], generator=torch.Generator().manual_seed(5))
    encoder.train()
    with torch.no_grad():
        for _ in range(30):
            encoder(x)
    encoder.eval()
    assert float(relu.act_quant.scale()) == act_scale_floor(int(relu.act_quant.bit_width()))
    assert estimate(encoder, _INPUT_SHAPES["econt"]).totals["bops"] > 0
    report = verify_bit_exact(
        encoder, to_hls4ml(encoder, _INPUT_SHAPES["econt"], output_dir=str(tmp_path)), x
    )
    assert report.exact and report.passed
