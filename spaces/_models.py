"""What every model family is built from: the `ModelInput` a task declares, the (optionally Brevitas-quantized)
layers, the initialisation, the `Autoencoder` base with the compression schedule and the pruning/L1 hooks the
training loop calls duck-typed, and the readers of a config's keys. The families are in `_autoencoders`.

The encoder is what goes on chip and through hls4ml, so it only uses nn.Conv2d / QuantConv2d, nn.Linear /
QuantLinear, nn.ReLU / QuantReLU, QuantIdentity, nn.MaxPool2d and nn.Flatten inside one nn.Sequential.
With ``quantize`` the encoder (only: the decoder runs off-detector in float) uses per-tensor power-of-two
Brevitas quantizers, each a plain attribute of its layer so hls4ml's "mirror" route can read bit width and
scale: the input passes a QuantIdentity at ``input_bits`` (signed or not as the `ModelInput` says), weights are ``weight_bits``, biases are fixed point at ``weight_bits`` with their own
power-of-two scale, hidden ReLUs output ``act_bits`` and the latent ReLU (the encoded outputs that leave
the chip) ``output_bits``. Every encoder value is then an integer times a power of two.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from . import _shapes
from ._errors import SpaceError
from ._nodes import NodeGate, gates_of, keep_count, pruner_loss, shrink

# Compression schedule of a short run (the seed studies' baseline -> pruned -> quantized recipe): the first
# _DENSE_FRACTION of the epochs train the dense float model; pruning then rises on a cubic (Zhu & Gupta 2017)
# schedule to the target, reached at _PRUNED_FRACTION of the epochs, and the rest fine-tunes at the target.
# Quantization-aware training starts with the pruning ramp (its activation scales are initialised from the
# statistics of the warmed-up model, not of a random one).
_MAX_BITS = 16
_DENSE_FRACTION = 0.3
_PRUNED_FRACTION = 0.8
_PRUNABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
# The stages of a staged training recipe (Autoencoder.set_stage), e.g. the waveform study's
# train -> prune -> retrain -> quantize -> retrain.
STAGES = ("train", "prune", "retrain", "quantize")


@dataclass(frozen=True)
class ModelInput:
    """What a model family must know about the data it models; the task declares it.

    ``shape`` is one sample without the batch dimension, ``bits`` the input quantizer's width when a quantized
    config does not set ``input_bits``, ``signed`` whether inputs can be negative (charges cannot; baseline-
    subtracted samples can).
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool

    def __post_init__(self) -> None:
        if not (
            isinstance(self.shape, tuple)
            and self.shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in self.shape)
        ):
            raise SpaceError(
                f"ModelInput.shape must be a non-empty tuple of positive integers, got {self.shape!r}"
            )
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits < 1:
            raise SpaceError(f"ModelInput.bits must be an integer >= 1, got {self.bits!r}")


@dataclass(frozen=True)
class _Quantization:
    weight_bits: int
    act_bits: int
    input_bits: int
    output_bits: int


# Brevitas rounds an activation scale to a power of two and then clamps it to scaling_min_val (1e-10 by
# default): a layer whose outputs collapsed to zero got scale 1e-10, which no fixed-point type reproduces, and
# its trial failed the cost estimate. A power-of-two floor keeps such a model convertible bit-exactly. At
# 2^-(bits + 16) it binds only for activations whose maximum is below 2^-16: none of a healthy model.
def act_scale_floor(bits: int) -> float:
    return 2.0 ** -(bits + 16)


def _act_quantizer(*, signed: bool, bits: int) -> Any:
    from brevitas.quant import Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint

    quantizer = Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint
    return quantizer.let(scaling_min_val=act_scale_floor(bits))


