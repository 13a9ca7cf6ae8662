"""A driver SIGKILLed while its pool workers start up leaves no orphan that loads the training stack: each
worker exits as soon as it finds its driver gone, before it imports torch (a soak kills most drivers in that
window; orphans importing torch for tens of CPU seconds each starved the drivers that came after them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_configs import tiny_sweep

pytestmark = pytest.mark.slow

# A driver's pool with two trials submitted: prints the worker pids, then waits to be killed.
DRIVER = """
import multiprocessing, sys, time
from search._config import parse_config
from search.execution._executor import ProcessExecutor
from search.execution._loop import SweepLoop
from search.storage import TrialState
from spaces import get_preset

config = parse_config(eval(sys.argv[1]))
executor = ProcessExecutor(2)
loop = SweepLoop(config, executor=executor)
for _ in range(2):
    trial = loop.store.create_trial(loop.sweep.id, get_preset("econt_baseline"), config_hash="x", state=TrialState.RUNNING)
    executor.submit(loop._job(trial))
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(600)
"""


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _maps_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _being_killed(pid: int) -> bool:
    """Whether the kernel is killing the process: SIGKILL pending, or the process already exiting.

    A worker that was importing torch while its driver lived is SIGKILLed by PDEATHSIG when the driver dies,
    but it may still show its mappings for a moment (e.g. while a page fault on libtorch completes).
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()  # read second: the states only move forward
    except (FileNotFoundError, ProcessLookupError):
        return True
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    pf_exiting = 0x4
    flags = int(stat.rsplit(")", 1)[1].split()[6])
    return bool(pending & (1 << (signal.SIGKILL - 1))) or bool(flags & pf_exiting)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG and /proc are Linux's")
def test_workers_of_a_driver_killed_while_they_start_exit_without_loading_torch(sqlite_url: str) -> None:
    config = tiny_sweep(sqlite_url, name="orphans", trials=2)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, repr(config)], stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None
    workers = [int(pid) for pid in driver.stdout.readline().split()]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert len(workers) == 2
    loaded_torch: set[int] = set()
    deadline = time.monotonic() + 120
    while any(_state(pid) not in (None, "Z") for pid in workers):
        loaded_torch |= {
            pid
            for pid in workers
            if _state(pid) not in (None, "Z") and _maps_torch(pid) and not _being_killed(pid)
        }
        assert time.monotonic() < deadline, f"orphan workers still alive: {workers}"
        time.sleep(0.02)
    assert not loaded_torch, f"orphan workers {sorted(loaded_torch)} imported torch after their driver died"
