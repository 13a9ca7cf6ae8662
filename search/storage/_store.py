"""The store: the only code that touches SQL.

Contract:
- Every method runs in its own transaction (one session scope that commits or rolls back) and returns
  snapshots (frozen dataclasses), never live ORM objects.
- Database errors surface as :class:`StoreError` naming the URL (password hidden) and the cause.
- The trial lifecycle is the state machine in ``_schema.ALLOWED_TRANSITIONS``; finished trials are
  immutable. A transition that is not allowed raises :class:`StoreError`.
- Trial numbers are unique per sweep under concurrency: the sweep row is locked while the next number is
  taken (PostgreSQL), a unique constraint guards it everywhere, and a lost race is retried with a bounded,
  jittered back-off (SQLite, where the lock is a no-op).
- NaN never enters ``trial_results`` (a NaN objective fails the trial upstream; here it is refused); +-inf
  is stored faithfully. Per-epoch metrics store NaN as NULL.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from importlib import resources
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from search.storage._records import (
    DEFAULT_STORE_URL as DEFAULT_STORE_URL,  # re-exported: this module was its home
)
from search.storage._records import (
    StoreError,
    SweepRecord,
    TrialRecord,
)
from search.storage._records import redacted as _redacted
from search.storage._schema import (
    ALLOWED_TRANSITIONS,
    ArtifactRow,
    HWCostRow,
    SweepRow,
    TrialMetricRow,
    TrialResultRow,
    TrialRow,
    TrialRungRow,
    TrialState,
    utcnow,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

_NUMBER_RETRIES = 12
# SQLite runs DDL outside transactions (pysqlite), so a process opening a store another one is creating can
# see its tables before its schema version: it waits and retries, for up to ~20 s on a loaded machine.
_MIGRATION_RETRIES = 20
# A store locked by another process (SQLite's busy timeout of 30 s exceeded): every call waits and retries,
# warning each time, for up to this long before it fails. Short locks are SQLite's own business.
BUSY_WAIT_S = 3600.0


class _Busy(Exception):
    """Another process holds the database's write lock longer than SQLite's busy timeout."""


def _locked(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _waits_when_busy(method: F) -> F:
    """Retry ``method`` while another process holds the store's lock, warning with the file and the time
    waited; after ``BUSY_WAIT_S`` a StoreError names the lock. A trial never fails on a busy store."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        while True:
            try:
                return method(self, *args, **kwargs)
            except _Busy:
                waited = time.monotonic() - started
                if waited >= BUSY_WAIT_S:
                    raise StoreError(
                        f"the store {_redacted(self.url)} has been locked by another process for {waited:.0f} s "
                        "(database is locked); find the process holding it (e.g. `fuser FILE`) or stop it"
                    ) from None
                log.warning(
                    "the store %s is locked by another process (%.0f s so far); waiting, then retrying %s",
                    _redacted(self.url),
                    waited + 30,
                    method.__name__,
                )
                time.sleep(1.0)

    return wrapper  # type: ignore[return-value]


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


def _alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("search.storage") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def _unreachable(exc: SQLAlchemyError) -> bool:
    """A connection failure (no server, bad file path): retrying the migration cannot help."""
    text = str(exc).lower()
    return "connect" in text or "unable to open" in text


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _every_public_method_waits_when_busy(cls: type[Store]) -> type[Store]:
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_") and name != "close":
            setattr(cls, name, _waits_when_busy(member))
    return cls


