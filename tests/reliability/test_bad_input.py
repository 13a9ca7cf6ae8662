"""Bad input never reaches a trial: `sweep validate` and `sweep launch` refuse it with exit code 2 and one
message naming the problem, without a traceback, and leave the store and the folder exactly as they were."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep_configs import tiny_sweep, tiny_task
from typer.testing import CliRunner

from search.cli import app
from search.storage import Store
from spaces import get_space

runner = CliRunner(env={"COLUMNS": "400"})  # one message line: no wrapping inside the names we look for

HEADER = ",".join(f"CALQ_{i}" for i in range(48))
GOOD_ROW = ",".join(str(i % 5) for i in range(48))


def _csv(*rows: str, header: bool = True) -> str:
    return "\n".join([HEADER] * header + list(rows)) + "\n"


def _row(**cells: str) -> str:
    values = [str(i % 5) for i in range(48)]
    for index, value in cells.items():
        values[int(index.removeprefix("c"))] = value
    return ",".join(values)


DATA_CASES: dict[str, tuple[str, str]] = {
    # name: (file content, what the message must say)
    "47 columns": (_csv(",".join(["1"] * 47), header=False), "expected at least 48"),
    "non-numeric cell": (_csv(GOOD_ROW, _row(c5="abc")), "'abc' is not a number"),
    "negative charge": (_csv(GOOD_ROW, _row(c7="-3")), "is a negative charge"),
    "NaN": (_csv(GOOD_ROW, _row(c2="nan")), "is not finite"),
    "inf": (_csv(_row(c9="inf")), "is not finite"),
    "header only": (_csv(), "no data rows"),
    "all-zero rows": (
        _csv(",".join(["0"] * 48), ",".join(["0"] * 48)),
        "no data rows with a non-zero charge",
    ),
}


def _econt_without_latent() -> dict[str, Any]:
    space = get_space("econt").to_dict()
    del space["parameters"]["latent"]
    space["constraints"] = [c for c in space.get("constraints", []) if "latent" not in str(c)]
    return space


SPACE_CASES: dict[str, tuple[Any, str]] = {
    # name: (space, what the message must say)
    "batch_size 0": ({"builtin": "econt", "override": {"batch_size": 0}}, "'batch_size': choice 0"),
    "lr -1": ({"builtin": "econt", "override": {"lr": -1}}, "'lr': choice -1"),
    "negative low": (
        {"builtin": "econt", "override": {"lr": {"type": "float", "low": -0.1, "high": 0.1}}},
        "'lr': low -0.1",
    ),
    "weight_bits 0": ({"builtin": "econt", "override": {"weight_bits": 0}}, "'weight_bits': choice 0"),
    "weight_bits range to 0": (
        {"builtin": "econt", "override": {"weight_bits": {"type": "int", "low": 0, "high": 8}}},
        "'weight_bits': low 0",
    ),
    "weight_bits 33": (
        {"builtin": "econt", "override": {"weight_bits": 33}},
        "allowed: an integer in [1, 16]",
    ),
    "sparsity 1.5": ({"builtin": "econt", "override": {"sparsity": 1.5}}, "'sparsity': choice 1.5"),
    "inline space lacks latent": (_econt_without_latent(), "config lacks 'latent'"),
}


def _with_space(space: Any) -> Callable[[str, Path], dict[str, Any]]:
    return lambda store, _: tiny_sweep(store, space=space)


def _with_data(content: str) -> Callable[[str, Path], dict[str, Any]]:
    def make(store: str, folder: Path) -> dict[str, Any]:
        path = folder / "data.csv"
        path.write_text(content)
        return tiny_sweep(store, task=tiny_task(data=str(path)))

    return make


def _with(**overrides: Any) -> Callable[[str, Path], dict[str, Any]]:
    return lambda store, _: tiny_sweep(store, **overrides)


CASES: list[Any] = [
    *(
        pytest.param(_with_data(content), message, id=f"data: {name}")
        for name, (content, message) in DATA_CASES.items()
    ),
    *(
        pytest.param(_with_space(space), message, id=f"space: {name}")
        for name, (space, message) in SPACE_CASES.items()
    ),
    # messages: a "did you mean", the key path of an objective or a budget
    pytest.param(
        _with(objectivs=[{"emd_mean": "minimize"}]),
        "objectivs: unknown key (did you mean 'objectives'?)",
        id="typo",
    ),
    pytest.param(
        _with(objectives=[{"emd_mean": "minimize"}, {"bopz": "minimize"}]),
        "objectives[1]: unknown objective 'bopz' (did you mean 'bops'?)",
        id="unknown objective",
    ),
    pytest.param(
        _with(budgets=["bops <= 5", "luts < 3"]),
        "budgets[1]: budget 'luts < 3' names unknown quantity 'luts'",
        id="budget",
    ),
    # the existing ones
    pytest.param(
        _with(strategy={"name": "hyperband"}), "strategy.name: unknown strategy 'hyperband'", id="strategy"
    ),
    pytest.param(_with(task={"name": "mnist"}), "task.name: unknown task 'mnist'", id="task"),
    pytest.param(_with(trials=0), "trials: Input should be greater than or equal to 1", id="trials 0"),
    pytest.param(_with(warm_start=["no_such_model"]), "unknown preset 'no_such_model'", id="warm start"),
    pytest.param(
        _with(space={"builtin": "econt", "override": {"depth": 3}}),
        "'econt' has no parameter 'depth'",
        id="override",
    ),
    # what launch checked and validate did not
    pytest.param(
        _with(executor={"kind": "ray", "num_cpus": 4096}), "executor.num_cpus 4096 is more than", id="cpus"
    ),
    pytest.param(
        _with(executor={"kind": "ray", "address": "127.0.0.1:1"}),
        "cannot reach the Ray cluster at '127.0.0.1:1'",
        id="ray address",
        marks=pytest.mark.slow,  # launch imports Ray to find out
    ),
]


def _snapshot(folder: Path, database: Path) -> tuple[list[str], str]:
    listing = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    return listing, hashlib.sha256(database.read_bytes()).hexdigest()


def _refused(command: list[str], message: str) -> None:
    result = runner.invoke(app, command)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, (command[1], result.output)
    assert message in output, (command[1], result.output)
    assert "Traceback" not in result.output
    assert "sweep tiny:" not in output  # launch's header comes only after the store opened


@pytest.mark.parametrize(("make", "message"), CASES)
def test_bad_input_is_refused_by_validate_and_launch_and_changes_nothing(
    tmp_path: Path, make: Callable[[str, Path], dict[str, Any]], message: str
) -> None:
    database = tmp_path / "hwnas.db"
    store = f"sqlite:///{database}"
    Store(store).close()  # an existing store: its bytes must not change
    config_path = tmp_path / "sweep.yaml"
    config_path.write_text(yaml.safe_dump(make(store, tmp_path)))
    before = _snapshot(tmp_path, database)
    for command in ("validate", "launch"):
        _refused(["sweep", command, str(config_path)], message)
        assert _snapshot(tmp_path, database) == before


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path, sqlite_url: str) -> None:
    text = yaml.safe_dump(
        tiny_sweep(sqlite_url, space={"parameters": {"lr": {"type": "float", "low": 0.001, "high": 0.01}}})
    )
    text = text.replace("    lr:\n", "    lr: {type: float, low: 0.1, high: 0.2}\n    lr:\n")
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    line = text.splitlines().index("    lr:") + 1
    for command in ("validate", "launch"):
        _refused(
            ["sweep", command, str(path)], f"line {line}: duplicate key 'lr' (first given on line {line - 1})"
        )
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://localhost/x", "store backend 'mysql' is not supported"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot connect to the PostgreSQL server"),
        ("sqlite:////no/such/dir/hwnas.db", "directory '/no/such/dir' does not exist"),
    ],
)
def test_validate_checks_the_store_without_creating_it(tmp_path: Path, store: str, message: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(store)))
    before = sorted(os.listdir(tmp_path))
    _refused(["sweep", "validate", str(path)], message)
    assert sorted(os.listdir(tmp_path)) == before


def test_validate_reports_what_it_checked_and_creates_nothing(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(sqlite_url)))
    result = runner.invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "does not exist yet; launch creates it" in result.output
    assert sorted(os.listdir(tmp_path)) == ["sweep.yaml"]


@pytest.mark.postgres
def test_validate_connects_to_postgres_read_only(tmp_path: Path, postgres_url: str) -> None:
    import sqlalchemy

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(postgres_url)))
    result = runner.invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL server reachable" in result.output
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []  # nothing was created
    finally:
        engine.dispose()


def test_validate_warns_when_nothing_in_the_space_is_feasible(tmp_path: Path, sqlite_url: str) -> None:
    space = get_space("econt").to_dict()
    space["constraints"] = [*space.get("constraints", []), {"expr": "latent > 1000", "reason": "never holds"}]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(sqlite_url, space=space)))
    result = runner.invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "warning: only 0 of 200 sampled configs are feasible" in output and "never holds" in output


@pytest.mark.slow
def test_validate_warns_when_no_sampled_config_is_within_the_budgets(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(sqlite_url, budgets=["bops <= 1"])))
    result = runner.invoke(app, ["sweep", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "is within the budgets (bops <= 1)" in " ".join(result.output.split())


def test_validate_refuses_a_stored_sweep_of_the_same_name_with_another_config(
    tmp_path: Path, sqlite_url: str
) -> None:
    from search._config import parse_config
    from search.execution._setup import open_sweep

    store = Store(sqlite_url)
    open_sweep(store, parse_config(tiny_sweep(sqlite_url)))
    store.close()
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    same, other = tmp_path / "same.yaml", tmp_path / "other.yaml"
    same.write_text(yaml.safe_dump(tiny_sweep(sqlite_url)))
    other.write_text(yaml.safe_dump(tiny_sweep(sqlite_url, epochs=2)))
    before = _snapshot(tmp_path, database)
    result = runner.invoke(app, ["sweep", "validate", str(same)])
    assert result.exit_code == 0 and "exists with this config; launch continues it" in result.output
    _refused(
        ["sweep", "validate", str(other)],
        "a sweep named 'tiny' already exists in the store with a different config",
    )
    assert _snapshot(tmp_path, database) == before
