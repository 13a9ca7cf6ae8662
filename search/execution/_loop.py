"""The sweep driver: create or resume a sweep, ask the strategy, run trials, record and tell outcomes.

Guarantees:
- The store is the truth. A resumed sweep rebuilds the strategy from finished trials, re-runs QUEUED ones
  (interrupted or left by a dead worker) under their own numbers, and never loses or duplicates a trial.
- Infeasible configs and configs over a hardware budget are recorded INFEASIBLE and told to the strategy
  without training. A trial that raises or diverges ends FAILED with its reason; the sweep goes on.
- Ctrl-C (even one a library swallowed) puts running trials back in the queue and exits cleanly; ``resume``
  continues.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy.engine import make_url

from search._config import SweepConfig, parse_config
from search._types import Completed, Failed, Outcome, Pruned, Rejected
from search.execution._trial import TrialJob, die_with_parent, run_trial
from search.results import completed_search_trials, evaluations, pooled_std, sweep_front
from search.results._pareto import default_reference
from search.storage._schema import TrialState
from search.storage._store import Store, StoreError, SweepRecord, TrialRecord
from search.strategies import Strategy, make_strategy

log = logging.getLogger(__name__)

# Consecutive infeasible/over-budget proposals before a sweep gives up: the space leaves nothing feasible.
_MAX_CONSECUTIVE_REJECTIONS = 100


class SweepError(ValueError):
    """The sweep cannot start or continue: conflicting config, unknown sweep, exhausted space, ..."""


@dataclass
class SweepSummary:
    name: str
    counts: dict[str, int]
    front: list[TrialRecord]
    hypervolume: float | None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[TrialRecord, int, int], None]


def resolve_space(config: SweepConfig) -> Any:
    """The sweep's space: a built-in name, an inline space, or ``{builtin: NAME, override: {...}}``.

    An override value replaces a built-in parameter: a scalar fixes it (a one-value choice), a mapping is a
    new parameter definition in the space YAML schema (keeping the built-in condition unless it gives one).
    """
    from spaces import Space, get_space

    spec = config.space
    if isinstance(spec, str):
        return get_space(spec)
    if "builtin" not in spec:
        return Space.from_dict(spec)
    unknown = set(spec) - {"builtin", "override"}
    if unknown:
        raise SweepError(
            f"space: unknown key(s) {sorted(unknown)} next to 'builtin'; allowed: builtin, override"
        )
    base = get_space(spec["builtin"]).to_dict()
    parameters = base["parameters"]
    for name, value in (spec.get("override") or {}).items():
        if name not in parameters:
            raise SweepError(
                f"space.override: {spec['builtin']!r} has no parameter {name!r}; allowed: {', '.join(parameters)}"
            )
        new = dict(value) if isinstance(value, dict) else {"type": "choice", "choices": [value]}
        if "active_if" in parameters[name] and "active_if" not in new:
            new["active_if"] = parameters[name]["active_if"]
        parameters[name] = new
    return Space.from_dict(base)


def warm_start_configs(config: SweepConfig, space: Any) -> list[dict[str, Any]]:
    """The canonical warm-start configs. Raises SweepError naming an entry that is unknown or infeasible."""
    from spaces import Infeasible, SpaceError, get_preset

    configs = []
    for entry in config.warm_start:
        try:
            if isinstance(entry, str):
                raw = get_preset(entry)
            elif "preset" in entry:  # {preset: NAME, key: value, ...}: a preset with some values changed
                raw = {**get_preset(entry["preset"]), **{k: v for k, v in entry.items() if k != "preset"}}
            else:
                raw = entry
            canonical = space.validate(raw)
        except SpaceError as exc:
            raise SweepError(f"warm_start entry {entry!r}: {exc}") from None
        if isinstance(canonical, Infeasible):
            raise SweepError(f"warm_start entry {entry!r} is infeasible: {canonical.reason}")
        configs.append(canonical)
    return configs


def prepare(config: SweepConfig) -> tuple[Any, list[dict[str, Any]], Strategy]:
    """Space, warm-start configs and strategy of a sweep: every check that needs more than the schema."""
    space = resolve_space(config)
    warm_start = warm_start_configs(config, space)
    strategy = make_strategy(
        config.strategy.name,
        space,
        config.objectives,
        seed=config.seed,
        options=config.strategy.options,
        reference_point=config.reference_point,
    )
    return space, warm_start, strategy


def checkpoint_dir(config: SweepConfig) -> str | None:
    """Checkpoints live next to a SQLite store (``<db>.runs/<sweep>``); none for server databases."""
    url = make_url(config.store)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(Path(url.database).with_suffix(".runs") / config.name)


def outcome_of(trial: TrialRecord, objectives: list[str]) -> Outcome:
    """The outcome a finished trial stands for, as strategies are told it."""
    if trial.state is TrialState.COMPLETED:
        return Completed({k: trial.results[k] for k in objectives}, fidelity=trial.fidelity)
    if trial.state is TrialState.PRUNED:
        return Pruned({k: v for k, v in trial.results.items() if k in objectives}, fidelity=trial.fidelity)
    if trial.state is TrialState.INFEASIBLE:
        return Rejected(trial.error or "infeasible")
    return Failed(trial.error or "failed")


def _state_for(outcome: Outcome) -> TrialState:
    return {
        Completed: TrialState.COMPLETED,
        Pruned: TrialState.PRUNED,
        Failed: TrialState.FAILED,
        Rejected: TrialState.INFEASIBLE,
    }[type(outcome)]


def open_sweep(store: Store, config: SweepConfig) -> SweepRecord:
    """Create the sweep, or return the existing one if it was created from the same config."""
    existing = store.get_sweep(config.name)
    if existing is None:
        reference = None
        if config.reference_point is not None:
            reference = [config.reference_point[o.name] for o in config.objectives]
        try:
            return store.create_sweep(
                config.name,
                config_yaml=config.to_yaml(),
                config_hash=config.fingerprint(),
                objectives=[{"name": o.name, "direction": o.direction} for o in config.objectives],
                reference_point=reference,
            )
        except StoreError:
            existing = store.get_sweep(config.name)  # lost a creation race to another driver
            if existing is None:
                raise
    if existing.config_hash != config.fingerprint():
        raise SweepError(
            f"a sweep named {config.name!r} already exists in {make_url(config.store).render_as_string()} "
            "with a different config; choose another name (--name) or resume it with "
            f"`hwnas sweep resume {config.name}`"
        )
    return existing


def load_sweep(store: Store, name: str) -> tuple[SweepRecord, SweepConfig]:
    """A stored sweep and the config it was created from. Raises SweepError naming the known sweeps."""
    sweep = store.get_sweep(name)
    if sweep is None:
        known = ", ".join(s.name for s in store.list_sweeps()) or "none"
        raise SweepError(f"no sweep named {name!r} in the store; known sweeps: {known}")
    return sweep, parse_config(yaml.safe_load(sweep.config_yaml), source=f"stored config of sweep {name!r}")


class Heartbeat(threading.Thread):
    """Stamps the heartbeat of this driver's running trials, so other drivers can tell it is alive."""

    def __init__(self, store: Store, running: Callable[[], list[int]], interval_s: float) -> None:
        super().__init__(name="hwnas-heartbeat", daemon=True)
        self._store, self._running, self._interval_s = store, running, interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            try:
                self._store.heartbeat(self._running())
            except StoreError:
                log.warning("heartbeat failed; will retry", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()


class _InlineExecutor(cf.Executor):
    """Runs each trial in the driver's own process: the default for one worker (no start-up cost)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def _ctrl_c_latch() -> Iterator[threading.Event]:
    """Remember every Ctrl-C, even one a library swallows: a SIGINT landing in a C extension's first import
    (scipy's HiGHS, loaded with POT on the first EMD) comes out as an ImportError that would otherwise end
    the trial FAILED and let the sweep run on. Python delivers signals to the main thread only."""
    seen = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def remember(signum: int, frame: Any) -> None:
        seen.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _make_executor(workers: int) -> cf.Executor:
    if workers == 1:
        return _InlineExecutor()
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
    )


class Driver:
    """Runs one sweep to its budget. Use :func:`run_sweep`."""

    def __init__(self, config: SweepConfig, *, progress: ProgressCallback | None = None) -> None:
        self.config = config
        self.objectives = [o.name for o in config.objectives]
        self.progress = progress
        # Everything that can be wrong with the config is checked before the sweep is created.
        self.space, self.warm_start, self.strategy = prepare(config)
        self.store = Store(config.store)
        self.sweep = open_sweep(self.store, config)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._rejections = 0
        self._noise: dict[str, float] = {}  # pooled std of each noisy objective, from replicates

    # -- resume -------------------------------------------------------------------------------------
    def _requeue_stale(self) -> None:
        """Trials whose driver stopped stamping their heartbeat run again (or fail after max_retries)."""
        stale_after = timedelta(seconds=3 * self.config.heartbeat_s)
        for trial in self.store.stale_trials(self.sweep.id, stale_after):
            if trial.attempts <= self.config.max_retries:
                log.warning("trial %d: worker %s died; queued again", trial.number, trial.worker)
                self.store.requeue_trial(trial.id, f"worker {trial.worker} died; retried")
            else:
                self.store.finish_trial(
                    trial.id,
                    TrialState.FAILED,
                    error=f"worker {trial.worker} died (no heartbeat) after {trial.attempts} attempt(s)",
                )

    def _rebuild_strategy(self) -> None:
        """Tell the strategy every finished search trial. Once replicates have measured the objectives'
        noise, a completed trial is told as the mean of its evaluations with its standard error."""
        trials = self.store.trials(self.sweep.id)
        runs = evaluations(trials)
        self._noise = pooled_std(runs.values(), self.objectives)
        finished = [t for t in trials if t.state.finished and t.replicate_of is None]
        for trial in finished:
            outcome = outcome_of(trial, self.objectives)
            if isinstance(outcome, Completed) and self._noise:
                outcome = self._with_noise([t.results for t in runs[trial.number]], outcome.fidelity)
            self.strategy.observe(trial.params, outcome)
        if finished:
            log.info(
                "resumed sweep %s: strategy rebuilt from %d finished trials", self.sweep.name, len(finished)
            )

    def _with_noise(self, runs: list[dict[str, float]], fidelity: int) -> Completed:
        """The mean of a trial's evaluations with the standard error of each noisy objective."""
        values = np.array([[run[n] for n in self.objectives] for run in runs], dtype=float).mean(axis=0)
        return Completed(
            dict(zip(self.objectives, values.tolist(), strict=True)),
            fidelity=fidelity,
            sem={name: std / np.sqrt(len(runs)) for name, std in self._noise.items()},
        )

    def _queue_warm_start(self) -> None:
        known = {t.config_hash for t in self.store.trials(self.sweep.id) if t.origin == "warm-start"}
        for canonical in self.warm_start:
            digest = self.space.config_hash(canonical)
            if digest not in known:
                self.store.create_trial(self.sweep.id, canonical, config_hash=digest, origin="warm-start")
                known.add(digest)

    # -- main loop ----------------------------------------------------------------------------------
    def _trained_or_running(self) -> int:
        """Trials that count against the budget (replicates of ``confirm`` do not)."""
        states = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.RUNNING)
        return self.store.count_trials(self.sweep.id, states, replicates=False)

    def _queued(self, *, replicates: bool) -> TrialRecord | None:
        queued = self.store.trials(self.sweep.id, [TrialState.QUEUED])
        return next((t for t in queued if (t.replicate_of is not None) == replicates), None)

    def _next_trial(self) -> tuple[TrialRecord, str | None] | None:
        """The next trial to run: a queued one first, else a feasible proposal of the strategy."""
        from spaces import Infeasible

        queued = self._queued(replicates=False)
        if queued is not None:
            return queued, None
        while self._rejections < _MAX_CONSECUTIVE_REJECTIONS:
            proposals = self.strategy.ask(1)
            if not proposals:
                return None
            proposal = proposals[0]
            canonical = self.space.validate(proposal.config)
            if isinstance(canonical, Infeasible):
                self._rejections += 1
                params = dict(proposal.config)
                trial = self.store.create_trial(
                    self.sweep.id, params, config_hash=self.space.config_hash(params)
                )
                self.store.finish_trial(trial.id, TrialState.INFEASIBLE, error=canonical.reason)
                self.strategy.tell(proposal.key, Rejected(canonical.reason))
                continue
            trial = self.store.create_trial(
                self.sweep.id, canonical, config_hash=self.space.config_hash(canonical)
            )
            return trial, proposal.key
        raise SweepError(
            f"{self._rejections} configs in a row were infeasible or over budget "
            f"({', '.join(self.config.budgets) or 'no budgets'}); the space or the budgets leave (almost) nothing "
            "feasible"
        )

    def _job(self, trial: TrialRecord) -> TrialJob:
        return TrialJob(
            store_url=self.config.store,
            trial_id=trial.id,
            number=trial.number,
            task=self.config.task,
            config=trial.params,
            objectives=tuple(self.objectives),
            budgets=tuple(self.config.budgets),
            hardware=self.config.hardware,
            epochs=self.config.epochs,
            patience=self.config.patience,
            data_seed=self.config.seed,
            seed=self.config.seed * 100_003 + trial.seed,
            checkpoint_dir=checkpoint_dir(self.config),
        )

    def _finish(self, trial: TrialRecord, key: str | None, outcome: Outcome) -> None:
        self._rejections = self._rejections + 1 if isinstance(outcome, Rejected) else 0
        state = _state_for(outcome)
        if isinstance(outcome, Completed | Pruned):
            self.store.finish_trial(
                trial.id, state, results=outcome.values, fidelity=outcome.fidelity or None
            )
        else:
            self.store.finish_trial(trial.id, state, error=outcome.reason)
        told = outcome
        if isinstance(outcome, Completed):
            told = Completed({k: outcome.values[k] for k in self.objectives}, fidelity=outcome.fidelity)
            if self._noise:  # one kind of data per objective: standard errors for every trial once known
                told = self._with_noise([outcome.values], outcome.fidelity)
        if key is not None:
            self.strategy.tell(key, told)
        elif trial.replicate_of is None:  # replicates measure noise; the strategy learns from the search only
            self.strategy.observe(trial.params, told)
        if self.progress is not None:
            finished = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED)
            done = self.store.count_trials(self.sweep.id, finished, replicates=False)
            self.progress(self.store.get_trial(trial.id), done, self.config.trials)

    def _own_running(self) -> list[TrialRecord]:
        return [t for t in self.store.trials(self.sweep.id, [TrialState.RUNNING]) if t.worker == self.worker]

    def _launch(
        self, executor: cf.Executor, pending: dict[cf.Future[Outcome], tuple[TrialRecord, str | None]]
    ) -> bool:
        """Start trials while workers are free and budget remains; False once the strategy is exhausted.

        Queued replicates run whatever the budget: they re-evaluate trials, they do not search.
        """
        while len(pending) < self.config.executor.workers:
            replicate = self._queued(replicates=True)
            if replicate is not None:
                trial, key = replicate, None
            elif self._trained_or_running() >= self.config.trials:
                return True
            else:
                nxt = self._next_trial()
                if nxt is None:
                    return False
                trial, key = nxt
            try:
                trial = self.store.start_trial(trial.id, worker=self.worker, host=socket.gethostname())
            except StoreError:
                continue  # another driver of the same sweep took this queued trial first
            pending[executor.submit(run_trial, self._job(trial))] = (trial, key)
        return True

    def run(self) -> SweepSummary:
        self._requeue_stale()
        self._rebuild_strategy()
        self._queue_warm_start()
        self.store.set_sweep_status(self.sweep.id, "RUNNING")
        heartbeat = Heartbeat(
            self.store, lambda: [t.id for t in self._own_running()], self.config.heartbeat_s
        )
        interrupted = exhausted = False
        executor = _make_executor(self.config.executor.workers)
        heartbeat.start()
        try:
            with _ctrl_c_latch() as ctrl_c:
                exhausted = self._run_trials(executor, ctrl_c)
        except BaseException as exc:
            # Ctrl-C, or the sweep cannot go on: running trials go back to the queue for `resume`.
            interrupted = True
            reason = (
                "interrupted by the user" if isinstance(exc, KeyboardInterrupt) else f"sweep stopped: {exc}"
            )
            running = self._own_running()
            for trial in running:
                self.store.requeue_trial(trial.id, f"{reason}; runs again on resume")
            log.warning("%s: %d running trial(s) queued again", reason, len(running))
            if not isinstance(exc, KeyboardInterrupt):
                self.store.set_sweep_status(self.sweep.id, "STOPPED")
                raise
        finally:
            heartbeat.stop()
            executor.shutdown(wait=not interrupted, cancel_futures=True)
            self.strategy.close()
        return self._summarise(interrupted=interrupted, exhausted=exhausted)

    def _run_trials(self, executor: cf.Executor, ctrl_c: threading.Event) -> bool:
        """Launch and finish trials until the budget is spent; True if the strategy ran out of configs."""
        pending: dict[cf.Future[Outcome], tuple[TrialRecord, str | None]] = {}
        started = time.monotonic()
        exhausted = False
        while True:
            self._requeue_stale()
            limit = self.config.time_limit_s
            if not exhausted and (limit is None or time.monotonic() - started < limit):
                exhausted = not self._launch(executor, pending)
            if not pending:
                if not self.store.trials(self.sweep.id, [TrialState.RUNNING]):
                    return exhausted
                time.sleep(1.0)  # trials of another driver are still running: wait for them or their death
                continue
            done, _ = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            if ctrl_c.is_set():
                raise KeyboardInterrupt  # a library swallowed it: the unfinished trials go back to the queue
            for future in done:
                trial, key = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker process crashed: the trial fails, the sweep goes on
                    outcome = Failed(f"worker crashed: {exc.__class__.__name__}: {exc}")
                self._finish(trial, key, outcome)

    def _summarise(self, *, interrupted: bool, exhausted: bool) -> SweepSummary:
        trials = self.store.trials(self.sweep.id)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
        notes = []
        if exhausted:
            notes.append("the strategy has no more configs to propose (space exhausted)")
        done = not interrupted and (exhausted or self._trained_or_running() >= self.config.trials)
        self.store.set_sweep_status(self.sweep.id, "DONE" if done else "STOPPED")
        fix_reference_point(self.store, self.sweep)
        front, volume = sweep_front(self.store, self.store.get_sweep(self.sweep.name) or self.sweep)
        return SweepSummary(self.sweep.name, counts, front, volume, interrupted, notes)


