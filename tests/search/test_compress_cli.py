"""Compression options through the CLI on tiny sweeps: node pruning to an exact width, measured CPU latency,
and the validate-time messages for their bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from typer.testing import CliRunner

from objectives import get_task
from search.cli import app
from search.storage import TrialRecord
from search.storage._store import Store

runner = CliRunner(env={"COLUMNS": "200"})

# One small dense waveform autoencoder, fixed except for what a test adds.
FIXED = {
    "n_hidden": 2,
    "hidden0_units": 32,
    "hidden1_units": 16,
    "latent": 8,
    "lr": 0.003,
    "batch_size": 128,
    "quantize": False,
    "sparsity": 0.0,
    "l1_reg": False,
}


def waveform_sweep(
    store: str, add: dict[str, Any], objectives: list[dict[str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "compress",
        "task": {"name": "waveform", "data": "synthetic", "rows": 800, "val_rows": 200},
        "space": {
            "parameters": {name: {"type": "choice", "choices": [v]} for name, v in {**FIXED, **add}.items()}
        },
        "objectives": objectives,
        "strategy": {"name": "random"},
        "trials": 1,
        "epochs": 2,
        "store": store,
        **extra,
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def launch_one(path: Path, config: dict[str, Any], store_url: str) -> tuple[Store, TrialRecord]:
    """Launch the one-trial sweep ``config`` through the CLI; its store and its completed trial."""
    result = runner.invoke(app, ["sweep", "launch", str(write(path, config))])
    assert result.exit_code == 0, result.output
    store = Store(store_url)
    sweep = store.get_sweep("compress")
    assert sweep is not None
    (trial,) = store.trials(sweep.id)
    assert trial.state.value == "COMPLETED", trial.error
    return store, trial


def test_node_pruned_trial_is_trained_costed_and_measured_as_the_smaller_network(
    tmp_path: Path, sqlite_url: str
) -> None:
    objectives = [{"emd1d_mean": "minimize"}, {"multiplications": "minimize"}, {"onnx_cpu_us": "minimize"}]
    config = waveform_sweep(sqlite_url, {"hidden0_keep": 10, "hidden1_keep": 0.25}, objectives)
    store, trial = launch_one(tmp_path / "c.yaml", config, sqlite_url)
    cost = store.costs([trial.id])[trial.id]
    dense = [layer for layer in cost["layers"] if layer["class_name"] == "Dense"]
    assert [(d["n_in"], d["n_out"]) for d in dense] == [(48, 10), (10, 4), (4, 8)]
    assert trial.results["multiplications"] == 48 * 10 + 10 * 4 + 4 * 8
    # the CPU time is measured after training and stored as a measurement of this machine
    assert trial.results["onnx_cpu_us"] > 0 and trial.results["onnx_cpu_us_b256"] > 0
    latency = cost["cpu_latency"]
    assert latency["machine_dependent"] is True and latency["threads"] == 1
    assert latency["runs"] == {"batch1": 300, "batch256": 40} and latency["machine"]

    artifacts = {a["kind"]: Path(a["path"]) for a in store.artifacts(trial.id)}
    task = get_task("waveform")
    model = task.build_model(trial.params).prune_nodes()  # the checkpoint holds the smaller network
    model.load_state_dict(torch.load(io.BytesIO(artifacts["checkpoint"].read_bytes()), weights_only=True))
    model.eval()
    session = ort.InferenceSession(artifacts["onnx"].read_bytes(), providers=["CPUExecutionProvider"])
    x = task.prepare(rows=200, seed=1).val_x[:16]
    (onnx_out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, model.encoder(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("add", "message"),
    [
        (
            {"hidden0_keep": 40},
            "parameter 'hidden0_keep': keep 40 is outside what hidden0_units (at most 32) allows; allowed: an "
            "integer count 1..32 or a float fraction in (0, 1]",
        ),
        ({"hidden1_keep": 0}, "parameter 'hidden1_keep': choice 0 is outside the allowed range"),
        ({"hidden1_keep": 1.5}, "parameter 'hidden1_keep': keep 1.5 is outside what hidden1_units"),
        ({"hidden3_keep": 2}, "parameter 'hidden3_keep': the space has no 'hidden3_units'"),
        (
            {"quantize": True, "weight_bits": 0, "act_bits": 4, "output_bits": 4},
            "parameter 'weight_bits': choice 0",
        ),
        (
            {"quantize": True, "weight_bits": 4, "act_bits": 4, "output_bits": 4, "hidden0_act_bits": 17},
            "parameter 'hidden0_act_bits': choice 17 is outside the allowed range; allowed: an integer in [1, 16]",
        ),
    ],
)
def test_bad_keep_or_bit_width_exits_2_at_validate(
    tmp_path: Path, sqlite_url: str, add: dict[str, Any], message: str
) -> None:
    config = waveform_sweep(sqlite_url, add, [{"emd1d_mean": "minimize"}])
    result = runner.invoke(app, ["sweep", "validate", str(write(tmp_path / "bad.yaml", config))])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_builtin_space_takes_added_keep_parameters(tmp_path: Path, sqlite_url: str) -> None:
    space = {"builtin": "waveform", "add": {"hidden0_keep": {"type": "float", "low": 0.25, "high": 1.0}}}
    config = {**waveform_sweep(sqlite_url, {}, [{"emd1d_mean": "minimize"}]), "space": space}
    result = runner.invoke(app, ["sweep", "validate", str(write(tmp_path / "add.yaml", config))])
    assert result.exit_code == 0, result.output
    config["space"] = {"builtin": "waveform", "add": {"latent": 4}}
    result = runner.invoke(app, ["sweep", "validate", str(write(tmp_path / "twice.yaml", config))])
    assert result.exit_code == 2
    assert "space.add: 'waveform' already has parameter 'latent'; override it" in result.output


def test_cpu_latency_without_onnxruntime_exits_2_at_validate(tmp_path: Path, sqlite_url: str) -> None:
    config = waveform_sweep(sqlite_url, {}, [{"emd1d_mean": "minimize"}, {"onnx_cpu_us_b256": "minimize"}])
    path = write(tmp_path / "cpu.yaml", config)
    # A real interpreter in which onnxruntime cannot be imported (None in sys.modules blocks an import).
    code = "import sys; sys.modules['onnxruntime'] = None; from search.cli import app; app()"
    done = subprocess.run(
        [sys.executable, "-c", code, "sweep", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert (
        "objectives.1: onnx_cpu_us_b256 is measured with ONNX Runtime, but onnxruntime is not installed"
        in (output.replace("objectives[1]", "objectives.1"))
    )
    assert "Traceback" not in output


def test_staged_recipe_sweep_records_every_stage_epoch(tmp_path: Path, sqlite_url: str) -> None:
    compressed = {"sparsity": 0.5, "quantize": True, "weight_bits": 6, "act_bits": 8, "output_bits": 8}
    config = waveform_sweep(
        sqlite_url, compressed, [{"emd1d_mean": "minimize"}, {"nonzero_params": "minimize"}]
    )
    config.pop("epochs")
    config["stages"] = [{"train": 1}, {"prune": 1}, {"retrain": 1}, {"quantize": 1}, {"retrain": 1}]
    store, trial = launch_one(tmp_path / "staged.yaml", config, sqlite_url)
    assert [m["epoch"] for m in store.metrics(trial.id)] == [1, 2, 3, 4, 5]
    cost = store.costs([trial.id])[trial.id]
    assert cost["quantized"] and cost["totals"]["nonzero_params"] < 0.6 * cost["totals"]["params"]


@pytest.mark.parametrize(
    ("stages", "epochs", "message"),
    [
        ([{"train": 2}, {"prune": 2}], 5, "epochs 5 differs from the stages' total 4"),
        ([{"train": 2}, {"prun": 2}], None, "stages.1.kind: got 'prun'; input should be 'train', 'prune'"),
        ([{"train": 0}], None, "stages.0.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_stages_exit_2_at_validate(
    tmp_path: Path, sqlite_url: str, stages: list[Any], epochs: int | None, message: str
) -> None:
    config = waveform_sweep(sqlite_url, {}, [{"emd1d_mean": "minimize"}], stages=stages)
    if epochs is None:
        config.pop("epochs")
    else:
        config["epochs"] = epochs
    result = runner.invoke(app, ["sweep", "validate", str(write(tmp_path / "bad.yaml", config))])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_stages_enter_the_fingerprint_only_when_given(sqlite_url: str) -> None:
    from search._config import parse_config

    plain = waveform_sweep(sqlite_url, {}, [{"emd1d_mean": "minimize"}])
    staged = {**plain, "epochs": 2, "stages": [{"train": 1}, {"retrain": 1}]}
    assert parse_config(plain).fingerprint() != parse_config(staged).fingerprint()
    assert parse_config(plain).fingerprint() == parse_config({**plain, "stages": []}).fingerprint()


def test_binary_and_ternary_mixed_precision_sweep_is_costed_at_its_widths(
    tmp_path: Path, sqlite_url: str
) -> None:
    bits = {"quantize": True, "weight_bits": 1, "act_bits": 2, "output_bits": 4, "hidden1_weight_bits": 2}
    config = waveform_sweep(sqlite_url, bits, [{"emd1d_mean": "minimize"}, {"bops": "minimize"}], epochs=1)
    store, trial = launch_one(tmp_path / "bits.yaml", config, sqlite_url)
    layers = store.costs([trial.id])[trial.id]["layers"]
    dense = [layer for layer in layers if layer["class_name"] == "Dense"]
    assert [layer["weight_bits"] for layer in dense] == [2, 2, 2]  # binary and ternary: 2-bit types
    assert [layer["input_bits"] for layer in dense][1:] == [2, 2]  # 2-bit activations feed layers 1, 2
