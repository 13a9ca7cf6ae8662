"""The store contract, run against SQLite and the real PostgreSQL server: the trial lifecycle, backend
specifics, migrations and concurrency (the other Store methods are in ``test_store_contract.py``)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from search.storage._schema import TrialState
from search.storage._store import Store, StoreError


def _sweep(store: Store, name: str = "s") -> int:
    return store.create_sweep(
        name,
        config_yaml="a: 1\n",
        config_hash="h",
        objectives=[{"name": "emd_mean", "direction": "minimize"}],
        reference_point=[5.0],
    ).id


def test_trial_lifecycle_and_results_round_trip(store_url: str) -> None:
    store = Store(store_url)
    sweep = _sweep(store)
    trial = store.create_trial(sweep, {"n_conv": 1}, config_hash="abc")
    assert (trial.number, trial.state) == (0, TrialState.QUEUED)
    store.start_trial(trial.id, worker="w1", host="h")
    store.record_metrics(trial.id, 1, {"val_loss": 0.5, "odd": math.nan})
    store.record_metrics(trial.id, 2, {"val_loss": 0.25, "odd": 1.0})
    store.finish_trial(
        trial.id, TrialState.COMPLETED, results={"emd_mean": 1.5, "bops": math.inf}, fidelity=2
    )
    done = store.get_trial(trial.id)
    assert done.state is TrialState.COMPLETED
    assert done.results == {"emd_mean": 1.5, "bops": math.inf}  # +inf stored faithfully
    assert done.fidelity == 2 and done.attempts == 1 and done.worker == "w1"
    history = store.metrics(trial.id)
    assert [row["val_loss"] for row in history] == [0.5, 0.25]
    assert math.isnan(history[0]["odd"])


def test_finished_trials_are_immutable_and_nan_is_refused(store_url: str) -> None:
    store = Store(store_url)
    sweep = _sweep(store)
    trial = store.create_trial(sweep, {}, config_hash="x", state=TrialState.RUNNING)
    with pytest.raises(StoreError, match="NaN never enters"):
        store.finish_trial(trial.id, TrialState.COMPLETED, results={"emd_mean": math.nan})
    assert store.get_trial(trial.id).state is TrialState.RUNNING  # nothing half-written
    store.finish_trial(trial.id, TrialState.FAILED, error="boom")
    with pytest.raises(StoreError, match="cannot go from FAILED to COMPLETED"):
        store.finish_trial(trial.id, TrialState.COMPLETED, results={"emd_mean": 1.0})
    assert store.get_trial(trial.id).error == "boom"


def test_duplicate_sweep_name_is_refused(store_url: str) -> None:
    store = Store(store_url)
    _sweep(store, "dup")
    with pytest.raises(StoreError, match="'dup' already exists"):
        _sweep(store, "dup")
    assert [s.name for s in store.list_sweeps()] == ["dup"]


def test_requeue_and_stale_detection(store_url: str) -> None:
    store = Store(store_url)
    sweep = _sweep(store)
    trial = store.create_trial(sweep, {}, config_hash="x", state=TrialState.RUNNING)
    store.record_metrics(trial.id, 1, {"val_loss": 1.0})
    assert store.stale_trials(sweep, timedelta(seconds=60)) == []
    stale = store.stale_trials(sweep, timedelta(seconds=-1))
    assert [t.id for t in stale] == [trial.id]
    store.requeue_trial(trial.id, "worker died")
    again = store.get_trial(trial.id)
    assert again.state is TrialState.QUEUED and again.fidelity == 0 and store.metrics(trial.id) == []
    assert store.start_trial(trial.id, worker="w2", host="h").attempts == 2


_ADD_TRIALS = """
import sys
from search.storage._store import Store
url, sweep, count, worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = Store(url)
for i in range(count):
    store.create_trial(sweep, {"worker": worker, "i": i}, config_hash=f"{worker}-{i}")
"""


@pytest.mark.slow
def test_trial_numbers_unique_with_four_concurrent_processes(store_url: str) -> None:
    store = Store(store_url)
    sweep = _sweep(store)
    per_worker = 25
    workers = [
        subprocess.Popen([sys.executable, "-c", _ADD_TRIALS, store_url, str(sweep), str(per_worker), str(w)])
        for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in workers] == [0, 0, 0, 0]
    trials = store.trials(sweep)
    assert len(trials) == 4 * per_worker  # no trial lost
    assert sorted(t.number for t in trials) == list(range(4 * per_worker))  # unique and dense
    assert {(t.params["worker"], t.params["i"]) for t in trials} == {
        (w, i) for w in range(4) for i in range(per_worker)
    }


_ADD_WITHIN_BUDGET = """
import sys
from search.storage import BudgetSpent, ConfigTaken, Store, TrialState
url, sweep, worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = Store(url)
for i in range(25):
    config = (7 * worker + i) % 40  # the four writers propose overlapping configs
    try:
        store.create_trial(
            sweep, {"c": config}, config_hash=f"c{config}", state=TrialState.RUNNING, budget=30, unique_config=True
        )
    except (BudgetSpent, ConfigTaken):
        pass
"""


@pytest.mark.slow
def test_four_processes_adding_trials_keep_the_budget_and_add_no_config_twice(store_url: str) -> None:
    store = Store(store_url)
    sweep = _sweep(store)
    writers = [
        subprocess.Popen([sys.executable, "-c", _ADD_WITHIN_BUDGET, store_url, str(sweep), str(w)])
        for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in writers] == [0, 0, 0, 0]
    trials = store.trials(sweep)
    assert len(trials) == 30  # 100 tries of 40 distinct configs: exactly the budget, never more
    assert len({t.config_hash for t in trials}) == 30
    assert sorted(t.number for t in trials) == list(range(30))


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_store_written_by_newer_schema_is_refused(sqlite_url: str) -> None:
    Store(sqlite_url).close()
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match=r"written by a newer hwnas .*9999"):
        Store(sqlite_url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@127.0.0.1/test", "backend 'mysql' is not supported; allowed: sqlite, postgresql"),
        ("not a url", "is not a database URL"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the store"),
    ],
)
def test_bad_store_urls_get_clear_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        Store(url)


def test_a_store_at_the_first_schema_is_migrated_without_losing_trials(sqlite_url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from search.storage._store import _alembic_config

    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO sweeps (id, name, config_yaml, config_hash, objectives, status, created_at, updated_at)"
                " VALUES (1, 'old', 'a: 1', 'h', '[]', 'DONE', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO trials (sweep_id, number, params, config_hash, state, origin, seed, fidelity, attempts,"
                " created_at) VALUES (1, 0, '{\"n_conv\": 1}', 'x', 'COMPLETED', 'search', 0, 5, 1, '2026-01-01')"
            )
        )
    store = Store(sqlite_url)
    sweep = store.get_sweep("old")
    assert sweep is not None
    (trial,) = store.trials(sweep.id)
    assert trial.params == {"n_conv": 1} and trial.fidelity == 5 and trial.replicate_of is None
    with store.engine.connect() as conn:
        head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    # Their migrations race to create the schema; the losers retry and find it in place.
    code = "import sys; from search.storage._store import Store; Store(sys.argv[1]).close()"
    openers = [subprocess.Popen([sys.executable, "-c", code, store_url]) for _ in range(5)]
    assert [p.wait(timeout=120) for p in openers] == [0] * 5
    assert Store(store_url).list_sweeps() == []
