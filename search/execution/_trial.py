"""One trial, as a worker runs it: build -> cost (reject over budget) -> train -> evaluate -> final cost.

The worker writes per-epoch metrics, the cost report and the checkpoint to the store; the driver alone
moves the trial between states from the returned :class:`Outcome`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search._config import MODEL_METRICS, HardwareConfig, TaskConfig
from search._types import TRIAL_SECONDS, Completed, Failed, Outcome, Pruned, Rejected
from search.execution._asha import RungPlan, RungStop
from search.execution._distill import TeacherJob, distillation
from search.storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial; plain data so it pickles to another process."""

    store_url: str
    trial_id: int
    number: int
    task: TaskConfig
    config: dict[str, Any]
    objectives: tuple[str, ...]
    budgets: tuple[str, ...]
    hardware: HardwareConfig
    epochs: int
    patience: int | None
    data_seed: int
    seed: int
    checkpoint_dir: str | None
    rungs: RungPlan | None = None  # ASHA's rungs; None trains to the full epochs (replicates, no scheduler)
    stages: tuple[tuple[str, int], ...] = ()  # a staged training recipe; () = the model's schedule
    distill: TeacherJob | None = None  # the teacher this trial learns from (knowledge distillation)


@functools.lru_cache(maxsize=4)
def worker_store(url: str) -> Store:
    """The store a worker process writes to: one engine per URL for all the trials it runs."""
    return Store(url)


# -- plugin tasks (issue 17): a worker process is fresh, so a plugin task is imported and registered here.
def job_task(task: TaskConfig) -> Any:
    """The trial's task; a ``plugin`` task is loaded and registered first (once per process)."""
    from objectives import get_task, load_task_plugin

    if task.plugin is not None:
        load_task_plugin(task.plugin)
    return get_task(task.name, loss=task.loss)


@functools.lru_cache(maxsize=2)
def task_data(task: TaskConfig, seed: int) -> Any:
    return job_task(task).prepare(task.data, rows=task.rows, seed=seed, val_rows=task.val_rows)


def hw_settings(hardware: HardwareConfig) -> Any:
    from hw_models import HWSettings

    return HWSettings.from_dict(hardware.model_dump())  # the config's hardware keys are HWSettings fields


def _objective_values(
    names: tuple[str, ...], metrics: Mapping[str, float], totals: Mapping[str, float]
) -> Outcome:
    values: dict[str, float] = {}
    for name in names:
        value = metrics[name] if name in metrics else totals[name]
        if math.isnan(value):
            return Failed(f"objective {name} is NaN")
        values[name] = float(value)
    return Completed(values)


def model_kb(model: torch.nn.Module, config: Mapping[str, Any]) -> float:
    """Storage of the whole model's non-zero weights and biases in KiB. A quantized layer's tensors count at
    their own quantizer's width (mixed precision; binary weights 1 bit, their biases 2); every other
    layer's at the model's ``weight_bits`` if it is quantized (the float decoder stored as the model is),
    else 32. Quantizer scales and gates are not stored with the model on chip."""
    default = int(config["weight_bits"]) if config.get("quantize") else 32
    bits = 0
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        for kind in ("weight", "bias"):
            if kind not in own:
                continue
            quantizer = getattr(module, f"{kind}_quant", None)
            width = quantizer.bit_width() if quantizer is not None else None
            bits += int(torch.count_nonzero(own[kind]).item()) * (default if width is None else int(width))
    return bits / 8 / 1024


def cost_objectives(names: Sequence[str]) -> list[str]:
    """The objectives among ``names`` known before training: hardware costs and model metrics (model_kb)."""
    from hw_models import COST_QUANTITIES

    return [name for name in names if name in COST_QUANTITIES or name in MODEL_METRICS]


def _save_checkpoint(model: torch.nn.Module, job: TrialJob) -> tuple[str, str] | None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return _save_artifact(buffer.getvalue(), job, "pt")


