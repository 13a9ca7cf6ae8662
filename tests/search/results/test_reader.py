"""The read-only results layer: never writes, never migrates, reads in bulk, loads no torch or Optuna."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy
import yaml
from typer.testing import CliRunner

from search.cli import app
from search.results import Results, ResultsError, schema_revisions, sweep_front
from search.storage import Store, SweepRecord, TrialState

runner = CliRunner(env={"COLUMNS": "200"})
OBJECTIVES = [{"name": "emd_mean", "direction": "minimize"}, {"name": "bops", "direction": "minimize"}]
CONFIG = {
    "name": "demo",
    "task": {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 300},
    "space": "econt",
    "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
    "strategy": {"name": "random"},
    "trials": 2,
    "epochs": 1,
}


def _fill(url: str, n: int = 7) -> tuple[SweepRecord, list[int]]:
    """A sweep 'demo' with ``n`` trials: all but the last two completed (with metrics and a cost), one
    failed, one running."""
    store = Store(url)
    sweep = store.create_sweep(
        "demo",
        config_yaml=yaml.safe_dump(CONFIG),
        config_hash="h",
        objectives=OBJECTIVES,
        reference_point=None,
    )
    ids = []
    for i in range(n):
        trial = store.create_trial(sweep.id, {"n_conv": 0, "latent": i}, config_hash=f"c{i}")
        store.start_trial(trial.id, worker="w", host="h")
        store.record_metrics(trial.id, 1, {"loss": 1.0 / (i + 1), "emd": float("nan")})
        store.record_metrics(trial.id, 2, {"loss": 0.5 / (i + 1)})
        if i < n - 2:
            store.record_cost(trial.id, {"formula_version": "1", "totals": {"bops": 10 - i}})
            store.finish_trial(trial.id, TrialState.COMPLETED, results={"emd_mean": i, "bops": 100 - i * i})
        elif i == n - 2:
            store.finish_trial(trial.id, TrialState.FAILED, error="diverged")
        ids.append(trial.id)
    store.close()
    return sweep, ids


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_results_layer_loads_neither_torch_nor_optuna(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    _fill(url)
    code = (
        "import sys, search.results as r\n"
        "with r.Results.open(sys.argv[1]) as results:\n"
        "    (overview,) = results.sweeps()\n"
        "    front, volume = results.front(overview.sweep)\n"
        "    results.report(overview.sweep).to_json()\n"
        "    results.metrics([t.id for t in results.trials(overview.sweep.id)])\n"
        "assert len(front) == 5 and volume > 0, (front, volume)\n"
        "print(sorted(m for m in ('torch', 'optuna', 'ray', 'alembic') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_read_commands_load_neither_torch_nor_optuna(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    _fill(url)
    code = (
        "import sys\n"
        "from search.cli import app\n"
        "for args in (['sweep', 'list'], ['sweep', 'status', 'demo'], ['pareto', 'demo', '--format', 'json']):\n"
        "    try:\n"
        "        app([*args, '--store', sys.argv[1]])\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('torch', 'optuna', 'ray', 'alembic') if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


def _store_at_first_revision(path: Path) -> None:
    """A WAL-mode store migrated only to revision 0001 (as an old hwnas left it), with one sweep."""
    from alembic import command

    from search.storage._store import _alembic_config, _create_engine

    engine = _create_engine(f"sqlite:///{path}")  # the writer's engine: WAL journal mode
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.exec_driver_sql(
            "INSERT INTO sweeps (id, name, config_yaml, config_hash, objectives, status, created_at, updated_at)"
            " VALUES (1, 'old', 'a: 1', 'h', '[]', 'DONE', '2026-01-01', '2026-01-01')"
        )
    engine.dispose()


def test_a_read_only_open_of_an_older_store_reports_it_and_leaves_it_byte_for_byte_unchanged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hwnas.db"
    _store_at_first_revision(path)
    assert path.read_bytes()[18:20] == b"\x02\x02"  # WAL mode, the case that needs care
    before = _files(tmp_path)
    assert list(before) == ["hwnas.db"]

    head, _ = schema_revisions()
    with pytest.raises(
        ResultsError, match=rf"revision 0001 and needs migrating to {head}.*hwnas sweep resume"
    ):
        Results.open(f"sqlite:///{path}")
    for command in (["sweep", "list"], ["sweep", "status", "old"], ["pareto", "old"]):
        result = runner.invoke(app, [*command, "--store", f"sqlite:///{path}"])
        assert result.exit_code == 2 and "needs migrating" in result.output, result.output

    assert _files(tmp_path) == before  # same bytes, and no -wal, -shm or journal left behind


def test_a_store_written_by_a_newer_hwnas_is_reported_unchanged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    Store(url).close()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    engine.dispose()
    before = _files(tmp_path)
    with pytest.raises(ResultsError, match=r"written by a newer hwnas \(schema revision f00d"):
        Results.open(url)
    assert _files(tmp_path) == before


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from search.storage._store import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config(None))
    head, known = schema_revisions()
    assert head == script.get_current_head()
    assert known == sorted(rev.revision for rev in script.walk_revisions())


def test_a_missing_sqlite_store_is_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "typo" / "hwnas.db"
    with pytest.raises(ResultsError, match=f"no store at {missing}: nothing was created"):
        Results.open(f"sqlite:///{missing}")
    url = f"sqlite:///{tmp_path / 'hwnsa.db'}"
    for command in (
        ["sweep", "list", "--store", url],
        ["sweep", "status", "demo", "--store", url],
        ["pareto", "demo", "--store", url],
        ["pareto", "demo", "--confirmed", "--store", url],
        ["export", "demo", "--pareto", "--store", url, "--out", str(tmp_path / "out")],
        ["sweep", "resume", "demo", "--store", url],
        ["sweep", "confirm", "demo", "--store", url],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"no store at {tmp_path / 'hwnsa.db'}" in " ".join(result.output.split()), result.output
    # The default store (hwnas.db in the working folder) is not created either.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HWNAS_STORE", raising=False)
    result = runner.invoke(app, ["sweep", "list"])
    assert result.exit_code == 2 and f"no store at {tmp_path / 'hwnas.db'}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sweeps_with_counts_paging_changed_since_and_bulk_metrics(store_url: str) -> None:
    sweep, ids = _fill(store_url, n=7)
    with Results.open(store_url) as results:
        (overview,) = results.sweeps()
        assert overview.sweep.name == "demo" and overview.total == 7
        assert overview.counts == {TrialState.COMPLETED: 5, TrialState.FAILED: 1, TrialState.RUNNING: 1}
        assert results.count(sweep.id) == overview.counts

        pages, after = [], None
        while True:
            page = results.page(sweep.id, after=after, limit=3)
            pages.append([t.number for t in page.trials])
            if page.next_after is None:
                break
            after = page.next_after
        assert pages == [[0, 1, 2], [3, 4, 5], [6]]
        assert results.page(sweep.id, limit=7).next_after is None
        assert results.page(sweep.id, limit=2, states=[TrialState.FAILED]).trials[0].number == 5
        assert results.trials(sweep.id)[3].results == {"emd_mean": 3.0, "bops": 91.0}

        everything = results.changed_since(sweep.id, datetime(2000, 1, 1))
        assert sorted(t.number for t in everything.trials) == list(range(7))
        assert results.changed_since(sweep.id, everything.cursor).trials == []

        metrics = results.metrics(ids)
        assert set(metrics) == set(ids)
        first = metrics[ids[0]]
        assert [row["epoch"] for row in first] == [1, 2] and first[1]["loss"] == 0.5
        assert first[0]["emd"] != first[0]["emd"]  # NaN stored as NULL comes back as NaN
        costs = results.costs(ids)
        assert set(costs) == set(ids[:5]) and costs[ids[2]]["totals"] == {"bops": 8}

        # A later write (here: the running trial finishes) is seen by changed_since, and only it.
        time.sleep(0.01)
        writer = Store(store_url)
        writer.finish_trial(ids[6], TrialState.COMPLETED, results={"emd_mean": 0.5, "bops": 1.0})
        writer.close()
        changes = results.changed_since(sweep.id, everything.cursor)
        assert [(t.number, t.state) for t in changes.trials] == [(6, TrialState.COMPLETED)]
        assert changes.cursor > everything.cursor
        assert results.changed_since(sweep.id, changes.cursor.replace(tzinfo=None)).trials == []


def test_reads_agree_with_the_store_and_never_write(store_url: str) -> None:
    sweep, ids = _fill(store_url)
    store = Store(store_url)
    store.add_artifact(ids[0], "checkpoint", "/runs/0.pt", "a" * 64)
    store.add_artifact(ids[0], "hls4ml", "/exports/trial-00000", "b" * 64)
    with Results.open(store_url) as results:
        read = results.trials(sweep.id, [TrialState.COMPLETED])
        stored = store.trials(sweep.id, [TrialState.COMPLETED])
        assert [(t.number, t.params, t.results) for t in read] == [
            (t.number, t.params, t.results) for t in stored
        ]
        front, volume = results.front(results.sweep("demo"))
        stored_front, stored_volume = sweep_front(store, sweep)
        assert [t.number for t in front] == [t.number for t in stored_front] and volume == stored_volume
        assert results.artifacts(ids) == {ids[0]: store.artifacts(ids[0])}
        assert [a["kind"] for a in results.artifacts([ids[0]])[ids[0]]] == ["checkpoint", "hls4ml"]
        with pytest.raises(ResultsError, match="no sweep named 'nope' in the store; known sweeps: demo"):
            results.sweep("nope")
        with results._engine.connect() as conn, pytest.raises(sqlalchemy.exc.DBAPIError):
            conn.exec_driver_sql("DELETE FROM trials")  # read-only connection: refused
    assert len(store.trials(sweep.id)) == 7


def test_sqlite_wal_reads_leave_no_files_and_see_a_live_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    sweep, ids = _fill(url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hwnas.db"]  # at rest: no -wal, no -shm
    with Results.open(url) as results:
        assert results.sweeps()[0].total == 7
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hwnas.db"]  # the read created nothing

        writer = Store(url)  # a sweep starts writing while the reader is open
        writer.finish_trial(ids[6], TrialState.COMPLETED, results={"emd_mean": 0.5, "bops": 1.0})
        assert results.count(sweep.id)[TrialState.COMPLETED] == 6  # seen, through the writer's -wal
        extra = writer.create_trial(sweep.id, {"latent": 9}, config_hash="x")
        assert results.trials(sweep.id)[-1].id == extra.id
        writer.close()
        assert results.count(sweep.id) == {
            TrialState.COMPLETED: 6,
            TrialState.FAILED: 1,
            TrialState.QUEUED: 1,
        }


def test_status_pages_and_pareto_json_through_the_reader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    _fill(url)
    result = runner.invoke(app, ["sweep", "status", "demo", "--store", url, "--limit", "3", "--after", "1"])
    assert result.exit_code == 0, result.output
    numbers = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert numbers == ["2", "3", "4"]
    assert "--after 4 --limit 3" in result.output
    as_json = json.loads(runner.invoke(app, ["pareto", "demo", "--store", url, "--format", "json"]).stdout)
    assert [row["trial"] for row in as_json["front"]] == [0, 1, 2, 3, 4]
    listing = runner.invoke(app, ["sweep", "list", "--store", url]).stdout
    assert "│ demo  │ RUNNING │ 7      │ 5         │ 1      │ 0          │" in listing


def test_confirm_overrides_are_validated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    _fill(url)
    result = runner.invoke(
        app, ["sweep", "confirm", "demo", "--seeds", "1", "--workers", "0", "--store", url]
    )
    assert result.exit_code == 2, result.output
    assert "executor.workers: Input should be greater than or equal to 1" in " ".join(result.output.split())
    result = runner.invoke(app, ["sweep", "confirm", "demo", "--seeds", "0", "--store", url])
    assert result.exit_code == 2 and "greater than or equal to 1" in result.output


def test_long_status_tables_are_laid_out_exactly_as_rich_would(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import random

    from rich.console import Console

    from search import _cli_output as cli

    rng = random.Random(1)
    words = [
        "COMPLETED",
        "FAILED",
        "",
        "C8k3s2 D16 L16 q5/6 sp0.50",
        "1.234",
        "diverged: [1, 2] :x:",
        "é 漢字",
    ]
    for _ in range(30):
        headers = ["trial", "state", "epochs", "emd_mean", "bops", "architecture", "error"][
            : rng.randint(2, 7)
        ]
        rows = [[rng.choice(words) for _ in headers] for _ in range(rng.randint(0, 6))]
        title = rng.choice(["demo (DONE)", "x", "econt-quick (RUNNING)"])
        printed = []
        for fast in (False, True):
            buffer = io.StringIO()
            monkeypatch.setattr(cli, "out", Console(file=buffer, width=400))
            monkeypatch.setattr(sys, "stdout", buffer)
            cli._print_rows(title, headers, rows, fast=fast)
            monkeypatch.undo()
            printed.append(buffer.getvalue())
        assert printed[0] == printed[1], (title, headers, rows)
