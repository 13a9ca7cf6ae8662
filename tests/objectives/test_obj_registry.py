"""The task registry: a registered task is resolvable by name, accepted by the sweep config, built through
its `spaces` family and served by the data CLI; the built-in tasks register through the same function."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

import objectives
import objectives._econt_task
import objectives._registry
from objectives import (
    FileSummary,
    ObjectivesError,
    Task,
    TaskData,
    get_task,
    register_task,
    synth_econt,
    synth_waveform,
    task_for_file,
    task_names,
    unregister_task,
    write_dataset,
)
from objectives._registry import _FACTORIES
from objectives._tasks import check_prepare_args, predict, split
from spaces import DenseAutoencoder


class ToyTask(Task):
    """A plugin-style task: 16 samples of a sine with random phase, autoencoded by the dense family."""

    name = "toy"
    input_shape = (16,)
    input_bits = 8
    input_signed = True
    model_family = "dense_autoencoder"
    losses = MappingProxyType({"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss})
    default_loss = "mse"
    metric_directions = MappingProxyType({"toy_error": "minimize", "val_loss": "minimize"})
    primary_metric = "toy_error"
    synth_options = MappingProxyType({"amplitude": "peak value (default 1)"})

    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        return np.load(path)[:max_rows].astype(np.float32)

    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        self.check_synth_options(options)
        phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, (rows, 1))
        wave = np.sin(np.linspace(0, 2 * np.pi, 16)[None, :] + phase)
        return (options.get("amplitude", 1.0) * wave).astype(np.float32)

    def write_data(self, rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str]) -> int:
        array = rows if isinstance(rows, np.ndarray) else np.concatenate(list(rows))
        np.save(path, array)
        return int(array.shape[0])

    def check_data(self, path: str | os.PathLike[str]) -> FileSummary:
        x = self.read_data(path)
        sums = x.sum(axis=1)
        return FileSummary(
            Path(path), self.name, "npy", False, x.shape[1], x.shape[0], 0,
            float(np.count_nonzero(x)) / len(x), float(np.median(sums)), float(sums.max()),
            float(x.min()), float(x.max()),
        )  # fmt: skip

    def recognizes(self, path: str | os.PathLike[str]) -> bool:
        return Path(path).suffix == ".npy" and np.load(path).shape[1:] == self.input_shape

    def prepare(
        self,
        source: str | os.PathLike[str] = "synthetic",
        *,
        rows: int,
        seed: int,
        val_rows: int | None = None,
    ) -> TaskData:
        check_prepare_args(rows, val_rows)
        label, raw = self.raw_rows(source, rows=rows, seed=seed)
        train, val = split(raw.shape[0], (0.75, 0.25), seed, self.name)
        x = torch.from_numpy(raw)
        return TaskData(self.name, label, x[train], x[val][:val_rows], x[:0], raw[val][:val_rows], raw[:0])

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        pred = predict(model, data.val_x)
        return {
            "toy_error": float((pred - data.val_x).abs().max()),
            "val_loss": float(self.loss(pred, data.val_x)),
        }


@pytest.fixture
def toy() -> Iterator[None]:
    """ToyTask registered as "toy" for one test; the registry is restored afterwards."""
    saved = dict(_FACTORIES)
    register_task("toy", ToyTask)
    yield
    _FACTORIES.clear()
    _FACTORIES.update(saved)


def test_a_registered_task_is_resolvable_by_name(toy: None) -> None:
    assert task_names() == ("econt", "waveform", "trigger", "trigger9", "toy")
    task = get_task("toy", loss="l1")
    assert isinstance(task, ToyTask) and task.loss_name == "l1" and task.primary_metric == "toy_error"
    with pytest.raises(ObjectivesError, match=r"unknown loss 'huber' for task toy; allowed: mse, l1"):
        get_task("toy", loss="huber")
    unregister_task("toy")
    with pytest.raises(ObjectivesError, match=r"unknown task 'toy'; allowed: econt, waveform"):
        get_task("toy")


def test_a_registered_task_builds_trains_and_scores_through_its_family(toy: None) -> None:
    task = get_task("toy")
    model = task.build_model({"n_hidden": 1, "hidden0_units": 12, "latent": 4})
    assert isinstance(model, DenseAutoencoder) and model.input_shape == (16,)
    assert task.on_chip(model) is model.encoder
    data = task.prepare(rows=200, seed=1, val_rows=20)
    assert data.train_x.shape == (150, 16) and data.val_x.shape == (20, 16)
    assert set(task.evaluate(model, data)) == set(task.metric_directions)


def test_the_sweep_config_accepts_a_registered_task(toy: None) -> None:
    from search._config import ConfigError, TaskConfig, parse_config

    assert TaskConfig(name="toy", loss="l1").loss == "l1"
    config = parse_config(
        {
            "name": "toy-sweep",
            "task": {"name": "toy", "rows": 200},
            "space": "waveform",
            "objectives": [{"toy_error": "minimize"}, {"bops": "minimize"}],
        }
    )
    assert config.task.name == "toy" and config.directions == ["minimize", "minimize"]
    with pytest.raises(ConfigError, match=r"unknown objective 'emd_mean'; allowed: toy_error, val_loss"):
        parse_config({**config.model_dump(mode="json"), "objectives": [{"emd_mean": "minimize"}]})
    with pytest.raises(ConfigError, match=r"unknown loss 'telescope' for task toy; allowed: mse, l1"):
        parse_config({**config.model_dump(mode="json"), "task": {"name": "toy", "loss": "telescope"}})


def test_unknown_tasks_in_the_config_list_the_registered_ones(toy: None) -> None:
    from search._config import ConfigError, parse_config

    with pytest.raises(
        ConfigError, match=r"unknown task 'images'; allowed: econt, waveform, trigger, trigger9, toy"
    ):
        parse_config({"name": "x", "task": {"name": "images"}, "space": "econt", "objectives": ["bops"]})


def test_the_data_cli_uses_the_task_generator_writer_and_checker(toy: None, tmp_path: Path) -> None:
    from search._data_cli import data_app

    app = typer.Typer()
    app.add_typer(data_app, name="data")
    runner = CliRunner()
    out = tmp_path / "toy.npy"
    result = runner.invoke(
        app, ["data", "synth", "toy", "--rows", "30", "--out", str(out), "-o", "amplitude=3", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 30 toy rows to {out}" in result.stdout
    x = np.load(out)
    assert x.shape == (30, 16) and 2.5 < np.abs(x).max() <= 3.0
    checked = runner.invoke(app, ["data", "check", str(out)])  # recognised: no --task needed
    assert checked.exit_code == 0, checked.output
    assert "toy" in checked.stdout and "30" in checked.stdout
    refused = runner.invoke(app, ["data", "synth", "toy", "--rows", "3", "--out", str(out), "-o", "pileup=1"])
    assert refused.exit_code == 2
    assert "task 'toy' takes no synthetic-data option 'pileup'; its options: amplitude" in " ".join(
        refused.stderr.split()
    )


def test_task_for_file_picks_the_task_whose_format_it_is(tmp_path: Path) -> None:
    write_dataset(synth_econt(20, seed=0), tmp_path / "m.csv", kind="econt")
    write_dataset(synth_waveform(20, seed=0), tmp_path / "p.csv", kind="waveform")
    assert task_for_file(tmp_path / "m.csv").name == "econt"
    assert task_for_file(tmp_path / "p.csv").name == "waveform"
    # A checker named explicitly reads the file as its own kind.
    assert get_task("waveform").check_data(tmp_path / "m.csv").kind == "waveform"


def test_built_in_tasks_register_through_register_task(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    real = objectives._registry.register_task

    def spy(name: str, factory: Any) -> None:
        calls.append((name, factory))
        real(name, factory)

    saved_factories, saved_class = dict(_FACTORIES), objectives._econt_task.EcontTask
    try:
        unregister_task("econt")
        monkeypatch.setattr(objectives._registry, "register_task", spy)
        module = importlib.reload(objectives._econt_task)  # runs the module's own registration again
        assert calls == [("econt", module.EcontTask)]
        assert type(get_task("econt")) is module.EcontTask
    finally:
        _FACTORIES.clear()
        _FACTORIES.update(saved_factories)
        objectives._econt_task.EcontTask = saved_class  # type: ignore[misc]
    # Each built-in declares everything the registry checks, the primary metric among its metrics.
    assert {name: get_task(name).primary_metric for name in task_names()} == {
        "econt": "emd_mean",
        "waveform": "emd1d_mean",
        "trigger": "pt_resolution",
        "trigger9": "pt_resolution",
    }
    assert objectives.register_task is real


class _Broken(ToyTask):
    name = "broken"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "other"}, "it declares name 'other'"),
        ({"input_shape": (0, 4)}, r"input_shape \(0, 4\) is not a non-empty tuple of positive integers"),
        ({"model_family": "lstm"}, "model_family 'lstm' is not one of conv_autoencoder, dense_autoencoder"),
        ({"primary_metric": "emd_mean"}, r"primary_metric 'emd_mean' is not one of its metrics"),
        (
            {"metric_directions": {"toy_error": "lower"}},
            r"metric_directions \{'toy_error': 'lower'\} use a direction other than minimize or maximize",
        ),
        ({"default_loss": "huber"}, "making it with its default loss failed: unknown loss 'huber'"),
    ],
)
def test_bad_declarations_are_refused_at_registration(changes: dict[str, Any], message: str) -> None:
    broken = type("Broken", (_Broken,), changes)
    with pytest.raises(ObjectivesError, match=f"cannot register task 'broken': {message}"):
        register_task("broken", broken)
    assert "broken" not in task_names()


def test_names_must_be_new_identifiers() -> None:
    with pytest.raises(ObjectivesError, match="task 'econt' is already registered"):
        register_task("econt", objectives._econt_task.EcontTask)
    with pytest.raises(ObjectivesError, match="task name must be an identifier"):
        register_task("my task", ToyTask)
