"""`hwnas task list/check`, tiny sweeps of every built-in task and of the example plugin through the CLI, and
bad user tasks refused at validate/launch time with exit code 2 and nothing created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from objectives import unregister_task
from objectives._registry import _FACTORIES
from search.cli import app

runner = CliRunner(env={"COLUMNS": "200"})
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugins" / "higgs_tagger.py"
PLUGIN = f"{EXAMPLE}:HiggsTagger"
TINY_DENSE = {
    "parameters": {
        "n_hidden": {"type": "int", "low": 1, "high": 2},
        "hidden0_units": {"type": "choice", "choices": [4, 8]},
        "hidden1_units": {"type": "choice", "choices": [4, 8], "active_if": {"n_hidden": {">": 1}}},
    }
}


@pytest.fixture
def clean_registry() -> Iterator[None]:
    before = set(_FACTORIES)
    yield
    for name in set(_FACTORIES) - before:
        unregister_task(name)


def _config(
    path: Path, store: str, task: dict[str, Any], space: Any, objectives: list[Any], **extra: Any
) -> Path:
    config = {
        "name": "tiny",
        "task": {"rows": 200, "val_rows": 40, **task},
        "space": space,
        "objectives": objectives,
        "strategy": {"name": "random"},
        "trials": 2,
        "epochs": 1,
        "executor": {"kind": "local", "workers": 1},
        "store": store,
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("task", "space", "objectives", "warm"),
    [
        ({"name": "econt"}, "econt", [{"emd_mean": "minimize"}, {"bops": "minimize"}], ["econt_baseline"]),
        ({"name": "waveform"}, "waveform", [{"emd1d_mean": "minimize"}, {"params": "minimize"}], []),
        (
            {"name": "trigger"},
            "trigger",
            [{"pt_resolution": "minimize"}, {"fake_rate": "minimize"}, {"latency_ns": "minimize"}],
            ["trigger_baseline"],
        ),
        ({"plugin": PLUGIN}, TINY_DENSE, [{"auc": "maximize"}, {"lut": "minimize"}], []),
    ],
    ids=["econt", "waveform", "trigger", "plugin"],
)
def test_a_tiny_sweep_of_each_task_runs_into_sqlite_and_has_a_front(
    tmp_path: Path,
    sqlite_url: str,
    clean_registry: None,
    task: dict[str, Any],
    space: Any,
    objectives: list[Any],
    warm: list[str],
) -> None:
    path = _config(tmp_path / "c.yaml", sqlite_url, task, space, objectives, warm_start=warm)
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    report = json.loads(
        runner.invoke(app, ["pareto", "tiny", "--store", sqlite_url, "--format", "json"]).stdout
    )
    assert report["front"], result.output
    names = [next(iter(o)) for o in objectives]
    assert set(names) <= set(report["front"][0])


def test_the_trigger_budget_rejects_slow_networks_before_training(tmp_path: Path, sqlite_url: str) -> None:
    slow = {
        "builtin": "trigger",
        "override": {
            "conv0_stride": {"type": "choice", "choices": [1, 8]},
            "conv0_pool": False,
            "n_conv": 1,
        },
    }
    path = _config(
        tmp_path / "c.yaml",
        sqlite_url,
        {"name": "trigger"},
        slow,
        [{"pt_resolution": "minimize"}, {"latency_ns": "minimize"}],
        budgets=["latency_ns <= 400"],
        trials=2,
        warm_start=[
            {"preset": "trigger_baseline", "conv0_stride": 1, "conv0_pool": False},
            {"preset": "trigger_baseline", "conv0_pool": False},
        ],
    )
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["sweep", "status", "tiny", "--store", sqlite_url]).stdout
    assert "INFEASIBLE" in status and "exceeds budget latency_ns <= 400" in status
    assert "COMPLETED" in status


def test_task_list_and_check(clean_registry: None) -> None:
    listing = runner.invoke(app, ["task", "list", "--plugin", PLUGIN])
    assert listing.exit_code == 0, listing.output
    for name in ("econt", "waveform", "trigger", "trigger9", "higgs_tagger", "strip_cnn", "pt_resolution"):
        assert name in listing.stdout
    check = runner.invoke(app, ["task", "check", "trigger"])
    assert check.exit_code == 0, check.output
    text = " ".join(check.stdout.split())
    assert "task trigger: OK" in text and "935 parameters" in text and "converted" in text
    assert "fake_rate=" in text
    plugin = runner.invoke(app, ["task", "check", PLUGIN])
    assert plugin.exit_code == 0 and "15,105 parameters" in plugin.stdout


def test_task_check_reads_a_data_file(tmp_path: Path) -> None:
    events = tmp_path / "events.npy"
    assert (
        runner.invoke(app, ["data", "synth", "trigger", "--rows", "60", "--out", str(events)]).exit_code == 0
    )
    check = runner.invoke(app, ["task", "check", "trigger", "--data", str(events), "--sample"])
    assert check.exit_code == 0, check.output
    assert str(events) in " ".join(check.stdout.split())
    wrong = runner.invoke(app, ["task", "check", "trigger9", "--data", str(events)])
    assert wrong.exit_code == 2 and "expected 3459 columns" in " ".join(wrong.output.split())


_BASE = (
    "import importlib.util\n"
    f"_spec = importlib.util.spec_from_file_location('hwnas_higgs_base', {str(EXAMPLE)!r})\n"
    "_base = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_base)\n"
    "from torch import nn\n"
)
BAD_TASKS = {
    "unconvertible": (
        "class Bad(_base.HiggsTagger):\n    name = 'bad_layer'\n"
        "    def on_chip(self, model):\n        return nn.Sequential(model.encoder, nn.GELU())\n",
        "cannot be costed: layer '1' (GELU) cannot be converted by hls4ml; supported layer types:",
    ),
    "nan": (
        "class Bad(_base.HiggsTagger):\n    name = 'bad_nan'\n"
        "    def evaluate(self, model, data):\n        return {**super().evaluate(model, data), 'auc': float('nan')}\n",
        "metric 'auc' is NaN",
    ),
    "shape": (
        "import numpy as np\nclass Bad(_base.HiggsTagger):\n    name = 'bad_shape'\n"
        "    def evaluate(self, model, data):\n"
        "        return {**super().evaluate(model, data), 'accuracy': np.zeros(3)}\n",
        "metric 'accuracy' has shape (3,)",
    ),
    "missing": (
        "class Bad(_base.HiggsTagger):\n    name = 'bad_missing'\n"
        "    def evaluate(self, model, data):\n        return {'auc': 0.5}\n",
        "missing accuracy, val_loss",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_TASKS))
def test_a_broken_user_task_is_refused_at_validate_and_launch(
    tmp_path: Path, sqlite_url: str, clean_registry: None, kind: str
) -> None:
    source, message = BAD_TASKS[kind]
    plugin = tmp_path / f"bad_{kind}.py"
    plugin.write_text(_BASE + source)
    path = _config(
        tmp_path / "c.yaml", sqlite_url, {"plugin": f"{plugin}:Bad"}, TINY_DENSE, [{"auc": "maximize"}]
    )
    for command in ("validate", "launch"):
        result = runner.invoke(app, ["sweep", command, str(path)])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "hwnas.db").exists()  # nothing half-created
    check = runner.invoke(app, ["task", "check", f"{plugin}:Bad"])
    assert check.exit_code == 2 and message in " ".join(check.output.split())


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("nowhere/my_tasks.py:MuonTrigger", "plugin file"),
        (f"{EXAMPLE}:MuonTrigger", "has no class 'MuonTrigger'; Task subclasses in it: HiggsTagger"),
    ],
)
def test_a_bad_plugin_spec_exits_2_naming_the_problem(
    tmp_path: Path, sqlite_url: str, plugin: str, message: str
) -> None:
    path = _config(tmp_path / "c.yaml", sqlite_url, {"plugin": plugin}, TINY_DENSE, [{"auc": "maximize"}])
    for command in ("validate", "launch"):
        result = runner.invoke(app, ["sweep", command, str(path)])
        assert result.exit_code == 2, result.output
        assert "task" in result.output and message in " ".join(result.output.split())
    assert not (tmp_path / "hwnas.db").exists()


def test_the_worked_example_in_docs_tasks_md_runs_as_written(tmp_path: Path, clean_registry: None) -> None:
    text = (ROOT / "docs" / "tasks.md").read_text()
    section = text[text.index("## A complete example") :]
    code = section[
        section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)
    ]
    plugin = tmp_path / "doc_tagger.py"
    plugin.write_text(code)
    check = runner.invoke(app, ["task", "check", f"{plugin}:HiggsTagger"])
    assert check.exit_code == 0, check.output
    assert "task higgs_tagger: OK" in check.stdout and "15,105 parameters" in check.stdout


def test_asha_ranks_trigger_trials_by_pt_resolution_on_a_fixed_subsample(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = _config(
        tmp_path / "c.yaml",
        sqlite_url,
        {"name": "trigger"},
        "trigger",
        [{"pt_resolution": "minimize"}, {"lut": "minimize"}],
        trials=3,
        epochs=2,
        scheduler={
            "kind": "asha",
            "grace_period": 1,
            "reduction_factor": 2,
            "brackets": 1,
            "metric": "emd",
            "emd_rows": 20,
        },
    )
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    from search.storage._store import Store

    store = Store(sqlite_url)
    sweep = store.get_sweep("tiny")
    assert sweep is not None
    trials = store.trials(sweep.id)
    assert trials and all(t.state.value in ("COMPLETED", "PRUNED") for t in trials), result.output
    first_epochs = [store.metrics(t.id)[0] for t in trials]
    # The rung at epoch 1 scored every trial by pT resolution on the first 20 validation events.
    assert all(0 <= epoch["pt_resolution_subsample"] < float("inf") for epoch in first_epochs)


def test_the_plugin_key_leaves_fingerprints_of_existing_sweeps_unchanged(clean_registry: None) -> None:
    import hashlib

    from search._config import load_config

    config = load_config(ROOT / "examples" / "quick.yaml")
    dumped = config.model_dump(
        mode="json",
        exclude={
            "store",
            "executor",
            "trials",
            "time_limit_s",
            "heartbeat_s",
            "max_retries",
            "confirm_seeds",
        },
    )
    dumped.pop("scheduler")
    assert dumped.pop("stages") == []  # like the plugin key: absent from the hash of a sweep without stages
    assert dumped.pop("distill") is None  # likewise absent without distillation
    assert dumped["task"].pop("plugin") is None  # the hash of a sweep stored before plugins existed:
    assert config.fingerprint() == hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()
    plugin = config.model_copy(update={"task": config.task.model_copy(update={"plugin": PLUGIN})})
    assert plugin.fingerprint() != config.fingerprint()
