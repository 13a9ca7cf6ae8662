"""The `hwnas` CLI: exit codes and messages for bad input, reports, and crash/resume with real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from search.cli import app
from search.execution._loop import load_sweep
from search.storage._schema import TrialState
from search.storage._store import Store

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that table cells do not wrap
HWNAS = [sys.executable, "-m", "search.cli"]


def write_config(path: Path, store: str, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "name": "cli",
        "task": {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 300},
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "trials": 2,
        "epochs": 1,
        "store": store,
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"strategy": {"name": "hyperband"}},
            "strategy.name: unknown strategy 'hyperband'; allowed: random, grid",
        ),
        ({"objectives": [{"accuracy": "maximize"}]}, "unknown objective 'accuracy'; allowed: emd_mean"),
        ({"budgets": ["luts < 5"]}, "luts"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"task": {"name": "mnist"}}, "task.name: unknown task 'mnist'; allowed: econt, waveform"),
        ({"objectives": [{"emd_mean": "smallest"}]}, "objectives.0.direction"),
        ({"trials": 0}, "trials: Input should be greater than or equal to 1"),
        ({"warm_start": ["no_such_model"]}, "unknown preset 'no_such_model'"),
        ({"warm_start": [{"preset": "econt_baseline", "conv0_kernel": 7}]}, "conv0_kernel"),
        ({"strategy": {"name": "optuna-tpe", "options": {"n_trees": 3}}}, "n_trees"),
        ({"space": {"builtin": "econt", "override": {"depth": 3}}}, "'econt' has no parameter 'depth'"),
    ],
)
def test_invalid_configs_exit_2_with_the_key_and_allowed_values(
    tmp_path: Path, sqlite_url: str, overrides: dict[str, Any], message: str
) -> None:
    path = write_config(tmp_path / "bad.yaml", sqlite_url, **overrides)
    for command in (["sweep", "validate", str(path)], ["sweep", "launch", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
        assert "Traceback" not in result.output
    assert not (tmp_path / "hwnas.db").exists()  # launch created nothing


def test_validate_accepts_the_shipped_examples() -> None:
    examples = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.yaml"))
    assert examples
    for path in examples:
        if "../shared/data" in path.read_text() and not Path("../shared/data").is_dir():
            continue  # the real-data example needs the development workspace's samples
        result = runner.invoke(app, ["sweep", "validate", str(path)])
        assert result.exit_code == 0, (path, result.output)
        assert "valid" in result.output


def test_unreachable_database_and_newer_schema_exit_2(tmp_path: Path, sqlite_url: str) -> None:
    path = write_config(tmp_path / "c.yaml", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 2 and "cannot open the store" in result.output

    Store(sqlite_url).close()
    import sqlalchemy

    engine = sqlalchemy.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    result = runner.invoke(app, ["sweep", "list", "--store", sqlite_url])
    assert result.exit_code == 2 and "written by a newer hwnas" in result.output


def test_unknown_sweep_names_the_known_ones(sqlite_url: str) -> None:
    Store(sqlite_url).close()
    result = runner.invoke(app, ["pareto", "nope", "--store", sqlite_url])
    assert result.exit_code == 2
    assert "no sweep named 'nope' in the store; known sweeps: none" in result.output


def test_launch_then_pareto_in_every_format(tmp_path: Path, sqlite_url: str) -> None:
    path = write_config(tmp_path / "c.yaml", sqlite_url, warm_start=["econt_baseline"])
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    assert "Pareto front of cli" in result.stdout and "warm-start reference" in result.stdout

    as_json = json.loads(
        runner.invoke(app, ["pareto", "cli", "--store", sqlite_url, "--format", "json"]).stdout
    )
    assert as_json["sweep"] == "cli" and as_json["hypervolume"] > 0 and as_json["front"]
    assert {"emd_mean", "bops", "params"} <= set(as_json["front"][0])
    history = [step["hypervolume"] for step in as_json["hypervolume_history"]]
    assert (
        len(history) == 2
        and history == sorted(history)
        and history[-1] == pytest.approx(as_json["hypervolume"])
    )

    csv_text = runner.invoke(app, ["pareto", "cli", "--store", sqlite_url, "--format", "csv"]).stdout
    assert csv_text.splitlines()[0].startswith("trial,emd_mean,bops,architecture")

    plot = tmp_path / "front.png"
    result = runner.invoke(app, ["pareto", "cli", "--store", sqlite_url, "--plot", str(plot)])
    assert result.exit_code == 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    listing = runner.invoke(app, ["sweep", "list", "--store", sqlite_url]).stdout
    assert "cli" in listing and "DONE" in listing
    status = runner.invoke(app, ["sweep", "status", "cli", "--store", sqlite_url]).stdout
    assert "C8k3s2" in status and "COMPLETED" in status


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _trial_states(url: str, name: str) -> list[TrialState]:
    try:
        store = Store(url)
        sweep = store.get_sweep(name)
        return [] if sweep is None else [t.state for t in store.trials(sweep.id)]
    except Exception:  # the database may be mid-creation while the driver starts
        return []


@pytest.mark.slow
def test_sigkill_of_the_driver_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = write_config(tmp_path / "c.yaml", sqlite_url, trials=4, epochs=3, heartbeat_s=0.5)
    proc = subprocess.Popen(
        [*HWNAS, "sweep", "launch", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for(
            lambda: (
                TrialState.COMPLETED in _trial_states(sqlite_url, "cli")
                and TrialState.RUNNING in _trial_states(sqlite_url, "cli")
            ),
            timeout=180,
            what="one completed and one running trial",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert TrialState.RUNNING in _trial_states(sqlite_url, "cli")  # the dead driver left it running
    time.sleep(2.0)  # > 3 missed heartbeats

    result = subprocess.run(
        [*HWNAS, "sweep", "resume", "cli", "--store", sqlite_url], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "cli")
    trials = store.trials(sweep.id)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state is TrialState.COMPLETED for t in trials)
    assert sorted(t.attempts for t in trials) == [1, 1, 1, 2]  # exactly the killed trial ran again
    assert all(len(store.metrics(t.id)) == 3 for t in trials)  # the retried trial has exactly one history


@pytest.mark.slow
def test_ctrl_c_requeues_and_resume_finishes(tmp_path: Path, sqlite_url: str) -> None:
    path = write_config(tmp_path / "c.yaml", sqlite_url, trials=3, epochs=3)
    proc = subprocess.Popen(
        [*HWNAS, "sweep", "launch", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: TrialState.RUNNING in _trial_states(sqlite_url, "cli"), 120, "a running trial")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "hwnas sweep resume cli" in stderr
    states = _trial_states(sqlite_url, "cli")
    assert TrialState.RUNNING not in states and TrialState.QUEUED in states

    result = subprocess.run(
        [*HWNAS, "sweep", "resume", "cli", "--store", sqlite_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert _trial_states(sqlite_url, "cli") == [TrialState.COMPLETED] * 3
