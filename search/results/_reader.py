"""Read-only access to a store: what ``hwnas pareto|status|list|export``, the dashboard and scripts read.

:class:`Results` is the queries; opening the store read-only and checking its schema revision are in
``_open`` (:class:`ReadOnlyStore`, its base), whose contract holds here too.

Contract:
- Each method reads in one transaction (one snapshot) and returns snapshots (the store's records).
- Bulk by design: results, metrics and costs of many trials come in one query each, never one per trial.
- Imports neither torch, Optuna, Ray nor alembic.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Connection, DateTime, Select, Text, func, select, type_coerce

from search.results._open import ReadOnlyStore, ResultsError
from search.storage._records import SweepRecord, TrialRecord
from search.storage._schema import (
    ArtifactRow,
    HWCostRow,
    SweepRow,
    TrialMetricRow,
    TrialResultRow,
    TrialRow,
    TrialState,
)

_SWEEPS = SweepRow.__table__
_TRIALS = TrialRow.__table__
_RESULTS = TrialResultRow.__table__
_METRICS = TrialMetricRow.__table__
_COSTS = HWCostRow.__table__
_ARTIFACTS = ArtifactRow.__table__
# The trial columns in the order _trial_record reads them; JSON and timestamps come as the driver's raw
# values (decoded in _trial_record, ~2x faster than SQLAlchemy's per-row processors on 10,000 trials).
_TRIAL_ORDER = (
    "id", "sweep_id", "number", "params", "config_hash", "state", "origin", "replicate_of", "seed",
    "fidelity", "attempts", "error", "worker", "host", "heartbeat_at", "created_at", "started_at",
    "finished_at", "updated_at",
)  # fmt: skip
_TRIAL_COLUMNS = [
    type_coerce(_TRIALS.c[name], Text).label(name)
    if isinstance(_TRIALS.c[name].type, (DateTime, JSON))
    else _TRIALS.c[name]
    for name in _TRIAL_ORDER
]
# Ids per IN (...) list: below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
_IDS_PER_QUERY = 30_000


@dataclass(frozen=True)
class SweepOverview:
    """A sweep with the number of its trials in each state (confirm replicates included)."""

    sweep: SweepRecord
    counts: dict[TrialState, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class TrialPage:
    """Trials in number order; ``next_after`` is the ``after`` of the next page (None: this was the last)."""

    trials: list[TrialRecord]
    next_after: int | None


@dataclass(frozen=True)
class TrialChanges:
    """Trials changed after a time, oldest change first; pass ``cursor`` as ``since`` to get later changes."""

    trials: list[TrialRecord]
    cursor: datetime


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC, which is what SQLite hands back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Results(ReadOnlyStore):
    """Sweeps, trials, metrics and fronts of a store, read-only. Use :meth:`open` (or the constructor)."""

    # -- sweeps --------------------------------------------------------------------------------------
    def sweeps(self) -> list[SweepOverview]:
        """Every sweep (in creation order) with its trial counts by state, in one grouped query."""
        counts = (
            select(_TRIALS.c.sweep_id, _TRIALS.c.state, func.count().label("n"))
            .group_by(_TRIALS.c.sweep_id, _TRIALS.c.state)
            .subquery()
        )
        query = (
            select(_SWEEPS, counts.c.state, counts.c.n)
            .outerjoin(counts, counts.c.sweep_id == _SWEEPS.c.id)
            .order_by(_SWEEPS.c.id)
        )

        def work(connection: Connection) -> list[SweepOverview]:
            out: dict[int, SweepOverview] = {}
            for row in connection.execute(query):
                overview = out.get(row.id)
                if overview is None:
                    overview = out[row.id] = SweepOverview(_sweep_record(row), {})
                if row.state is not None:
                    overview.counts[TrialState(row.state)] = int(row.n)
            return list(out.values())

        return self._run(work)

    def get_sweep(self, name: str) -> SweepRecord | None:
        def work(connection: Connection) -> SweepRecord | None:
            row = connection.execute(select(_SWEEPS).where(_SWEEPS.c.name == name)).first()
            return None if row is None else _sweep_record(row)

        return self._run(work)

    def sweep(self, name: str) -> SweepRecord:
        """The sweep called ``name``. Raises ResultsError naming the known sweeps."""

        def work(connection: Connection) -> SweepRecord:
            row = connection.execute(select(_SWEEPS).where(_SWEEPS.c.name == name)).first()
            if row is None:
                names = connection.scalars(select(_SWEEPS.c.name).order_by(_SWEEPS.c.id)).all()
                raise ResultsError(
                    f"no sweep named {name!r} in the store; known sweeps: {', '.join(names) or 'none'}"
                )
            return _sweep_record(row)

        return self._run(work)

    # -- trials --------------------------------------------------------------------------------------
    def trials(
        self, sweep_id: int, states: Sequence[TrialState] | None = None, *, replicates: bool = True
    ) -> list[TrialRecord]:
        """All trials of a sweep in number order (only ``states`` if given; no confirm replicates unless
        ``replicates``), with their results: two queries whatever the number of trials."""
        conditions = self._conditions(sweep_id, states, replicates)
        query = select(*_TRIAL_COLUMNS).where(*conditions).order_by(_TRIALS.c.number)
        return self._run(lambda connection: self._load(connection, query, conditions))

    def page(
        self,
        sweep_id: int,
        *,
        after: int | None = None,
        limit: int = 100,
        states: Sequence[TrialState] | None = None,
    ) -> TrialPage:
        """Up to ``limit`` trials numbered above ``after`` (keyset paging, number order), with results."""
        if limit < 1:
            raise ResultsError(f"a page holds at least 1 trial, got limit={limit}")
        conditions = self._conditions(sweep_id, states, True)
        if after is not None:
            conditions.append(_TRIALS.c.number > after)
        query = select(*_TRIAL_COLUMNS).where(*conditions).order_by(_TRIALS.c.number).limit(limit + 1)

        def work(connection: Connection) -> TrialPage:
            trials = self._load(connection, query, None)
            more = len(trials) > limit
            trials = trials[:limit]
            return TrialPage(trials, trials[-1].number if more else None)

        return self._run(work)

    def changed_since(self, sweep_id: int, since: datetime) -> TrialChanges:
        """Trials of a sweep written after ``since`` (created, started, heartbeat, metrics, cost, finished,
        requeued), oldest change first. A naive ``since`` is taken as UTC."""
        cutoff = _utc(since)
        bound = cutoff.replace(tzinfo=None) if self._path is not None else cutoff  # SQLite stores naive UTC
        conditions = [_TRIALS.c.sweep_id == sweep_id, _TRIALS.c.updated_at > bound]
        query = select(*_TRIAL_COLUMNS).where(*conditions).order_by(_TRIALS.c.updated_at, _TRIALS.c.number)

        def work(connection: Connection) -> TrialChanges:
            trials = self._load(connection, query, conditions)
            stamps = [t.updated_at for t in trials if t.updated_at is not None]
            return TrialChanges(trials, max(stamps, default=cutoff))

        return self._run(work)

    def count(self, sweep_id: int) -> dict[TrialState, int]:
        """Trials of one sweep in each state (one grouped query)."""
        query = (
            select(_TRIALS.c.state, func.count())
            .where(_TRIALS.c.sweep_id == sweep_id)
            .group_by(_TRIALS.c.state)
        )
        return self._run(
            lambda connection: {TrialState(state): int(n) for state, n in connection.execute(query)}
        )

    @staticmethod
    def _conditions(sweep_id: int, states: Sequence[TrialState] | None, replicates: bool) -> list[Any]:
        conditions: list[Any] = [_TRIALS.c.sweep_id == sweep_id]
        if states is not None:
            conditions.append(_TRIALS.c.state.in_([TrialState(s).value for s in states]))
        if not replicates:
            conditions.append(_TRIALS.c.replicate_of.is_(None))
        return conditions

    def _load(
        self, connection: Connection, query: Select[Any], conditions: list[Any] | None
    ) -> list[TrialRecord]:
        """Trials of ``query`` with their results: joined on ``conditions`` (one query) when given, else
        by the ids of the rows read (for pages)."""
        with _no_gc():  # ~1e5 acyclic objects: the cyclic collector would rescan the growing heap for nothing
            return self._load_rows(connection, query, conditions)

    @staticmethod
    def _load_rows(
        connection: Connection, query: Select[Any], conditions: list[Any] | None
    ) -> list[TrialRecord]:
        rows = connection.execute(query).all()
        results: dict[int, dict[str, float]] = {}
        if conditions is not None:
            joined = (
                select(_RESULTS.c.trial_id, _RESULTS.c.name, _RESULTS.c.value)
                .join(_TRIALS, _TRIALS.c.id == _RESULTS.c.trial_id)
                .where(*conditions)
            )
            for trial_id, name, value in connection.execute(joined).all():
                results.setdefault(trial_id, {})[name] = value
        else:
            for chunk in _chunks([row[0] for row in rows]):
                by_ids = select(_RESULTS.c.trial_id, _RESULTS.c.name, _RESULTS.c.value).where(
                    _RESULTS.c.trial_id.in_(chunk)
                )
                for trial_id, name, value in connection.execute(by_ids).all():
                    results.setdefault(trial_id, {})[name] = value
        return [_trial_record(row, results.get(row[0], {})) for row in rows]

    # -- per-trial data -------------------------------------------------------------------------------
    def metrics(self, trial_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Per-epoch metrics of many trials (one query per 30,000 ids): trial id -> rows {"epoch", name:
        value, ...} in epoch order (NaN for NULL). Trials without metrics are left out."""

        def work(connection: Connection) -> dict[int, list[dict[str, Any]]]:
            by_trial: dict[int, dict[int, dict[str, Any]]] = {}
            for chunk in _chunks(list(trial_ids)):
                query = (
                    select(_METRICS.c.trial_id, _METRICS.c.epoch, _METRICS.c.name, _METRICS.c.value)
                    .where(_METRICS.c.trial_id.in_(chunk))
                    .order_by(_METRICS.c.trial_id, _METRICS.c.epoch)
                )
                for trial_id, epoch, name, value in connection.execute(query):
                    epochs = by_trial.setdefault(trial_id, {})
                    epochs.setdefault(epoch, {"epoch": epoch})[name] = (
                        float("nan") if value is None else value
                    )
            return {trial_id: list(epochs.values()) for trial_id, epochs in by_trial.items()}

        return self._run(work)

    def costs(self, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Hardware cost reports of many trials (one query per 30,000 ids): trial id -> report."""

        def work(connection: Connection) -> dict[int, dict[str, Any]]:
            out: dict[int, dict[str, Any]] = {}
            for chunk in _chunks(list(trial_ids)):
                query = select(_COSTS.c.trial_id, _COSTS.c.report).where(_COSTS.c.trial_id.in_(chunk))
                out.update((trial_id, dict(report)) for trial_id, report in connection.execute(query))
            return out

        return self._run(work)

    def artifacts(self, trial_ids: Sequence[int]) -> dict[int, list[dict[str, str]]]:
        """Artifacts of many trials (one query per 30,000 ids): trial id -> [{"kind", "path", "sha256"}, ...]
        in the order they were recorded (the newest of a kind last). Trials without artifacts are left out."""

        def work(connection: Connection) -> dict[int, list[dict[str, str]]]:
            out: dict[int, list[dict[str, str]]] = {}
            for chunk in _chunks(list(trial_ids)):
                query = (
                    select(_ARTIFACTS.c.trial_id, _ARTIFACTS.c.kind, _ARTIFACTS.c.path, _ARTIFACTS.c.sha256)
                    .where(_ARTIFACTS.c.trial_id.in_(chunk))
                    .order_by(_ARTIFACTS.c.id)
                )
                for trial_id, kind, path, sha256 in connection.execute(query):
                    out.setdefault(trial_id, []).append({"kind": kind, "path": path, "sha256": sha256})
            return out

        return self._run(work)

    # -- fronts --------------------------------------------------------------------------------------
    def front(self, sweep: SweepRecord) -> tuple[list[TrialRecord], float | None]:
        """:func:`search.results.sweep_front` of ``sweep``."""
        from search.results._fronts import sweep_front

        return sweep_front(self, sweep)

    def confirmed_front(self, sweep: SweepRecord) -> tuple[list[Any], float | None]:
        """:func:`search.results.confirmed_front` of ``sweep`` (a list of ``ConfirmedPoint``)."""
        from search.results._fronts import confirmed_front

        return confirmed_front(self, sweep)

    def report(self, sweep: SweepRecord) -> Any:
        """The :class:`FrontReport` of ``sweep``: front, hypervolume, references, hypervolume history."""
        from search.results._report import front_report

        return front_report(self, sweep)

    def hypervolume_history(self, sweep: SweepRecord) -> list[dict[str, Any]]:
        """Hypervolume after each completed trial, in completion order: [{"trial", "hypervolume"}, ...]."""
        return list(self.report(sweep).history())


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _IDS_PER_QUERY):
        yield ids[start : start + _IDS_PER_QUERY]


def _sweep_record(row: Any) -> SweepRecord:
    return SweepRecord(
        id=row.id,
        name=row.name,
        config_yaml=row.config_yaml,
        config_hash=row.config_hash,
        objectives=list(row.objectives),
        reference_point=None if row.reference_point is None else [float(v) for v in row.reference_point],
        status=row.status,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _datetime(value: Any) -> datetime | None:
    """A column read as raw driver value: SQLite hands back text, psycopg a datetime."""
    if value is None:
        return None
    return _utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


def _trial_record(row: Sequence[Any], results: dict[str, float]) -> TrialRecord:
    """A record from a row of ``_TRIAL_COLUMNS`` (positional: this runs once per trial read)."""
    params = row[3]
    return TrialRecord(
        id=row[0],
        sweep_id=row[1],
        number=row[2],
        params=json.loads(params) if isinstance(params, str) else dict(params),
        config_hash=row[4],
        state=TrialState(row[5]),
        origin=row[6],
        replicate_of=row[7],
        seed=row[8],
        fidelity=row[9],
        attempts=row[10],
        error=row[11],
        worker=row[12],
        host=row[13],
        heartbeat_at=_datetime(row[14]),
        created_at=cast(datetime, _datetime(row[15])),  # never NULL
        started_at=_datetime(row[16]),
        finished_at=_datetime(row[17]),
        results=results,
        updated_at=_datetime(row[18]),
    )
