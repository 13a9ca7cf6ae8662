"""`hwnas export`: per model a verified hls4ml project, (Q)ONNX, weights, cost, metrics, card and manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from search._config import parse_config
from search.cli import app
from search.execution._loop import run_sweep

runner = CliRunner(env={"COLUMNS": "200"})

QUANTIZED_BASELINE = {
    "preset": "econt_baseline",
    "quantize": True,
    "weight_bits": 6,
    "act_bits": 8,
    "input_bits": 10,
    "output_bits": 9,
}
TASK = {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 200, "loss": "cwmse"}


def _sweep(store: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "exp",
        "task": TASK,
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "warm_start": ["econt_baseline", QUANTIZED_BASELINE],
        "trials": 2,
        "epochs": 1,
        "store": store,
        **extra,
    }


class _Runtime(nn.Module):
    """A reloaded ONNX/QONNX encoder in place of the torch one."""

    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.run(x.numpy()), dtype=np.float32))


def _reloaded_metrics(folder: Path, encoder: nn.Module | None) -> dict[str, float]:
    from objectives import get_task

    task = get_task("econt", loss="cwmse")
    model = task.build_model(json.loads((folder / "config.json").read_text()))
    model.load_state_dict(torch.load(io.BytesIO((folder / "model.pt").read_bytes()), weights_only=True))
    model.eval()
    if encoder is not None:
        model.encoder = encoder
    data = task.prepare("synthetic", rows=TASK["rows"], seed=0, val_rows=TASK["val_rows"])
    return task.evaluate(model, data)


def _onnx_encoder(path: Path) -> nn.Module:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _Runtime(lambda x: session.run(None, {session.get_inputs()[0].name: x})[0])


def _qonnx_encoder(path: Path) -> nn.Module:
    from search._export import _run_qonnx

    return _Runtime(lambda x: _run_qonnx(path, x))


def _check_manifest(folder: Path) -> None:
    listed = {}
    for line in (folder / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"MANIFEST.sha256"}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.slow
def test_export_verifies_float_within_metric_tolerance_and_quantized_bit_exact(
    tmp_path: Path, sqlite_url: str
) -> None:
    run_sweep(parse_config(_sweep(sqlite_url)))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["export", "exp", "--trial", "0", "--trial", "1", "--out", str(out), "--store", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    float_dir, quant_dir = out / "trial-00000", out / "trial-00001"
    for folder in (float_dir, quant_dir):
        for name in ("config.json", "model.pt", "hls4ml_config.json", "cost.json", "cost.md", "metrics.json"):
            assert (folder / name).stat().st_size > 0, name
        assert (folder / "hls4ml_prj" / "firmware" / "myproject.cpp").is_file()
        assert (folder / "hls4ml_prj" / "build_prj.tcl").is_file()
        card = (folder / "README.md").read_text()
        assert (
            "VERIFIED" in card and "vitis-run --tcl build_prj.tcl --mode hls" in card and "hls4ml 1.3" in card
        )
        _check_manifest(folder)
    assert not list(tmp_path.glob(".out.*"))  # no staging folder is left behind

    float_check = json.loads((float_dir / "verification.json").read_text())
    assert float_check["passed"] and abs(float_check["metric_changes"]["emd_mean"]) <= 0.01
    assert "bits wide" in float_check["precision"]
    conv_types = float_check["precisions"]["_0"]
    assert (
        conv_types["weight_t"].endswith("RND,SAT,0>") and conv_types["weight_t"] != "fixed<16,6,TRN,WRAP,0>"
    )
    quant_check = json.loads((quant_dir / "verification.json").read_text())
    assert quant_check["passed"] and quant_check["outputs"]["exact"]
    assert quant_check["outputs"]["max_abs_error"] == 0.0 and quant_check["outputs"]["identical_share"] == 1.0
    assert json.loads((quant_dir / "cost.json").read_text())["totals"]["ops"] == 6544

    # Reloaded weights, ONNX and QONNX reproduce the stored metrics.
    stored_float = json.loads((float_dir / "metrics.json").read_text())["stored"]
    stored_quant = json.loads((quant_dir / "metrics.json").read_text())["stored"]
    assert _reloaded_metrics(float_dir, None)["emd_mean"] == pytest.approx(stored_float["emd_mean"], rel=1e-9)
    assert _reloaded_metrics(float_dir, _onnx_encoder(float_dir / "model.onnx"))["emd_mean"] == pytest.approx(
        stored_float["emd_mean"], rel=1e-5
    )
    qonnx_metrics = _reloaded_metrics(quant_dir, _qonnx_encoder(quant_dir / "model.qonnx.onnx"))
    assert qonnx_metrics["emd_mean"] == pytest.approx(stored_quant["emd_mean"], rel=1e-5)

    rows = list(csv.DictReader((out / "index.csv").read_text().splitlines()))
    assert [r["trial"] for r in rows] == ["0", "1"] and all(r["verified"] == "True" for r in rows)
    assert "trial-00001" in (out / "index.md").read_text()
    assert "bit-exact" in result.stdout and "emd_mean" in result.stdout


@pytest.mark.slow
def test_distributed_arithmetic_export_is_bit_exact_without_dsps_and_refuses_float_models(
    tmp_path: Path, sqlite_url: str
) -> None:
    run_sweep(parse_config(_sweep(sqlite_url)))  # trial 0 float, trial 1 quantized
    da = ["--strategy", "distributed_arithmetic"]
    for args, problem in (
        (["--trial", "0", "--trial", "1"], "trial(s) 0 are float"),
        (["--trial", "1", "--full"], "--full adds the float decoder"),
    ):
        result = _export(sqlite_url, *args, *da, "--out", str(tmp_path / "refused"))
        assert result.exit_code == 2 and problem in result.output and "Latency or Resource" in result.output
        assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))
    out = tmp_path / "out"
    result = _export(sqlite_url, "--trial", "1", *da, "--out", str(out))
    assert result.exit_code == 0, result.output
    folder = out / "trial-00001"
    check = json.loads((folder / "verification.json").read_text())
    assert check["passed"] and check["outputs"]["exact"] and check["outputs"]["max_abs_error"] == 0.0
    cost = json.loads((folder / "cost.json").read_text())
    kernels = [layer for layer in cost["layers"] if layer["class_name"] in ("Conv2D", "Dense")]
    assert kernels and all(layer["strategy"] == "distributed_arithmetic" for layer in kernels)
    assert cost["totals"]["dsp"] == cost["totals"]["multipliers"] == 0 and cost["totals"]["lut"] > 0
    assert (
        cost["totals"]["ops"] == 6544 and cost["totals"]["params"] == 2144
    )  # the kernels' weights are counted
    assert "distributed_arithmetic" in (folder / "hls4ml_config.json").read_text()
    _check_manifest(folder)


@pytest.mark.slow
def test_full_export_of_a_quantized_dense_model_searches_the_float_decoder_width(
    tmp_path: Path, sqlite_url: str
) -> None:
    dense = {
        "n_conv": 0,
        "n_dense": 0,
        "latent": 12,
        "lr": 0.003,
        "batch_size": 128,
        **{k: v for k, v in QUANTIZED_BASELINE.items() if k != "preset"},
        "sparsity": 0.0,
        "l1_reg": False,
    }
    run_sweep(parse_config(_sweep(sqlite_url, warm_start=[dense], trials=1, epochs=2)))
    out = tmp_path / "out"
    result = _export(sqlite_url, "--trial", "0", "--full", "--out", str(out))
    assert result.exit_code == 0, result.output
    check = json.loads((out / "trial-00000" / "verification.json").read_text())
    assert check["passed"] and abs(check["metric_changes"]["emd_mean"]) <= 0.01
    assert "the float decoder at ap_fixed<" in check["precision"]
    widths = [attempt["width"] for attempt in check["attempts"]]
    assert widths and len(set(widths)) == len(widths)  # bisected, each width tried once
    assert (out / "trial-00000" / "model.qonnx.onnx").is_file()  # the whole model, reloaded by qonnx


@pytest.fixture
def small_sweep(sqlite_url: str) -> str:
    """A completed quantized trial 0 and an INFEASIBLE float trial 1 (over the budget)."""
    config = _sweep(sqlite_url, budgets=["bops <= 5e5"], warm_start=[QUANTIZED_BASELINE, "econt_baseline"])
    run_sweep(parse_config(config))
    return sqlite_url


def _export(store: str, *args: str) -> Any:
    return runner.invoke(app, ["export", "exp", "--store", store, *args])


def test_export_refuses_unknown_unfinished_and_uncheckpointed_trials(
    small_sweep: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    out = ["--out", str(work / "out")]
    result = _export(small_sweep, *out, "--trial", "99")
    assert result.exit_code == 2 and "sweep 'exp' has no trial 99" in result.output
    result = _export(small_sweep, *out, "--trial", "1")
    assert (
        result.exit_code == 2
        and "trial 1 is INFEASIBLE; only completed trials can be exported" in result.output
    )
    result = _export(small_sweep, *out)
    assert result.exit_code == 2 and "--pareto, --trial N (repeatable) or --best METRIC" in result.output
    result = runner.invoke(app, ["export", "nope", "--store", small_sweep, "--pareto", *out])
    assert result.exit_code == 2 and "nope" in result.output
    checkpoint = next(
        Path(small_sweep.removeprefix("sqlite:///")).with_suffix(".runs").rglob("trial-00000.pt")
    )
    checkpoint.rename(checkpoint.with_suffix(".moved"))
    result = _export(small_sweep, *out, "--trial", "0")
    assert result.exit_code == 2 and "trial 0: checkpoint" in result.output and "is missing" in result.output
    assert list(work.iterdir()) == []  # nothing written


def test_export_refuses_bad_output_directories_and_settings_and_writes_nothing(
    small_sweep: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    user_file = work / "notes.txt"
    user_file.write_text("mine")
    result = _export(small_sweep, "--trial", "0", "--out", str(user_file))
    assert result.exit_code == 2 and "is a file" in result.output and user_file.read_text() == "mine"
    result = _export(small_sweep, "--trial", "0", "--out", str(work))
    assert result.exit_code == 2 and "exists and is not empty" in result.output and "--force" in result.output
    assert user_file.read_text() == "mine"

    out = ["--trial", "0", "--out", str(work / "out")]
    result = _export(small_sweep, *out, "--strategy", "Fast")
    assert result.exit_code == 2 and "Latency" in result.output and "distributed_arithmetic" in result.output
    result = _export(small_sweep, *out, "--precision", "ap_fixed<16>")
    assert result.exit_code == 2 and "needs integer bits" in result.output
    result = _export(small_sweep, *out, "--precision", "float32")
    assert result.exit_code == 2 and "'float32' is not understood" in result.output
    result = _export(small_sweep, *out, "--strategy", "distributed_arithmetic", "--reuse-factor", "2")
    assert result.exit_code == 2 and "distributed_arithmetic; allowed: 1" in result.output
    result = _export(small_sweep, *out, "--best", "nonsense")
    assert result.exit_code == 2 and "allowed:" in result.output and "emd_mean" in result.output
    result = _export(small_sweep, *out, "--best", "emd_mean", "--max", "ops <= 10")
    assert (
        result.exit_code == 2
        and "no completed trial has emd_mean with a stored cost within ops <= 10" in (result.output)
    )
    result = _export(small_sweep, *out, "--best", "emd_mean", "--max", "speed <= 10")
    assert result.exit_code == 2 and "unknown quantity 'speed'" in result.output
    assert [p.name for p in work.iterdir()] == ["notes.txt"]
