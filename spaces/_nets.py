"""Feed-forward families whose whole network goes on chip: `StripCNN` (detector-layer x strip hit images,
e.g. the 4 x 384 muon trigger) and `DenseNet` (feature vectors, e.g. a 39-feature jet tagger).

Both are `Autoencoder`s in form only, so pruning masks, L1, quantization and costing work exactly as for the
autoencoder families: ``encoder`` is the *whole* network (an ``nn.Sequential`` that ends in a plain Linear
with ``outputs`` values: regressions and logits, no activation) and ``decoder`` is ``nn.Identity``. A task
built on them costs and exports ``model.encoder``, which is all of it. The families know no task: the
number of outputs comes from the config key ``outputs`` (a task sets it in its ``build_model``).

Config keys, besides the compression keys of every family (``quantize`` with ``weight_bits``,
``act_bits``, ``input_bits``; ``sparsity``; ``l1``):

- ``strip_cnn``: ``n_conv`` (>= 1), ``conv<i>_filters/_kernel/_stride/_pool``, ``n_dense`` (default 0),
  ``dense<i>_units``, ``outputs`` (default 1). Input (C, H, W): H detector layers of W strips. The first
  convolution spans all H layers (kernel H x k, no padding across layers), so the map is 1 x W' after it;
  later ones are 1 x k. Every convolution pads k//2 strips on each side and strides along the strips only;
  ``pool`` is MaxPool2d((1, 2)) along the strips.
- ``dense_net``: ``n_hidden`` (>= 1), ``hidden<i>_units``, ``outputs`` (default 1). Input (F,).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import _shapes
from ._errors import SpaceError
from ._models import Autoencoder, ModelInput, _int, _Layers, _Quantization, _real, _units

STRIP_FAMILY = "strip_cnn"
DENSE_NET_FAMILY = "dense_net"


def strip_problem(width: int, layers: list[_shapes.ConvLayer], prefix: str = "conv") -> str | None:
    """Why a strip conv stack cannot be built on ``width`` strips (naming the first bad layer), or None."""
    for i, step in enumerate(_shapes.trace(width, layers)):
        if step.size_out < 1:
            return (
                f"{prefix}{i}: max-pooling its {step.size_conv}-strip output shrinks the {width}-strip input "
                "below 1 strip"
            )
    return None


def _quantization(config: Mapping[str, Any], family: str, model_input: ModelInput) -> _Quantization | None:
    if not config.get("quantize", False):
        return None
    act_bits = _int(config, "act_bits", family, minimum=1)
    return _Quantization(
        weight_bits=_int(config, "weight_bits", family, minimum=1),
        act_bits=act_bits,
        input_bits=_int(config, "input_bits", family, minimum=1, default=model_input.bits),
        output_bits=act_bits,  # the last layer is a plain (quantized-weight) Linear: no output activation
    )


class _Network(Autoencoder):
    """The common tail: Flatten is already in ``layers``; dense ReLU layers -> Linear(outputs)."""

    def __init__(
        self,
        layers: list[nn.Module],
        width: int,
        config: Mapping[str, Any],
        family: str,
        model_input: ModelInput,
        make: _Layers,
        dense: list[int],
        prefix: str,
    ) -> None:
        outputs = _int(config, "outputs", family, default=1)
        for i, units in enumerate(dense):
            own = make.for_layer(config, f"{prefix}{i}", family)
            layers += [
                own.linear(width, units),
                *make.gate(config, f"{prefix}{i}", units, family),
                own.relu(),
            ]
            width = units
        layers.append(make.linear(width, outputs))
        super().__init__(
            nn.Sequential(*layers),
            nn.Identity(),
            input_shape=model_input.shape,
            latent_width=outputs,
            quantized=make.quant is not None,
            sparsity=_real(config, "sparsity", family),
            l1=_real(config, "l1", family),
            layers=make,
        )


class StripCNN(_Network):
    """(N, C, H, W) hit images -> (N, outputs); see the module docstring for the layer rules."""

    def __init__(self, config: Mapping[str, Any], model_input: ModelInput) -> None:
        family = STRIP_FAMILY
        shape = model_input.shape
        if len(shape) != 3:
            raise SpaceError(
                f"build_model({family!r}): input shape must be (channels, layers, strips), got {shape}"
            )
        channels, height, width = shape
        layers = _shapes.conv_layers(config)
        if not layers:
            raise SpaceError(
                f"build_model({family!r}): n_conv must be >= 1 (the first conv spans the layers)"
            )
        problem = strip_problem(width, layers)
        if problem is not None:
            raise SpaceError(f"build_model({family!r}): infeasible config: {problem}")
        make = _Layers(_quantization(config, family, model_input))
        modules: list[nn.Module] = make.input(signed=model_input.signed)
        for i, layer in enumerate(layers):
            kernel_height = height if i == 0 else 1
            own = make.for_layer(config, f"conv{i}", family)
            modules += [
                own.conv2d(
                    channels,
                    layer.filters,
                    (kernel_height, layer.kernel),
                    (1, layer.stride),
                    (0, layer.padding),
                ),
                *make.gate(config, f"conv{i}", layer.filters, family),
                own.relu(),
            ]
            if layer.pool:
                modules.append(nn.MaxPool2d((1, 2)))
            channels = layer.filters
        modules.append(nn.Flatten())
        strips = _shapes.trace(width, layers)[-1].size_out
        dense = _units(config, "n_dense", "dense", family, minimum=0)
        super().__init__(modules, channels * strips, config, family, model_input, make, dense, "dense")


class DenseNet(_Network):
    """(N, F) features -> hidden Linear+ReLU layers -> (N, outputs)."""

    def __init__(self, config: Mapping[str, Any], model_input: ModelInput) -> None:
        family = DENSE_NET_FAMILY
        if len(model_input.shape) != 1:
            raise SpaceError(
                f"build_model({family!r}): input shape must be (features,), got {model_input.shape}"
            )
        hidden = _units(config, "n_hidden", "hidden", family, minimum=1)
        make = _Layers(_quantization(config, family, model_input))
        modules: list[nn.Module] = make.input(signed=model_input.signed)
        super().__init__(modules, model_input.shape[0], config, family, model_input, make, hidden, "hidden")
