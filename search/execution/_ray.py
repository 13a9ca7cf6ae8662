"""The Ray executor: trials run as Ray Tune trials, on a local Ray or a cluster, optionally cut by ASHA.

Our strategies reach Ray through one custom Tune ``Searcher`` (:class:`DriverSearcher`): ``suggest`` hands
Tune the driver's next trial (a queued one first, else a feasible proposal), ``on_trial_complete`` records
the outcome and tells the strategy. So ASHA works with every strategy. The store stays the truth: workers
write per-epoch metrics, costs and checkpoints to it, the driver moves trials between states; Ray's own
result files are scratch.

ASHA (``scheduler.promotion``): ``pareto`` (default) is our :class:`~search.execution._asha.ParetoASHA`, which ranks
a rung's trials by Pareto rank over the rung metric and the sweep's cost objectives (``bops``, ...), so
cheap models with a higher loss survive rungs; ``metric`` is Ray's ASHAScheduler on the rung metric alone.
Every rung report carries the cost objectives' pre-training values next to the rung metric.

Guarantees:
- Ray is started or joined, and the CPUs checked, before the sweep is created in the store; an unreachable
  address, a Ray version mismatch or too few CPUs raise :class:`ExecutorError` (a ``SweepError``).
- A trial ASHA stops is stored PRUNED with the epochs it reached and its partial values; the strategy is told
  ``Pruned(values, fidelity)``. A non-finite rung metric never reaches ASHA: the trial fails as diverged.
- A trial whose Ray worker dies runs again (up to ``max_retries``) or ends FAILED with Ray's reason; the
  sweep goes on. The driver's heartbeat covers its Ray trials, so a killed driver's trials are requeued by
  ``resume``, which continues with no lost and no duplicated trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from search._config import (
    ASHA_PRESETS,
    ExecutorConfig,
    HardwareConfig,
    SchedulerConfig,
    SweepConfig,
    TaskConfig,
)
from search._types import Completed, Failed, Outcome, Pruned, Rejected
from search.execution._asha import ParetoASHA
from search.execution._loop import Driver, Heartbeat, ProgressCallback, SweepError, SweepSummary
from search.execution._trial import TrialJob, cost_objectives, run_trial, task_data, worker_store
from search.storage._schema import TrialState
from search.storage._store import StoreError, TrialRecord

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Keys of the results our trainable reports to Tune.
OUTCOME_KEY = "hwnas_outcome"  # the final outcome, JSON; absent from per-epoch reports
EPOCH_KEY = "epoch"  # ASHA's time attribute
_EMD_METRIC = {"econt": "emd_mean", "waveform": "emd1d_mean"}
_REQUEUE_CHECK_S = 1.0
_CONNECT_TIMEOUT_S = 5.0


class ExecutorError(SweepError):
    """Ray cannot run the sweep: unreachable cluster, Ray version mismatch, more CPUs asked than exist."""


# -- configuration -> Ray objects -------------------------------------------------------------------------
def rung_metric(scheduler: SchedulerConfig, task: str) -> str:
    """Name of the metric ASHA compares at rungs: ``val_loss`` or the task's EMD on a fixed subsample."""
    if scheduler.metric == "val_loss":
        return "val_loss"
    return f"{_EMD_METRIC[task]}_subsample"


def asha_settings(scheduler: SchedulerConfig, epochs: int) -> dict[str, int]:
    """ASHA's grace period, reduction factor and brackets: the mode's preset, overridden by explicit keys."""
    reduction, brackets, grace_fraction = ASHA_PRESETS[scheduler.mode]
    grace = scheduler.grace_period or min(max(1, round(epochs * grace_fraction)), max(1, epochs - 1))
    return {
        "grace_period": grace,
        "reduction_factor": scheduler.reduction_factor or reduction,
        "brackets": scheduler.brackets or brackets,
    }