def _save_artifact(payload: bytes, job: TrialJob, suffix: str) -> tuple[str, str] | None:
    """Write ``trial-NNNNN.<suffix>`` into the sweep's checkpoint directory: (path, sha256), or None
    without one."""
    if job.checkpoint_dir is None:
        return None
    directory = Path(job.checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"trial-{job.number:05d}.{suffix}"
    tmp = path.with_suffix(f".{suffix}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return str(path), hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class Priced:
    """A built model with its cost report and the cost objectives' pre-training values."""

    model: Any
    report: Any
    costs: dict[str, float]


def price(
    config: Mapping[str, Any],
    task_config: TaskConfig,
    hardware: HardwareConfig,
    objectives: Sequence[str],
    *,
    pruned: bool = False,
) -> Priced | str:
    """Build the model of a canonical config and cost it: a :class:`Priced`, or why hls4ml cannot convert
    it or the family cannot build it (the config is then rejected without training). A node-pruned config
    is costed as the smaller network it ends as. ``pruned`` costs it at its target sparsity, as it ends
    training (the masks are applied to the fresh weights); the model is then not for training."""
    from hw_models import HWError, estimate
    from spaces import SpaceError

    task = job_task(task_config)
    try:
        model = task.build_model(config)
    except SpaceError as exc:  # e.g. a node-pruning keep larger than its layer in this combination
        return f"model: {exc}"
    # A node-pruned model ends training as the smaller network: that one is costed.
    costed = copy.deepcopy(model).prune_nodes() if model.gated else model
    if pruned and float(config.get("sparsity", 0.0)) > 0:
        costed.before_epoch(1, 1)  # a 1-epoch schedule is at the target from its first epoch
    try:
        report = estimate(task.on_chip(costed), task.input_shape, hw_settings(hardware))
    except HWError as exc:
        return f"hardware model: {exc}"
    before = dict(report.totals)
    if "model_kb" in objectives:
        before["model_kb"] = model_kb(costed, config)
    return Priced(model, report, {name: float(before[name]) for name in cost_objectives(objectives)})


def over_budget(report: Any, budgets: Sequence[str]) -> str | None:
    """The first budget a cost report violates, as the reason to reject its config; None if within all."""
    from hw_models import Budget

    for budget in (Budget.parse(text) for text in budgets):
        reason = budget.check(report)
        if reason is not None:
            return str(reason)
    return None


def cost_oracle(
    task_config: TaskConfig, hardware: HardwareConfig, objectives: Sequence[str], budgets: Sequence[str]
) -> Callable[[Mapping[str, Any]], Mapping[str, float] | str]:
    """The sweep's exact pre-training cost of a config, for strategies that exploit known costs."""

    def costs_of(config: Mapping[str, Any]) -> Mapping[str, float] | str:
        torch.manual_seed(0)  # quantized costs count weights that do not round to 0: fix the initial weights
        priced = price(config, task_config, hardware, objectives, pruned=True)
        if isinstance(priced, str):
            return priced
        return over_budget(priced.report, budgets) or priced.costs

    return costs_of


def _rung_metric(job: TrialJob, plan: RungPlan, metrics: Mapping[str, float], model: Any) -> float:
    """The rung metric at this epoch: a training metric, or the task's quality metric on a fixed
    validation subsample (``<metric>_subsample``)."""
    if plan.metric in metrics:
        return float(metrics[plan.metric])
    subsample = task_data(job.task, job.data_seed).head(plan.emd_rows)  # val_y of a supervised task too
    task = job_task(job.task)
    return float(task.evaluate(model, subsample)[plan.metric.removesuffix("_subsample")])


def run_trial(job: TrialJob) -> Outcome:
    """Run one trial. Never raises for a trial-level problem: failures come back as Failed/Rejected.

    With ``job.rungs`` the trial records its point at each of its ASHA rungs and ends PRUNED there
    (fidelity = the rung's epoch) unless it is in the rung's top share; a non-finite rung metric fails it
    as diverged.
    """
    from hw_models import CPU_QUANTITIES, estimate, measure_cpu_latency
    from objectives import DivergedError, TrainSettings, fit

    store = worker_store(job.store_url)
    task = job_task(job.task)
    settings = hw_settings(job.hardware)
    try:
        torch.manual_seed(job.seed)
        priced = price(job.config, job.task, job.hardware, job.objectives)
        if isinstance(priced, str):
            return Rejected(priced)
        model, report = priced.model, priced.report
        store.record_cost(job.trial_id, report.to_dict())
        reason = over_budget(report, job.budgets)
        if reason is not None:
            return Rejected(reason)

        data = task_data(job.task, job.data_seed)
        distill = distillation(job.distill)  # loaded from its checkpoint once per worker process
        # From here: a worker's first trial would otherwise also count loading the data it caches.
        started = time.perf_counter()
        train_settings = TrainSettings(
            epochs=job.epochs,
            batch_size=int(job.config.get("batch_size", 500)),
            lr=float(job.config.get("lr", 1e-3)),
            seed=job.seed,
            patience=job.patience,
            stages=job.stages,
        )
        last: dict[str, float] = {}

        def report_epoch(epoch: int, metrics: dict[str, float]) -> None:
            last.clear()
            last.update(metrics)
            plan = job.rungs
            if plan is not None and plan.is_rung(job.number, epoch):
                value = _rung_metric(job, plan, metrics, model)
                if not math.isfinite(value):
                    raise DivergedError(f"rung metric {plan.metric} is {value} at epoch {epoch}")
                last[plan.metric] = metrics[plan.metric] = value
            store.record_metrics(job.trial_id, epoch, metrics)
            if plan is not None and plan.is_rung(job.number, epoch):
                point = plan.point(metrics[plan.metric], priced.costs)
                points, own = store.record_rung(job.trial_id, plan.bracket(job.number), epoch, point)
                if not plan.goes_on(points, own):
                    raise RungStop(epoch)

        def rebuilt(smaller: Any) -> None:
            nonlocal model  # node pruning: later rungs and the final metrics score the smaller network
            model = smaller

        try:
            model, result = fit(model, task, data, train_settings, report_epoch, rebuilt, distill)
        except RungStop as stop:
            partial = {**report.totals, **priced.costs, **last, TRIAL_SECONDS: time.perf_counter() - started}
            return Pruned({k: float(v) for k, v in partial.items() if not math.isnan(v)}, fidelity=stop.epoch)
        metrics = {**task.evaluate(model, data), "model_kb": model_kb(model, job.config)}
        if float(job.config.get("sparsity", 0.0)) > 0 or model is not priced.model:
            report = estimate(task.on_chip(model), task.input_shape, settings)  # real sparsity after training
            store.record_cost(job.trial_id, report.to_dict())
        if any(name in CPU_QUANTITIES for name in job.objectives):
            latency, onnx_model = measure_cpu_latency(task.on_chip(model), task.input_shape)
            metrics.update(onnx_cpu_us=latency.onnx_cpu_us, onnx_cpu_us_b256=latency.onnx_cpu_us_b256)
            # Stored with the cost report, marked as a measurement of this host, unlike the estimates.
            store.record_cost(job.trial_id, {**report.to_dict(), "cpu_latency": latency.to_dict()})
            saved_onnx = _save_artifact(onnx_model, job, "onnx")
            if saved_onnx is not None:
                store.add_artifact(job.trial_id, "onnx", *saved_onnx)
        saved = _save_checkpoint(model, job)
        if saved is not None:
            store.add_artifact(job.trial_id, "checkpoint", *saved)
        if job.distill is not None:  # which teacher file taught it: a resume refuses a replaced one
            store.add_artifact(job.trial_id, "teacher", job.distill.checkpoint, job.distill.sha256)
        outcome = _objective_values(job.objectives, metrics, report.totals)
        if isinstance(outcome, Completed):
            extra = {k: float(v) for k, v in {**report.totals, **metrics}.items() if not math.isnan(v)}
            extra[TRIAL_SECONDS] = time.perf_counter() - started
            return Completed({**extra, **outcome.values}, fidelity=result.epochs_run)
        return outcome
    except DivergedError as exc:
        return Failed(f"diverged: {exc}")
    except Exception as exc:  # one bad trial never stops a sweep; the reason is stored verbatim
        log.exception("trial %d failed", job.number)
        return Failed(f"{exc.__class__.__name__}: {exc}")
