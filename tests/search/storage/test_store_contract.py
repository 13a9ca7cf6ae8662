"""The Store methods that sweep bookkeeping relies on, each on SQLite and PostgreSQL (``store_url``).

Sweep metadata, trial counting and liveness (heartbeats, stale trials, worker names) and per-trial data
(hardware costs, artifacts). The trial lifecycle, migrations and concurrency are in ``test_store.py``.

Times come from a fake clock patched into the store, so staleness is decided without sleeping; the
stamps still go through the database and are compared there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from search.storage import BudgetSpent, ConfigTaken
from search.storage import _store as store_module
from search.storage import _trial_data as trial_data_module
from search.storage._schema import FINISHED_STATES, TrialState
from search.storage._store import Store, StoreError, SweepRecord


class Clock:
    """Stands in for ``utcnow`` in the store's modules that stamp times; moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store_module, "utcnow", fake)
    monkeypatch.setattr(trial_data_module, "utcnow", fake)
    return fake


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def new_sweep(store: Store) -> Callable[..., int]:
    def create(name: str = "s", reference_point: list[float] | None = None) -> int:
        return store.create_sweep(
            name,
            config_yaml="a: 1\n",
            config_hash="h",
            objectives=[{"name": "emd_mean", "direction": "minimize"}],
            reference_point=reference_point,
        ).id

    return create


def _sweep(store: Store, name: str) -> SweepRecord:
    record = store.get_sweep(name)
    assert record is not None, f"no sweep {name!r}"
    return record


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive (they are UTC), PostgreSQL aware: compare them as aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _running(store: Store, sweep: int, **kwargs: Any) -> int:
    return store.create_trial(sweep, {}, config_hash="x", state=TrialState.RUNNING, **kwargs).id


def _finished(store: Store, sweep: int, state: TrialState, **kwargs: Any) -> int:
    trial = _running(store, sweep, **kwargs)
    store.finish_trial(trial, state, results={"emd_mean": 1.0} if state is TrialState.COMPLETED else None)
    return trial


# -- sweep metadata ----------------------------------------------------------------------------------
def test_set_sweep_status_changes_only_that_sweep(
    store: Store, new_sweep: Callable[..., int], clock: Clock
) -> None:
    first, second = new_sweep("first"), new_sweep("second")
    untouched = _sweep(store, "second")
    assert _sweep(store, "first").status == "RUNNING"

    stamp = clock.advance(timedelta(minutes=5))
    store.set_sweep_status(first, "STOPPED")
    stopped = _sweep(store, "first")
    assert (stopped.status, _utc(stopped.updated_at)) == ("STOPPED", stamp)
    assert _sweep(store, "second") == untouched

    store.set_sweep_status(first, "DONE")
    store.set_sweep_status(second, "STOPPED")
    assert [(s.name, s.status) for s in store.list_sweeps()] == [("first", "DONE"), ("second", "STOPPED")]


def test_set_reference_point_stores_floats_and_replaces_the_old_point(
    store: Store, new_sweep: Callable[..., int], clock: Clock
) -> None:
    sweep = new_sweep("s")
    new_sweep("other", reference_point=[9.0])
    assert _sweep(store, "s").reference_point is None

    stamp = clock.advance(timedelta(minutes=1))
    store.set_reference_point(sweep, [2, 0.5, 1e6])
    record = _sweep(store, "s")
    assert _utc(record.updated_at) == stamp
    assert record.reference_point == [2.0, 0.5, 1e6]
    assert all(type(v) is float for v in record.reference_point)

    store.set_reference_point(sweep, (3.25,))
    assert _sweep(store, "s").reference_point == [3.25]
    assert _sweep(store, "other").reference_point == [9.0]


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(lambda store, sweep: store.set_sweep_status(sweep, "DONE"), id="set_sweep_status"),
        pytest.param(lambda store, sweep: store.set_reference_point(sweep, [1.0]), id="set_reference_point"),
    ],
)
def test_updating_an_unknown_sweep_raises(
    store: Store, new_sweep: Callable[..., int], update: Callable[[Store, int], None]
) -> None:
    sweep = new_sweep()
    with pytest.raises(StoreError, match=f"no sweep with id {sweep + 1}"):
        update(store, sweep + 1)
    assert _sweep(store, "s").status == "RUNNING"


