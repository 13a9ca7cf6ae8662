"""The sweep loop: the one lifecycle of every sweep, whatever executor runs its trials.

It creates or resumes the sweep, asks the strategy, records and submits trials to the executor, collects
their outcomes, tells the strategy, stamps heartbeats, requeues trials of dead workers and finishes the
sweep. Guarantees:
- The store is the truth. A resumed sweep rebuilds the strategy from finished trials, re-runs QUEUED ones
  (interrupted or left by a dead worker) under their own numbers, and never loses or duplicates a trial.
- No config is trained twice in a sweep unless as a declared replicate: a proposal whose canonical config
  the sweep has already is told that trial's outcome (or Failed while it still runs), without training.
- The trial budget holds whatever drivers run at once: the store adds a new search trial only within the
  budget and only if no search trial has its config, checked in the transaction that adds it.
- Infeasible configs and configs over a hardware budget are recorded INFEASIBLE and told to the strategy
  without training. A trial that raises or diverges ends FAILED with its reason; the sweep goes on. A trial
  whose worker died runs again (up to ``max_retries``).
- Replicates (``confirm_seeds``) are not search trials: when one completes, the strategy is told its
  original's revised values, the mean of its evaluations (``Strategy.revise``), as a resume would tell them.
- Ctrl-C (even one a library swallowed) puts running trials back in the queue and exits cleanly; ``resume``
  continues.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np

from search._config import SweepConfig
from search._types import Completed, Failed, Outcome, Pruned, Rejected
from search.execution._distill import TeacherJob, check_same_teacher, launch_teacher, trial_teacher
from search.execution._executor import Executor, Finished, WorkerLost
from search.execution._liveness import Heartbeat, ctrl_c_latch
from search.execution._records import (
    completed_as_told,
    fix_reference_point,
    outcome_of,
    pruned_as_told,
    queue_replicates,
    state_for,
)
from search.execution._setup import (
    SweepError,
    build_strategy,
    checkpoint_dir,
    existing_sweep,
    load_sweep,
    make_executor,
    open_sweep,
    prepare,
    rung_plan,
)
from search.execution._trial import TrialJob
from search.results import evaluations, pooled_std, sweep_front
from search.storage import BudgetSpent, ConfigTaken, Store, StoreError, TrialRecord, TrialState

log = logging.getLogger(__name__)

# Consecutive infeasible/over-budget/duplicate proposals before a sweep gives up: nothing new is feasible.
_MAX_CONSECUTIVE_REJECTIONS = 100
_COLLECT_S = 1.0  # longest wait for outcomes before the loop checks heartbeats, Ctrl-C and new work

__all__ = ["SweepError", "SweepLoop", "SweepSummary", "confirm_sweep", "load_sweep", "prepare", "run_sweep"]


@dataclass
class SweepSummary:
    name: str
    counts: dict[str, int]
    front: list[TrialRecord]
    hypervolume: float | None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[TrialRecord, int, int], None]


class SweepLoop:
    """Runs one sweep to its budget on the executor its config names. Use :func:`run_sweep`."""

    def __init__(
        self,
        config: SweepConfig,
        *,
        progress: ProgressCallback | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.config = config
        self.objectives = [o.name for o in config.objectives]
        self.progress = progress
        # Everything that can be wrong with the config is checked before the sweep is created.
        self.space, self.warm_start, self.strategy = prepare(config)
        self.rungs = rung_plan(config)
        # A preset teacher is trained here, once per store, before any worker starts (and only after
        # the name is known to be free or this config's: a clash must not cost a teacher's training).
        if config.distill is not None:
            store = Store(config.store)
            try:
                existing_sweep(store, config)
            finally:
                store.close()
        self.teacher = launch_teacher(config)
        teacher = config.distill.teacher if config.distill is not None else None
        self._teacher_trial = teacher if isinstance(teacher, int) else None
        self._teacher_trial_id: int | None = None  # its row, once it exists (polled by id, not by a scan)
        self.executor = executor or make_executor(config)
        try:
            self.store = Store(config.store)
            self.sweep = open_sweep(self.store, config)
            session = self.store.start_session(self.sweep.id)
            if session > 1:  # a resume or a second driver: a stream of its own (the checks passed already)
                if self.teacher is not None:
                    check_same_teacher(self.store, self.sweep, self.teacher)
                self._warn_older_cost_formulas()
                self.strategy.close()
                self.strategy = build_strategy(config, self.space, session=session)
        except BaseException:
            self.executor.shutdown()
            raise
        self.host = socket.gethostname()
        self.worker = f"{self.host}:{os.getpid()}"
        self._rejections = 0
        self._noise: dict[str, float] = {}  # pooled std of each noisy objective, from replicates
        self._running: dict[int, tuple[TrialRecord, str | None]] = {}  # trial id -> (trial, strategy key)
        self._known: dict[str, int] = {}  # canonical config hash -> id of the search trial that has it
        self._retried_keys: dict[int, str] = {}  # trial id -> strategy key of a trial queued again
        self.timed_out = False  # the time limit stopped the run

    # -- resume -------------------------------------------------------------------------------------
    def _requeue_stale(self) -> None:
        """Trials whose driver stopped stamping their heartbeat run again (or fail after max_retries)."""
        stale_after = timedelta(seconds=3 * self.config.heartbeat_s)
        for trial in self.store.stale_trials(self.sweep.id, stale_after):
            if trial.id in self._running:
                continue  # ours, alive: the heartbeat was late (a busy store), the worker is not dead
            if trial.attempts <= self.config.max_retries:
                log.warning("trial %d: worker %s died; queued again", trial.number, trial.worker)
                self.store.requeue_trial(trial.id, f"worker {trial.worker} died; retried")
            else:
                self.store.finish_trial(
                    trial.id,
                    TrialState.FAILED,
                    error=f"worker {trial.worker} died (no heartbeat) after {trial.attempts} attempt(s)",
                )

    def _warn_older_cost_formulas(self) -> None:
        """Warn when a resumed sweep holds costs estimated by older formulas than the ones its new trials get:
        the front would set estimates side by side that are not comparable."""
        from hw_models import FORMULA_VERSION

        older = {v: n for v, n in self.store.formula_versions(self.sweep.id).items() if v != FORMULA_VERSION}
        if older:
            log.warning(
                "sweep %s: %d trial(s) were costed with older formulas (%s); new trials are costed with %s, "
                "so its front mixes estimates that are not comparable: launch a new sweep to compare costs",
                self.sweep.name,
                sum(older.values()),
                ", ".join(f"{version}: {count}" for version, count in sorted(older.items())),
                FORMULA_VERSION,
            )

    def _rebuild_strategy(self) -> None:
        """Tell the strategy every finished search trial and remember every config the sweep has. Once
        replicates have measured the objectives' noise, a completed trial is told as the mean of its
        evaluations with its standard error."""
        trials = self.store.trials(self.sweep.id)
        runs = evaluations(trials)
        self._noise = pooled_std(runs.values(), self.objectives)
        finished = [t for t in trials if t.state.finished and t.replicate_of is None]
        for trial in finished:
            outcome = outcome_of(trial, self.objectives)
            if isinstance(outcome, Completed) and self._noise:
                outcome = self._with_noise([t.results for t in runs[trial.number]], outcome)
            self.strategy.observe(trial.params, outcome)
        self._known = {t.config_hash: t.id for t in trials if t.replicate_of is None}
        # A sweep that stopped on a streak of infeasible proposals resumes with that streak, so a resume
        # of a space that leaves nothing feasible stops at once instead of adding another streak.
        search = [t for t in trials if t.replicate_of is None]
        streak = next(
            (i for i, t in enumerate(reversed(search)) if t.state is not TrialState.INFEASIBLE), len(search)
        )
        self._rejections = streak
        if finished:
            log.info(
                "resumed sweep %s: strategy rebuilt from %d finished trials", self.sweep.name, len(finished)
            )

    def _with_noise(self, runs: list[dict[str, float]], told: Completed) -> Completed:
        """The trial as told, its values the mean of its evaluations with the standard error of each noisy
        objective."""
        values = np.array([[run[n] for n in self.objectives] for run in runs], dtype=float).mean(axis=0)
        return replace(
            told,
            values=dict(zip(self.objectives, values.tolist(), strict=True)),
            sem={name: std / np.sqrt(len(runs)) for name, std in self._noise.items()},
        )

    def _revise_replicated(self, number: int) -> None:
        """Tell the strategy the mean of trial ``number``'s evaluations now that a replicate of it completed
        (as a resumed sweep would be told it), with the noise measured so far."""
        runs = evaluations(self.store.trials(self.sweep.id))
        self._noise = pooled_std(runs.values(), self.objectives)
        group = runs.get(number)
        if group is None:  # the original did not complete (replicates are only queued of completed ones)
            return
        original = group[0]
        told = completed_as_told(original.results, self.objectives, original.fidelity)
        self.strategy.revise(original.params, self._with_noise([t.results for t in group], told))

    def _queue_warm_start(self) -> None:
        for canonical in self.warm_start:
            digest = self.space.config_hash(canonical)
            if digest in self._known:
                continue
            try:
                trial = self.store.create_trial(
                    self.sweep.id,
                    canonical,
                    config_hash=digest,
                    origin="warm-start",
                    budget=self.config.trials,
                    unique_config=True,
                )
            except ConfigTaken as taken:  # a driver started beside this one queued it
                self._known[digest] = taken.trial_id
                continue
            except BudgetSpent:
                log.warning(
                    "warm-start configs past the budget of %d trials are left out", self.config.trials
                )
                return
            self._known[digest] = trial.id

    # -- proposing ----------------------------------------------------------------------------------
    def _trained_or_running(self) -> int:
        """Trials that count against the budget (replicates of ``confirm`` do not)."""
        states = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.RUNNING)
        return self.store.count_trials(self.sweep.id, states, replicates=False)

    def _queued(self, *, replicates: bool) -> TrialRecord | None:
        queued = self.store.trials(self.sweep.id, [TrialState.QUEUED])
        return next((t for t in queued if (t.replicate_of is not None) == replicates), None)

    def _propose(self) -> tuple[dict[str, Any], str, str] | None:
        """The strategy's next feasible config that the sweep lacks, as (canonical config, its hash, the
        proposal's key); None once the strategy has no more. Infeasible proposals are recorded INFEASIBLE
        and duplicates are told the outcome of the trial that has their config, neither trained."""
        from spaces import Infeasible

        while self._rejections < _MAX_CONSECUTIVE_REJECTIONS:
            proposals = self.strategy.ask(1)
            if not proposals:
                return None
            proposal = proposals[0]
            canonical = self.space.validate(proposal.config)
            if isinstance(canonical, Infeasible):
                self._rejections += 1
                params = dict(proposal.config)
                self.store.create_trial(
                    self.sweep.id,
                    params,
                    config_hash=self.space.config_hash(params),
                    state=TrialState.INFEASIBLE,
                    error=canonical.reason,
                )
                self.strategy.tell(proposal.key, Rejected(canonical.reason))
                continue
            digest = self.space.config_hash(canonical)
            if digest in self._known:
                self._rejections += 1
                self.strategy.tell(proposal.key, self._known_outcome(self._known[digest]))
                continue
            return canonical, digest, proposal.key
        raise SweepError(
            f"{self._rejections} configs in a row were infeasible, over budget or already in the sweep "
            f"({', '.join(self.config.budgets) or 'no budgets'}); the space or the budgets leave (almost) "
            "nothing new that is feasible"
        )

    def _start_new(self) -> tuple[TrialRecord, str] | bool:
        """A new search trial, started; False when the strategy has no more configs, True when the budget is
        spent. The store adds it only within the budget and if no trial has its config, atomically: a
        driver running beside this one may have taken the last trial or the config since the checks here."""
        while (proposal := self._propose()) is not None:
            canonical, digest, key = proposal
            try:
                trial = self.store.create_trial(
                    self.sweep.id,
                    canonical,
                    config_hash=digest,
                    state=TrialState.RUNNING,
                    worker=self.worker,
                    host=self.host,
                    budget=self.config.trials,
                    unique_config=True,
                )
            except BudgetSpent:
                self.strategy.tell(key, Failed("not run: another driver of the sweep spent the budget"))
                return True
            except ConfigTaken as taken:
                self._known[digest] = taken.trial_id
                self._rejections += 1
                self.strategy.tell(key, self._known_outcome(taken.trial_id))
                continue
            self._known[digest] = trial.id
            return trial, key
        return False

    def _known_outcome(self, trial_id: int) -> Outcome:
        """What a duplicate proposal is told: the outcome of the trial that has its config, or Failed while
        that trial has none yet (samplers ignore failures; the config is not trained twice)."""
        trial = self.store.get_trial(trial_id)
        if trial.state.finished:
            return outcome_of(trial, self.objectives)
        return Failed(f"duplicate of trial {trial.number}, which has not finished")

    def _pending_teacher(self) -> TrialRecord | None:
        """With a trial of this sweep as the teacher: that trial while it exists unfinished (the trials after
        it wait: they learn from it). Once it has finished it becomes ``self.teacher`` (SweepError, which
        stops the sweep, if it did not complete)."""
        if self._teacher_trial is None or self.teacher is not None:
            return None
        if self._teacher_trial_id is None:  # not yet created: only the trials numbered below it exist
            trials = self.store.trials(self.sweep.id)
            found = next((t for t in trials if t.number == self._teacher_trial), None)
            if found is None:
                return None  # the next trials are numbered below it and train alone
            self._teacher_trial_id = found.id
        trial = self.store.get_trial(self._teacher_trial_id)
        if not trial.state.finished:
            return trial
        self.teacher = trial_teacher(self.store, trial, self.config)
        return None

    def _learns_from_teacher_trial(self, trial: TrialRecord) -> bool:
        """Whether ``trial`` comes after this sweep's teacher trial; a replicate re-runs its original as that
        one ran, with the teacher only if the original had it."""
        number = trial.number if trial.replicate_of is None else trial.replicate_of
        return self._teacher_trial is not None and number > self._teacher_trial

    def _teacher_of(self, trial: TrialRecord) -> TeacherJob | None:
        if self._teacher_trial is not None and not self._learns_from_teacher_trial(trial):
            return None  # the teacher and the trials before it train alone
        return self.teacher

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
            # Replicates confirm and a teacher must complete: neither is cut.
            rungs=self.rungs if trial.replicate_of is None and trial.number != self._teacher_trial else None,
            stages=tuple((stage.kind, stage.epochs) for stage in self.config.stages),
            distill=self._teacher_of(trial),
        )

    def _launch(self, started: float) -> bool:
        """Start trials while workers are free and budget remains; False once the strategy is exhausted.

        Queued replicates run whatever the trial budget (they re-evaluate trials, they do not search), but
        not past the time limit, which bounds the whole run. Queued search trials run before new ones.
        """
        limit = self.config.time_limit_s
        while len(self._running) < self.executor.capacity:
            if limit is not None and time.monotonic() - started >= limit:
                self.timed_out = True
                return True
            teacher = self._pending_teacher()
            if teacher is not None and teacher.state is not TrialState.QUEUED:
                return True  # the teacher runs: the next trials start once it has finished
            queued = self._queued(replicates=True) if teacher is None else None
            if queued is None:
                if self._trained_or_running() >= self.config.trials:
                    return True
                queued = teacher or self._queued(replicates=False)  # a queued teacher goes first
            if queued is not None:
                key = self._retried_keys.pop(queued.id, None)
                try:
                    trial = self.store.start_trial(queued.id, worker=self.worker, host=self.host)
                except StoreError:
                    continue  # another driver of the same sweep took this queued trial first
            else:
                new = self._start_new()
                if isinstance(new, bool):
                    return new
                trial, key = new
            if self._learns_from_teacher_trial(trial) and self._pending_teacher() is not None:
                # Another driver of the sweep started the teacher after this one looked: wait for it.
                self.store.requeue_trial(
                    trial.id, f"waits for its teacher, trial {self._teacher_trial}", attempt_spent=False
                )
                if key is not None:
                    self._retried_keys[trial.id] = key
                return True
            self._running[trial.id] = (trial, key)
            self.executor.submit(self._job(trial))
        return True

    # -- outcomes -----------------------------------------------------------------------------------
    def _finish(self, trial: TrialRecord, key: str | None, outcome: Outcome) -> None:
        self._rejections = self._rejections + 1 if isinstance(outcome, Rejected) else 0
        state = state_for(outcome)
        if isinstance(outcome, Completed | Pruned):
            self.store.finish_trial(
                trial.id, state, results=outcome.values, fidelity=outcome.fidelity or None
            )
        else:
            self.store.finish_trial(trial.id, state, error=outcome.reason)
        if isinstance(outcome, Completed) and trial.replicate_of is None and self.config.confirm_seeds:
            # Noise is handled while the search runs: a trial entering the front is re-evaluated at once.
            queue_replicates(self.store, self.sweep, self.config.confirm_seeds, self.config.reference_point)
        told = outcome
        if isinstance(outcome, Completed):
            told = completed_as_told(outcome.values, self.objectives, outcome.fidelity)
            if self._noise:  # one kind of data per objective: standard errors for every trial once known
                told = self._with_noise([outcome.values], told)
        elif isinstance(outcome, Pruned):
            told = pruned_as_told(outcome.values, self.objectives, outcome.fidelity)
        if key is not None:
            self.strategy.tell(key, told)
        elif trial.replicate_of is None:
            self.strategy.observe(trial.params, told)
        elif isinstance(outcome, Completed):
            self._revise_replicated(trial.replicate_of)
        if self.progress is not None:
            finished = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED)
            done = self.store.count_trials(self.sweep.id, finished, replicates=False)
            self.progress(self.store.get_trial(trial.id), done, self.config.trials)

    def _collect(self, finished: list[Finished]) -> None:
        for trial_id, outcome in finished:
            trial, key = self._running.pop(trial_id)
            if isinstance(outcome, WorkerLost):
                stored = self.store.get_trial(trial_id)
                attempts = stored.attempts
                if stored.worker == self.worker:  # no worker took it: it waited in the executor's queue
                    self.store.requeue_trial(
                        trial_id, f"{outcome.reason} before it started; queued again", attempt_spent=False
                    )
                    if key is not None:
                        self._retried_keys[trial_id] = key
                    continue
                if attempts <= self.config.max_retries:
                    log.warning(
                        "trial %d: %s; queued again (attempt %d)", trial.number, outcome.reason, attempts
                    )
                    self.store.requeue_trial(trial_id, f"{outcome.reason}; retried")
                    if key is not None:
                        self._retried_keys[trial_id] = key  # told when the retry finishes
                    continue
                outcome = Failed(f"{outcome.reason} (after {attempts} attempt(s))")
            self._finish(trial, key, outcome)

    # -- the lifecycle ------------------------------------------------------------------------------
    def run(self) -> SweepSummary:
        self._requeue_stale()
        self._rebuild_strategy()
        self._queue_warm_start()
        self.store.set_sweep_status(self.sweep.id, "RUNNING")
        heartbeat = Heartbeat(self.store, lambda: list(self._running), self.config.heartbeat_s)
        interrupted = exhausted = False
        heartbeat.start()
        try:
            with ctrl_c_latch() as ctrl_c:
                exhausted = self._run_trials(ctrl_c)
        except BaseException as exc:
            # Ctrl-C, or the sweep cannot go on: running trials go back to the queue for `resume`.
            interrupted = True
            self.executor.cancel()
            reason = (
                "interrupted by the user" if isinstance(exc, KeyboardInterrupt) else f"sweep stopped: {exc}"
            )
            for trial, _ in self._running.values():
                self.store.requeue_trial(trial.id, f"{reason}; runs again on resume")
            log.warning("%s: %d running trial(s) queued again", reason, len(self._running))
            self._running.clear()
            if not isinstance(exc, KeyboardInterrupt):
                self.store.set_sweep_status(self.sweep.id, "STOPPED")
                raise
        finally:
            heartbeat.stop()
            self.executor.shutdown()
            self.strategy.close()
        return self._summarise(interrupted=interrupted, exhausted=exhausted)

    def _run_trials(self, ctrl_c: threading.Event) -> bool:
        """Launch and finish trials until the budget is spent; True if the strategy ran out of configs."""
        started = time.monotonic()
        exhausted = False
        while True:
            self._requeue_stale()
            if not exhausted:
                exhausted = not self._launch(started)
            if not self._running:
                if not self.store.trials(self.sweep.id, [TrialState.RUNNING]):
                    return exhausted
                time.sleep(
                    _COLLECT_S
                )  # trials of another driver are still running: wait for them or their death
                continue
            finished = self.executor.collect(_COLLECT_S)
            if ctrl_c.is_set():  # a library swallowed it: what just ended is unfinished, back to the queue
                raise KeyboardInterrupt
            self._collect(finished)

    def _summarise(self, *, interrupted: bool, exhausted: bool) -> SweepSummary:
        counts = self.store.count_by_state(self.sweep.id)
        notes = []
        if exhausted:
            notes.append("the strategy has no more configs to propose (space exhausted)")
        done = not interrupted and (exhausted or self._trained_or_running() >= self.config.trials)
        self.store.set_sweep_status(self.sweep.id, "DONE" if done else "STOPPED")
        fix_reference_point(self.store, self.sweep)
        front, volume = sweep_front(self.store, self.store.get_sweep(self.sweep.name) or self.sweep)
        return SweepSummary(self.sweep.name, counts, front, volume, interrupted, notes)


def run_sweep(
    config: SweepConfig,
    *,
    progress: ProgressCallback | None = None,
    on_start: Callable[[], None] | None = None,
) -> SweepSummary:
    """Create (or continue) the sweep described by ``config`` and run it to its budget.

    With ``confirm_seeds`` > 0 every trial that enters the front is re-evaluated with that many extra seeds
    while the sweep runs, and the front's trials still lacking them at the end are confirmed then (unless the
    time limit ended the run). ``on_start`` is called once the store and the sweep are open.
    """
    loop = SweepLoop(config, progress=progress)
    if on_start is not None:  # the config is checked and the store and the sweep are open
        on_start()
    summary = loop.run()
    if config.confirm_seeds and not summary.interrupted and not loop.timed_out:
        summary = confirm_sweep(config, config.confirm_seeds, progress=progress)  # the front's last members
    return summary


def confirm_sweep(
    config: SweepConfig, seeds: int, *, progress: ProgressCallback | None = None
) -> SweepSummary:
    """Re-evaluate every trial on the front with ``seeds`` extra seeds (idempotent: existing ones count),
    on the sweep's own executor."""
    if seeds < 1:
        raise SweepError(f"--seeds must be at least 1, got {seeds}")
    loop = SweepLoop(config, progress=progress)
    added = queue_replicates(loop.store, loop.sweep, seeds, config.reference_point)
    log.info("queued %d replicate trial(s) of sweep %s", added, config.name)
    return loop.run()
