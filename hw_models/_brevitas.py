"""The "mirror" route: a Brevitas model becomes a plain torch twin plus exact fixed-point types.

hls4ml's PyTorch frontend accepts no Brevitas layer. The twin carries the quantized (integer times a
power-of-two scale) weights and biases, and every quantizer becomes an hls4ml precision: weights
``fixed<b, b-f, RND_CONV, SAT_SYM>``, signed activations ``fixed<b, b-f, RND_CONV, SAT>``, ReLU outputs
``ufixed<b, b-f, RND_CONV, SAT>`` for bit width b and scale 2^-f. Casting a wider exact value into such a
type rounds half to even and saturates, which is what Brevitas' RoundSte + clamp does, so the hls4ml
model computes the same numbers as the Brevitas forward pass.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from brevitas.core.quant import BinaryQuant, ClampedBinaryQuant, IntQuant
from brevitas.nn import QuantConv1d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.proxy.parameter_quant import BiasQuantProxyFromInjector
from brevitas.proxy.runtime_quant import ActQuantProxyFromInjector
from brevitas.quant_tensor import QuantTensor
from hls4ml.utils.torch import HLS4MLModule
from torch import nn

from ._errors import HWError, UnsupportedLayerError

logger = logging.getLogger(__name__)

SUPPORTED_BREVITAS = (QuantConv1d, QuantConv2d, QuantLinear, QuantReLU, QuantIdentity)
_WEIGHTED = (QuantConv1d, QuantConv2d, QuantLinear)
# Brevitas float-to-int functions and the ap_fixed quantisation mode that rounds the same way.
_ROUNDING = {"RoundSte": "RND_CONV", "FloorSte": "TRN", "RoundToZeroSte": "TRN_ZERO"}
# Float biases are stored exactly when they need at most this many fractional bits (float32 rarely needs more).
_MAX_BIAS_FRACTION_BITS = 40


@dataclass(frozen=True)
class FixedSpec:
    """A fixed-point type: `width` bits, value = integer * 2^-`frac`."""

    width: int
    frac: int
    signed: bool
    rounding: str = "RND_CONV"
    saturation: str = "SAT"

    def to_hls(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.width - self.frac},{self.rounding},{self.saturation}>"


class HwnasQuantCast(HLS4MLModule):
    """Stand-in for a Brevitas QuantIdentity: hls4ml turns it into a 'linear' activation whose output
    type performs the quantisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class Mirror:
    """The twin and the precisions to set on its layers (keyed by module path in the twin)."""

    twin: nn.Module
    precisions: dict[str, dict[str, str]]


def is_quantized(model: nn.Module) -> bool:
    """True when any submodule comes from brevitas.nn."""
    return any(type(module).__module__.startswith("brevitas.nn") for module in model.modules())


def build_mirror(model: nn.Module, input_shape: tuple[int, ...]) -> Mirror:
    """Copy `model` with every supported Brevitas layer replaced by its plain torch equivalent.

    Raises:
        UnsupportedLayerError: a Brevitas layer type other than QuantConv1d/2d, QuantLinear, QuantReLU,
            QuantIdentity.
        HWError: a quantizer that cannot be bit-exact in fixed point (non-power-of-two or per-channel
            scale, non-zero zero point, unknown rounding) or a weighted layer without weight quantizer.
    """
    observed = _observe_quantizers(model, input_shape)
    precisions: dict[str, dict[str, str]] = {}
    replacements: dict[int, nn.Module] = {}
    for path, module in model.named_modules():
        if not type(module).__module__.startswith("brevitas.nn"):
            continue
        if not isinstance(module, SUPPORTED_BREVITAS):
            names = ", ".join(cls.__name__ for cls in SUPPORTED_BREVITAS)
            raise UnsupportedLayerError(
                f"layer '{path}' ({type(module).__name__}) has no hls4ml equivalent; supported Brevitas "
                f"layer types: {names}"
            )
        replacements[id(module)] = _replace(module, path, observed, precisions)
    # Seeding deepcopy's memo with the replacements copies everything else and never the (large)
    # Brevitas modules themselves.
    return Mirror(copy.deepcopy(model, replacements), precisions)


def _replace(
    module: nn.Module, path: str, observed: dict[int, QuantTensor], precisions: dict[str, dict[str, str]]
) -> nn.Module:
    if isinstance(module, QuantIdentity):
        spec = _act_spec(module.act_quant, observed, path)
        if spec is None:
            return nn.Dropout(p=0.0)  # hls4ml skips Dropout: a disabled quantizer is a no-op
        precisions[path] = {"result": spec.to_hls()}
        return HwnasQuantCast()
    if isinstance(module, QuantReLU):
        spec = _act_spec(module.act_quant, observed, path)
        if spec is not None:
            precisions[path] = {"result": spec.to_hls()}
        return nn.ReLU()
    return _replace_weighted(
        cast(QuantConv1d | QuantConv2d | QuantLinear, module), path, observed, precisions
    )


