"""Ray with separate processes: a two-node loopback cluster against PostgreSQL, and a driver killed with
SIGKILL then resumed through the CLI. Every Ray process here is started by the test and stopped by its id.

The nodes run ``ray start --block`` so that terminating that one process stops its node; ``ray stop`` would
stop every Ray process of the machine, other sessions' included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.storage._schema import TrialState
from search.storage._store import Store, TrialRecord

pytestmark = [pytest.mark.slow, pytest.mark.ray]

BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # loopback test cluster: no token to share


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, then anything left in its own session (its Ray children)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _write_config(path: Path, store: str, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "name": "cluster-sweep",
        "task": {"name": "econt", "data": "synthetic", "rows": 3000, "val_rows": 500},
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "trials": 6,
        "epochs": 3,
        "store": store,
        "seed": 2,
        "heartbeat_s": 1.0,
        "executor": {"kind": "ray", "workers": 2},
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


def _hwnas(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hwnas"), *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def _node_of(trial: TrialRecord) -> str:
    assert trial.worker is not None and " ray-node " in trial.worker, trial.worker
    return trial.worker.split(" ray-node ")[1]


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[str]:
    """A Ray head and a second node, 1 CPU each, as separate processes on this machine."""
    port = _free_port()
    ray = str(BIN / "ray")
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--block", "--disable-usage-stats"]
    processes = []
    try:
        head_args = [
            f"--port={port}",
            "--include-dashboard=false",
            f"--dashboard-agent-listen-port={_free_port()}",
        ]
        processes.append(
            subprocess.Popen(
                [ray, "start", "--head", *head_args, *common],
                env=ENV,
                stdout=(tmp_path / "head.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        address = f"127.0.0.1:{port}"
        _wait_for(lambda: _reachable(port), 60, "the Ray head")
        processes.append(
            subprocess.Popen(
                [
                    ray,
                    "start",
                    f"--address={address}",
                    f"--dashboard-agent-listen-port={_free_port()}",
                    *common,
                ],
                env=ENV,
                stdout=(tmp_path / "node.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        _wait_for(lambda: _alive_nodes(ray, address) == 2, 90, "both Ray nodes")
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _alive_nodes(ray: str, address: str) -> int:
    status = subprocess.run(
        [ray, "status", f"--address={address}"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    active = status.stdout.split("Active:")[1].split("Pending:")[0] if "Active:" in status.stdout else ""
    return sum(line.strip().startswith("1 node_") for line in active.splitlines())


@pytest.mark.postgres
def test_a_sweep_runs_across_two_nodes_against_postgresql(
    two_node_cluster: str, postgres_url: str, tmp_path: Path
) -> None:
    config = _write_config(
        tmp_path / "sweep.yaml",
        postgres_url,
        executor={"kind": "ray", "workers": 2, "address": two_node_cluster},
    )
    run = _hwnas("sweep", "launch", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    store = Store(postgres_url)
    sweep = store.get_sweep("cluster-sweep")
    assert sweep is not None and sweep.status == "DONE"
    trials = store.trials(sweep.id)
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state is TrialState.COMPLETED and t.fidelity == 3 for t in trials)
    assert all([row["epoch"] for row in store.metrics(t.id)] == [1, 2, 3] for t in trials)
    assert all(store.costs([t.id]) for t in trials)
    assert len({_node_of(t) for t in trials}) == 2  # both nodes ran trials


def test_a_killed_driver_resumes_with_no_lost_and_no_duplicated_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    config = _write_config(tmp_path / "sweep.yaml", url, epochs=6, executor={"kind": "ray", "workers": 2})
    driver = subprocess.Popen(
        [str(BIN / "hwnas"), "sweep", "launch", str(config)],
        env=ENV,
        stdout=(tmp_path / "launch.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def mid_sweep() -> list[TrialRecord] | None:
            if not (tmp_path / "hwnas.db").exists():
                return None
            store = Store(url)
            sweep = store.get_sweep("cluster-sweep")
            trials = [] if sweep is None else store.trials(sweep.id)
            done = [t for t in trials if t.state is TrialState.COMPLETED]
            running = [t for t in trials if t.state is TrialState.RUNNING and t.fidelity >= 1]
            return trials if done and running else None

        before = _wait_for(mid_sweep, 400, "a completed and a running trial")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        _stop(driver)
    finished_before = {t.number: t for t in before if t.state.finished}
    interrupted = {t.number for t in before if t.state is TrialState.RUNNING}

    resumed = _hwnas("sweep", "resume", "cluster-sweep", "--store", url)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    store = Store(url)
    trials = store.trials(store.get_sweep("cluster-sweep").id)
    assert [t.number for t in trials] == list(range(6))  # none lost, none duplicated
    assert all(t.state is TrialState.COMPLETED and t.fidelity == 6 for t in trials)
    by_number = {t.number: t for t in trials}
    for number, trial in finished_before.items():  # finished trials are untouched by the resume
        assert by_number[number].finished_at == trial.finished_at and by_number[number].attempts == 1
    for number in interrupted:  # the dead driver's trials ran again from scratch, once
        assert by_number[number].attempts == 2
        assert [row["epoch"] for row in store.metrics(by_number[number].id)] == [1, 2, 3, 4, 5, 6]