def fix_reference_point(store: Store, sweep: SweepRecord) -> None:
    """Store a reference point derived from the completed trials, once, if the config gave none."""
    if sweep.reference_point is not None:
        return
    names = [o["name"] for o in sweep.objectives]
    points = [[t.results[n] for n in names] for t in completed_search_trials(store, sweep)]
    if points:
        store.set_reference_point(
            sweep.id, default_reference(points, [o["direction"] for o in sweep.objectives])
        )


def queue_replicates(store: Store, sweep: SweepRecord, seeds: int) -> int:
    """Queue replicates so every trial on the front has ``seeds`` of them; returns how many were added."""
    front, _ = sweep_front(store, sweep)
    existing: dict[int, int] = {}
    for trial in store.trials(sweep.id):
        if trial.replicate_of is not None:
            existing[trial.replicate_of] = existing.get(trial.replicate_of, 0) + 1
    added = 0
    for trial in front:
        for _ in range(seeds - existing.get(trial.number, 0)):
            store.create_trial(
                sweep.id,
                trial.params,
                config_hash=trial.config_hash,
                origin="confirm",
                replicate_of=trial.number,
            )
            added += 1
    return added


def run_sweep(config: SweepConfig, *, progress: ProgressCallback | None = None) -> SweepSummary:
    """Create (or continue) the sweep described by ``config`` and run it to its budget.

    With ``confirm_seeds`` > 0 the front's trials are then re-evaluated with that many extra seeds.
    """
    if config.executor.kind == "ray":
        from search.execution._ray import run_ray_sweep  # imports Ray (~2 s): only for sweeps that use it

        summary = run_ray_sweep(config, progress=progress)
    else:
        summary = Driver(config, progress=progress).run()
    if config.confirm_seeds and not summary.interrupted:
        summary = confirm_sweep(config, config.confirm_seeds, progress=progress)
    return summary


def confirm_sweep(
    config: SweepConfig, seeds: int, *, progress: ProgressCallback | None = None
) -> SweepSummary:
    """Re-evaluate every trial on the front with ``seeds`` extra seeds (idempotent: existing ones count)."""
    if seeds < 1:
        raise SweepError(f"--seeds must be at least 1, got {seeds}")
    driver = Driver(config, progress=progress)
    added = queue_replicates(driver.store, driver.sweep, seeds)
    log.info("queued %d replicate trial(s) of sweep %s", added, config.name)
    return driver.run()
