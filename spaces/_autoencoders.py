"""The autoencoder families: `ConvAutoencoder` (square images, e.g. ECON-T 8x8) and `DenseAutoencoder` (1-D
samples, e.g. fADC250 48-sample waveforms). They know no task: the task declares the input (`ModelInput`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import _shapes
from ._errors import SpaceError
from ._models import Autoencoder, ModelInput, _compression, _int, _Layers, _units

_DECODERS = ("convtranspose", "upsample")
# Output layer of the ECON-T decoder: "sigmoid" is the reference model's; "linear" has no activation (negative
# outputs carry no charge: the EMD clips them to 0, and the charge-weighted MSE does not penalise a negative
# output on an empty cell). benchmarks/collapse.py measures why the default is what it is.
ECONT_OUTPUTS = ("linear", "sigmoid")
_DEFAULT_ECONT_OUTPUT = "linear"
# -- square images (ECON-T) -------------------------------------------------------------------------
CONV_FAMILY = "conv_autoencoder"
DENSE_FAMILY = "dense_autoencoder"


def _image_shape(model_input: ModelInput) -> tuple[int, int]:
    """(channels, size) of a square (C, S, S) input; SpaceError for any other shape."""
    shape = model_input.shape
    if len(shape) != 3 or shape[1] != shape[2]:
        raise SpaceError(
            f"build_model({CONV_FAMILY!r}): input shape must be (channels, size, size), got {shape}"
        )
    return shape[0], shape[1]


class ConvAutoencoder(Autoencoder):
    """(N, C, S, S) -> latent -> (N, C, S, S), a linear output (``output="linear"``, the default) or one
    through a sigmoid (``output="sigmoid"``, the reference model's: in 10-epoch runs it collapses to a
    constant output far more often, benchmarks/collapse.txt).

    Encoder: conv layers (padding k//2, ReLU, optional MaxPool2d(2)) -> Flatten -> dense layers (ReLU) ->
    latent Linear + ReLU. Decoder: the dense layers mirrored -> Linear to the last feature map (ReLU) ->
    per conv layer, in reverse, ConvTranspose2d with the layer's kernel and stride (output padding chosen to
    restore the layer's input size; Upsample first if it pooled) or, with ``decoder="upsample"``,
    Upsample(nearest) + stride-1 Conv2d -> a C-channel head with the first layer's kernel (-> sigmoid). Each
    mirrored layer keeps channels (filters_i -> filters_{i-1}, the last one filters_0 -> filters_0) so the
    reference "8x8_c8_S2_tele" comes out layer for layer on a (1, 8, 8) input. Without conv layers the
    decoder is dense to C*S*S outputs. The output is always exactly SxS (a ZeroPad2d fits even kernels).
    ``sparsity`` prunes the encoder only (the decoder runs off-detector in float, as it is never quantized
    either).
    """

    def __init__(self, config: Mapping[str, Any], model_input: ModelInput) -> None:
        family = CONV_FAMILY
        in_channels, image_size = _image_shape(model_input)
        layers = _shapes.conv_layers(config)
        problem = _shapes.problem(image_size, layers)
        if problem is not None:
            raise SpaceError(f"build_model({family!r}): infeasible config: {problem}")
        dense = _units(config, "n_dense", "dense", family, minimum=0)
        latent = _int(config, "latent", family)
        decoder_kind = config.get("decoder", "convtranspose")
        if decoder_kind not in _DECODERS:
            raise SpaceError(f"build_model({family!r}): decoder={decoder_kind!r}; allowed: {list(_DECODERS)}")
        output = config.get("output", _DEFAULT_ECONT_OUTPUT)
        if output not in ECONT_OUTPUTS:
            raise SpaceError(f"build_model({family!r}): output={output!r}; allowed: {list(ECONT_OUTPUTS)}")
        quant, sparsity, l1 = _compression(config, family, model_input)
        make = _Layers(quant)

        encoder: list[nn.Module] = make.input(signed=model_input.signed)
        channels = in_channels
        for i, layer in enumerate(layers):
            own = make.for_layer(config, f"conv{i}", family)
            encoder += [own.conv(layer, channels), *make.gate(config, f"conv{i}", layer.filters, family)]
            encoder.append(own.relu())
            if layer.pool:
                encoder.append(nn.MaxPool2d(2))
            channels = layer.filters
        steps = _shapes.trace(image_size, layers)
        size = steps[-1].size_out if steps else image_size
        width = channels * size * size
        encoder.append(nn.Flatten())
        for i, units in enumerate(dense):
            own = make.for_layer(config, f"dense{i}", family)
            encoder += [
                own.linear(width, units),
                *make.gate(config, f"dense{i}", units, family),
                own.relu(),
            ]
            width = units
        encoder += [make.linear(width, latent), make.relu(encoded=True)]

        decoder: list[nn.Module] = []
        width = latent
        for units in reversed(dense):
            decoder += [nn.Linear(width, units), nn.ReLU()]
            width = units
        if layers:
            decoder += [
                nn.Linear(width, channels * size * size),
                nn.ReLU(),
                nn.Unflatten(1, (channels, size, size)),
            ]
            decoder += _conv_decoder(layers, steps, decoder_kind, image_size, in_channels)
            if output == "sigmoid":
                decoder.append(nn.Sigmoid())
        else:
            decoder.append(nn.Linear(width, in_channels * image_size**2))
            if output == "sigmoid":
                decoder.append(nn.Sigmoid())
            decoder.append(nn.Unflatten(1, (in_channels, image_size, image_size)))
        super().__init__(
            nn.Sequential(*encoder),
            nn.Sequential(*decoder),
            input_shape=model_input.shape,
            nonnegative_input=not model_input.signed,
            latent_width=latent,
            quantized=quant is not None,
            sparsity=sparsity,
            l1=l1,
            # Like quantization, pruning applies to the on-chip encoder only: the decoder runs off-detector
            # in float, and pruning it too made 3 of 3 pruned trials collapse that encoder-only pruning
            # did not (benchmarks/collapse.txt).
            prune_decoder=False,
            layers=make,
        )


def _upsample(current: int, target: int) -> list[nn.Module]:
    """Nearest upsampling from ``current`` to ``target`` pixels (an integer scale factor when there is one)."""
    if current == target:
        return []
    if target % current == 0:
        return [nn.Upsample(scale_factor=target // current, mode="nearest")]
    return [nn.Upsample(size=(target, target), mode="nearest")]


def _conv_decoder(
    layers: list[_shapes.ConvLayer], steps: list[_shapes.ConvStep], kind: str, image_size: int, channels: int
) -> list[nn.Module]:
    modules: list[nn.Module] = []
    current = steps[-1].size_out
    for i in reversed(range(len(layers))):
        layer, step = layers[i], steps[i]
        out_channels = layers[max(i - 1, 0)].filters
        k, s, p = layer.kernel, layer.stride, layer.padding
        if kind == "convtranspose":
            modules += _upsample(current, step.size_conv)
            output_padding = (
                step.size_in + 2 * p - k
            ) % s  # restores size_in exactly (< stride, as torch needs)
            modules.append(
                nn.ConvTranspose2d(layer.filters, out_channels, k, s, p, output_padding=output_padding)
            )
            current = step.size_in
        else:
            modules += _upsample(current, step.size_in)
            modules.append(nn.Conv2d(layer.filters, out_channels, k, padding=p))
            current = step.size_in + 2 * p - k + 1
        modules.append(nn.ReLU())
    first = layers[0]
    k, p = first.kernel, first.padding
    if kind == "convtranspose":
        modules.append(nn.ConvTranspose2d(first.filters, channels, k, padding=p))
        current = current - 1 - 2 * p + k
    else:
        modules.append(nn.Conv2d(first.filters, channels, k, padding=p))
        current = current + 2 * p - k + 1
    if current != image_size:  # even kernels: pad or (negative padding) crop to exactly the input size
        modules.append(nn.ZeroPad2d((0, image_size - current, 0, image_size - current)))
    return modules


# -- 1-D samples (waveform) ------------------------------------------------------------------------
class DenseAutoencoder(Autoencoder):
    """(N, S) -> latent -> (N, S), linear output.

    Encoder: hidden Linear+ReLU layers -> latent Linear+ReLU. Decoder: Linear(latent, latent)+ReLU, the hidden
    layers mirrored, Linear to S. The reference 48-96-48-12 | 12-48-96-48 waveform model has exactly this
    form (20,088 parameters, counting its 12->12 decoder input layer).
    """

    def __init__(self, config: Mapping[str, Any], model_input: ModelInput) -> None:
        family = DENSE_FAMILY
        if len(model_input.shape) != 1:
            raise SpaceError(
                f"build_model({family!r}): input shape must be (samples,), got {model_input.shape}"
            )
        (samples,) = model_input.shape
        hidden = _units(config, "n_hidden", "hidden", family, minimum=1)
        latent = _int(config, "latent", family)
        quant, sparsity, l1 = _compression(config, family, model_input)
        make = _Layers(quant)

        encoder: list[nn.Module] = make.input(signed=model_input.signed)
        width = samples
        for i, units in enumerate(hidden):
            own = make.for_layer(config, f"hidden{i}", family)
            encoder += [
                own.linear(width, units),
                *make.gate(config, f"hidden{i}", units, family),
                own.relu(),
            ]
            width = units
        encoder += [make.linear(width, latent), make.relu(encoded=True)]

        decoder: list[nn.Module] = [nn.Linear(latent, latent), nn.ReLU()]
        width = latent
        for units in reversed(hidden):
            decoder += [nn.Linear(width, units), nn.ReLU()]
            width = units
        decoder.append(nn.Linear(width, samples))
        super().__init__(
            nn.Sequential(*encoder),
            nn.Sequential(*decoder),
            input_shape=model_input.shape,
            nonnegative_input=not model_input.signed,
            latent_width=latent,
            quantized=quant is not None,
            sparsity=sparsity,
            l1=l1,
            layers=make,
        )
