"""`hwnas export`: trained encoders become written hls4ml projects, checked bit for bit with g++."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_export_writes_verified_projects_float_within_tolerance_quantized_exact(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = {
        "name": "exp",
        "task": {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 200, "loss": "cwmse"},
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "warm_start": ["econt_baseline", QUANTIZED_BASELINE],
        "trials": 2,
        "epochs": 1,
        "store": sqlite_url,
    }
    run_sweep(parse_config(config))
    result = runner.invoke(
        app,
        [
            "export",
            "exp",
            "--trial",
            "0",
            "--trial",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--store",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    float_dir, quant_dir = tmp_path / "out" / "exp" / "trial-00000", tmp_path / "out" / "exp" / "trial-00001"
    for directory in (float_dir, quant_dir):
        assert (directory / "hls4ml_prj" / "firmware" / "myproject.cpp").is_file()
        assert (directory / "model.pt").stat().st_size > 0
        assert not directory.with_name(directory.name + ".partial").exists()
    float_check = json.loads((float_dir / "summary.json").read_text())["verification"]
    quant_summary = json.loads((quant_dir / "summary.json").read_text())
    assert float_check["passed"] and float_check["max_abs_error"] <= float_check["tolerance"]
    assert quant_summary["verification"]["exact"] and quant_summary["verification"]["max_abs_error"] == 0.0
    assert quant_summary["cost"]["totals"]["ops"] == 6544
    assert "trial 1" in result.stdout and "bit-exact" in result.stdout


def test_export_refuses_unknown_and_unfinished_trials(sqlite_url: str, tmp_path: Path) -> None:
    config = {
        "name": "exp",
        "task": {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 200},
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "budgets": ["bops <= 5e5"],
        "strategy": {"name": "random"},
        "warm_start": ["econt_baseline"],
        "trials": 1,
        "epochs": 1,
        "store": sqlite_url,
    }
    run_sweep(parse_config(config))
    base = ["export", "exp", "--store", sqlite_url, "--out", str(tmp_path)]
    result = runner.invoke(app, [*base, "--trial", "99"])
    assert result.exit_code == 2 and "sweep 'exp' has no trial 99" in result.output
    result = runner.invoke(app, [*base, "--trial", "0"])  # the baseline is over the budget: INFEASIBLE
    assert (
        result.exit_code == 2
        and "trial 0 is INFEASIBLE; only completed trials can be exported" in result.output
    )
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "--trial N (repeatable) and/or --pareto" in result.output
