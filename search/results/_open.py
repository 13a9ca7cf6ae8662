"""Opening a store read-only: the engine, the one-snapshot transaction every read runs in, the schema check.

Contract:
- Opening never writes: no migration, no DDL, no new database. A SQLite store is opened through a
  read-only URI (a missing file is an error, not a new store); PostgreSQL sessions are read-only
  transactions. The schema revision is read from ``alembic_version``: a store that needs migrating, or one
  written by a newer hwnas, is reported (:class:`ResultsError`, a :class:`StoreError`) and left as it is.
- A SQLite store at rest (no ``-wal`` or ``-journal`` file: no writer has it open in WAL mode or is
  writing it) is read as immutable, so the read leaves no ``-wal``/``-shm`` files behind; if the file
  changes or a writer appears during a read, the read is repeated through an ordinary read-only connection
  (which shares the writer's ``-shm``).
- The database file is only ever opened by SQLite: closing any other handle on it would drop the POSIX
  locks that every SQLite connection of this process (a writer's too) holds on it, and another process's
  last connection would then delete the ``-wal`` and ``-shm`` under them (``disk I/O error``).
- Imports neither torch, Optuna, Ray nor alembic (the migrations' revisions are read from their files).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Self, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from search.storage._records import StoreError, redacted

T = TypeVar("T")

_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?(\w+|None)['\"]?\s*$", re.MULTILINE)


class ResultsError(StoreError):
    """The store cannot be read: missing, not an hwnas store, at another schema revision, or unknown sweep."""


def schema_revisions() -> tuple[str, list[str]]:
    """(head, all revisions) of this hwnas's migrations, read from the migration files (no alembic import)."""
    revisions: dict[str, str | None] = {}
    folder = resources.files("search.storage") / "migrations" / "versions"
    for entry in folder.iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("_"):
            continue
        fields = dict((key, value) for key, value in _REVISION_LINE.findall(entry.read_text()))
        if "revision" in fields:
            down = fields.get("down_revision")
            revisions[fields["revision"]] = None if down in (None, "None") else down
    heads = sorted(set(revisions) - {d for d in revisions.values() if d is not None})
    if len(heads) != 1:
        raise ResultsError(f"the migrations of this hwnas have {len(heads)} heads ({heads}); expected one")
    return heads[0], sorted(revisions)


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (resolved), None for other backends; in-memory URLs are refused."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ResultsError(
            f"store URL {url!r} is not a database URL; use sqlite:///FILE.db or postgresql+psycopg://HOST/DB"
        ) from exc
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ResultsError(f"store URL {url!r} names no SQLite file to read; use sqlite:///FILE.db")
    return Path(database).expanduser().resolve()


def require_store(url: str) -> None:
    """Raise :class:`ResultsError` if ``url`` is a SQLite file that does not exist (creating nothing)."""
    path = _sqlite_path(url)
    if path is not None and not path.is_file():
        raise ResultsError(
            f"no store at {path}: nothing was created (give an existing store with --store or $HWNAS_STORE)"
        )


def _fingerprint(path: Path) -> tuple[int, int, int, bool]:
    """The file's identity, size and time, and whether a writer has it open (WAL) or is writing it (a
    rollback journal); stat only (see the module docstring on opening the file)."""
    stat = path.stat()
    busy = Path(f"{path}-wal").exists() or Path(f"{path}-journal").exists()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, busy


class ReadOnlyStore:
    """A store opened read-only, each read in one snapshot: what :class:`Results` reads through."""

    def __init__(self, url: str) -> None:
        """Open ``url`` read-only. Raises ResultsError if missing, not an hwnas store, or at another
        schema revision (nothing is changed in any case)."""
        self.url = url
        self._path = _sqlite_path(url)
        self._immutable = False
        self._at_rest = (0, 0, 0, False)
        if self._path is not None:
            require_store(url)
            self._at_rest = _fingerprint(self._path)  # the file as it was when opened, with no writer
            self._immutable = not self._at_rest[3]
        self._engine = self._create_engine()
        self.revision = self._run(self._check_revision)

    @classmethod
    def open(cls, url: str) -> Self:
        return cls(url)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------------------
    def _create_engine(self) -> Engine:
        if self._path is not None:
            mode = "ro&immutable=1" if self._immutable else "ro"
            uri = f"file:{quote(str(self._path))}?mode={mode}"

            def connect() -> sqlite3.Connection:
                connection = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
                connection.isolation_level = None  # transactions are begun explicitly (below)
                return connection

            engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool)

            @event.listens_for(engine, "begin")
            def _begin(connection: Connection) -> None:  # one snapshot per method, even across queries
                connection.exec_driver_sql("BEGIN")

            return engine
        parsed = make_url(self.url)
        backend = parsed.get_backend_name()
        if backend != "postgresql":
            raise ResultsError(f"store backend {backend!r} is not supported; allowed: sqlite, postgresql")
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(
                parsed,
                pool_pre_ping=True,
                isolation_level="REPEATABLE READ",
                connect_args={"connect_timeout": 5, "options": "-c default_transaction_read_only=on"},
            )
        except (NoSuchModuleError, ArgumentError) as exc:
            raise ResultsError(f"cannot use store URL {redacted(self.url)}: {exc}") from exc

    def _run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read-only transaction; an immutable read the file changed under is redone."""
        try:
            if self._immutable and self._path is not None:
                if _fingerprint(self._path) == self._at_rest:
                    try:
                        with self._engine.begin() as connection:
                            result = work(connection)
                    except Exception:  # a half-written row may fail in ``work`` itself, not only in SQLite
                        if _fingerprint(self._path) == self._at_rest:
                            raise
                    else:  # a read the file changed under (or failed on, half-written) is not trusted
                        if _fingerprint(self._path) == self._at_rest:
                            return result
                self._engine.dispose()  # a writer appeared: share its -wal/-shm from now on
                self._immutable = False
                self._engine = self._create_engine()
            with self._engine.begin() as connection:
                return work(connection)
        except SQLAlchemyError as exc:
            raise ResultsError(
                f"cannot read the store {redacted(self.url)}: {exc.__class__.__name__}: {exc}"
            ) from exc

    def _check_revision(self, connection: Connection) -> str:
        where = redacted(self.url)
        if not inspect(connection).has_table("alembic_version"):
            raise ResultsError(
                f"{where} is not an hwnas store (it has no schema version); nothing was changed"
            )
        current = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
        head, known = schema_revisions()
        newer = [rev for rev in current if rev not in known]
        if newer:
            raise ResultsError(
                f"the store {where} was written by a newer hwnas (schema revision {', '.join(newer)}; this "
                f"hwnas knows {', '.join(known)}): upgrade hwnas"
            )
        if current != [head]:
            raise ResultsError(
                f"the store {where} is at schema revision {', '.join(current) or 'none'} and needs migrating "
                f"to {head}, which reading never does: run `hwnas sweep resume NAME` (or any write command) "
                "on it first; it was left unchanged"
            )
        return head
