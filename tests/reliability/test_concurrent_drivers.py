"""Two drivers of one sweep at once (two `hwnas sweep launch` of the same config): no config is trained
twice and the trial budget is not overshot, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from soak import count, soak_config

pytestmark = pytest.mark.slow

HWNAS = [sys.executable, "-m", "search.cli"]


def test_two_drivers_at_once_train_no_config_twice_and_keep_the_budget(
    tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(soak_config(store_url, trials=6, seed=5, workers=1)))
    logs = [(tmp_path / f"driver{i}.log").open("wb") for i in range(2)]
    drivers = [
        subprocess.Popen([*HWNAS, "sweep", "launch", str(path)], stdout=log, stderr=subprocess.STDOUT)
        for log in logs
    ]
    for driver in drivers:
        driver.wait(timeout=600)
    for log in logs:
        log.close()
    outputs = [(tmp_path / f"driver{i}.log").read_text() for i in range(2)]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    result = count(store_url, "soak", trials=6)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.counted == 6, result  # neither driver started a trial past the budget
    assert result.completed == 6