@_every_public_method_waits_when_busy
class Store:
    """Sweeps and trials in SQL (SQLite with WAL by default, PostgreSQL through psycopg 3)."""

    def __init__(self, url: str) -> None:
        """Open ``url``, creating or migrating the schema. Raises StoreError if unreachable or newer."""
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    # -- session scope -------------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except SQLAlchemyError as exc:
            session.rollback()
            if _locked(exc):
                raise _Busy from exc
            raise StoreError(
                f"database error on {_redacted(self.url)}: {exc.__class__.__name__}: {exc}"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _migrate(self) -> None:
        """Create or upgrade the schema. Processes opening a new store at once race to create it: the
        loser's DDL fails, and its retry finds the schema in place (a no-op upgrade)."""
        for attempt in range(_MIGRATION_RETRIES):
            try:
                with self.engine.begin() as connection:
                    cfg = _alembic_config(connection)
                    known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
                    current = MigrationContext.configure(connection).get_current_heads()
                    newer = [rev for rev in current if rev not in known]
                    if newer:
                        raise StoreError(
                            f"the store {_redacted(self.url)} was written by a newer hwnas (schema revision "
                            f"{', '.join(newer)}; this hwnas knows {', '.join(sorted(known))}): upgrade hwnas"
                        )
                    command.upgrade(cfg, "head")
                return
            except (OperationalError, IntegrityError, ProgrammingError) as exc:
                if attempt + 1 == _MIGRATION_RETRIES or _unreachable(exc):
                    raise StoreError(
                        f"cannot open the store {_redacted(self.url)}: {exc.__class__.__name__}: {exc}"
                    ) from exc
                time.sleep(min(1.0, 0.1 * (attempt + 1)) * (0.5 + random.random()))
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"cannot open the store {_redacted(self.url)}: {exc.__class__.__name__}: {exc}"
                ) from exc

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
    ) -> TrialRecord:
        """Add a trial with the next free number of its sweep (unique under concurrent writers).

        ``seed`` is the trial's training seed; None gives it its own number, so every trial differs.
        """
        if state not in (TrialState.QUEUED, TrialState.RUNNING):
            raise StoreError(f"a new trial starts QUEUED or RUNNING, not {state.value}")
        for attempt in range(_NUMBER_RETRIES):
            try:
                with self._session() as session:
                    # Serialises number allocation per sweep on PostgreSQL; a no-op on SQLite, where the
                    # unique constraint plus the retry below does the job.
                    session.execute(select(SweepRow.id).where(SweepRow.id == sweep_id).with_for_update())
                    last = session.scalar(
                        select(func.max(TrialRow.number)).where(TrialRow.sweep_id == sweep_id)
                    )
                    now = utcnow()
                    number = 0 if last is None else last + 1
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
                        attempts=1 if state is TrialState.RUNNING else 0,
                        started_at=now if state is TrialState.RUNNING else None,
                        heartbeat_at=now if state is TrialState.RUNNING else None,
                    )
                    session.add(row)
                    session.flush()
                    return _trial_record(row, {})
            except IntegrityError:
                delay = min(0.5, 0.005 * 2**attempt) * (0.5 + random.random())
                log.debug("trial number taken concurrently; retry %d in %.3f s", attempt + 1, delay)
                time.sleep(delay)
        raise StoreError(
            f"could not allocate a trial number for sweep {sweep_id} after {_NUMBER_RETRIES} tries"
        )

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

    @staticmethod
    def _require_trial(session: Session, trial_id: int) -> None:
        """An unknown id is a StoreError, not the foreign-key IntegrityError an insert would raise."""
        if session.get(TrialRow, trial_id) is None:
            raise StoreError(f"no trial with id {trial_id}")

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

    def requeue_trial(self, trial_id: int, reason: str) -> None:
        """RUNNING -> QUEUED: the worker died or the sweep was interrupted; the same trial runs again."""
        with self._session() as session:
            row = self._transition(session, trial_id, TrialState.QUEUED)
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

    # -- per-trial data -------------------------------------------------------------------------------
    def record_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch metrics; also advances the trial's fidelity to ``epoch``."""
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.add_all(
                TrialMetricRow(
                    trial_id=trial_id, epoch=epoch, name=k, value=None if math.isnan(v) else float(v)
                )
                for k, v in metrics.items()
            )
            session.execute(
                update(TrialRow).where(TrialRow.id == trial_id).values(fidelity=epoch, heartbeat_at=utcnow())
            )

    def metrics(self, trial_id: int) -> list[dict[str, Any]]:
        """Per-epoch metrics as rows {"epoch", name: value, ...} in epoch order (NaN for NULL)."""
        with self._session() as session:
            rows = session.scalars(
                select(TrialMetricRow)
                .where(TrialMetricRow.trial_id == trial_id)
                .order_by(TrialMetricRow.epoch)
            )
            by_epoch: dict[int, dict[str, Any]] = {}
            for row in rows:
                by_epoch.setdefault(row.epoch, {"epoch": row.epoch})[row.name] = (
                    math.nan if row.value is None else row.value
                )
            return list(by_epoch.values())

    def record_cost(self, trial_id: int, report: Mapping[str, Any]) -> None:
        """Store (or replace) a trial's hardware cost report (``CostReport.to_dict()``)."""
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.execute(delete(HWCostRow).where(HWCostRow.trial_id == trial_id))
            session.add(
                HWCostRow(
                    trial_id=trial_id,
                    formula_version=str(report.get("formula_version", "")),
                    totals=dict(report.get("totals", {})),
                    report=dict(report),
                )
            )
            # The cost is part of the trial: readers asking what changed since a time see it.
            session.execute(update(TrialRow).where(TrialRow.id == trial_id).values(updated_at=utcnow()))

    def costs(self, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The cost reports of those of ``trial_ids`` that have one, by trial id."""
        with self._session() as session:
            rows = session.scalars(select(HWCostRow).where(HWCostRow.trial_id.in_(list(trial_ids))))
            return {r.trial_id: dict(r.report) for r in rows}

    def add_artifact(self, trial_id: int, kind: str, path: str, sha256: str) -> None:
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.add(ArtifactRow(trial_id=trial_id, kind=kind, path=path, sha256=sha256))

    def artifacts(self, trial_id: int) -> list[dict[str, str]]:
        """A trial's artifacts in the order they were added (the last checkpoint is the newest)."""
        with self._session() as session:
            rows = session.scalars(
                select(ArtifactRow).where(ArtifactRow.trial_id == trial_id).order_by(ArtifactRow.id)
            )
            return [{"kind": r.kind, "path": r.path, "sha256": r.sha256} for r in rows]

    def record_rung(
        self, trial_id: int, bracket: int, milestone: int, point: Sequence[float]
    ) -> tuple[list[list[float]], int]:
        """Record a trial's ASHA point at a rung (once: a retried trial keeps its first point). Returns the
        points of every trial of its sweep at that rung in recording order (infinities as such) and the
        index of this trial's point among them."""
        stored = [None if math.isinf(v) else float(v) for v in point]  # JSON has no infinity
        with self._session() as session:
            sweep_id = session.scalar(select(TrialRow.sweep_id).where(TrialRow.id == trial_id))
            if sweep_id is None:
                raise StoreError(f"no trial with id {trial_id}")
            known = session.scalar(
                select(TrialRungRow.id).where(
                    TrialRungRow.trial_id == trial_id, TrialRungRow.milestone == milestone
                )
            )
            if known is None:
                session.add(
                    TrialRungRow(
                        sweep_id=sweep_id,
                        trial_id=trial_id,
                        bracket=bracket,
                        milestone=milestone,
                        point=stored,
                    )
                )
                session.flush()
            rows = session.execute(
                select(TrialRungRow.trial_id, TrialRungRow.point)
                .where(
                    TrialRungRow.sweep_id == sweep_id,
                    TrialRungRow.bracket == bracket,
                    TrialRungRow.milestone == milestone,
                )
                .order_by(TrialRungRow.id)
            ).all()
        points = [[math.inf if v is None else v for v in row.point] for row in rows]
        return points, next(i for i, row in enumerate(rows) if row.trial_id == trial_id)

    def record_worker(self, trial_id: int, *, worker: str, host: str) -> None:
        """Name the process and host that run a RUNNING trial (a remote executor learns them at start).

        A trial no longer RUNNING (already finished or requeued) is left as it is.
        """
        with self._session() as session:
            session.execute(
                update(TrialRow)
                .where(TrialRow.id == trial_id, TrialRow.state == TrialState.RUNNING.value)
                .values(worker=worker, host=host, heartbeat_at=utcnow())
            )


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"store URL {url!r} is not a database URL; use sqlite:///FILE.db or postgresql+psycopg://HOST/DB"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"store backend {backend!r} is not supported; allowed: sqlite, postgresql")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        if backend == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except (NoSuchModuleError, ArgumentError) as exc:
        raise StoreError(f"cannot use store URL {_redacted(url)}: {exc}") from exc
    return engine
