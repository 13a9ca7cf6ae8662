"""Hand-built float and Brevitas encoders shared by the hw_models tests (seeded, calibrated)."""

from __future__ import annotations

from collections.abc import Callable

import brevitas.nn as qnn
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8Bias, Int8WeightPerTensorFixedPoint, Int16Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint as UintAct
from torch import nn


def _calibrate(model: nn.Module, data: torch.Tensor) -> nn.Module:
    """A few training-mode passes let the runtime-statistics activation scales settle, then freeze (eval)."""
    model.train()
    with torch.no_grad():
        for _ in range(40):
            model(data)
    return model.eval()


@pytest.fixture
def reference_encoder() -> nn.Module:
    """The ECON-T reference encoder: Conv(1->8, 3x3, stride 2, 'same') + ReLU -> Flatten -> Dense16 + ReLU."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 16), nn.ReLU()
    )


@pytest.fixture
def quant_conv_encoder() -> Callable[..., nn.Module]:
    """Factory: quantized conv encoder for (1, 8, 8) with power-of-two quantizers and float biases."""

    def build(*, pool: bool = False, weight_bits: int = 6, input_bits: int = 10) -> nn.Module:
        torch.manual_seed(1)
        layers: list[nn.Module] = [
            qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=input_bits),
            qnn.QuantConv2d(
                1,
                4,
                3,
                stride=1,
                padding=1,
                weight_quant=Int8WeightPerTensorFixedPoint,
                weight_bit_width=weight_bits,
            ),
            qnn.QuantReLU(act_quant=UintAct, bit_width=8),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        size = 4 if pool else 8
        layers += [
            qnn.QuantConv2d(
                4,
                8,
                3,
                stride=2,
                padding=1,
                weight_quant=Int8WeightPerTensorFixedPoint,
                weight_bit_width=weight_bits,
            ),
            qnn.QuantReLU(act_quant=UintAct, bit_width=8),
            nn.Flatten(),
            qnn.QuantLinear(
                8 * (size // 2) ** 2,
                16,
                weight_quant=Int8WeightPerTensorFixedPoint,
                weight_bit_width=weight_bits,
            ),
            qnn.QuantReLU(act_quant=UintAct, bit_width=9),
            qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=7),
        ]
        generator = torch.Generator().manual_seed(2)
        return _calibrate(nn.Sequential(*layers), 3 * torch.rand(64, 1, 8, 8, generator=generator))

    return build


@pytest.fixture
def quant_dense_encoder() -> nn.Module:
    """Quantized dense encoder for (48,) with quantized biases (their scale = input scale x weight scale)."""
    torch.manual_seed(3)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=12, return_quant_tensor=True),
        qnn.QuantLinear(
            48, 24, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=5, bias_quant=Int16Bias
        ),
        qnn.QuantReLU(act_quant=UintAct, bit_width=6, return_quant_tensor=True),
        qnn.QuantLinear(
            24, 8, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=4, bias_quant=Int8Bias
        ),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=5),
    )
    return _calibrate(model, torch.randn(300, 48, generator=torch.Generator().manual_seed(4)))
