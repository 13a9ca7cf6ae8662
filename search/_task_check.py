"""Does a task work end to end? Data, model, one training batch, hls4ml cost path and metrics, checked
once on a few rows, before any trial runs (``hwnas task check``; ``sweep validate/launch`` of a plugin).

Every failure is one :class:`TaskCheckError` naming the step and the problem: unreadable data, a config the
family cannot build, a loss that is not a finite scalar, an on-chip layer hls4ml cannot convert (named,
with the supported types), metrics that are missing, extra, NaN or not one number each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

CHECK_ROWS = 200
_BATCH = 16


class TaskCheckError(ValueError):
    """The task fails a step of the check; the message names the task, the step and the problem."""


@dataclass(frozen=True)
class TaskCheck:
    """What the check saw: the config used, parameters, cost totals of the on-chip part, the metrics."""

    task: str
    source: str
    config: dict[str, Any]
    params: int
    loss: float
    costs: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def task_preset(task: Any) -> dict[str, Any] | None:
    """The config a task declares as its reference model (``preset``: a preset name or a mapping)."""
    preset = getattr(task, "preset", None)
    if preset is None:
        return None
    if isinstance(preset, str):
        from spaces import get_preset

        return get_preset(preset)
    return dict(preset)


def metric_problem(task: Any, metrics: Any) -> str | None:
    """Why ``evaluate``'s result breaks the Task API (keys = metric_directions, one non-NaN number each)."""
    if not isinstance(metrics, Mapping):
        return f"evaluate returned {type(metrics).__name__}, not a mapping of metric name -> number"
    declared = list(task.metric_directions)
    missing = [name for name in declared if name not in metrics]
    extra = [name for name in metrics if name not in declared]
    if missing or extra:
        return (
            f"evaluate returned metrics {sorted(metrics)}; declared metric_directions {declared}"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (undeclared {', '.join(map(str, extra))})" if extra else "")
        )
    for name, value in metrics.items():
        shape = tuple(np.shape(value))
        if shape not in ((), (1,)) or isinstance(value, bool | str):
            return f"metric {name!r} has shape {shape} ({type(value).__name__}); expected one number"
        number = float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
        if math.isnan(number):
            return f"metric {name!r} is NaN (a NaN metric would fail every trial)"
    return None


def check_task(
    task: Any,
    *,
    config: Mapping[str, Any] | None = None,
    data: str = "synthetic",
    hardware: Any = None,
    seed: int = 0,
    rows: int = CHECK_ROWS,
) -> TaskCheck:
    """Run the task once on ``rows`` rows of ``data`` with ``config`` (default: the task's preset).

    Raises TaskCheckError (one message, naming the step) at the first step that fails.
    """
    from hw_models import HWError, HWSettings, estimate

    where = f"task {task.name!r}"
    if config is None:
        config = task_preset(task)
        if config is None:
            raise TaskCheckError(f"{where}: no config to build: the task declares no preset; give one")
    try:
        prepared = task.prepare(data, rows=rows, seed=seed, val_rows=None)
    except Exception as exc:
        raise TaskCheckError(f"{where}: data {data!r}: {type(exc).__name__}: {exc}") from None
    try:
        model = task.build_model(config)
    except Exception as exc:
        raise TaskCheckError(f"{where}: build_model failed: {type(exc).__name__}: {exc}") from None
    try:
        batch = prepared.train_x[:_BATCH]
        loss = task.loss(model(batch), prepared.train_targets[:_BATCH])
    except Exception as exc:
        raise TaskCheckError(f"{where}: one training batch failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not torch.isfinite(loss).all():
        raise TaskCheckError(f"{where}: the loss of one batch must be a finite scalar tensor, got {loss!r}")
    loss.backward()
    settings = HWSettings.from_dict(hardware.model_dump()) if hardware is not None else HWSettings()
    try:
        costed = model.prune_nodes() if getattr(model, "gated", False) else model  # node pruning's result
        report = estimate(task.on_chip(costed), task.input_shape, settings)
    except HWError as exc:
        raise TaskCheckError(f"{where}: its on-chip model cannot be costed: {exc}") from None
    try:
        metrics = task.evaluate(model, prepared)
    except Exception as exc:
        raise TaskCheckError(f"{where}: evaluate failed: {type(exc).__name__}: {exc}") from None
    problem = metric_problem(task, metrics)
    if problem is not None:
        raise TaskCheckError(f"{where}: {problem}")
    return TaskCheck(
        task=task.name,
        source=prepared.source,
        config=dict(config),
        params=sum(p.numel() for p in model.parameters()),
        loss=float(loss.detach()),
        costs={k: float(v) for k, v in report.totals.items()},
        metrics={k: float(np.asarray(v).reshape(-1)[0]) for k, v in metrics.items()},
    )


def is_builtin(task: Any) -> bool:
    """Whether the task ships with hwnas (the test suite checks those; user tasks are checked at launch)."""
    return type(task).__module__.startswith("objectives.")
