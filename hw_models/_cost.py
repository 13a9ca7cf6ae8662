"""Hardware cost ESTIMATES computed from an hls4ml ModelGraph (no synthesis tool involved).

Formula version ``hwnas-cost/2`` (1: binary products at 2 bits). Notation per Dense/Conv layer: N_in, N_out = kernel fan-in/fan-out
(Dense: n_in, n_out; Conv: n_chan*kernel, n_filt), P = output pixels (1 for Dense), nz = non-zero weights,
f_p = 1 - nz/(N_in*N_out), b_w / b_a = weight / input bit width read from the graph (b_w = 1 in products for
a binary layer: 2-bit weights that are all +-s, as Brevitas' binary quantizer is held), RF = reuse factor.

=================  ===============================================================================
params             weights + biases; nonzero_params counts the non-zero ones
multiplications    P * nz
ops                2*P*N_in*N_out + P*N_out (bias): the float-op count of the ECON-T reference
                   (TF profiler, batch 1). Activations, pooling and reshapes are NOT included, as in
                   the reference: its encoder counts 6,544.
bops               P * N_out * N_in * ((1-f_p)*b_a*b_w + b_a + b_w + log2(N_in))  (Baskin et al.)
multipliers        ceil(N_in*N_out/RF) - floor((N_in*N_out - nz)/RF), times the conv parallelization
                   factor (hls4ml's multiplier_limit with pruned weights removed); 0 under the
                   distributed_arithmetic strategy
dsp                multipliers when b_w >= 9, else 0 (small products go to LUTs); 0 under the
                   distributed_arithmetic strategy (adder trees in LUTs, no multipliers)
lut                0.5 * (multipliers - dsp) * b_a * b_w: an uncalibrated heuristic (no vendor tool
                   here); use it to rank trials, not as a resource prediction. Under
                   distributed_arithmetic: da4ml's estimate of the layer's adder trees (hls4ml's
                   da_kernel_cost), times the conv parallelization factor
bram               ceil(N_in*N_out*b_w / (RF*36)) under the Resource strategy with RF > 1, else 0
ii, latency        Dense: II = RF; Conv io_parallel: II = n_partitions*RF; Conv io_stream:
                   II = padded H_in*W_in*RF; latency = II + adder-tree depth + 2, the depth being
                   ceil(ceil(log2 N_in)/k) with k = clamp(floor(clock_ns/2), 1, 3) adder levels per
                   cycle. Activations: 1 cycle (io_stream: one beat per pixel). Pooling: 1 + depth of
                   the comparator tree (io_stream: one beat per input pixel). Reshape/Transpose: free.
model              io_parallel: latency = sum of layers, II = max; io_stream (dataflow):
                   II = slowest stage, latency = II + sum of every stage's (latency - II).
latency_ns         latency_cycles * clock_period_ns
=================  ===============================================================================
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from hls4ml.model import ModelGraph
from hls4ml.model import layers as hls_layers
from torch import nn

from ._brevitas import is_quantized
from ._convert import check_settings, convert, kernel_weights
from ._errors import HWError, UnsupportedLayerError
from ._settings import DISTRIBUTED_ARITHMETIC, HWSettings

FORMULA_VERSION = "hwnas-cost/2"
COST_QUANTITIES = (
    "params",
    "nonzero_params",
    "multiplications",
    "ops",
    "bops",
    "multipliers",
    "dsp",
    "lut",
    "bram",
    "latency_cycles",
    "ii",
    "latency_ns",
)
_ADDITIVE = COST_QUANTITIES[:9]
LUT_PER_BIT_PRODUCT = 0.5
DSP_MIN_WEIGHT_BITS = 9
BRAM_WIDTH_BITS = 36
ADDER_LEVEL_NS = 2.0
# Kernel depth (multiply, output register) on top of the adder tree.
_KERNEL_PIPELINE_CYCLES = 2

_ACTIVATIONS = (hls_layers.Activation,)
_POOLING = (hls_layers.Pooling1D, hls_layers.Pooling2D)
_DATA_MOVEMENT = (
    hls_layers.Input,
    hls_layers.Reshape,
    hls_layers.Transpose,
    hls_layers.Resize,
    hls_layers.ZeroPadding1D,
    hls_layers.ZeroPadding2D,
    hls_layers.Concatenate,
)
_COSTED = (
    "Dense",
    "Conv1D",
    "Conv2D",
    "Activation",
    "Pooling1D/2D",
    "Reshape",
    "Transpose",
    "Resize",
    "ZeroPadding",
    "Concatenate",
    "Input",
)


@dataclass(frozen=True)
class LayerCost:
    """Estimated cost of one hls4ml layer (see the module docstring for every formula)."""

    name: str
    class_name: str
    n_in: int
    n_out: int
    pixels: int
    reuse_factor: int
    strategy: str
    weight_bits: int
    input_bits: int
    output_bits: int
    params: int
    nonzero_params: int
    multiplications: int
    ops: int
    bops: float
    multipliers: int
    dsp: int
    lut: float
    bram: int
    latency_cycles: int
    ii: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CostReport:
    """Per-layer and total hardware cost ESTIMATES of one model (heuristics for ranking trials; no
    synthesis was run).

    Attributes:
        layers: one LayerCost per hls4ml layer, in graph order.
        totals: every name in COST_QUANTITIES -> model total.
        settings: the HWSettings the estimate was made for.
        quantized: whether bit widths came from Brevitas quantizers (else from default_precision).
        formula_version: version of the formulas, so stored reports stay comparable.
        is_estimate: always True.
    """

    layers: tuple[LayerCost, ...]
    totals: dict[str, float]
    settings: HWSettings
    quantized: bool
    formula_version: str = FORMULA_VERSION
    is_estimate: bool = True

    def value(self, name: str) -> float:
        """Total of one quantity.

        Raises:
            HWError: `name` is not in COST_QUANTITIES.
        """
        if name not in self.totals:
            raise HWError(f"unknown cost quantity {name!r}; allowed: {', '.join(COST_QUANTITIES)}")
        return self.totals[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (inverse: :meth:`from_dict`)."""
        return {
            "formula_version": self.formula_version,
            "is_estimate": self.is_estimate,
            "quantized": self.quantized,
            "settings": self.settings.to_dict(),
            "totals": dict(self.totals),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostReport:
        """Rebuild a report from :meth:`to_dict` output.

        Raises:
            HWError: a missing key or a malformed layer or settings entry.
        """
        required = ("formula_version", "quantized", "settings", "totals", "layers")
        missing = [key for key in required if key not in data]
        if missing:
            raise HWError(f"cost report dict lacks keys {missing}; required: {list(required)}")
        layer_fields = {field.name for field in fields(LayerCost)}
        layers = []
        for index, layer in enumerate(data["layers"]):
            if set(layer) != layer_fields:
                raise HWError(
                    f"layer {index} of the cost report has keys {sorted(layer)}; expected {sorted(layer_fields)}"
                )
            layers.append(LayerCost(**layer))
        return cls(
            layers=tuple(layers),
            totals={str(name): float(value) for name, value in data["totals"].items()},
            settings=HWSettings.from_dict(dict(data["settings"])),
            quantized=bool(data["quantized"]),
            formula_version=str(data["formula_version"]),
        )


def estimate(
    model: nn.Module,
    input_shape: Sequence[int],
    settings: HWSettings | None = None,
    *,
    precisions: Mapping[str, Mapping[str, str]] | None = None,
) -> CostReport:
    """Convert `model` with :func:`to_hls4ml` (no compile, nothing written) and cost its graph.

    Cheap enough for every trial (well under 0.2 s per encoder of the built-in spaces; measured in
    benchmarks/hw_cost.txt). Float models use
    ``settings.default_precision`` for every bit width (or the per-layer ``precisions``, as in
    :func:`to_hls4ml`); Brevitas models their quantizers' widths.
    The figures are ESTIMATES (formulas in this module's docstring), not synthesis results.

    Raises:
        UnsupportedLayerError: a layer hls4ml cannot convert or these formulas do not cover.
        HWError: bad input shape or settings, or a quantizer that cannot be bit-exact.
    """
    settings = check_settings(settings)
    with tempfile.TemporaryDirectory(prefix="hwnas-estimate-") as scratch:
        graph = convert(model, input_shape, settings, str(Path(scratch) / "hls4ml"), precisions)
    return cost_of_graph(graph, settings, quantized=is_quantized(model))


def cost_of_graph(graph: ModelGraph, settings: HWSettings, *, quantized: bool) -> CostReport:
    """Cost an already converted graph (the formulas of this module's docstring)."""
    levels_per_cycle = min(3, max(1, math.floor(settings.clock_period_ns / ADDER_LEVEL_NS)))
    stream = settings.io_type == "io_stream"
    layers = tuple(_layer_cost(layer, levels_per_cycle, stream) for layer in graph.get_layers())
    totals: dict[str, float] = {
        name: float(sum(getattr(layer, name) for layer in layers)) for name in _ADDITIVE
    }
    ii = max((layer.ii for layer in layers), default=1)
    if stream:
        latency = ii + sum(layer.latency_cycles - layer.ii for layer in layers if layer.latency_cycles > 0)
    else:
        latency = sum(layer.latency_cycles for layer in layers)
    totals["ii"] = float(ii)
    totals["latency_cycles"] = float(latency)
    totals["latency_ns"] = latency * settings.clock_period_ns
    return CostReport(layers=layers, totals=totals, settings=settings, quantized=quantized)


def _layer_cost(layer: hls_layers.Layer, levels_per_cycle: int, stream: bool) -> LayerCost:
    output_shape = [int(dim) for dim in layer.get_output_variable().shape]
    output_bits = _width(layer.get_output_variable())
    input_variable = layer.get_input_variable() if layer.inputs else None
    input_bits = _width(input_variable) if input_variable is not None else output_bits
    base = {
        "name": layer.name,
        "class_name": layer.class_name,
        "reuse_factor": int(layer.get_attr("reuse_factor", 1)),
        "strategy": str(layer.get_attr("strategy", "")),
        "input_bits": input_bits,
        "output_bits": output_bits,
    }
    if isinstance(layer, hls_layers.Dense | hls_layers.Conv1D | hls_layers.Conv2D) and not isinstance(
        layer, hls_layers.DepthwiseConv1D | hls_layers.DepthwiseConv2D
    ):
        return _kernel_cost(layer, base, levels_per_cycle, stream)
    beats = math.prod(output_shape[:-1]) if stream and len(output_shape) > 1 else 1
    if isinstance(layer, _ACTIVATIONS):
        return _free_layer(base, output_shape, latency=beats + 1 if stream else 1, ii=beats)
    if isinstance(layer, _POOLING):
        pool_size = int(layer.get_attr("pool_height", 1)) * int(layer.get_attr("pool_width", 1))
        input_beats = math.prod(int(dim) for dim in layer.get_input_variable().shape[:-1]) if stream else 1
        depth = _tree_depth(pool_size, levels_per_cycle)
        return _free_layer(
            base, output_shape, latency=input_beats + depth if stream else 1 + depth, ii=input_beats
        )
    if isinstance(layer, _DATA_MOVEMENT):
        return _free_layer(base, output_shape, latency=0, ii=1)
    raise UnsupportedLayerError(
        f"hls4ml layer '{layer.name}' ({layer.class_name}) is not covered by the cost formulas; covered: "
        f"{', '.join(_COSTED)}"
    )


def _kernel_cost(
    layer: hls_layers.Layer, base: dict[str, Any], levels_per_cycle: int, stream: bool
) -> LayerCost:
    weights, bias = kernel_weights(layer)
    has_bias = bias is not None
    if isinstance(layer, hls_layers.Dense):
        fan_in, fan_out, pixels = int(layer.get_attr("n_in")), int(layer.get_attr("n_out")), 1
        parallel, partitions, stream_beats = 1, 1, 1
    else:
        kernel = int(layer.get_attr("filt_width")) * int(layer.get_attr("filt_height", 1))
        fan_in, fan_out = int(layer.get_attr("n_chan")) * kernel, int(layer.get_attr("n_filt"))
        pixels = int(layer.get_attr("out_width")) * int(layer.get_attr("out_height", 1))
        parallel = int(layer.get_attr("parallelization_factor", 1))
        partitions = int(layer.get_attr("n_partitions", pixels))
        padded_width = (
            int(layer.get_attr("in_width"))
            + int(layer.get_attr("pad_left", 0))
            + int(layer.get_attr("pad_right", 0))
        )
        padded_height = (
            int(layer.get_attr("in_height", 1))
            + int(layer.get_attr("pad_top", 0))
            + int(layer.get_attr("pad_bottom", 0))
        )
        stream_beats = padded_width * padded_height
    reuse = base["reuse_factor"]
    weight_bits = int(weights.type.precision.width)
    # fixed<2> is how a binary layer's +-s weights are held; a product with a sign is 1 bit wide.
    magnitudes = np.abs(np.asarray(weights.data)).ravel()
    binary = (
        weight_bits == 2
        and magnitudes.size > 0
        and magnitudes[0] > 0
        and bool(np.all(magnitudes == magnitudes[0]))
    )
    product_bits = 1 if binary else weight_bits
    input_bits = base["input_bits"]
    synapses = fan_in * fan_out
    nonzero = int(weights.nonzeros)
    kept = nonzero / synapses
    multipliers = (math.ceil(synapses / reuse) - (synapses - nonzero) // reuse) * parallel
    distributed = base["strategy"] == DISTRIBUTED_ARITHMETIC
    dsp = multipliers if weight_bits >= DSP_MIN_WEIGHT_BITS and not distributed else 0
    da_cost = layer.get_attr("da_kernel_cost")  # da4ml's LUT estimate of one kernel instance
    if distributed and da_cost is not None:  # adder trees of shifted inputs: no multiplier at all
        multipliers, lut = 0, float(da_cost) * parallel
    else:
        lut = LUT_PER_BIT_PRODUCT * (multipliers - dsp) * input_bits * product_bits
    resource = base["strategy"].lower() == "resource"
    if isinstance(layer, hls_layers.Dense):
        ii = reuse
    elif stream:
        ii = stream_beats * reuse
    else:
        ii = partitions * reuse
    return LayerCost(
        **base,
        n_in=fan_in,
        n_out=fan_out,
        pixels=pixels,
        weight_bits=weight_bits,
        params=int(weights.data.size) + (int(bias.data.size) if bias is not None else 0),
        nonzero_params=nonzero + (int(np.count_nonzero(bias.data)) if bias is not None else 0),
        multiplications=pixels * nonzero,
        ops=2 * pixels * synapses + (pixels * fan_out if has_bias else 0),
        bops=pixels
        * synapses
        * (kept * input_bits * product_bits + input_bits + product_bits + math.log2(fan_in)),
        multipliers=multipliers,
        dsp=dsp,
        lut=lut,
        bram=math.ceil(synapses * weight_bits / (reuse * BRAM_WIDTH_BITS)) if resource and reuse > 1 else 0,
        latency_cycles=ii + _tree_depth(fan_in, levels_per_cycle) + _KERNEL_PIPELINE_CYCLES,
        ii=ii,
    )


def _free_layer(base: dict[str, Any], output_shape: list[int], *, latency: int, ii: int) -> LayerCost:
    """A layer without multiplications (activation, pooling, data movement)."""
    width = math.prod(output_shape)
    return LayerCost(
        **base,
        n_in=width,
        n_out=width,
        pixels=1,
        weight_bits=0,
        params=0,
        nonzero_params=0,
        multiplications=0,
        ops=0,
        bops=0.0,
        multipliers=0,
        dsp=0,
        lut=0.0,
        bram=0,
        latency_cycles=latency,
        ii=ii,
    )


def _tree_depth(leaves: int, levels_per_cycle: int) -> int:
    """Cycles of a balanced reduction tree over `leaves` inputs."""
    return math.ceil(math.ceil(math.log2(leaves)) / levels_per_cycle) if leaves > 1 else 0


def _width(variable: Any) -> int:
    return int(variable.type.precision.width)