def _replace_weighted(
    module: QuantConv1d | QuantConv2d | QuantLinear,
    path: str,
    observed: dict[int, QuantTensor],
    precisions: dict[str, dict[str, str]],
) -> nn.Module:
    plain, layer_precisions = _plain_weighted(module, path, observed.get(id(module.bias_quant)))
    in_spec = _act_spec(module.input_quant, observed, f"{path}.input_quant")
    out_spec = _act_spec(module.output_quant, observed, f"{path}.output_quant")
    if in_spec is None and out_spec is None:
        precisions[path] = layer_precisions
        return plain
    # Layer-level input/output quantizers become casts around the plain layer.
    parts: list[nn.Module] = []
    if in_spec is not None:
        precisions[f"{path}.{len(parts)}"] = {"result": in_spec.to_hls()}
        parts.append(HwnasQuantCast())
    precisions[f"{path}.{len(parts)}"] = layer_precisions
    parts.append(plain)
    if out_spec is not None:
        precisions[f"{path}.{len(parts)}"] = {"result": out_spec.to_hls()}
        parts.append(HwnasQuantCast())
    return nn.Sequential(*parts)


def _plain_weighted(
    module: QuantConv1d | QuantConv2d | QuantLinear, path: str, quant_bias: QuantTensor | None
) -> tuple[nn.Module, dict[str, str]]:
    if not module.weight_quant.is_quant_enabled:
        raise HWError(
            f"layer '{path}' ({type(module).__name__}) has no weight quantizer; bit-exact conversion needs "
            "one (e.g. weight_quant=Int8WeightPerTensorFixedPoint)"
        )
    quant_weight = module.quant_weight()
    weight_spec = _tensor_spec(quant_weight, f"{path}.weight_quant", module.weight_quant)
    precisions = {"weight": weight_spec.to_hls()}
    has_bias = module.bias is not None
    plain: nn.Linear | nn.Conv1d | nn.Conv2d
    if isinstance(module, QuantLinear):
        plain = nn.Linear(module.in_features, module.out_features, bias=has_bias)
    else:
        conv_class = nn.Conv1d if isinstance(module, QuantConv1d) else nn.Conv2d
        plain = conv_class(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=has_bias,
            padding_mode=module.padding_mode,
        )
    with torch.no_grad():
        plain.weight.copy_(quant_weight.value.detach())
        if module.bias is not None and plain.bias is not None:
            if quant_bias is not None:
                bias_spec = _tensor_spec(quant_bias, f"{path}.bias_quant", module.bias_quant)
                bias_values = quant_bias.value.detach()
            else:
                bias_values = module.bias.detach()
                bias_spec = _exact_spec(bias_values.double().numpy(), f"{path}.bias")
            plain.bias.copy_(bias_values)
            precisions["bias"] = bias_spec.to_hls()
    return plain, precisions


def _observe_quantizers(model: nn.Module, input_shape: tuple[int, ...]) -> dict[int, QuantTensor]:
    """id(quantizer proxy) -> its quantized output (scale, bit width, sign) in eval mode.

    Each activation quantizer runs alone on a zero tensor: its eval-mode scale does not depend on the
    data. A bias quantizer with its own scale quantizes the bias alone; one whose scale is the input
    scale times the weight scale (Int16Bias, ...) only knows it during a forward pass, so those take one
    eval forward pass of the whole model on zeros. Disabled quantizers are absent.
    """
    observed: dict[int, QuantTensor] = {}
    external_scale_biases: list[BiasQuantProxyFromInjector] = []
    for module in model.modules():
        if isinstance(module, ActQuantProxyFromInjector) and module.is_quant_enabled:
            _record(observed, module, _eval_call(module, torch.zeros(1)))
        elif isinstance(module, _WEIGHTED) and module.bias is not None and module.bias_quant.is_quant_enabled:
            if module.bias_quant.requires_input_scale:
                external_scale_biases.append(module.bias_quant)
            else:
                _record(observed, module.bias_quant, _eval_call(module.bias_quant, module.bias))
    if external_scale_biases:
        handles = [
            proxy.register_forward_hook(lambda proxy, _inputs, output: _record(observed, proxy, output))
            for proxy in external_scale_biases
        ]
        try:
            _eval_call(model, torch.zeros(1, *input_shape))
        except Exception as error:
            raise HWError(
                f"the model's forward pass failed on an input of shape {input_shape}: {error}"
            ) from error
        finally:
            for handle in handles:
                handle.remove()
    return observed


def _record(observed: dict[int, QuantTensor], proxy: nn.Module, output: object) -> None:
    if isinstance(output, QuantTensor):
        observed[id(proxy)] = output


