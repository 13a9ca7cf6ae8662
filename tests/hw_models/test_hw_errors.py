"""Bad input gets named errors: unsupported layers, non-bit-exact quantizers, settings, shapes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import brevitas.nn as qnn
import pytest
import torch
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerChannelFixedPointMSE,
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
)
from torch import nn

from hw_models import HWError, HWSettings, UnsupportedLayerError, estimate, supported_layer_types, to_hls4ml


class _Autoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 8))
        self.decoder = nn.Sequential(nn.Unflatten(1, (8, 1, 1)), nn.ConvTranspose2d(8, 1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class _Sorter(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=-1).values


def test_conv_transpose_is_named_with_supported_types() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 1, 3))
    with pytest.raises(UnsupportedLayerError) as error:
        estimate(model, (1, 8, 8))
    message = str(error.value)
    assert "layer '1' (ConvTranspose2d)" in message
    assert "supported layer types:" in message
    assert "Conv2d" in message and "QuantConv2d" in message


def test_decoder_error_hints_at_the_encoder_and_leaves_no_project_directory() -> None:
    project_dirs = set(Path(tempfile.gettempdir()).glob("hwnas-hls4ml-*"))
    with pytest.raises(UnsupportedLayerError, match=r"decoder\.1' \(ConvTranspose2d\).*model\.encoder"):
        to_hls4ml(_Autoencoder(), (1, 8, 8))
    assert set(Path(tempfile.gettempdir()).glob("hwnas-hls4ml-*")) <= project_dirs
    assert estimate(_Autoencoder().encoder, (1, 8, 8)).value("ops") == 2 * 64 * 8 + 8


def test_custom_module_operation_is_named() -> None:
    model = nn.Sequential(nn.Linear(4, 4), _Sorter())
    with pytest.raises(UnsupportedLayerError, match=r"operation 'sort' in '1' cannot be converted"):
        estimate(model, (4,))


def test_supported_layer_types_lists_module_types() -> None:
    types = supported_layer_types()
    assert {"Conv2d", "Linear", "MaxPool2d", "ReLU", "QuantConv2d", "QuantLinear", "QuantIdentity"} <= set(
        types
    )
    assert "ConvTranspose2d" not in types


def test_float_scale_quantizer_is_refused_as_not_bit_exact() -> None:
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint),
        qnn.QuantLinear(8, 4, weight_quant=Int8WeightPerTensorFloat),
    )
    with pytest.raises(
        HWError, match=r"'1\.weight_quant'.*not a power of two.*Int8WeightPerTensorFixedPoint"
    ):
        estimate(model, (8,))


def test_per_channel_quantizer_is_refused() -> None:
    model = nn.Sequential(qnn.QuantLinear(8, 4, weight_quant=Int8WeightPerChannelFixedPointMSE))
    with pytest.raises(HWError, match=r"4 scales \(per-channel\)"):
        estimate(model, (8,))


def test_weighted_layer_without_weight_quantizer_is_refused() -> None:
    model = nn.Sequential(qnn.QuantLinear(8, 4, weight_quant=None))
    with pytest.raises(HWError, match=r"layer '0' \(QuantLinear\) has no weight quantizer"):
        estimate(model, (8,))


def test_unsupported_brevitas_layer_is_named() -> None:
    model = nn.Sequential(qnn.QuantIdentity(), qnn.QuantSigmoid())
    with pytest.raises(UnsupportedLayerError, match=r"layer '1' \(QuantSigmoid\)"):
        estimate(model, (8,))


def test_quantized_model_without_input_quantizer_warns(caplog: pytest.LogCaptureFixture) -> None:
    model = nn.Sequential(qnn.QuantLinear(8, 4, weight_quant=Int8WeightPerTensorFixedPoint))
    estimate(model, (8,))
    assert "has no quantizer" in caplog.text


@pytest.mark.parametrize("shape", [(), (0, 8), (1, 2, 3, 4), "48", (8.0,), (True,)])
def test_bad_input_shape(shape: object) -> None:
    with pytest.raises(HWError, match=r"input_shape = .* is invalid; allowed: 1 to 3 positive integers"):
        estimate(nn.Sequential(nn.Linear(8, 4)), shape)  # type: ignore[arg-type]


def test_non_module_is_refused() -> None:
    with pytest.raises(HWError, match=r"model must be a torch\.nn\.Module, got str"):
        estimate("model", (8,))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("io_type", "io_serial", "io_parallel, io_stream"),
        ("strategy", "latency", "Latency, Resource"),
        ("backend", "Quartus", "Vitis, Vivado"),
        ("reuse_factor", 0, "an integer >= 1"),
        ("reuse_factor", 2.0, "an integer >= 1"),
        ("reuse_factor", True, "an integer >= 1"),
        ("clock_period_ns", 0.0, "a finite number > 0"),
        ("clock_period_ns", float("inf"), "a finite number > 0"),
        ("part", " ", "a non-empty FPGA part name"),
        ("default_precision", "float32", "ap_fixed<W,I>"),
        ("default_precision", "ap_fixed<16>", "needs integer bits"),
    ],
)
def test_settings_validation_names_field_value_and_allowed(field: str, value: object, allowed: str) -> None:
    with pytest.raises(HWError) as error:
        HWSettings(**{field: value})  # type: ignore[arg-type]
    message = str(error.value)
    assert message.startswith(field) and repr(value) in message and allowed in message


def test_settings_accept_valid_values_and_round_trip() -> None:
    settings = HWSettings(
        io_type="io_stream", reuse_factor=8, strategy="Resource", default_precision="ap_fixed<8,3,RND,SAT>"
    )
    assert settings.default_width == 8
    assert HWSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(HWError, match=r"unknown HWSettings keys \['clock'\]"):
        HWSettings.from_dict({"clock": 5})


def test_wrong_settings_type_is_refused() -> None:
    with pytest.raises(HWError, match="settings must be an HWSettings, got dict"):
        estimate(nn.Sequential(nn.Linear(8, 4)), (8,), {"reuse_factor": 2})  # type: ignore[arg-type]
