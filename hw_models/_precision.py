"""Per-layer fixed-point precisions for a float model, chosen from its weights and profiled activations.

One fixed-point type per tensor: the integer bits come from the largest magnitude the tensor holds (weights
and biases from the trained values, layer outputs from a forward pass over sample inputs), the rest of a
common ``width`` is fraction. Every type rounds (``RND``) and saturates (``SAT``): an input beyond the
profiled range is clipped instead of wrapping around. Accumulators stay hls4ml's ``auto`` (exact: wide
enough for every product sum), so the only rounding happens where a value is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hls4ml.utils.torch import CustomFXTracer
from torch import fx, nn

from ._brevitas import is_quantized
from ._errors import HWError

# Narrower than this leaves a tensor with (almost) no fraction bits; wider than hls4ml's largest useful type.
MIN_WIDTH, MAX_WIDTH = 4, 64


@dataclass(frozen=True)
class TensorRange:
    """Largest |value| of one tensor and whether it can be negative."""

    max_abs: float
    signed: bool


def profile_ranges(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, TensorRange]]:
    """hls4ml layer name -> tensor ("result", "weight", "bias") -> its range over the inputs ``x``.

    Layer names are the torch.fx node names, which hls4ml's PyTorch frontend gives its layers.

    Raises:
        HWError: a quantized (Brevitas) model, whose types come from its quantizers, or a failing forward pass.
    """
    if is_quantized(model):
        raise HWError("profile_ranges takes a float model; a Brevitas model's precisions are its quantizers'")
    graph = CustomFXTracer().trace(model)
    ranges: dict[str, dict[str, TensorRange]] = {}

    class _Recorder(fx.Interpreter):
        def run_node(self, node: fx.Node) -> Any:
            value = super().run_node(node)
            weighted = False
            if node.op == "call_module":
                module = self.module.get_submodule(str(node.target))
                for tensor in ("weight", "bias"):
                    parameter = getattr(module, tensor, None)
                    if isinstance(parameter, torch.Tensor):
                        ranges.setdefault(node.name, {})[tensor] = _range(parameter)
                        weighted = True
            if node.op != "output" and isinstance(value, torch.Tensor) and value.is_floating_point():
                # A weighted layer's output is signed even where the sample inputs never made it negative.
                ranges.setdefault(node.name, {})["result"] = _range(value, signed=weighted or None)
            return value

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _Recorder(fx.GraphModule(model, graph)).run(torch.as_tensor(x, dtype=torch.float32))
    except Exception as error:
        raise HWError(f"profiling the model's forward pass failed: {error}") from error
    finally:
        model.train(was_training)
    return ranges


def fixed_type(value_range: TensorRange, width: int) -> str:
    """The ``width``-bit rounding, saturating type with just enough integer bits for ``value_range``.

    Raises:
        HWError: ``width`` outside MIN_WIDTH..MAX_WIDTH.
    """
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise HWError(f"width = {width!r} is invalid; allowed: an integer from {MIN_WIDTH} to {MAX_WIDTH}")
    magnitude = value_range.max_abs
    # Integer bits (sign included) so that the largest magnitude is below the type's maximum.
    integer = math.floor(math.log2(magnitude)) + 1 if magnitude > 0 else 0
    integer = max(integer + value_range.signed, 1)
    kind = "fixed" if value_range.signed else "ufixed"
    return f"{kind}<{width},{integer},RND,SAT>"


def layer_precisions(ranges: dict[str, dict[str, TensorRange]], width: int) -> dict[str, dict[str, str]]:
    """:func:`fixed_type` of every profiled tensor, as hls4ml per-layer ``Precision`` entries."""
    return {
        layer: {tensor: fixed_type(value_range, width) for tensor, value_range in tensors.items()}
        for layer, tensors in ranges.items()
    }


def _range(tensor: torch.Tensor, *, signed: bool | None = None) -> TensorRange:
    values = tensor.detach().double().cpu().numpy()
    finite = values[np.isfinite(values)]
    return TensorRange(
        max_abs=float(np.max(np.abs(finite))) if finite.size else 0.0,
        signed=signed if signed is not None else bool(np.any(finite < 0)),
    )
