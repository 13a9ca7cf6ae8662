"""Hardware cost of a model from its hls4ml model graph, and bit-accurate verification.

All cost figures are ESTIMATES computed from the hls4ml ModelGraph with documented formulas (no
synthesis tool runs); they rank trials, they do not replace a vendor report. The one measurement,
`measure_cpu_latency` (ONNX Runtime on one CPU thread), depends on the machine it runs on.

Example:
    >>> report = estimate(model.encoder, (1, 8, 8), HWSettings(reuse_factor=2))
    >>> report.value("ops"), Budget.parse("bops <= 50000").check(report)
"""

from ._budget import Budget
from ._convert import hls4ml_output, supported_layer_types, to_hls4ml
from ._cost import COST_QUANTITIES, FORMULA_VERSION, CostReport, LayerCost, cost_of_graph, estimate
from ._cpu import CPU_QUANTITIES, CpuLatency, measure_cpu_latency, onnxruntime_problem
from ._errors import HWError, UnsupportedLayerError
from ._precision import TensorRange, fixed_type, layer_precisions, profile_ranges
from ._settings import DISTRIBUTED_ARITHMETIC, HWSettings, parse_precision
from ._verify import VerifyReport, verify_bit_exact

__all__ = [
    "COST_QUANTITIES",
    "CPU_QUANTITIES",
    "DISTRIBUTED_ARITHMETIC",
    "FORMULA_VERSION",
    "Budget",
    "CostReport",
    "CpuLatency",
    "HWError",
    "HWSettings",
    "LayerCost",
    "TensorRange",
    "UnsupportedLayerError",
    "VerifyReport",
    "cost_of_graph",
    "estimate",
    "fixed_type",
    "hls4ml_output",
    "layer_precisions",
    "measure_cpu_latency",
    "onnxruntime_problem",
    "parse_precision",
    "profile_ranges",
    "supported_layer_types",
    "to_hls4ml",
    "verify_bit_exact",
]