def make_scheduler(config: SweepConfig) -> TrialScheduler:
    """Tune's scheduler for the sweep: FIFO, or ASHA on the rung metric up to the sweep's epochs.

    ASHA promotes by Pareto rank over the rung metric and the sweep's cost objectives (ParetoASHA) or,
    with ``promotion: metric``, by the rung metric alone (Ray's ASHAScheduler). Our trainable reports
    epochs 1..epochs-1 to ASHA (the last epoch ends in the final evaluation, never in a rung decision), so
    ``max_t`` is the sweep's epochs.
    """
    if config.scheduler.kind == "none":
        return FIFOScheduler()
    settings = asha_settings(config.scheduler, config.epochs)
    metric = rung_metric(config.scheduler, config.task.name)
    grace, reduction, brackets = (settings[k] for k in ("grace_period", "reduction_factor", "brackets"))
    if config.scheduler.promotion == "metric":
        return ASHAScheduler(
            time_attr=EPOCH_KEY,
            metric=metric,
            mode="min",
            max_t=config.epochs,
            grace_period=grace,
            reduction_factor=reduction,
            brackets=brackets,
        )
    names = cost_objectives([o.name for o in config.objectives])
    return ParetoASHA(
        time_attr=EPOCH_KEY,
        metric=metric,
        costs=[(o.name, o.direction) for o in config.objectives if o.name in names],
        max_t=config.epochs,
        grace_period=grace,
        reduction_factor=reduction,
        brackets=brackets,
    )


def encode_outcome(outcome: Outcome) -> str:
    """The outcome as JSON for a Tune result (infinite values survive; NaN never occurs in one)."""
    kind = type(outcome).__name__
    if isinstance(outcome, Completed | Pruned):
        return json.dumps({"kind": kind, "values": outcome.values, "fidelity": outcome.fidelity})
    return json.dumps({"kind": kind, "reason": outcome.reason})


def decode_outcome(text: str) -> Outcome:
    data = json.loads(text)
    if data["kind"] == "Completed":
        return Completed(data["values"], fidelity=data["fidelity"])
    if data["kind"] == "Pruned":
        return Pruned(data["values"], fidelity=data["fidelity"])
    if data["kind"] == "Rejected":
        return Rejected(data["reason"])
    return Failed(data["reason"])


# -- the worker side --------------------------------------------------------------------------------------
def rung_reporter(job: TrialJob, metric: str, emd_rows: int, report: Any) -> Any:
    """The per-epoch callback of a Ray trial: add the rung metric, refuse non-finite values, report.

    Epochs before the last are reported (``report({"epoch", metrics..., metric, costs...})``, the costs
    being the cost objectives' pre-training values that ParetoASHA ranks with the metric); the last epoch
    is not, since the trial then finishes with its full-fidelity outcome. Raises DivergedError when the rung
    metric is NaN or infinite, which fails the trial as diverged instead of letting ASHA rank it.
    """
    from objectives import DivergedError, get_task

    def on_epoch(
        epoch: int, metrics: dict[str, float], model: torch.nn.Module, costs: Mapping[str, float]
    ) -> None:
        values = dict(metrics)
        if metric not in values:
            data = task_data(job.task, job.data_seed)
            subsample = dataclasses.replace(
                data,
                val_x=data.val_x[:emd_rows],
                val_raw=data.val_raw[:emd_rows],
                val_scale=data.val_scale[:emd_rows],
            )
            task = get_task(job.task.name, loss=job.task.loss)
            values[metric] = task.evaluate(model, subsample)[_EMD_METRIC[job.task.name]]
        if not math.isfinite(values[metric]):
            raise DivergedError(f"rung metric {metric} is {values[metric]} at epoch {epoch}")
        if epoch < job.epochs:
            report({EPOCH_KEY: epoch, **values, **costs})

    return on_epoch


def job_to_json(job: TrialJob) -> str:
    """The job as the JSON string Tune carries in a trial's config (Tune logs configs; this stays readable)."""
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
    return json.dumps({**fields, "task": job.task.model_dump(), "hardware": job.hardware.model_dump()})


def job_from_json(text: str) -> TrialJob:
    data = json.loads(text)
    data.update(
        task=TaskConfig(**data["task"]),
        hardware=HardwareConfig(**data["hardware"]),
        objectives=tuple(data["objectives"]),
        budgets=tuple(data["budgets"]),
    )
    return TrialJob(**data)


