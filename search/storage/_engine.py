"""The writer's database plumbing: URL -> engine, SQLite pragmas, the session scope, migrations, busy waits.

- A store URL becomes an engine for SQLite (WAL, a 30 s busy timeout, foreign keys) or PostgreSQL through
  psycopg 3; anything else is a :class:`StoreError`.
- The session scope commits or rolls back; database errors become :class:`StoreError` naming the URL
  (password hidden), and a store locked by another process becomes ``_Busy``.
- Opening a store creates or upgrades its schema with alembic, retrying while a concurrent process creates
  it, and refuses a store written by a newer hwnas.
- Every public method of the store waits and retries while the store is busy (:func:`waits_when_busy`).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
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

from search.storage._records import StoreError
from search.storage._records import redacted as _redacted

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

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


def waits_when_busy(method: F) -> F:
    """Retry ``method`` while another process holds the store's lock, warning with the file and the time
    waited; after ``BUSY_WAIT_S`` a StoreError names the lock. A trial never fails on a busy store."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
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


def every_public_method_waits_when_busy(cls: C) -> C:
    """Wrap the public methods ``cls`` defines itself (all but ``close``) in :func:`waits_when_busy`."""
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_") and name != "close":
            setattr(cls, name, waits_when_busy(member))
    return cls


@contextmanager
def session_scope(sessions: sessionmaker[Session], url: str) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error (a lock raises ``_Busy``, other
    database errors a StoreError naming ``url``; an IntegrityError is left to the caller)."""
    session = sessions()
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
        raise StoreError(f"database error on {_redacted(url)}: {exc.__class__.__name__}: {exc}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(engine: Engine, url: str) -> None:
    """Create or upgrade the schema. Processes opening a new store at once race to create it: the
    loser's DDL fails, and its retry finds the schema in place (a no-op upgrade)."""
    for attempt in range(_MIGRATION_RETRIES):
        try:
            with engine.begin() as connection:
                cfg = _alembic_config(connection)
                known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
                current = MigrationContext.configure(connection).get_current_heads()
                newer = [rev for rev in current if rev not in known]
                if newer:
                    raise StoreError(
                        f"the store {_redacted(url)} was written by a newer hwnas (schema revision "
                        f"{', '.join(newer)}; this hwnas knows {', '.join(sorted(known))}): upgrade hwnas"
                    )
                command.upgrade(cfg, "head")
            return
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            if attempt + 1 == _MIGRATION_RETRIES or _unreachable(exc):
                raise StoreError(
                    f"cannot open the store {_redacted(url)}: {exc.__class__.__name__}: {exc}"
                ) from exc
            time.sleep(min(1.0, 0.1 * (attempt + 1)) * (0.5 + random.random()))
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store {_redacted(url)}: {exc.__class__.__name__}: {exc}"
            ) from exc


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
