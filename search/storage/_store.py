"""The store, the only code that writes SQL: :class:`Store` with its sweeps, trials and their state machine.

Its parts live beside it: the engine, session scope, migrations and busy-store waits in ``_engine``, the
per-trial data (metrics, costs, artifacts, rungs, workers) in ``_trial_data`` (a mixin of ``Store``).

Contract:
- Every method runs in its own transaction (one session scope that commits or rolls back) and returns
  snapshots (frozen dataclasses), never live ORM objects.
- Database errors surface as :class:`StoreError` naming the URL (password hidden) and the cause.
- The trial lifecycle is the state machine in ``_schema.ALLOWED_TRANSITIONS``; finished trials are
  immutable. A transition that is not allowed raises :class:`StoreError`.
- Trials are added under the sweep's write lock (SQLite's, taken at the start of the transaction, or the
  sweep's row on PostgreSQL): trial numbers are unique under concurrency (a unique constraint guards them
  too), and the budget and duplicate-config checks of ``create_trial`` hold against concurrent drivers.
- NaN never enters ``trial_results`` (a NaN objective fails the trial upstream; here it is refused); +-inf
  is stored faithfully. Per-epoch metrics store NaN as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from search.storage._engine import (
    _alembic_config as _alembic_config,  # re-exported: tests build old schemas with it from here
)
from search.storage._engine import _create_engine, every_public_method_waits_when_busy, migrate, session_scope
from search.storage._records import (
    DEFAULT_STORE_URL as DEFAULT_STORE_URL,  # re-exported: this module was its home
)
from search.storage._records import (
    BudgetSpent,
    ConfigTaken,
    StoreError,
    SweepRecord,
    TrialRecord,
)
from search.storage._records import redacted as _redacted
from search.storage._schema import (
    ALLOWED_TRANSITIONS,
    SweepRow,
    TrialMetricRow,
    TrialResultRow,
    TrialRow,
    TrialState,
    utcnow,
)
from search.storage._trial_data import TrialData


def _sweep_record(row: SweepRow) -> SweepRecord:
    return SweepRecord(
        id=row.id,
        name=row.name,
        config_yaml=row.config_yaml,
        config_hash=row.config_hash,
        objectives=list(row.objectives),
        reference_point=None if row.reference_point is None else [float(v) for v in row.reference_point],
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _trial_record(row: TrialRow, results: dict[str, float]) -> TrialRecord:
    return TrialRecord(
        id=row.id,
        sweep_id=row.sweep_id,
        number=row.number,
        params=dict(row.params),
        config_hash=row.config_hash,
        state=TrialState(row.state),
        origin=row.origin,
        replicate_of=row.replicate_of,
        seed=row.seed,
        fidelity=row.fidelity,
        attempts=row.attempts,
        error=row.error,
        worker=row.worker,
        host=row.host,
        heartbeat_at=row.heartbeat_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        results=results,
        updated_at=row.updated_at,
    )


@every_public_method_waits_when_busy
class Store(TrialData):
    """Sweeps and trials in SQL (SQLite with WAL by default, PostgreSQL through psycopg 3); the per-trial
    data methods come from :class:`TrialData`."""

    def __init__(self, url: str) -> None:
        """Open ``url``, creating or migrating the schema. Raises StoreError if unreachable or newer."""
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        migrate(self.engine, url)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> AbstractContextManager[Session]:
        return session_scope(self._sessions, self.url)

    # -- sweeps --------------------------------------------------------------------------------------
    def create_sweep(
        self,
        name: str,
        *,
        config_yaml: str,
        config_hash: str,
        objectives: Sequence[Mapping[str, str]],
        reference_point: Sequence[float] | None,
    ) -> SweepRecord:
        """Create a sweep. Raises StoreError if the name is taken."""
        try:
            with self._session() as session:
                row = SweepRow(
                    name=name,
                    config_yaml=config_yaml,
                    config_hash=config_hash,
                    objectives=[dict(o) for o in objectives],
                    reference_point=None if reference_point is None else [float(v) for v in reference_point],
                    status="RUNNING",
                )
                session.add(row)
                session.flush()
                return _sweep_record(row)
        except IntegrityError as exc:
            raise StoreError(f"a sweep named {name!r} already exists in {_redacted(self.url)}") from exc

    def get_sweep(self, name: str) -> SweepRecord | None:
        with self._session() as session:
            row = session.scalar(select(SweepRow).where(SweepRow.name == name))
            return None if row is None else _sweep_record(row)

    def list_sweeps(self) -> list[SweepRecord]:
        with self._session() as session:
            return [_sweep_record(r) for r in session.scalars(select(SweepRow).order_by(SweepRow.id))]

    @staticmethod
    def _require_sweep(session: Session, sweep_id: int) -> None:
        if session.get(SweepRow, sweep_id) is None:
            raise StoreError(f"no sweep with id {sweep_id}")

    def set_sweep_status(self, sweep_id: int, status: str) -> None:
        """Raises StoreError if there is no such sweep."""
        with self._session() as session:
            self._require_sweep(session, sweep_id)
            session.execute(
                update(SweepRow).where(SweepRow.id == sweep_id).values(status=status, updated_at=utcnow())
            )

    def start_session(self, sweep_id: int) -> int:
        """Count one more driver started on the sweep and return its session number (1, 2, ...): atomic, so
        drivers that start at once get different numbers."""
        with self._session() as session:
            number = session.scalar(
                update(SweepRow)
                .where(SweepRow.id == sweep_id)
                .values(sessions=SweepRow.sessions + 1)
                .returning(SweepRow.sessions)
            )
            if number is None:
                raise StoreError(f"no sweep with id {sweep_id}")
            return int(number)

    def set_reference_point(self, sweep_id: int, reference_point: Sequence[float]) -> None:
        """Raises StoreError if there is no such sweep."""
        with self._session() as session:
            self._require_sweep(session, sweep_id)
            session.execute(
                update(SweepRow)
                .where(SweepRow.id == sweep_id)
                .values(reference_point=[float(v) for v in reference_point], updated_at=utcnow())
            )

    # -- trials --------------------------------------------------------------------------------------
    def create_trial(
        self,
        sweep_id: int,
        params: Mapping[str, Any],
        *,
        config_hash: str,
        state: TrialState = TrialState.QUEUED,
        origin: str = "search",
        seed: int | None = None,
        replicate_of: int | None = None,
        worker: str | None = None,
        host: str | None = None,
        error: str | None = None,
        budget: int | None = None,
        unique_config: bool = False,
    ) -> TrialRecord:
        """Add a trial with the next number of its sweep: QUEUED, RUNNING (its first attempt, started by
        ``worker`` on ``host``) or INFEASIBLE (with ``error``; never trained).

        The checks and the insert are one transaction holding the sweep's write lock, so concurrent drivers
        get unique numbers and never overshoot: with ``budget``, BudgetSpent unless the sweep has fewer
        search trials than that in a state that counts (all but INFEASIBLE: a queued trial is promised a
        run); with ``unique_config``, ConfigTaken (naming the trial) if a search trial has ``config_hash``.
        ``seed`` is the trial's training seed; None gives it its own number, so every trial differs.
        """
        if state not in (TrialState.QUEUED, TrialState.RUNNING, TrialState.INFEASIBLE):
            raise StoreError(f"a new trial starts QUEUED, RUNNING or INFEASIBLE, not {state.value}")
        with self._session() as session:
            self._lock_sweep(session, sweep_id)
            search = (TrialRow.sweep_id == sweep_id, TrialRow.replicate_of.is_(None))
            if unique_config:
                taken = session.scalar(
                    select(TrialRow.id).where(*search, TrialRow.config_hash == config_hash).limit(1)
                )
                if taken is not None:
                    raise ConfigTaken(f"sweep {sweep_id} has this config already (trial id {taken})", taken)
            if budget is not None:
                counted = session.scalar(
                    select(func.count(TrialRow.id)).where(
                        *search, TrialRow.state != TrialState.INFEASIBLE.value
                    )
                )
                if (counted or 0) >= budget:
                    raise BudgetSpent(f"sweep {sweep_id} has its {budget} trials already")
            last = session.scalar(select(func.max(TrialRow.number)).where(TrialRow.sweep_id == sweep_id))
            now = utcnow()
            number = 0 if last is None else last + 1
            running = state is TrialState.RUNNING
            row = TrialRow(
                sweep_id=sweep_id,
                number=number,
                params=dict(params),
                config_hash=config_hash,
                state=state.value,
                origin=origin,
                replicate_of=replicate_of,
                seed=number if seed is None else seed,
                fidelity=0,
                attempts=1 if running else 0,
                error=error,
                worker=worker,
                host=host,
                started_at=now if running else None,
                heartbeat_at=now if running else None,
                finished_at=now if state.finished else None,
            )
            session.add(row)
            session.flush()
            return _trial_record(row, {})

    def _lock_sweep(self, session: Session, sweep_id: int) -> None:
        """Take the lock that serialises the writers adding trials to a sweep, before anything is read:
        SQLite's write lock (BEGIN IMMEDIATE; a plain transaction would read a snapshot first and take the
        lock only at its insert) or the sweep's row on PostgreSQL. Raises StoreError for an unknown sweep."""
        if self.engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        found = session.scalar(select(SweepRow.id).where(SweepRow.id == sweep_id).with_for_update())
        if found is None:
            raise StoreError(f"no sweep with id {sweep_id}")

    def get_trial(self, trial_id: int) -> TrialRecord:
        with self._session() as session:
            row = session.get(TrialRow, trial_id)
            if row is None:
                raise StoreError(f"no trial with id {trial_id}")
            return _trial_record(row, self._results(session, [trial_id]).get(trial_id, {}))

    def trials(self, sweep_id: int, states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
        """All trials of a sweep in number order (optionally only those in ``states``)."""
        with self._session() as session:
            query = select(TrialRow).where(TrialRow.sweep_id == sweep_id).order_by(TrialRow.number)
            if states is not None:
                query = query.where(TrialRow.state.in_([s.value for s in states]))
            rows = list(session.scalars(query))
            results = self._results(session, [r.id for r in rows])
            return [_trial_record(r, results.get(r.id, {})) for r in rows]

    def count_by_state(self, sweep_id: int) -> dict[str, int]:
        """Trials of a sweep by state name (replicates included), in one grouped query."""
        with self._session() as session:
            rows = session.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.sweep_id == sweep_id)
                .group_by(TrialRow.state)
            ).all()
        return {state: int(count) for state, count in rows}

    def count_trials(self, sweep_id: int, states: Sequence[TrialState], *, replicates: bool = True) -> int:
        """How many trials of a sweep are in ``states`` (without confirm replicates unless ``replicates``)."""
        with self._session() as session:
            query = select(func.count(TrialRow.id)).where(
                TrialRow.sweep_id == sweep_id, TrialRow.state.in_([s.value for s in states])
            )
            if not replicates:
                query = query.where(TrialRow.replicate_of.is_(None))
            return int(session.scalar(query) or 0)

    @staticmethod
    def _results(session: Session, trial_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        if not trial_ids:
            return out
        query = select(TrialResultRow).where(TrialResultRow.trial_id.in_(trial_ids))
        for row in session.scalars(query):
            out.setdefault(row.trial_id, {})[row.name] = row.value
        return out

    def _transition(self, session: Session, trial_id: int, new: TrialState) -> TrialRow:
        row = session.get(TrialRow, trial_id, with_for_update=True)
        if row is None:
            raise StoreError(f"no trial with id {trial_id}")
        old = TrialState(row.state)
        if new not in ALLOWED_TRANSITIONS.get(old, frozenset()):
            raise StoreError(f"trial {row.number} cannot go from {old.value} to {new.value}")
        row.state = new.value
        return row

    def start_trial(self, trial_id: int, *, worker: str, host: str) -> TrialRecord:
        """QUEUED -> RUNNING, counting the attempt and stamping the heartbeat."""
        with self._session() as session:
            row = self._transition(session, trial_id, TrialState.RUNNING)
            now = utcnow()
            row.worker, row.host, row.started_at, row.heartbeat_at = worker, host, now, now
            row.attempts += 1
            return _trial_record(row, {})

    def requeue_trial(self, trial_id: int, reason: str, *, attempt_spent: bool = True) -> None:
        """RUNNING -> QUEUED: the worker died or the sweep was interrupted; the same trial runs again.
        ``attempt_spent=False``: no worker ever took it (it waited in an executor's queue), so the attempt
        ``start_trial`` counted is given back."""
        with self._session() as session:
            row = self._transition(session, trial_id, TrialState.QUEUED)
            if not attempt_spent:
                row.attempts = max(0, row.attempts - 1)
            row.error = reason
            row.fidelity = 0
            session.execute(delete(TrialMetricRow).where(TrialMetricRow.trial_id == trial_id))

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        *,
        results: Mapping[str, float] | None = None,
        fidelity: int | None = None,
        error: str | None = None,
    ) -> None:
        """Move a trial to a finished state with its results. NaN results are refused (StoreError)."""
        if not state.finished:
            raise StoreError(f"finish_trial needs a finished state, not {state.value}")
        results = dict(results or {})
        nan = [k for k, v in results.items() if math.isnan(v)]
        if nan:
            raise StoreError(f"NaN never enters an objective column (trial {trial_id}, {', '.join(nan)})")
        with self._session() as session:
            row = self._transition(session, trial_id, state)
            row.finished_at = utcnow()
            row.error = error
            if fidelity is not None:
                row.fidelity = fidelity
            session.execute(delete(TrialResultRow).where(TrialResultRow.trial_id == trial_id))
            session.add_all(
                TrialResultRow(trial_id=trial_id, name=k, value=float(v)) for k, v in results.items()
            )

    def heartbeat(self, trial_ids: Sequence[int]) -> None:
        if not trial_ids:
            return
        with self._session() as session:
            session.execute(
                update(TrialRow)
                .where(TrialRow.id.in_(list(trial_ids)), TrialRow.state == TrialState.RUNNING.value)
                .values(heartbeat_at=utcnow())
            )

    def stale_trials(self, sweep_id: int, older_than: timedelta) -> list[TrialRecord]:
        """RUNNING trials whose heartbeat is older than ``older_than`` (their worker is presumed dead)."""
        cutoff = utcnow() - older_than
        with self._session() as session:
            rows = session.scalars(
                select(TrialRow).where(
                    TrialRow.sweep_id == sweep_id,
                    TrialRow.state == TrialState.RUNNING.value,
                    TrialRow.heartbeat_at < cutoff,
                )
            )
            return [_trial_record(r, {}) for r in rows]
