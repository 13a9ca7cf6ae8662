"""Measured CPU inference time of the on-chip part: ONNX export, then ONNX Runtime on one thread.

Unlike every other cost here this is a MEASUREMENT and depends on the machine (CPU, clock, load, the
ONNX Runtime build): :class:`CpuLatency` carries the machine and versions it was measured with. A
Brevitas model is measured through its plain torch mirror (the quantized weights in float32): ONNX Runtime
has no kernels for arbitrary bit widths, so a quantized network runs as fast as a float one of its shape.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._brevitas import build_mirror, is_quantized
from ._errors import HWError

CPU_QUANTITIES = ("onnx_cpu_us", "onnx_cpu_us_b256")
# Fixed run counts, so figures of one sweep are comparable: (batch, warm-up calls, timed calls).
_PLANS = ((1, 50, 300), (256, 5, 40))
_OPSET = 17


def onnxruntime_problem() -> str | None:
    """Why CPU latency cannot be measured here (onnxruntime not importable), or None."""
    try:
        found = importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):  # a module blocked or half-installed
        found = False
    if found:
        return None
    return "onnxruntime is not installed in this environment (pip install onnxruntime)"


@dataclass(frozen=True)
class CpuLatency:
    """Median wall time of one ONNX Runtime call on one thread: ``onnx_cpu_us`` at batch 1 (microseconds
    per event) and ``onnx_cpu_us_b256`` per event at batch 256, with what makes the figures
    machine-dependent."""

    onnx_cpu_us: float
    onnx_cpu_us_b256: float
    runs: dict[str, int]
    machine: str
    onnxruntime: str
    threads: int = 1
    machine_dependent: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The ONNX model (opset 17, dynamic batch) of ``model`` in eval mode; a Brevitas model is exported
    through its float mirror. Raises HWError when torch cannot export it."""
    twin = build_mirror(model, input_shape).twin if is_quantized(model) else model
    was_training = twin.training
    twin.eval()
    directory = tempfile.mkdtemp(prefix="hwnas-onnx-")
    path = Path(directory) / "model.onnx"
    try:
        torch.onnx.export(
            twin,
            (torch.zeros(1, *input_shape),),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,  # the TorchScript exporter: much faster for tiny models, no onnxscript pass
        )
        return path.read_bytes()
    except Exception as exc:  # torch raises many types for unexportable modules
        raise HWError(f"torch.onnx could not export the model: {exc}") from exc
    finally:
        twin.train(was_training)
        shutil.rmtree(directory, ignore_errors=True)


def measure_cpu_latency(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[CpuLatency, bytes]:
    """Export ``model`` to ONNX and time it in ONNX Runtime (CPU provider, one intra- and inter-op thread,
    sequential execution, full graph optimisation): the median of a fixed number of calls after warm-up,
    at batch 1 and at batch 256 (divided by 256). Returns the figures and the ONNX bytes.

    Raises HWError when onnxruntime is missing or the model cannot be exported or run.
    """
    problem = onnxruntime_problem()
    if problem is not None:
        raise HWError(problem)
    import onnxruntime as ort

    payload = export_onnx(model, input_shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise HWError(f"onnxruntime could not load the exported model: {exc}") from exc
    rng = np.random.default_rng(0)
    per_event: list[float] = []
    runs: dict[str, int] = {}
    for batch, warmup, timed in _PLANS:
        feed = {"x": rng.random((batch, *input_shape), dtype=np.float32)}
        for _ in range(warmup):
            session.run(None, feed)
        samples = []
        for _ in range(timed):
            start = time.perf_counter_ns()
            session.run(None, feed)
            samples.append(time.perf_counter_ns() - start)
        per_event.append(statistics.median(samples) / 1000 / batch)
        runs[f"batch{batch}"] = timed
    machine = f"{platform.machine()} {platform.processor() or platform.node()} ({platform.system()})"
    return CpuLatency(per_event[0], per_event[1], runs, machine, ort.__version__), payload
