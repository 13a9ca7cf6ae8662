"""SIGKILL the driver of a small sweep (`hwnas sweep launch` as a subprocess, 2 workers) at 10 random
moments and resume each time, on SQLite and on PostgreSQL: nothing lost, no config trained twice, and
exactly the budget completed."""

from __future__ import annotations

from pathlib import Path

import pytest
from soak import soak

pytestmark = pytest.mark.slow


def test_ten_driver_kills_lose_nothing_and_train_nothing_twice(tmp_path: Path, store_url: str) -> None:
    result = soak(tmp_path, store_url, kills=10, trials=16, seed=7, delay_s=(0.0, 5.0))
    assert result.kills >= 5, result  # the sweep outlived most kills (each one a random moment)
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.counted == result.trials, result  # no overshoot of the budget
    assert result.completed == result.trials, result
