"""`hwnas dashboard` as a command: clear messages and exit code 2 for stores it cannot read and addresses
it cannot serve; a warning when it serves the network."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import sqlalchemy
from dashboard_store import fill_demo
from typer.testing import CliRunner

from search.cli import app
from search.storage import Store

runner = CliRunner(env={"COLUMNS": "300"})


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    store = Store(url)
    fill_demo(store, tmp_path / "exports")
    store.close()
    return url


def test_a_missing_store_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = runner.invoke(app, ["dashboard", "--store", f"sqlite:///{missing}"])
    assert result.exit_code == 2
    assert f"no store at {missing}: nothing was created" in result.output
    assert not missing.exists()


def test_a_store_of_a_newer_hwnas_exits_2(tmp_path: Path) -> None:
    url = _store(tmp_path)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()
    result = runner.invoke(app, ["dashboard", "--store", url])
    assert result.exit_code == 2
    assert "was written by a newer hwnas (schema revision 9999_future" in result.output


def test_an_unreachable_postgresql_exits_2() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["dashboard", "--store", f"postgresql+psycopg://nobody@127.0.0.1:{port}/x"])
    assert result.exit_code == 2
    assert f"cannot read the store postgresql+psycopg://nobody@127.0.0.1:{port}/x" in result.output


def test_a_taken_port_or_a_bad_host_exits_2(tmp_path: Path) -> None:
    url = _store(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["dashboard", "--store", url, "--port", str(port)])
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output
    result = runner.invoke(app, ["dashboard", "--store", url, "--host", "no-such-host.invalid"])
    assert (
        result.exit_code == 2
        and "--host 'no-such-host.invalid' is not an address of this machine" in result.output
    )
    result = runner.invoke(app, ["dashboard", "--store", url, "--port", "70000"])
    assert result.exit_code == 2 and "--port 70000 is not a TCP port" in result.output


def test_serving_beyond_this_machine_says_so(tmp_path: Path) -> None:
    url = _store(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--store", url, "--host", "0.0.0.0", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert process.stderr is not None
    try:
        lines = [process.stderr.readline(), process.stderr.readline()]
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert re.match(r"dashboard of sqlite:///\S+ at http://0\.0\.0\.0:\d+/ \(read-only", lines[0])
    assert "warning: listening on 0.0.0.0, not on this machine only" in lines[1]
