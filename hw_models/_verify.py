"""Bit-accurate comparison of an hls4ml C++ emulation with the torch / Brevitas forward pass."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from brevitas.quant_tensor import QuantTensor
from hls4ml.model import ModelGraph
from torch import nn

from ._brevitas import is_quantized
from ._convert import hls4ml_output
from ._errors import HWError
from ._settings import parse_precision

logger = logging.getLogger(__name__)

# A float model runs at default_precision in hls4ml (truncating casts, quantized weights): allow this
# many LSBs of that precision. A structural mistake (a wrong layout) shows errors of the output's size.
FLOAT_TOLERANCE_LSBS = 64


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_bit_exact`.

    Attributes:
        exact: every output identical.
        max_abs_error: largest |torch - hls4ml| (NaN when either side produced a non-finite value).
        identical_share: fraction of outputs that are identical.
        n_outputs: number of compared output values (samples x outputs).
        tolerance: the tolerance applied.
        passed: max_abs_error <= tolerance.
    """

    exact: bool
    max_abs_error: float
    identical_share: float
    n_outputs: int
    tolerance: float
    passed: bool


def verify_bit_exact(
    model: nn.Module, hls_model: ModelGraph, x: np.ndarray | torch.Tensor, *, tolerance: float | None = None
) -> VerifyReport:
    """Compile `hls_model` (g++ only, 5-10 s; skipped when already compiled), run it on `x` and compare
    with `model`'s eval forward pass.

    Args:
        model: the torch / Brevitas model `hls_model` was converted from (see ``to_hls4ml``).
        hls_model: its hls4ml graph.
        x: inputs in torch layout (N, *input_shape); transposed to channels-last for hls4ml as needed.
        tolerance: largest accepted absolute error. Default: 0 for Brevitas models (every output must
            be identical), 64 LSBs of the graph's default precision for float models.

    Raises:
        HWError: bad tolerance or input shape, a compile failure, or output shapes that do not match.
    """
    tolerance = _tolerance(model, hls_model, tolerance)
    inputs = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if inputs.ndim < 2 or inputs.shape[0] < 1:
        raise HWError(f"x has shape {inputs.shape}; expected (N, *input_shape) with N >= 1")
    expected = _torch_outputs(model, inputs)
    channels_last = _model_config(hls_model).get("ChannelsLastConversion", "off") == "internal"
    hls_inputs = np.moveaxis(inputs, 1, -1) if channels_last and inputs.ndim > 2 else inputs
    if channels_last and expected.ndim > 2:
        expected = np.moveaxis(expected, 1, -1)
    expected = expected.reshape(len(inputs), -1)
    _compile(hls_model)
    with hls4ml_output():
        predicted = np.asarray(hls_model.predict(np.ascontiguousarray(hls_inputs)), dtype=np.float64)
    predicted = predicted.reshape(len(inputs), -1)
    if predicted.shape != expected.shape:
        raise HWError(
            f"hls4ml output shape {predicted.shape} differs from the model's {expected.shape} (flattened per sample)"
        )
    identical = predicted == expected
    finite = bool(np.all(np.isfinite(predicted)) and np.all(np.isfinite(expected)))
    max_error = float(np.max(np.abs(predicted - expected))) if finite else math.nan
    report = VerifyReport(
        exact=bool(np.all(identical)),
        max_abs_error=max_error,
        identical_share=float(np.mean(identical)),
        n_outputs=int(identical.size),
        tolerance=tolerance,
        passed=finite and max_error <= tolerance,
    )
    logger.info("verify: %s", report)
    return report


def _tolerance(model: nn.Module, hls_model: ModelGraph, tolerance: float | None) -> float:
    if tolerance is None:
        if is_quantized(model):
            return 0.0
        width, integer = parse_precision(hls_model.config.model_precision["default"])
        return FLOAT_TOLERANCE_LSBS * 2.0 ** (integer - width)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance >= 0:
        raise HWError(f"tolerance = {tolerance!r} is invalid; allowed: a number >= 0 or None")
    return float(tolerance)


def _torch_outputs(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.as_tensor(inputs, dtype=torch.float32))
    finally:
        model.train(was_training)
    if isinstance(output, QuantTensor):
        output = output.value
    return output.detach().cpu().double().numpy()


def _model_config(hls_model: ModelGraph) -> dict[str, Any]:
    return hls_model.config.get_config_value("HLSConfig", {}).get("Model", {})


def _compile(hls_model: ModelGraph) -> None:
    # ModelGraph has no public "is compiled" flag; its loaded library handle is the only sign.
    if getattr(hls_model, "_top_function_lib", None) is not None:
        return
    try:
        with hls4ml_output():
            hls_model.compile()
    except Exception as error:  # hls4ml raises bare Exception when g++ fails
        raise HWError(
            f"compiling the hls4ml project in {hls_model.config.get_output_dir()} failed (needs g++): {error}"
        ) from error
