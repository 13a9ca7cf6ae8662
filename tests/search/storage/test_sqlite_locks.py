"""Reading a SQLite store beside a writer of the same process: nothing but SQLite opens the database file,
since closing any other handle on it drops the process's POSIX locks, and another process's last connection
would then delete the -wal and -shm under the writer (`sqlite3.OperationalError: disk I/O error`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from search.execution._preflight import check_store
from search.results import Results
from search.storage._store import Store


def test_reads_and_store_checks_keep_the_locks_of_a_writer_in_the_same_process(
    tmp_path: Path, sqlite_url: str
) -> None:
    store = Store(sqlite_url)
    store.create_sweep("a", config_yaml="{}", config_hash="h", objectives=[], reference_point=None)
    with Results.open(sqlite_url) as results:  # the dashboard and the CLI's reports read this way
        assert [o.sweep.name for o in results.sweeps()] == ["a"]
    assert "existing SQLite file" in check_store(sqlite_url)  # `hwnas sweep validate`
    db = tmp_path / "hwnas.db"
    other = f"import sqlite3; c = sqlite3.connect({str(db)!r}); c.execute('SELECT 1 FROM sweeps'); c.close()"
    subprocess.run([sys.executable, "-c", other], check=True)  # a worker that finishes and exits
    assert Path(f"{db}-wal").exists()  # it was not the last connection: the writer here still holds it
    store.create_sweep("b", config_yaml="{}", config_hash="h", objectives=[], reference_point=None)
    assert [s.name for s in Store(sqlite_url).list_sweeps()] == ["a", "b"]
    store.close()


def test_store_check_names_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database, but long enough to hold a header " * 4)
    try:
        check_store(f"sqlite:///{path}")
    except ValueError as exc:
        assert "is not a SQLite database" in str(exc)
    else:
        raise AssertionError("a text file passed as a store")