class _Layers:
    """Float or quantized versions of the encoder's layer types.

    Brevitas is imported here, not at module level: it takes seconds to import and float models (and every
    process that only validates configs) do not need it.
    """

    def __init__(self, quant: _Quantization | None) -> None:
        self.quant = quant

    @staticmethod
    def _weight_options(quant: _Quantization, fan_in: int) -> dict[str, Any]:
        from brevitas.quant import Int8BiasPerTensorFixedPointInternalScaling, Int8WeightPerTensorFixedPoint

        # Biases need 2 levels at least: a binary layer keeps 2-bit (ternary-like) biases.
        bias = {
            "bias_quant": Int8BiasPerTensorFixedPointInternalScaling,
            "bias_bit_width": max(2, quant.weight_bits),
        }
        if quant.weight_bits == 1:
            from brevitas.quant import SignedBinaryWeightPerTensorConst

            # Binary weights are +-s with a constant s: the power of two nearest He-init's std, so the
            # layer's outputs keep the scale of a float layer and s stays exact in fixed point.
            scale = 2.0 ** round(math.log2(math.sqrt(2.0 / fan_in)))
            return {"weight_quant": SignedBinaryWeightPerTensorConst.let(scaling_const=scale), **bias}
        # From 2 bits the narrow-range integer quantizer: 2 bits are ternary weights {-s, 0, s}.
        return {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": quant.weight_bits, **bias}

    def for_layer(self, config: Mapping[str, Any], layer: str, family: str) -> _Layers:
        """This factory with layer ``layer``'s own ``<layer>_weight_bits`` / ``<layer>_act_bits`` (mixed
        precision) in place of the model's; itself for a float model or without those keys."""
        if self.quant is None:
            return self
        bits = {
            kind: _int(config, f"{layer}_{kind}", family, default=getattr(self.quant, kind))
            for kind in ("weight_bits", "act_bits")
        }
        for kind, value in bits.items():
            if value > _MAX_BITS:
                raise SpaceError(f"build_model({family!r}): {layer}_{kind}={value} must be 1..{_MAX_BITS}")
        return _Layers(dataclasses.replace(self.quant, **bits))

    def conv(self, layer: _shapes.ConvLayer, in_channels: int) -> nn.Module:
        return self.conv2d(in_channels, layer.filters, layer.kernel, layer.stride, layer.padding)

    def conv2d(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...],
        padding: int | tuple[int, ...] | str,
    ) -> nn.Module:
        options: dict[str, Any] = {"kernel_size": kernel_size, "stride": stride, "padding": padding}
        if self.quant is None:
            return nn.Conv2d(in_channels, out_channels, **options)
        from brevitas.nn import QuantConv2d

        kernel = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        fan_in = in_channels * math.prod(kernel)
        return QuantConv2d(in_channels, out_channels, **options, **self._weight_options(self.quant, fan_in))

    def like(self, layer: nn.Module, in_width: int, out_width: int) -> nn.Module:
        """A fresh Conv2d/Linear (quantized or not, as this factory is) shaped like ``layer`` but with
        ``in_width`` inputs and ``out_width`` outputs (channels or features): node pruning's rebuild."""
        make = self
        if self.quant is not None:  # keep the layer's own (mixed-precision) weight width
            bits = int(cast(Any, layer).weight_quant.bit_width())
            make = _Layers(dataclasses.replace(self.quant, weight_bits=bits))
        if isinstance(layer, nn.Conv2d):
            return make.conv2d(in_width, out_width, layer.kernel_size, layer.stride, layer.padding)
        return make.linear(in_width, out_width)

    @staticmethod
    def gate(config: Mapping[str, Any], layer: str, width: int, family: str) -> list[nn.Module]:
        """A `NodeGate` for ``layer`` (e.g. "hidden0") of ``width`` nodes when its ``<layer>_keep`` prunes
        nodes; nothing without the key or when it keeps every node."""
        keep = keep_count(config, layer, width, family)
        return [] if keep is None or keep == width else [NodeGate(width, keep)]

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        if self.quant is None:
            return nn.Linear(in_features, out_features)
        from brevitas.nn import QuantLinear

        options = self._weight_options(self.quant, in_features)
        return QuantLinear(in_features, out_features, bias=True, **options)

    def relu(self, *, encoded: bool = False) -> nn.Module:
        if self.quant is None:
            return nn.ReLU()
        from brevitas.nn import QuantReLU

        bits = self.quant.output_bits if encoded else self.quant.act_bits
        return QuantReLU(act_quant=_act_quantizer(signed=False, bits=bits), bit_width=bits)

    def input(self, *, signed: bool) -> list[nn.Module]:
        if self.quant is None:
            return []
        from brevitas.nn import QuantIdentity

        bits = self.quant.input_bits
        return [QuantIdentity(act_quant=_act_quantizer(signed=signed, bits=bits), bit_width=bits)]


