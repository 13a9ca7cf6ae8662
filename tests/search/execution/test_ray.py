"""The Ray executor with real Ray processes: ASHA sweeps, workers killed mid-trial, CPU checks.

One local Ray session (2 CPUs) is shared by the module: ``ray.init`` costs ~5 s and ~1 GB.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from sweep_configs import tiny_sweep, tiny_task

from search._config import parse_config
from search.execution._loop import SweepLoop, run_sweep
from search.execution._ray import ExecutorError
from search.results import sweep_front
from search.storage._schema import TrialState
from search.storage._store import Store

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def ray_config(store: str, **overrides: Any) -> dict[str, Any]:
    asha = {"kind": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1}
    ray = {"name": "ray-sweep", "task": tiny_task(3000, 500), "trials": 8, "epochs": 4, "seed": 11}
    return tiny_sweep(
        store, **{**ray, "executor": {"kind": "ray", "workers": 2}, "scheduler": asha, **overrides}
    )


@pytest.mark.parametrize("strategy", ["random", "optuna-tpe"])
def test_asha_prunes_trials_and_the_front_uses_full_fidelity_only(sqlite_url: str, strategy: str) -> None:
    config = parse_config(ray_config(sqlite_url, strategy={"name": strategy}))
    loop = SweepLoop(config)
    summary = loop.run()
    store = Store(sqlite_url)
    trials = store.trials(store.get_sweep("ray-sweep").id)
    assert [t.number for t in trials] == list(range(len(trials)))
    trials = [t for t in trials if t.state is not TrialState.INFEASIBLE]  # proposals never trained
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    assert len(pruned) + len(completed) == 8
    assert pruned, "ASHA with reduction factor 2 stops some of 8 random trials at the first rungs"
    for trial in pruned:
        assert 1 <= trial.fidelity < 4  # stopped at a rung, never after the last epoch
        assert [row["epoch"] for row in store.metrics(trial.id)] == list(range(1, trial.fidelity + 1))
        assert "bops" in trial.results and "emd_mean" not in trial.results  # the truth: no final EMD
        assert trial.worker is not None and "ray-node" in trial.worker
    for trial in completed:
        assert trial.fidelity == 4 and {"emd_mean", "bops"} <= set(trial.results)
        assert [row["epoch"] for row in store.metrics(trial.id)] == [1, 2, 3, 4]
    assert {t.number for t in summary.front} <= {t.number for t in completed}
    assert (summary.front, summary.hypervolume) == sweep_front(store, store.get_sweep("ray-sweep"))
    seen = loop.strategy.state_dict()["seen"]
    assert seen["pruned"] == len(pruned) and seen["completed"] == len(completed)


def _kill_workers(store: Store, plan: dict[int, int], stop: threading.Event) -> list[tuple[int, int, int]]:
    """Kill the Ray worker of trial ``number`` on each of its first ``plan[number]`` attempts, mid-trial."""
    killed: list[tuple[int, int, int]] = []

    def watch() -> None:
        while not stop.is_set():
            sweep = store.get_sweep("ray-sweep")
            running = [] if sweep is None else store.trials(sweep.id, [TrialState.RUNNING])
            for trial in running:
                done = sum(1 for number, _, _ in killed if number == trial.number)
                mid_trial = trial.fidelity >= 1 and trial.worker is not None and "ray-node" in trial.worker
                if trial.number in plan and done < plan[trial.number] and trial.attempts > done and mid_trial:
                    pid = int(trial.worker.split(":")[1].split()[0])  # "host:pid ray-node id"
                    os.kill(pid, signal.SIGKILL)
                    killed.append((trial.number, trial.attempts, pid))
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return killed


def test_a_killed_worker_is_retried_or_failed_and_the_sweep_goes_on(sqlite_url: str) -> None:
    config = parse_config(
        ray_config(sqlite_url, trials=5, epochs=6, max_retries=1, scheduler={"kind": "none"})
    )
    store = Store(sqlite_url)
    stop = threading.Event()
    killed = _kill_workers(store, {0: 1, 1: 2}, stop)
    try:
        summary = run_sweep(config)
    finally:
        stop.set()
    assert sorted((number, attempt) for number, attempt, _ in killed) == [(0, 1), (1, 1), (1, 2)]
    trials = {t.number: t for t in store.trials(store.get_sweep("ray-sweep").id)}
    assert sorted(trials) == [0, 1, 2, 3, 4]  # no trial lost, none duplicated
    retried, failed = trials[0], trials[1]
    assert retried.state is TrialState.COMPLETED and retried.attempts == 2 and retried.fidelity == 6
    assert [row["epoch"] for row in store.metrics(retried.id)] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]  # the dead run's are gone
    assert failed.state is TrialState.FAILED and failed.attempts == 2
    assert failed.error is not None and failed.error.startswith("Ray worker failed: ")
    assert failed.error.endswith("(after 2 attempt(s))") and "died" in failed.error
    assert all(trials[n].state is TrialState.COMPLETED and trials[n].attempts == 1 for n in (2, 3, 4))
    assert summary.counts == {"COMPLETED": 4, "FAILED": 1}


def test_more_workers_than_the_cluster_has_cpus_are_refused_before_the_sweep_exists(sqlite_url: str) -> None:
    config = parse_config(ray_config(sqlite_url, executor={"kind": "ray", "workers": 3}))
    with pytest.raises(ExecutorError, match=r"executor.workers 3 needs 3 CPUs .* but the Ray cluster has 2"):
        run_sweep(config)
    assert Store(sqlite_url).list_sweeps() == []
    assert ray.is_initialized()  # a session hwnas did not start is left running
