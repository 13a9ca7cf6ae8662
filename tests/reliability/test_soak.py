"""SIGKILL the driver of a small sweep (`hwnas sweep launch` as a subprocess, 2 workers) at 10 random
moments and resume each time, on SQLite and on PostgreSQL: nothing lost, no config trained twice, and
exactly the budget completed."""

from __future__ import annotations

from pathlib import Path

import pytest
from soak import soak

pytestmark = [
    pytest.mark.slow,
    # Found by this test on 2026-12-01 and not yet fixed: a driver restarted after a SIGKILL can wait
    # forever without starting a trial (seen on PostgreSQL, once on SQLite in benchmarks/soak.py). A test
    # that can hang has no place in CI; run it by hand with -p no:skip ... until issue 14 is closed.
    pytest.mark.skip(reason="known hang of a restarted driver (issue 14, open): see benchmarks/soak.txt"),
]


def test_ten_driver_kills_lose_nothing_and_train_nothing_twice(tmp_path: Path, store_url: str) -> None:
    result = soak(tmp_path, store_url, kills=10, trials=16, seed=7, delay_s=(0.0, 5.0))
    assert result.kills >= 5, result  # the sweep outlived most kills (each one a random moment)
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.counted == result.trials, result  # no overshoot of the budget
    assert result.completed == result.trials, result