def _init_weights(model: nn.Module, *, nonnegative_input: bool = False) -> None:
    """He-normal weights (fan-in, ReLU gain) and zero biases for every Conv/ConvTranspose/Linear layer;
    with ``nonnegative_input`` (charges) the first layer's weights start non-negative (|He-normal|).

    ECON-T inputs are sparse and small (a normalised module sums to 1-2 over 64 pixels). With torch's default
    init (weight variance 1/(3 fan_in), biases of the same order as the signal) a stack of several layers
    starts as a near-constant function: on real ttbar rows the latent varied across rows with a std of
    0.0003-0.003, against 0.02-0.2 with this init (benchmarks/collapse.txt), and short runs then settle in
    the constant-output optimum. On non-negative inputs a first-layer unit whose weights are all negative
    is 0 on every row and never gets a gradient: a 2-filter kernel-1 first conv had both filters dead at
    init, and the whole network with them (benchmarks/collapse.txt after-v5). Uses the global torch
    generator (seeded by the caller).
    """
    first = True
    for module in model.modules():
        if isinstance(module, _PRUNABLE):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if first and nonnegative_input:
                with torch.no_grad():
                    module.weight.abs_()
            first = False
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class Autoencoder(nn.Module):
    """``forward(x) = decoder(encoder(x))``; the encoder maps (N, *input_shape) to (N, latent_width).

    Pruning (``sparsity`` > 0) keeps one 0/1 mask buffer per Conv/ConvTranspose/Linear weight of encoder and
    decoder, or of the encoder only with ``prune_decoder=False`` (buffers of this module, not
    parametrisations: the layers keep plain weights for hls4ml).
    Hooks for the training loop: ``before_epoch(epoch, n_epochs)`` applies the compression schedule (dense
    float warm-up, then quantizers on and the mask sparsity rising on a cubic schedule to the target, then
    fine-tuning at the target; :meth:`compression_epochs`), ``after_step()`` re-applies the masks after
    each optimiser step, ``final_form_epoch(n_epochs)`` says from which epoch the model is in its final
    form, ``after_training()`` switches the quantizers on, ``regularization()`` is the L1 penalty (zero
    without ``l1``).
    """

    def __init__(
        self,
        encoder: nn.Sequential,
        decoder: nn.Module,
        *,
        input_shape: tuple[int, ...],
        latent_width: int,
        quantized: bool,
        sparsity: float = 0.0,
        l1: float = 0.0,
        prune_decoder: bool = True,
        layers: _Layers | None = None,
        nonnegative_input: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= sparsity < 1.0:
            raise SpaceError(f"sparsity must be in [0, 1), got {sparsity!r}")
        if not l1 >= 0.0:
            raise SpaceError(f"l1 must be >= 0, got {l1!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.input_shape = input_shape
        self.latent_width = latent_width
        self.quantized = quantized
        self.sparsity = sparsity
        self.l1 = l1
        self._prune_decoder = prune_decoder
        self._stage: str | None = None  # a staged recipe's current stage (set_stage); None: the schedule
        self._quantizing = False
        self._at_target = False
        # L1 starts with the other compression (after the dense float warm-up, see before_epoch): from the
        # first step, at the space's upper strengths it crushed every weight to 0 under Adam before the
        # model had learnt anything (benchmarks/collapse.txt, after-v5).
        self._l1_on = True
        # Builds the layers node pruning rebuilds smaller; a quantized model must pass its own.
        self._layers = layers if layers is not None else _Layers(None)
        if quantized and layers is None and self.gated:
            raise SpaceError(
                "a quantized Autoencoder with node gates needs the layers= factory it was built with"
            )
        self._index_layers()
        _init_weights(self, nonnegative_input=nonnegative_input)

    def _index_layers(self) -> None:
        """The weighted layers, the ones magnitude pruning masks and L1 shrinks, and the mask buffers."""
        weighted = [
            (f"{part}_{path.replace('.', '_')}", module)
            for part, root in (("encoder", self.encoder), ("decoder", self.decoder))
            for path, module in root.named_modules()
            if isinstance(module, _PRUNABLE)
        ]
        # The tensors magnitude pruning masks: all of them, or the encoder's only (prune_decoder=False).
        self._pruned = [(n, m) for n, m in weighted if self._prune_decoder or n.startswith("encoder_")]
        self.pruning_masks = nn.Module()
        if self.sparsity > 0:
            for name, module in self._pruned:
                self.pruning_masks.register_buffer(name, torch.ones_like(module.weight, dtype=torch.bool))

    @property
    def gated(self) -> bool:
        """Whether the encoder still holds node-pruning gates (:meth:`prune_nodes` removes them)."""
        return bool(gates_of(self.encoder))

    def prune_nodes(self) -> Autoencoder:
        """The node-pruned network: this model's gates hardened (each gated layer keeps exactly its
        ``keep`` nodes with the largest gate logits), then a copy whose encoder holds only the kept nodes
        (gate values folded into the weights, see `spaces._nodes.shrink`) and the same decoder. Before any
        further training the copy computes what this hardened model computes. Masks are fresh (all ones)."""
        for gate in gates_of(self.encoder):
            gate.harden()
        pruned = copy.deepcopy(self)
        pruned.encoder = shrink(pruned.encoder, pruned._layers.like)
        pruned._index_layers()
        return pruned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    @staticmethod
    def compression_epochs(n_epochs: int) -> tuple[int, int]:
        """``(dense, full)`` of a run of ``n_epochs``: epochs 1..dense train dense and in float, pruning
        rises over epochs dense+1..full and the model has its final form (target sparsity, quantized) from
        epoch ``full`` on. dense = 0 for a 1-epoch run, else max(1, round(0.3 n)); full = max(dense + 1,
        round(0.8 n)), at most n."""
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 1:
            raise SpaceError(f"n_epochs must be an integer >= 1, got {n_epochs!r}")
        dense = 0 if n_epochs == 1 else max(1, round(_DENSE_FRACTION * n_epochs))
        full = min(n_epochs, max(dense + 1, round(_PRUNED_FRACTION * n_epochs)))
        return dense, full

    def final_form_epoch(self, n_epochs: int) -> int:
        """The first 1-based epoch of ``n_epochs`` at which the model is trained in its final form (at the
        target sparsity, quantized if it is): 1 for a model without compression. The training loop picks
        the best epoch and early-stops among these epochs only."""
        if self._stage is not None:
            return n_epochs if self._stage == "prune" else 1  # a prune stage reaches its target at the end
        if self.gated:
            return n_epochs  # the gates are only near 0/1 at the end
        if self.sparsity == 0 and not self.quantized:
            return 1
        dense, full = self.compression_epochs(n_epochs)
        return full if self.sparsity > 0 else dense + 1

    def scheduled_sparsity(self, epoch: int, n_epochs: int) -> float:
        """Mask sparsity during 1-based ``epoch`` of ``n_epochs``: 0 for the dense epochs, then
        target * (1 - (1 - j / R)^3) in the j-th of the R ramp epochs, the full target from epoch ``full``
        (see :meth:`compression_epochs`) to the end."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise SpaceError(f"epoch must be an integer >= 1 (1-based), got {epoch!r}")
        dense, full = self.compression_epochs(n_epochs)
        if epoch <= dense:
            return 0.0
        progress = min(1.0, (epoch - dense) / (full - dense))
        return self.sparsity * (1.0 - (1.0 - progress) ** 3)

    def quantization_enabled(self, epoch: int, n_epochs: int) -> bool:
        """Whether the quantizers run during 1-based ``epoch``: after the dense float warm-up epochs."""
        dense, _ = self.compression_epochs(n_epochs)
        return self.quantized and epoch > dense

    def _set_quantization(self, enabled: bool) -> None:
        """Switch every Brevitas quantizer of the encoder on or off (off: the layers compute in float; the
        activation quantizers then collect their statistics only once switched on)."""
        if not self.quantized:
            return
        from brevitas.proxy.quant_proxy import QuantProxyFromInjector

        for module in self.encoder.modules():
            if isinstance(module, QuantProxyFromInjector):
                module.disable_quant = not enabled

    def before_epoch(self, epoch: int, n_epochs: int) -> None:
        """Apply the compression schedule: quantizers on or off (:meth:`quantization_enabled`), and the
        masks recomputed at the scheduled sparsity (the smallest-magnitude weights of each tensor are
        masked, exactly round(s * size) of them) and applied. A gated model (node pruning) trains in float
        without masks, its gates sharpening over the ``n_epochs``; its compression comes after
        :meth:`prune_nodes`. In a stage (:meth:`set_stage`) the stage decides instead."""
        if self._stage is not None:
            self._set_quantization(self._quantizing)
            self._l1_on = self._stage != "train"
            if self._stage == "prune":
                for gate in gates_of(self.encoder):
                    gate.set_progress(epoch, n_epochs)
                self._mask_to(self.sparsity * (1.0 - (1.0 - epoch / n_epochs) ** 3))
            else:
                self._mask_to(self.sparsity if self._at_target else 0.0)
            return
        if self.gated:
            self._set_quantization(False)
            self._l1_on = False
            for gate in gates_of(self.encoder):
                gate.set_progress(epoch, n_epochs)
            return
        self._set_quantization(self.quantization_enabled(epoch, n_epochs))
        self._l1_on = epoch > self.compression_epochs(n_epochs)[0]
        self._mask_to(self.scheduled_sparsity(epoch, n_epochs))

    def set_stage(self, kind: str) -> None:
        """Train the following epochs as stage ``kind`` of a staged recipe (one of STAGES) instead of the
        fraction-based schedule; compression accumulates over the stages. ``train``: as the model is so
        far (float and dense at first). ``prune``: magnitude sparsity rises on the cubic schedule to its
        target at the stage's last epoch, and node gates (with the pruner loss) sharpen; the training loop
        then rebuilds a gated model with its kept nodes. ``quantize``: the quantizers are on from here.
        ``retrain``: fine-tune as the model is. SpaceError for another kind."""
        if kind not in STAGES:
            raise SpaceError(f"unknown training stage {kind!r}; allowed: {', '.join(STAGES)}")
        self._stage = kind
        self._quantizing = self._quantizing or kind == "quantize"
        self._at_target = self._at_target or kind == "prune"  # reached at the prune stage's last epoch

    def _mask_to(self, target: float) -> None:
        if self.sparsity == 0:
            return
        with torch.no_grad():
            for name, module in self._pruned:
                weight = module.weight
                n_pruned = round(target * weight.numel())
                mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
                # Stable order: weights already pruned to exactly 0 stay pruned as the target rises.
                mask[torch.argsort(weight.abs().flatten(), stable=True)[:n_pruned]] = False
                getattr(self.pruning_masks, name).copy_(mask.view_as(weight))
        self.after_step()

    def after_training(self) -> None:
        """Leave the model in its final form, whatever the schedule reached: quantizers on."""
        self._set_quantization(True)

    def after_step(self) -> None:
        """Zero the masked weights again (the optimiser step may have moved them)."""
        if self.sparsity == 0 or (self.gated and self._stage is None):
            return
        with torch.no_grad():
            for name, module in self._pruned:
                module.weight.mul_(getattr(self.pruning_masks, name))

    def regularization(self) -> torch.Tensor:
        """``l1 * sum(|w|)`` over the weights magnitude pruning would mask (the encoder's Conv/Linear
        weights, and the decoder's for a model that prunes it; biases excluded) once compression has
        started (:meth:`before_epoch`: not in the dense warm-up, a ``train`` stage or while gated), plus the
        node pruner's loss while the model is gated; a zero tensor without either."""
        # Outside a prune stage of a staged recipe the gates only learn which nodes matter.
        penalty = pruner_loss(gates_of(self.encoder)) if self._stage in (None, "prune") else torch.zeros(())
        if self.l1 == 0 or not self._l1_on:
            return penalty
        return penalty + self.l1 * sum(
            (module.weight.abs().sum() for _, module in self._pruned), torch.zeros(())
        )

    def weight_sparsity(self) -> float:
        """Fraction of exactly-zero weights over the pruned Conv/ConvTranspose/Linear weight tensors (every
        one, or the encoder's for a model that does not prune its decoder)."""
        zeros = sum(int((module.weight == 0).sum()) for _, module in self._pruned)
        total = sum(module.weight.numel() for _, module in self._pruned)
        return zeros / total


# -- reading a config ------------------------------------------------------------------------------
# ``family`` names the family in error messages: "build_model('dense_autoencoder'): config lacks 'latent'".
def _int(
    config: Mapping[str, Any], key: str, family: str, *, minimum: int = 1, default: int | None = None
) -> int:
    if key not in config:
        if default is None:
            raise SpaceError(f"build_model({family!r}): config lacks {key!r}")
        return default
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpaceError(f"build_model({family!r}): {key}={value!r} must be an integer >= {minimum}")
    return value


def _compression(
    config: Mapping[str, Any], family: str, model_input: ModelInput
) -> tuple[_Quantization | None, float, float]:
    quant = None
    if config.get("quantize", False):
        quant = _Quantization(
            weight_bits=_int(config, "weight_bits", family, minimum=1),
            act_bits=_int(config, "act_bits", family, minimum=1),
            input_bits=_int(config, "input_bits", family, minimum=1, default=model_input.bits),
            output_bits=_int(config, "output_bits", family, minimum=1),
        )
    return quant, _real(config, "sparsity", family), _real(config, "l1", family)


def _real(config: Mapping[str, Any], key: str, family: str) -> float:
    value = config.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"build_model({family!r}): {key}={value!r} must be a number")
    return float(value)


def _units(config: Mapping[str, Any], count: str, prefix: str, family: str, *, minimum: int) -> list[int]:
    n_layers = _int(config, count, family, minimum=minimum, default=0 if minimum == 0 else None)
    return [_int(config, f"{prefix}{i}_units", family) for i in range(n_layers)]
