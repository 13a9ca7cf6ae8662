"""The Ray executor: each trial runs as a Ray task (one CPU) on a local Ray hwnas starts, or on a cluster.

The store stays the truth: workers write per-epoch metrics, costs, rung points and checkpoints to it, and
the sweep loop moves trials between states. Early stopping needs no Ray scheduler: ASHA decides inside each
trial from the store's rung records (:mod:`search.execution._asha`), exactly as on local workers.

Guarantees:
- Ray is started or joined, and the CPUs checked, before the sweep is created in the store; an unreachable
  address, a Ray version mismatch or too few CPUs raise :class:`ExecutorError` (a ``SweepError``).
- A trial whose Ray worker or node dies comes back as :class:`WorkerLost` with Ray's reason (the loop retries
  it up to ``max_retries``); Ray itself never retries a trial.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import ray
from ray.exceptions import RayError, TaskCancelledError

from search._config import ExecutorConfig
from search._types import Outcome
from search.execution._executor import Finished, WorkerLost
from search.execution._preflight import local_cpus_problem, local_ray_cpus, ray_address_problem
from search.execution._setup import SweepError
from search.execution._trial import TrialJob, run_trial, worker_store

log = logging.getLogger(__name__)


class ExecutorError(SweepError):
    """Ray cannot run the sweep: unreachable cluster, Ray version mismatch, more CPUs asked than exist."""


@ray.remote(num_cpus=1, max_retries=0)
def _ray_trial(job: TrialJob) -> Outcome:
    import torch

    torch.set_num_threads(1)  # one trial per CPU Ray gave us
    host = socket.gethostname()
    node = ray.get_runtime_context().get_node_id()
    worker_store(job.store_url).record_worker(
        job.trial_id, worker=f"{host}:{os.getpid()} ray-node {node[:16]}", host=host
    )
    return run_trial(job)


class RayExecutor:
    """Trials as Ray tasks; ``connect`` happens here, so a sweep that Ray cannot run is never created."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.capacity = config.workers
        self._owns_ray = connect(config)
        self._running: dict[Any, int] = {}  # Ray object ref -> trial id

    def submit(self, job: TrialJob) -> None:
        self._running[_ray_trial.remote(job)] = job.trial_id

    def collect(self, timeout: float) -> list[Finished]:
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready:  # take every trial that is done by now, not only the first
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        finished: list[Finished] = []
        for ref in ready:
            trial_id = self._running.pop(ref)
            try:
                finished.append((trial_id, ray.get(ref)))
            except TaskCancelledError:
                continue
            except RayError as exc:  # the worker process or its node died
                detail = " ".join(str(exc).split())[:300]
                finished.append((trial_id, WorkerLost(f"Ray worker failed: {detail}")))
        return finished

    def cancel(self) -> None:
        for ref in self._running:
            ray.cancel(ref, force=True)
        self._running.clear()

    def shutdown(self) -> None:
        self.cancel()
        if self._owns_ray:
            ray.shutdown()


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
    problem = None if address == "auto" else ray_address_problem(address)
    if problem is not None:
        raise ExecutorError(problem)


def connect(executor: ExecutorConfig) -> bool:
    """Start or join Ray for ``executor`` and check its CPUs; True when this call started the session.

    An already initialised Ray in this process is reused as it is. Raises ExecutorError (nothing started
    is left running) for an unreachable address, a version mismatch, or more CPUs asked than exist.
    """
    started = False
    if not ray.is_initialized():
        if executor.address is None:
            cpus, _ = local_ray_cpus(executor)
            problem = local_cpus_problem(executor)
            if problem is not None:
                raise ExecutorError(problem)
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