def _eval_call(module: nn.Module, *inputs: torch.Tensor) -> object:
    """Call `module` in eval mode without gradients (a training-mode call would update runtime statistics),
    then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(*inputs)
    finally:
        module.train(was_training)


def _act_spec(
    proxy: ActQuantProxyFromInjector, observed: dict[int, QuantTensor], where: str
) -> FixedSpec | None:
    """Fixed-point type of an activation quantizer, or None when it is disabled."""
    output = observed.get(id(proxy))
    return _tensor_spec(output, where, proxy, activation=True) if output is not None else None


def _tensor_spec(value: QuantTensor, where: str, proxy: nn.Module, *, activation: bool = False) -> FixedSpec:
    """Fixed-point type of a quantizer's output. Weights and biases are copied exactly, so only an
    activation's type must also round the way Brevitas does."""
    quantizer = _quantizer_name(proxy)
    if value.zero_point is not None and torch.any(value.zero_point != 0):
        raise HWError(
            f"quantizer '{where}' ({quantizer}) has a non-zero zero point; only symmetric quantizers are bit-exact"
        )
    if not activation and any(isinstance(m, BinaryQuant | ClampedBinaryQuant) for m in proxy.modules()):
        # Binary weights are +-2^-f: two's complement needs 2 bits for them (fixed<2, 2-f> holds -2s..s).
        return FixedSpec(width=2, frac=_power_of_two_frac(value.scale, where, quantizer), signed=True)
    int_quant = _int_quant(proxy, where)
    signed = bool(value.signed)
    return FixedSpec(
        width=int(value.bit_width),
        frac=_power_of_two_frac(value.scale, where, quantizer),
        signed=signed,
        rounding=_rounding(int_quant, where) if activation else "RND_CONV",
        saturation="SAT_SYM" if int_quant.narrow_range and signed else "SAT",
    )


def _quantizer_name(proxy: nn.Module) -> str:
    injector = getattr(proxy, "quant_injector", None)
    return getattr(injector, "__name__", type(proxy).__name__)


def _int_quant(proxy: nn.Module, where: str) -> IntQuant:
    for module in proxy.modules():
        if isinstance(module, IntQuant):
            return module
    raise HWError(
        f"quantizer '{where}' is not an integer quantizer; supported: IntQuant-based quantizers, and binary "
        "ones for weights"
    )


def _rounding(int_quant: IntQuant, where: str) -> str:
    name = type(int_quant.float_to_int_impl).__name__
    if name not in _ROUNDING:
        raise HWError(
            f"quantizer '{where}' rounds with {name}, which no ap_fixed mode reproduces; "
            f"allowed: {', '.join(_ROUNDING)}"
        )
    return _ROUNDING[name]


def _power_of_two_frac(scale: torch.Tensor, where: str, quantizer: str) -> int:
    """Return f for a per-tensor scale of exactly 2^-f."""
    if scale.numel() != 1:
        raise HWError(
            f"quantizer '{where}' ({quantizer}) has {scale.numel()} scales (per-channel); only per-tensor "
            "power-of-two quantizers such as Int8WeightPerTensorFixedPoint are bit-exact in hls4ml"
        )
    value = float(scale.detach().reshape(()))
    mantissa, exponent = math.frexp(value)
    if mantissa != 0.5:
        raise HWError(
            f"quantizer '{where}' ({quantizer}) has scale {value:.6g}, not a power of two: hls4ml's fixed-point "
            "types cannot reproduce it bit-exactly; use a power-of-two quantizer (Int8WeightPerTensorFixedPoint, "
            "Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint)"
        )
    return 1 - exponent


def _exact_spec(values: np.ndarray, where: str) -> FixedSpec:
    """Smallest signed fixed-point type holding every float value exactly (float biases)."""
    if not np.all(np.isfinite(values)):
        raise HWError(f"'{where}' holds non-finite values; they have no fixed-point representation")

    def exact_with(frac: int) -> bool:
        scaled = np.ldexp(values, frac)
        return bool(np.all(scaled == np.round(scaled)))

    frac = next((bits for bits in range(_MAX_BIAS_FRACTION_BITS + 1) if exact_with(bits)), None)
    if frac is None:
        logger.warning(
            "'%s' needs more than %d fractional bits; it is rounded, so the conversion is not bit-exact",
            where,
            _MAX_BIAS_FRACTION_BITS,
        )
        frac = _MAX_BIAS_FRACTION_BITS
    magnitude = float(np.max(np.abs(values))) if values.size else 0.0
    integer_bits = max(1, math.floor(math.log2(magnitude)) + 2) if magnitude > 0 else 1
    return FixedSpec(width=integer_bits + frac, frac=frac, signed=True)
