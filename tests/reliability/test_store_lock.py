"""A store locked by another process for longer than SQLite's busy timeout: the sweep waits, loses nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from search._config import parse_config
from search.execution import run_sweep
from search.storage import Store, TrialState

pytestmark = pytest.mark.slow

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def test_an_external_write_lock_of_45_s_mid_sweep_loses_no_trial(tmp_path: Path) -> None:
    database = tmp_path / "hwnas.db"
    config = parse_config(
        {
            "name": "locked",
            "task": {"name": "econt", "data": "synthetic", "rows": 2000, "val_rows": 300},
            "space": "econt",
            "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
            "strategy": {"name": "random"},
            "trials": 6,
            "epochs": 3,
            "executor": {"workers": 2},
            "store": f"sqlite:///{database}",
            "seed": 1,
            "heartbeat_s": 5,  # 3 missed beats (15 s) are far less than the lock: live trials must survive
        }
    )
    held: list[float] = []

    def completed() -> int:
        try:
            with sqlite3.connect(database, timeout=1) as connection:
                return int(
                    connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETED'").fetchone()[0]
                )
        except sqlite3.OperationalError:  # not created yet
            return 0

    def lock_after_the_first_trial() -> None:
        while completed() < 1:
            time.sleep(0.2)
        started = time.monotonic()
        locker = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(database), "45"], stdout=subprocess.PIPE, text=True
        )
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        locker.wait(timeout=120)
        held.append(time.monotonic() - started)

    thread = threading.Thread(target=lock_after_the_first_trial, daemon=True)
    thread.start()
    summary = run_sweep(config)
    thread.join(timeout=120)
    assert held and held[0] >= 45
    store = Store(config.store)
    sweep = store.get_sweep("locked")
    assert sweep is not None
    trials = store.trials(sweep.id)
    feasible = [t for t in trials if t.state is not TrialState.INFEASIBLE]
    assert [t.state for t in feasible] == [TrialState.COMPLETED] * 6, [(t.state, t.error) for t in trials]
    assert all(t.attempts == 1 for t in feasible)  # no live trial was declared dead and run again
    assert summary.counts.get("FAILED", 0) == 0 and not summary.interrupted