def ray_trainable(config: dict[str, Any]) -> None:
    """Tune's function trainable: run the trial, reporting rungs, then report the final outcome."""
    job = job_from_json(config["job"])
    host = socket.gethostname()
    node = ray.get_runtime_context().get_node_id()
    worker_store(job.store_url).record_worker(
        job.trial_id, worker=f"{host}:{os.getpid()} ray-node {node[:16]}", host=host
    )
    on_epoch = rung_reporter(job, config["rung_metric"], config["emd_rows"], tune.report)
    outcome = run_trial(job, on_epoch=on_epoch)
    fidelity = outcome.fidelity if isinstance(outcome, Completed | Pruned) else 0
    # Tune wants the rung metric in every result. At the full epochs ASHA stops (the trial is over anyway);
    # earlier ends (patience, failure) were ranked at their epochs already or reach no rung (epoch 0).
    rung_value = (
        outcome.values.get(config["rung_metric"], math.inf) if isinstance(outcome, Completed) else math.inf
    )
    # The cost keys too, as in every rung report: NaN (unknown) when the trial did not complete.
    costs = {
        name: outcome.values.get(name, math.nan) if isinstance(outcome, Completed) else math.nan
        for name in cost_objectives(job.objectives)
    }
    tune.report(
        {
            EPOCH_KEY: fidelity,
            config["rung_metric"]: rung_value,
            **costs,
            OUTCOME_KEY: encode_outcome(outcome),
        }
    )


# -- Ray start-up checks ----------------------------------------------------------------------------------
def explain_connect_error(address: str, exc: Exception) -> str:
    """A one-paragraph message for a failed ``ray.init(address=...)``."""
    text = str(exc).strip()
    if text.startswith("Version mismatch"):
        return (
            f"the Ray cluster at {address!r} runs another Ray or Python version than hwnas "
            f"({' '.join(text.split())}); install the cluster's Ray version in hwnas's environment or "
            "restart the cluster with this one"
        )
    return f"cannot connect to the Ray cluster at {address!r}: {' '.join(text.split())}"


def _check_reachable(address: str) -> None:
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"executor.address {address!r} is not 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ExecutorError(
            f"cannot reach the Ray cluster at {address!r} ({exc}); start it with `ray start --head` "
            "or fix executor.address"
        ) from None


