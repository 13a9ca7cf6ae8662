"""Fixtures shared by the spaces tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch

from spaces import Autoencoder, BoolParam, ChoiceParam, FloatParam, IntParam, ModelInput, Space, build_model

# The only layer types hls4ml may meet in an encoder.
ENCODER_LAYER_TYPES = {
    "Conv2d",
    "QuantConv2d",
    "Linear",
    "QuantLinear",
    "ReLU",
    "QuantReLU",
    "QuantIdentity",
    "MaxPool2d",
    "Flatten",
}


# The family and input each built-in space is searched with: what the econt and waveform tasks declare.
SPACE_MODELS: dict[str, tuple[str, ModelInput]] = {
    "econt": ("conv_autoencoder", ModelInput((1, 8, 8), bits=10, signed=False)),
    "waveform": ("dense_autoencoder", ModelInput((48,), bits=12, signed=True)),
}


def _build(space: str, config: Mapping[str, Any]) -> Autoencoder:
    family, model_input = SPACE_MODELS[space]
    return build_model(family, config, model_input)


@pytest.fixture(scope="session")
def build() -> Callable[[str, Mapping[str, Any]], Autoencoder]:
    """``build(space_name, config)``: the model of a built-in space's config, with that space's input."""
    return _build


def _check_shapes(task: str, config: dict) -> Autoencoder:
    """Build, run a batch of 3, and check encoder/decoder shapes and the encoder's layer types."""
    model = _build(task, config)
    x = torch.rand(3, *model.input_shape)
    with torch.no_grad():
        latent = model.encoder(x)
        out = model(x)
    assert latent.shape == (3, config["latent"]) == (3, model.latent_width)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert {type(m).__name__ for m in model.encoder} <= ENCODER_LAYER_TYPES
    assert model.quantized == config["quantize"]
    return model


@pytest.fixture(scope="session")
def check_shapes() -> Callable[[str, dict], Autoencoder]:
    return _check_shapes


@pytest.fixture(scope="session")
def mixed() -> Space:
    """Every parameter type, step/log variants, a layer count starting at 1, and choice/bool parents."""
    return Space(
        [
            IntParam("n_layers", 1, 3),
            IntParam("layer0_units", 4, 64, log=True),
            IntParam("layer1_units", 4, 64, step=4, active_if={"n_layers": {">=": 2}}),
            FloatParam("layer2_dropout", 0.0, 0.5, step=0.1, active_if={"n_layers": {">": 2}}),
            ChoiceParam("act", ["relu", "tanh"]),
            FloatParam("slope", 0.01, 0.3, active_if={"act": ["tanh"]}),
            FloatParam("lr", 1e-4, 1e-1, log=True),
            ChoiceParam("scale", [0.5, 1, 2.0], ordered=True),
            BoolParam("quantize"),
            IntParam("bits", 2, 8, active_if={"quantize": True}),
        ],
        name="mixed",
    )
