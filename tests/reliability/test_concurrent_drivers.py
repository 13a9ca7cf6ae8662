"""Drivers of one sweep at once: no config is trained twice and the trial budget is not overshot, on SQLite
and on PostgreSQL. The budget check and the insert of a new trial are one locked transaction, so a driver
that checks the budget while another adds the last trial waits for it and adds none."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from soak import count, soak_config
from sqlalchemy import create_engine, insert, text

from search._config import parse_config
from search.execution._setup import open_sweep, resolve_space
from search.storage import Store
from search.storage._schema import TrialRow

pytestmark = pytest.mark.slow

HWNAS = [sys.executable, "-m", "search.cli"]


def test_two_drivers_at_once_train_no_config_twice_and_keep_the_budget(
    tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(soak_config(store_url, trials=6, seed=5, workers=2)))
    logs = [(tmp_path / f"driver{i}.log").open("wb") for i in range(2)]
    drivers = [
        subprocess.Popen([*HWNAS, "sweep", "launch", str(path)], stdout=log, stderr=subprocess.STDOUT)
        for log in logs
    ]
    for driver in drivers:
        driver.wait(timeout=900)
    for log in logs:
        log.close()
    outputs = [(tmp_path / f"driver{i}.log").read_text() for i in range(2)]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    result = count(store_url, "soak", trials=6)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.counted == 6, result  # neither driver started a trial past the budget
    assert result.completed == 6


@pytest.mark.postgres
def test_a_driver_checking_the_budget_while_the_last_trial_is_added_waits_and_adds_none(
    tmp_path: Path, postgres_url: str
) -> None:
    """The sweep's only trial is being added (an open transaction, as another driver's insert) when a
    driver starts: it must wait for that transaction, then see the budget spent and add nothing; the
    held trial then runs (its holder never stamps a heartbeat, so the driver takes it over)."""
    raw = soak_config(postgres_url, trials=1, seed=5, workers=1)
    config = parse_config(raw)
    store = Store(postgres_url)
    sweep = open_sweep(store, config)
    space = resolve_space(config)
    canonical = space.validate(space.sample(np.random.default_rng(0)))
    assert isinstance(canonical, dict)
    engine = create_engine(postgres_url)
    holder = engine.connect()
    held = holder.begin()
    now = datetime.now(UTC)
    holder.execute(
        insert(TrialRow).values(
            sweep_id=sweep.id,
            number=0,
            params=canonical,
            config_hash=space.config_hash(canonical),
            state="RUNNING",
            origin="search",
            seed=0,
            fidelity=0,
            attempts=1,
            worker="another-driver",
            host="test",
            started_at=now,
            heartbeat_at=now,
        )
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = (tmp_path / "driver.log").open("wb")
    driver = subprocess.Popen([*HWNAS, "sweep", "launch", str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + 600
        with engine.connect() as watcher:
            while not watcher.scalar(waiting):
                assert driver.poll() is None, (tmp_path / "driver.log").read_text()
                assert time.monotonic() < deadline, "the driver never waited for the open insert"
                watcher.rollback()
                time.sleep(0.2)
        held.commit()  # the last trial of the budget is in: the waiting driver must see it
        holder.close()
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
        engine.dispose()
    trials = store.trials(sweep.id)
    assert [(t.number, t.state.value) for t in trials] == [(0, "COMPLETED")], (
        tmp_path / "driver.log"
    ).read_text()
    store.close()