def connect(executor: ExecutorConfig) -> bool:
    """Start or join Ray for ``executor`` and check its CPUs; True when this call started the session.

    An already initialised Ray in this process is reused as it is. Raises ExecutorError (nothing started
    is left running) for an unreachable address, a version mismatch, or more CPUs asked than exist.
    """
    started = False
    if not ray.is_initialized():
        if executor.address is None:
            cpus = executor.num_cpus or executor.workers
            available = os.cpu_count() or 1
            if cpus > available:
                raise ExecutorError(
                    f"executor.num_cpus {cpus} is more than the {available} CPU(s) of this machine; "
                    f"allowed: 1..{available}"
                )
            ray.init(  # "local": a new Ray of our own, even when another cluster runs on this machine
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            _check_reachable(executor.address)
            try:
                ray.init(address=executor.address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError) as exc:
                raise ExecutorError(explain_connect_error(executor.address, exc)) from None
        started = True
    cluster_cpus = ray.cluster_resources().get("CPU", 0.0)
    if executor.workers > cluster_cpus:
        if started:
            ray.shutdown()
        raise ExecutorError(
            f"executor.workers {executor.workers} needs {executor.workers} CPUs (one per trial) but the Ray "
            f"cluster has {cluster_cpus:g}; allowed: workers <= {cluster_cpus:g}"
        )
    return started


# -- the driver side --------------------------------------------------------------------------------------
class TuneBridge:
    """The driver as Tune sees it: what the Searcher and the error callback forward to.

    Tune calls it from its control loop in the driver's thread; the heartbeat thread only reads
    ``inflight``'s values.
    """

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.config = driver.config
        self.store = driver.store
        self.rung_metric = rung_metric(driver.config.scheduler, driver.config.task.name)
        self.inflight: dict[str, TrialRecord] = {}  # Ray trial id -> our trial
        self.keys: dict[int, str | None] = {}  # our trial id -> the strategy's key, kept across retries
        self.exhausted = False
        self.error: BaseException | None = None  # raised by our code inside Tune; re-raised after fit
        self._started = time.monotonic()
        self._last_requeue_check = -math.inf

    # -- Searcher.suggest ---------------------------------------------------------------------------
    def suggest(self, ray_trial_id: str) -> dict[str, Any] | Literal["FINISHED"] | None:
        """Tune config of the next trial, "FINISHED" when the sweep is done, None to wait for running ones.

        "FINISHED" is final for Tune, so it comes only when no trial of the sweep is RUNNING anywhere: a
        running one may still die and be queued again.
        """
        driver = self.driver
        now = time.monotonic()
        if now - self._last_requeue_check >= _REQUEUE_CHECK_S:
            self._last_requeue_check = now
            driver._requeue_stale()
        replicate = driver._queued(replicates=True)
        nxt: tuple[TrialRecord, str | None] | None = None
        if replicate is not None:
            nxt = replicate, None
        elif not self._budget_spent() and not self.exhausted:
            nxt = driver._next_trial()
            self.exhausted = nxt is None
        if nxt is None:
            running = self.store.trials(driver.sweep.id, [TrialState.RUNNING])
            return None if running else "FINISHED"
        trial, key = nxt
        try:
            trial = self.store.start_trial(trial.id, worker=driver.worker, host=socket.gethostname())
        except StoreError:
            return None  # another driver of the same sweep took this queued trial first
        self.keys[trial.id] = key if key is not None else self.keys.get(trial.id)
        self.inflight[ray_trial_id] = trial
        return {
            "job": job_to_json(driver._job(trial)),
            "rung_metric": self.rung_metric,
            "emd_rows": self.config.scheduler.emd_rows,
        }

    def _budget_spent(self) -> bool:
        limit = self.config.time_limit_s
        if limit is not None and time.monotonic() - self._started >= limit:
            return True
        return self.driver._trained_or_running() >= self.config.trials

    # -- Searcher.on_trial_complete -----------------------------------------------------------------
    def complete(self, ray_trial_id: str, result: Mapping[str, Any] | None) -> None:
        """Record a trial Tune ended: its reported outcome, or PRUNED if the scheduler stopped it.

        A trial Tune stopped for another reason (the experiment was interrupted) stays RUNNING: ``run``
        queues it again for ``resume``.
        """
        trial = self.inflight.get(ray_trial_id)
        if trial is None or result is None:
            return
        if OUTCOME_KEY in result:
            outcome = decode_outcome(result[OUTCOME_KEY])
        elif result.get("done"):
            outcome = self._pruned(trial, result)
        else:
            return
        del self.inflight[ray_trial_id]
        self.driver._finish(trial, self.keys.pop(trial.id, None), outcome)

    def _pruned(self, trial: TrialRecord, result: Mapping[str, Any]) -> Pruned:
        """Partial values of a stopped trial: its hardware cost and the last reported epoch's metrics."""
        costs = self.store.costs([trial.id]).get(trial.id, {}).get("totals", {})
        reported = {k: v for k, v in result.items() if k in ("train_loss", "val_loss", self.rung_metric)}
        values = {k: float(v) for k, v in {**costs, **reported}.items() if not math.isnan(float(v))}
        return Pruned(values, fidelity=int(result[EPOCH_KEY]))

    # -- Callback.on_trial_error --------------------------------------------------------------------
    def errored(self, ray_trial_id: str, reason: str) -> None:
        """A Ray trial died (worker killed, node lost): run it again, or fail it after ``max_retries``."""
        trial = self.inflight.pop(ray_trial_id, None)
        if trial is None:
            return
        attempts = self.store.get_trial(trial.id).attempts
        if attempts <= self.config.max_retries:
            log.warning("trial %d: %s; queued again (attempt %d)", trial.number, reason, attempts)
            self.store.requeue_trial(trial.id, f"{reason}; retried")
        else:
            outcome = Failed(f"{reason} (after {attempts} attempt(s))")
            self.driver._finish(trial, self.keys.pop(trial.id, None), outcome)

    # -- the whole sweep ----------------------------------------------------------------------------
    def run(self) -> SweepSummary:
        """Run the sweep to its budget on the connected Ray, like ``Driver.run`` does locally."""
        driver = self.driver
        driver._requeue_stale()
        driver._rebuild_strategy()
        driver._queue_warm_start()
        self.store.set_sweep_status(driver.sweep.id, "RUNNING")
        scratch = None
        storage_path = self.config.executor.storage_path
        if storage_path is None:
            scratch = storage_path = tempfile.mkdtemp(prefix="hwnas-ray-")
        tuner = tune.Tuner(
            tune.with_resources(ray_trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=DriverSearcher(self),
                scheduler=make_scheduler(self.config),
                num_samples=-1,
                max_concurrent_trials=self.config.executor.workers,
                reuse_actors=True,  # a new worker process re-imports torch & co. for seconds
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=self.config.name,
                storage_path=os.path.abspath(storage_path),
                failure_config=tune.FailureConfig(max_failures=0),  # retries are ours (max_retries)
                callbacks=[TrialErrors(self)],
                verbose=0,
            ),
        )
        heartbeat = Heartbeat(
            self.store, lambda: [t.id for t in list(self.inflight.values())], self.config.heartbeat_s
        )
        heartbeat.start()
        tune_output = io.StringIO()
        try:
            with contextlib.redirect_stdout(tune_output):  # Tune prints a banner whatever its verbosity
                tuner.fit()
        except BaseException as exc:
            self.error = self.error or exc
        finally:
            heartbeat.stop()
            self.driver.strategy.close()
            log.debug("Ray Tune's output:\n%s", tune_output.getvalue())
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        leftover = list(self.inflight.values())
        self.inflight.clear()
        reason = "interrupted by the user" if self.error is None else f"sweep stopped: {self.error}"
        for trial in leftover:
            self.store.requeue_trial(trial.id, f"{reason}; runs again on resume")
        if leftover:
            log.warning("%s: %d running trial(s) queued again", reason, len(leftover))
        if self.error is not None and not isinstance(self.error, KeyboardInterrupt):
            self.store.set_sweep_status(driver.sweep.id, "STOPPED")
            raise self.error
        interrupted = bool(leftover) or self.error is not None
        return driver._summarise(interrupted=interrupted, exhausted=self.exhausted)


class DriverSearcher(Searcher):
    """The one Tune Searcher of every sweep: forwards to the bridge and keeps Tune from eating our errors."""

    def __init__(self, bridge: TuneBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its experiment state; ours is in the store and never restored from Tune

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.bridge = None  # type: ignore[assignment]

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the sweep's state is the store's."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: ``resume`` rebuilds the strategy from the store."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        # Tune's own annotation leaves out its FINISHED marker, which this returns as documented.
        try:
            return self.bridge.suggest(trial_id)  # type: ignore[return-value]
        except Exception as exc:  # re-raised by TuneBridge.run once Tune has stopped cleanly
            self.bridge.error = exc
            return Searcher.FINISHED  # type: ignore[return-value]

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if error:
            return  # TrialErrors handles it: it has Ray's reason, this hook does not
        try:
            self.bridge.complete(trial_id, result)
        except Exception as exc:
            self.bridge.error = exc


class TrialErrors(tune.Callback):
    """Forwards Ray's failed trials, with Ray's reason, to the bridge."""

    def __init__(self, bridge: TuneBridge) -> None:
        self.bridge = bridge

    def __getstate__(self) -> dict[str, Any]:
        return {}  # as DriverSearcher: nothing of ours is restored from Tune's state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.bridge = None  # type: ignore[assignment]

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        try:
            self.bridge.errored(trial.trial_id, error_reason(trial))
        except Exception as exc:
            self.bridge.error = exc


def _trial_name(trial: Trial) -> str:
    return f"trial-{json.loads(trial.config['job'])['number']:05d}-{trial.trial_id}"


def error_reason(trial: Trial) -> str:
    """Ray's reason for a failed trial in one line, from the error file Tune writes next to the driver."""
    text = ""
    if trial.error_file is not None and os.path.exists(trial.error_file):
        with open(trial.error_file) as file:
            text = file.read()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Failure #")]
    detail = next((line for line in lines if "died" in line), lines[-1] if lines else "no reason given")
    return f"Ray worker failed: {detail[:300]}"


def run_ray_sweep(config: SweepConfig, *, progress: ProgressCallback | None = None) -> SweepSummary:
    """Run the sweep on Ray (``executor.kind: ray``): connect first, then create or resume the sweep.

    Raises ExecutorError before the sweep is created when Ray cannot run it.
    """
    owns_ray = connect(config.executor)
    try:
        return TuneBridge(Driver(config, progress=progress)).run()
    finally:
        if owns_ray:
            ray.shutdown()
