"""The executor protocol the sweep loop runs trials through, and the local executor.

An executor runs :class:`TrialJob` s and hands back what became of them; it knows nothing of strategies,
states or the sweep's lifecycle (the loop owns those). Finished work comes back as ``(trial id, outcome)``
where the outcome is the trial's own (Completed, Pruned, Failed, Rejected) or :class:`WorkerLost` when the
process running it died: the loop then retries the trial or fails it after ``max_retries``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import socket
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

from search._types import Failed, Outcome
from search.execution._trial import TrialJob, run_trial, worker_store
from search.execution._worker import die_with_parent


@dataclass(frozen=True)
class WorkerLost:
    """The process (or node) running the trial died before it reported; the trial may run again."""

    reason: str


Finished = tuple[int, Outcome | WorkerLost]


class Executor(Protocol):
    """Runs trial jobs: at most ``capacity`` in flight (running, or waiting for the next free worker);
    ``collect`` waits up to ``timeout`` seconds for some to end. ``cancel`` abandons every running job (they
    are never reported); ``shutdown`` releases workers."""

    capacity: int

    def submit(self, job: TrialJob) -> None: ...

    def collect(self, timeout: float) -> list[Finished]: ...

    def cancel(self) -> None: ...

    def shutdown(self) -> None: ...


class InlineExecutor:
    """Runs each trial in the loop's own process, in ``collect``: one worker without start-up cost."""

    capacity = 1

    def __init__(self) -> None:
        self._jobs: deque[TrialJob] = deque()

    def submit(self, job: TrialJob) -> None:
        self._jobs.append(job)

    def collect(self, timeout: float) -> list[Finished]:
        if not self._jobs:
            return []
        job = self._jobs.popleft()
        return [(job.trial_id, run_trial(job))]

    def cancel(self) -> None:
        self._jobs.clear()

    def shutdown(self) -> None:
        self._jobs.clear()


def _in_worker_process(job: TrialJob) -> Outcome:
    host = socket.gethostname()
    worker_store(job.store_url).record_worker(job.trial_id, worker=f"{host}:{os.getpid()}", host=host)
    return run_trial(job)


class ProcessExecutor:
    """Runs trials in a pool of spawned worker processes that die with the loop's process. A worker that
    dies loses its trial (and, as the pool breaks, every running one): they come back as WorkerLost and a
    fresh pool takes the next jobs.

    One job more than there are workers is in flight: a worker that finishes takes the waiting one at once
    instead of idling through the driver's bookkeeping and next ask (7 % of the time with trials of ~1.5 s).
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self.capacity = workers + 1
        self._pool = self._new_pool()
        self._running: dict[cf.Future[Outcome], int] = {}

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
        )

    def submit(self, job: TrialJob) -> None:
        self._running[self._pool.submit(_in_worker_process, job)] = job.trial_id

    def collect(self, timeout: float) -> list[Finished]:
        if not self._running:
            return []
        done, _ = cf.wait(self._running, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        finished: list[Finished] = []
        broken = False
        for future in done:
            trial_id = self._running.pop(future)
            try:
                finished.append((trial_id, future.result()))
            except BrokenProcessPool as exc:
                broken = True
                finished.append((trial_id, WorkerLost(f"worker process died: {exc}")))
            except Exception as exc:  # the job could not reach or leave the worker (pickling, ...)
                finished.append((trial_id, Failed(f"worker error: {exc.__class__.__name__}: {exc}")))
        if broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return finished

    def cancel(self) -> None:
        self._running.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in multiprocessing.active_children():
            process.terminate()  # the pool's workers: a cancelled trial must not keep a core busy
        self._pool = self._new_pool()

    def shutdown(self) -> None:
        self._running.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def local_executor(workers: int) -> InlineExecutor | ProcessExecutor:
    """The embedded default: in-process for one worker, else a process pool."""
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers)
