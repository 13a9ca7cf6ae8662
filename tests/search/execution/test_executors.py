"""One suite for every executor (local worker processes, Ray tasks): what the sweep loop relies on."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sweep_configs import tiny_sweep, tiny_task

from search._config import parse_config
from search._types import Completed, Failed
from search.execution._executor import Executor, Finished, ProcessExecutor, WorkerLost
from search.execution._loop import SweepLoop
from search.storage import TrialRecord, TrialState
from spaces import get_preset


def config(store: str, epochs: int = 2) -> dict[str, Any]:
    return tiny_sweep(store, name="executors", task=tiny_task(3000), trials=1, epochs=epochs)


@pytest.fixture(
    params=["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])],
)
def make_executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Executor] = []

    def make() -> Executor:
        if request.param == "local":
            executor: Executor = ProcessExecutor(1)
        else:
            from search._config import ExecutorConfig
            from search.execution._ray import RayExecutor

            executor = RayExecutor(ExecutorConfig(kind="ray", workers=1))
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown()


def start(loop: SweepLoop, params: dict[str, Any]) -> TrialRecord:
    trial = loop.store.create_trial(loop.sweep.id, params, config_hash=str(len(params)) + str(params))
    return loop.store.start_trial(trial.id, worker="test", host="test")


def wait(executor: Executor, seconds: float) -> list[Finished]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        finished = executor.collect(1.0)
        if finished:
            return finished
    return []


def worker_pid(loop: SweepLoop, trial: TrialRecord, seconds: float = 60) -> int:
    """The pid the running trial's worker recorded, once it has finished an epoch."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = loop.store.get_trial(trial.id)
        if current.fidelity >= 1 and current.worker not in (None, "test"):
            return int(current.worker.split(":")[1].split()[0])  # "host:pid" or "host:pid ray-node id"
        time.sleep(0.1)
    raise AssertionError("the trial never reported an epoch")


def test_a_finished_trial_comes_back_with_its_outcome(sqlite_url: str, make_executor: Any) -> None:
    executor = make_executor()
    loop = SweepLoop(parse_config(config(sqlite_url)), executor=executor)
    trial = start(loop, get_preset("econt_baseline"))
    executor.submit(loop._job(trial))
    ((trial_id, outcome),) = wait(executor, 120)
    assert trial_id == trial.id and isinstance(outcome, Completed) and outcome.fidelity == 2
    assert outcome.values["ops"] == 6544 and [m["epoch"] for m in loop.store.metrics(trial.id)] == [1, 2]
    assert loop.store.get_trial(trial.id).worker != "test"  # the worker named itself


def test_a_failing_trial_comes_back_failed_with_its_reason(sqlite_url: str, make_executor: Any) -> None:
    executor = make_executor()
    loop = SweepLoop(parse_config(config(sqlite_url)), executor=executor)
    # Costed fine, then refused by the training settings (a config whose model cannot be built is
    # rejected at costing instead, before any training).
    trial = start(loop, {**get_preset("econt_baseline"), "batch_size": 0})
    executor.submit(loop._job(trial))
    ((trial_id, outcome),) = wait(executor, 120)
    assert trial_id == trial.id and isinstance(outcome, Failed) and "batch_size" in outcome.reason


def test_a_killed_worker_loses_its_trial_and_the_executor_goes_on(
    sqlite_url: str, make_executor: Any
) -> None:
    executor = make_executor()
    loop = SweepLoop(parse_config(config(sqlite_url, epochs=200)), executor=executor)
    trial = start(loop, get_preset("econt_baseline"))
    executor.submit(loop._job(trial))
    os.kill(worker_pid(loop, trial), signal.SIGKILL)
    ((trial_id, outcome),) = wait(executor, 60)
    assert trial_id == trial.id and isinstance(outcome, WorkerLost) and "died" in outcome.reason
    short = SweepLoop(parse_config({**config(sqlite_url), "name": "after"}), executor=executor)
    again = start(short, get_preset("econt_baseline"))
    executor.submit(short._job(again))
    ((_, outcome),) = wait(executor, 120)
    assert isinstance(outcome, Completed)


def test_cancel_abandons_running_trials_and_frees_their_workers(sqlite_url: str, make_executor: Any) -> None:
    executor = make_executor()
    loop = SweepLoop(parse_config(config(sqlite_url, epochs=200)), executor=executor)
    trial = start(loop, get_preset("econt_baseline"))
    executor.submit(loop._job(trial))
    pid = worker_pid(loop, trial)
    executor.cancel()
    assert executor.collect(1.0) == []  # abandoned trials are never reported
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and loop.store.get_trial(trial.id).fidelity < 200:
        fidelity = loop.store.get_trial(trial.id).fidelity
        time.sleep(2.0)
        if loop.store.get_trial(trial.id).fidelity == fidelity:
            break  # no epoch in 2 s: the worker stopped training
    else:
        raise AssertionError("the cancelled trial kept training")
    assert not _alive(pid) or pid not in [p.pid for p in multiprocessing.active_children()]
    assert loop.store.get_trial(trial.id).state is TrialState.RUNNING  # the loop, not the executor, requeues


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_trial_still_waiting_for_a_worker_when_the_pool_breaks_keeps_its_attempt(sqlite_url: str) -> None:
    executor = ProcessExecutor(1)  # capacity 2: one trial runs, the other waits for the worker
    sweep = {**config(sqlite_url, epochs=200), "trials": 2, "max_retries": 0}
    loop = SweepLoop(parse_config(sweep), executor=executor)
    try:
        trials = []
        for number in range(2):
            params = {**get_preset("econt_baseline"), "lr": 1e-3 * (number + 1)}
            made = loop.store.create_trial(loop.sweep.id, params, config_hash=f"waiting-{number}")
            trial = loop.store.start_trial(made.id, worker=loop.worker, host=loop.host)
            loop._running[trial.id] = (trial, None)
            executor.submit(loop._job(trial))
            trials.append(trial)
        running, waiting = trials
        os.kill(worker_pid(loop, running), signal.SIGKILL)
        finished: list[Finished] = []
        deadline = time.monotonic() + 60
        while len(finished) < 2 and time.monotonic() < deadline:
            finished += executor.collect(1.0)
        assert sorted(trial_id for trial_id, _ in finished) == [running.id, waiting.id]
        assert all(isinstance(outcome, WorkerLost) for _, outcome in finished)
        loop._collect(finished)
        assert loop.store.get_trial(running.id).state is TrialState.FAILED  # max_retries 0: its attempt ran
        again = loop.store.get_trial(waiting.id)
        assert again.state is TrialState.QUEUED and again.attempts == 0
    finally:
        executor.shutdown()
