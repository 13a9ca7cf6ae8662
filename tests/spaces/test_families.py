"""The model-family registry: families take an input (shape, bits, sign), never a task name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import torch
from torch import nn

from spaces import (
    Autoencoder,
    ConvAutoencoder,
    DenseAutoencoder,
    ModelInput,
    SpaceError,
    build_model,
    family_names,
    get_preset,
    register_family,
)
from spaces._families import _FAMILIES


@pytest.fixture
def restore_families() -> Iterator[None]:
    saved = dict(_FAMILIES)
    yield
    _FAMILIES.clear()
    _FAMILIES.update(saved)


def test_built_in_families_are_registered() -> None:
    assert family_names() == ("conv_autoencoder", "dense_autoencoder", "strip_cnn", "dense_net")


@pytest.mark.parametrize("samples", [48, 32])
def test_dense_family_builds_for_two_input_shapes(samples: int) -> None:
    config = get_preset("waveform_baseline")
    model = build_model("dense_autoencoder", config, ModelInput((samples,), bits=12, signed=True))
    assert isinstance(model, DenseAutoencoder) and model.input_shape == (samples,)
    assert (model.encoder[0].in_features, model.decoder[-1].out_features) == (samples, samples)
    x = torch.rand(4, samples)
    assert model.encoder(x).shape == (4, 12) and model(x).shape == (4, samples)


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 12, 12)])
@pytest.mark.parametrize("decoder", ["convtranspose", "upsample"])
def test_conv_family_builds_for_two_input_shapes(shape: tuple[int, int, int], decoder: str) -> None:
    config = {**get_preset("econt_baseline"), "decoder": decoder}
    model = build_model("conv_autoencoder", config, ModelInput(shape, bits=10, signed=False))
    assert isinstance(model, ConvAutoencoder) and model.input_shape == shape
    assert model.encoder[0].in_channels == shape[0]
    x = torch.rand(3, *shape)
    out = model(x)
    assert out.shape == x.shape and torch.isfinite(out).all()  # a linear output by default
    # The flattened feature map grows with the image: 8 filters at stride 2 give 8 * (S/2)^2 features.
    linear = next(m for m in model.encoder if isinstance(m, nn.Linear))
    assert linear.in_features == 8 * (shape[1] // 2) ** 2


def test_conv_family_without_conv_layers_decodes_densely_to_the_input_shape() -> None:
    config = {"n_conv": 0, "n_dense": 1, "dense0_units": 16, "latent": 8}
    model = build_model("conv_autoencoder", config, ModelInput((3, 6, 6), bits=8, signed=False))
    assert model(torch.rand(2, 3, 6, 6)).shape == (2, 3, 6, 6)


def test_the_input_sets_the_default_input_bits_and_sign() -> None:
    pytest.importorskip("brevitas")
    config = {**get_preset("waveform_baseline"), "quantize": True, "weight_bits": 6, "act_bits": 8}
    config["output_bits"] = 8
    model = build_model("dense_autoencoder", config, ModelInput((20,), bits=7, signed=False))
    quantizer = model.encoder[0].act_quant
    assert int(quantizer.bit_width()) == 7 and not quantizer.is_signed


def test_families_refuse_input_shapes_they_cannot_take() -> None:
    with pytest.raises(SpaceError, match=r"'dense_autoencoder'\): input shape must be \(samples,\)"):
        build_model("dense_autoencoder", get_preset("waveform_baseline"), ModelInput((1, 8, 8), 8, False))
    with pytest.raises(
        SpaceError, match=r"'conv_autoencoder'\): input shape must be \(channels, size, size\)"
    ):
        build_model("conv_autoencoder", get_preset("econt_baseline"), ModelInput((1, 8, 6), 8, False))
    with pytest.raises(SpaceError, match=r"ModelInput\.shape must be a non-empty tuple of positive integers"):
        ModelInput((0, 8), bits=8, signed=False)
    with pytest.raises(SpaceError, match=r"ModelInput\.bits must be an integer >= 1"):
        ModelInput((8,), bits=0, signed=False)


def test_register_family_makes_a_new_family_buildable(restore_families: None) -> None:
    def tiny(config: Mapping[str, Any], model_input: ModelInput) -> Autoencoder:
        (width,) = model_input.shape
        encoder = nn.Sequential(nn.Linear(width, config["latent"]), nn.ReLU())
        return Autoencoder(
            encoder,
            nn.Linear(config["latent"], width),
            input_shape=model_input.shape,
            latent_width=config["latent"],
            quantized=False,
        )

    register_family("tiny_dense", tiny)
    assert family_names()[-1] == "tiny_dense"
    model = build_model("tiny_dense", {"latent": 3}, ModelInput((10,), bits=8, signed=True))
    assert model(torch.rand(2, 10)).shape == (2, 10)
    with pytest.raises(SpaceError, match="model family 'tiny_dense' is already registered"):
        register_family("tiny_dense", tiny)
    with pytest.raises(SpaceError, match="family name must be an identifier"):
        register_family("tiny dense", tiny)