# -- counting and liveness ---------------------------------------------------------------------------
def test_count_trials_filters_by_state_and_can_leave_out_replicates(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep, other = new_sweep("s"), new_sweep("other")
    store.create_trial(sweep, {}, config_hash="q")  # QUEUED
    _running(store, sweep)
    best = store.get_trial(_finished(store, sweep, TrialState.COMPLETED))
    _finished(store, sweep, TrialState.FAILED)
    _finished(store, sweep, TrialState.PRUNED)
    # Two confirm replicates of the best trial: one done, one waiting.
    _finished(store, sweep, TrialState.COMPLETED, origin="confirm", seed=101, replicate_of=best.number)
    store.create_trial(sweep, {}, config_hash="q", origin="confirm", seed=102, replicate_of=best.number)
    _finished(store, other, TrialState.COMPLETED)  # another sweep's trials never count

    def count(states: list[TrialState], replicates: bool = True) -> int:
        return store.count_trials(sweep, states, replicates=replicates)

    assert count([TrialState.COMPLETED]) == 2
    assert count([TrialState.COMPLETED], replicates=False) == 1
    assert count([TrialState.QUEUED]) == 2
    assert count([TrialState.QUEUED], replicates=False) == 1
    assert count([TrialState.RUNNING, TrialState.QUEUED], replicates=False) == 2
    assert count(sorted(FINISHED_STATES)) == 4
    assert count(sorted(FINISHED_STATES), replicates=False) == 3
    assert count([TrialState.INFEASIBLE]) == 0
    assert count([]) == 0
    assert count(list(TrialState)) == len(store.trials(sweep)) == 7
    assert store.count_trials(other, [TrialState.COMPLETED]) == 1
    assert store.count_trials(other + 1, list(TrialState)) == 0  # no such sweep: nothing to count


def test_create_trial_within_a_budget_counts_every_search_trial_but_infeasible_and_replicates(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep = new_sweep()
    store.create_trial(sweep, {}, config_hash="q", budget=3)  # QUEUED: promised a run, so it counts
    best = store.get_trial(_finished(store, sweep, TrialState.COMPLETED))
    store.create_trial(sweep, {"x": -1}, config_hash="bad", state=TrialState.INFEASIBLE, error="too small")
    store.create_trial(sweep, {}, config_hash="r", replicate_of=best.number)
    started = store.create_trial(
        sweep, {}, config_hash="s", state=TrialState.RUNNING, worker="w", host="h", budget=3
    )
    assert (started.state, started.attempts, started.worker, started.host) == (
        TrialState.RUNNING,
        1,
        "w",
        "h",
    )
    assert started.heartbeat_at is not None and started.started_at is not None
    with pytest.raises(BudgetSpent, match="has its 3 trials"):
        store.create_trial(sweep, {}, config_hash="t", state=TrialState.RUNNING, budget=3)
    infeasible = store.trials(sweep, [TrialState.INFEASIBLE])
    assert [(t.error, t.attempts, t.finished_at is not None) for t in infeasible] == [("too small", 0, True)]
    assert len(store.trials(sweep)) == 5


def test_create_trial_with_unique_config_names_the_search_trial_that_has_it(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep, other = new_sweep("s"), new_sweep("other")
    first = store.create_trial(sweep, {}, config_hash="a", unique_config=True)
    with pytest.raises(ConfigTaken) as taken:
        store.create_trial(sweep, {}, config_hash="a", state=TrialState.RUNNING, unique_config=True)
    assert taken.value.trial_id == first.id
    store.create_trial(other, {}, config_hash="a", unique_config=True)  # another sweep's config
    store.create_trial(sweep, {}, config_hash="a", replicate_of=first.number)  # a replicate may repeat it
    with pytest.raises(StoreError, match="no sweep with id"):
        store.create_trial(other + 1, {}, config_hash="a")
    assert [t.config_hash for t in store.trials(sweep)] == ["a", "a"]


def test_heartbeat_stamps_only_the_given_running_trials(
    store: Store, new_sweep: Callable[..., int], clock: Clock
) -> None:
    sweep = new_sweep()
    started = clock.now
    alive, silent, also_silent = (_running(store, sweep) for _ in range(3))
    queued = store.create_trial(sweep, {}, config_hash="q").id
    done = _finished(store, sweep, TrialState.COMPLETED)

    beat = clock.advance(timedelta(minutes=10))
    store.heartbeat([alive, queued, done])  # only RUNNING trials are stamped
    store.heartbeat([])  # nothing to do

    stamps = {t.id: _utc(t.heartbeat_at) for t in store.trials(sweep)}
    assert stamps == {alive: beat, silent: started, also_silent: started, queued: None, done: started}
    assert store.get_trial(queued).state is TrialState.QUEUED
    assert store.get_trial(done).state is TrialState.COMPLETED

    stale = store.stale_trials(sweep, timedelta(minutes=5))
    assert sorted(t.id for t in stale) == [silent, also_silent]
    assert all(t.state is TrialState.RUNNING for t in stale)
    assert store.stale_trials(sweep, timedelta(minutes=15)) == []

    clock.advance(timedelta(minutes=6))  # now the last beat is 6 minutes old too
    assert sorted(t.id for t in store.stale_trials(sweep, timedelta(minutes=5))) == [
        alive,
        silent,
        also_silent,
    ]


def test_record_worker_names_a_running_trial_and_leaves_others_alone(
    store: Store, new_sweep: Callable[..., int], clock: Clock
) -> None:
    sweep = new_sweep()
    trial = _running(store, sweep)
    assert (store.get_trial(trial).worker, store.get_trial(trial).host) == (None, None)

    seen = clock.advance(timedelta(seconds=30))
    store.record_worker(trial, worker="ray-worker-7", host="node-2")
    named = store.get_trial(trial)
    assert (named.worker, named.host, _utc(named.heartbeat_at)) == ("ray-worker-7", "node-2", seen)
    assert named.state is TrialState.RUNNING and named.attempts == 1

    queued = store.create_trial(sweep, {}, config_hash="q").id
    store.record_worker(queued, worker="late", host="elsewhere")  # requeued or not started yet
    store.finish_trial(trial, TrialState.FAILED, error="boom")
    clock.advance(timedelta(seconds=30))
    store.record_worker(trial, worker="late", host="elsewhere")  # finished: immutable
    after = store.get_trial(trial)
    assert (after.worker, after.host, _utc(after.heartbeat_at)) == ("ray-worker-7", "node-2", seen)
    assert after.state is TrialState.FAILED and after.error == "boom"
    waiting = store.get_trial(queued)
    assert (waiting.worker, waiting.host, waiting.heartbeat_at) == (None, None, None)


# -- per-trial data ------------------------------------------------------------------------------------
def _report(version: str, bops: float, layers: list[str]) -> dict[str, Any]:
    """Shaped like ``CostReport.to_dict()``."""
    return {
        "formula_version": version,
        "is_estimate": True,
        "quantized": True,
        "settings": {"reuse_factor": 4, "strategy": "Latency", "clock_mhz": 200.0},
        "totals": {"bops": bops, "lut": 1234.5, "dsp": 3.0, "latency_cycles": 12.0},
        "layers": [
            {
                "name": name,
                "class_name": "Dense",
                "bops": bops / len(layers),
                "weight_bits": 6,
                "n_out": i + 1,
            }
            for i, name in enumerate(layers)
        ],
    }


def test_record_cost_round_trips_reports_in_bulk_and_replaces_them(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep = new_sweep()
    first, second, uncosted = (_running(store, sweep) for _ in range(3))
    before = _report("v1", 2.0e4, ["fc1", "fc2"])
    other = _report("v1", 5.5e3, ["conv1", "pool", "fc1"])
    store.record_cost(first, before)
    store.record_cost(second, other)

    assert store.costs([first, second, uncosted]) == {first: before, second: other}
    assert store.costs([second]) == {second: other}
    assert store.costs([uncosted]) == {}
    assert store.costs([]) == {}
    layers = store.costs([second])[second]["layers"]
    assert [layer["name"] for layer in layers] == ["conv1", "pool", "fc1"]  # layer order kept

    after = _report("v2", 1.5e4, ["fc1"])  # re-estimated after training (real sparsity)
    store.record_cost(first, after)
    assert store.costs([first, second]) == {first: after, second: other}
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT trial_id, formula_version FROM hw_costs ORDER BY trial_id")
        assert [tuple(r) for r in rows] == [(first, "v2"), (second, "v1")]  # replaced, not added


def test_artifacts_are_listed_per_trial_in_the_order_added(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep = new_sweep()
    trial, other, bare = (_running(store, sweep) for _ in range(3))
    added = [
        {"kind": "checkpoint", "path": "/runs/s/0/epoch1.pt", "sha256": "a" * 64},
        {"kind": "hls4ml", "path": "/export/s/0", "sha256": "b" * 64},
        {"kind": "checkpoint", "path": "/runs/s/0/final.pt", "sha256": "c" * 64},
    ]
    for i, artifact in enumerate(added):
        store.add_artifact(trial, **artifact)
        store.add_artifact(other, "checkpoint", f"/runs/s/1/{i}.pt", str(i) * 64)  # interleaved

    assert store.artifacts(trial) == added
    assert [a["path"] for a in store.artifacts(other)] == [f"/runs/s/1/{i}.pt" for i in range(3)]
    assert store.artifacts(bare) == []
    checkpoints = [a for a in store.artifacts(trial) if a["kind"] == "checkpoint"]
    assert checkpoints[-1]["path"] == "/runs/s/0/final.pt"  # what an export picks


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda store, trial: store.record_cost(trial, _report("v1", 1.0, ["fc1"])), id="record_cost"
        ),
        pytest.param(
            lambda store, trial: store.add_artifact(trial, "checkpoint", "/x.pt", "0" * 64), id="add_artifact"
        ),
        pytest.param(
            lambda store, trial: store.record_metrics(trial, 1, {"val_loss": 0.5}), id="record_metrics"
        ),
    ],
)
def test_per_trial_data_for_an_unknown_trial_raises_store_error(
    store: Store, new_sweep: Callable[..., int], write: Callable[[Store, int], None]
) -> None:
    trial = _running(store, new_sweep())
    with pytest.raises(StoreError, match=f"no trial with id {trial + 1}"):
        write(store, trial + 1)
    assert store.costs([trial + 1]) == {} and store.artifacts(trial + 1) == []
    assert store.metrics(trial + 1) == []


# -- counts and ASHA rungs ------------------------------------------------------------------------------
def test_count_by_state_groups_one_sweeps_trials(store: Store, new_sweep: Callable[..., int]) -> None:
    sweep, other = new_sweep("a"), new_sweep("b")
    _finished(store, sweep, TrialState.COMPLETED)
    _finished(store, sweep, TrialState.COMPLETED)
    _finished(store, sweep, TrialState.FAILED)
    _running(store, sweep)
    _finished(store, other, TrialState.PRUNED)
    assert store.count_by_state(sweep) == {"COMPLETED": 2, "FAILED": 1, "RUNNING": 1}
    assert store.count_by_state(new_sweep("empty")) == {}


def test_record_rung_keeps_a_trials_first_point_and_returns_its_rung(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    sweep, other = new_sweep("a"), new_sweep("b")
    first, second, third = (_running(store, sweep) for _ in range(3))
    assert store.record_rung(first, 0, 1, [1.0, float("inf")]) == ([[1.0, float("inf")]], 0)
    assert store.record_rung(second, 0, 1, [2.0, 3.0]) == ([[1.0, float("inf")], [2.0, 3.0]], 1)
    # A retried trial keeps its first point; other rungs, brackets and sweeps are apart.
    assert store.record_rung(first, 0, 1, [9.0, 9.0]) == ([[1.0, float("inf")], [2.0, 3.0]], 0)
    assert store.record_rung(third, 1, 1, [0.5, 0.5]) == ([[0.5, 0.5]], 0)
    assert store.record_rung(second, 0, 3, [4.0, 4.0]) == ([[4.0, 4.0]], 0)
    assert store.record_rung(_running(store, other), 0, 1, [7.0, 7.0]) == ([[7.0, 7.0]], 0)
    with pytest.raises(StoreError, match="no trial with id 999999"):
        store.record_rung(999_999, 0, 1, [1.0])


def test_start_session_counts_the_drivers_of_one_sweep(store: Store, new_sweep: Callable[..., int]) -> None:
    sweep, other = new_sweep("a"), new_sweep("b")
    assert [store.start_session(sweep) for _ in range(3)] == [1, 2, 3]
    assert store.start_session(other) == 1
    with pytest.raises(StoreError, match="no sweep with id 999999"):
        store.start_session(999_999)


def test_metrics_of_an_epoch_reported_again_replace_the_old_ones(
    store: Store, new_sweep: Callable[..., int]
) -> None:
    trial = _running(store, new_sweep())
    store.record_metrics(trial, 1, {"val_loss": 2.0, "train_loss": 3.0})
    store.record_metrics(trial, 1, {"val_loss": 1.5})  # a retried attempt (or a late worker) reports again
    assert store.metrics(trial) == [{"epoch": 1, "val_loss": 1.5, "train_loss": 3.0}]


@pytest.mark.parametrize("write", ["record_cost", "record_metrics"])
def test_two_attempts_writing_one_trials_data_at_once_leave_one_copy(
    store: Store, new_sweep: Callable[..., int], write: str
) -> None:
    """A worker thought dead and its retry may report the same trial together: both writes succeed and
    one copy stays (each replaces the other's rows instead of colliding on the unique keys)."""
    sweep = new_sweep()
    trials = [_running(store, sweep) for _ in range(10)]
    errors: list[BaseException] = []

    def attempt(trial: int, barrier: threading.Barrier, value: float) -> None:
        barrier.wait()
        try:
            if write == "record_cost":
                store.record_cost(trial, _report("v1", value, ["fc1"]))
            else:
                store.record_metrics(trial, 1, {"loss": value})
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    for trial in trials:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=attempt, args=(trial, barrier, v)) for v in (1.0, 2.0)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    if write == "record_cost":
        assert sorted(store.costs(trials)) == trials
    else:
        assert all(len(store.metrics(trial)) == 1 for trial in trials)
    table = "hw_costs" if write == "record_cost" else "trial_metrics"
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
    assert count == len(trials)
