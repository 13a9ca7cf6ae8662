"""`hwnas data synth|check`, driven through typer's CliRunner on a local app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from objectives import load_econt, load_waveform
from search._data_cli import data_app

app = typer.Typer()
app.add_typer(data_app, name="data")
runner = CliRunner()


def test_synth_econt_csv_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    result = runner.invoke(
        app, ["data", "synth", "econt", "--rows", "300", "--out", str(first), "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 300 econt rows to {first}" in result.stdout
    runner.invoke(app, ["data", "synth", "econt", "--rows", "300", "--out", str(second), "--seed", "4"])
    assert first.read_bytes() == second.read_bytes()
    modules = load_econt(first)
    assert modules.shape == (300, 48) and (modules == np.round(modules)).all()


def test_synth_with_pileup_and_waveform_npy(tmp_path: Path) -> None:
    dense = tmp_path / "dense.npy"
    assert (
        runner.invoke(
            app, ["data", "synth", "econt", "--rows", "200", "--out", str(dense), "--option", "pileup=5"]
        ).exit_code
        == 0
    )
    assert (np.load(dense) > 0).sum(axis=1).mean() > 30
    pulses = tmp_path / "pulses.npy"
    assert (
        runner.invoke(app, ["data", "synth", "waveform", "--rows", "50", "--out", str(pulses)]).exit_code == 0
    )
    assert load_waveform(pulses).shape == (50, 48)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["synth", "images", "--rows", "5", "--out", "x.csv"],
            "unknown task 'images'; allowed: econt, waveform",
        ),
        (
            ["synth", "waveform", "--rows", "5", "--out", "x.csv", "-o", "pileup=2"],
            "task 'waveform' takes no synthetic-data option 'pileup'; its options: none",
        ),
        (
            ["synth", "econt", "--rows", "5", "--out", "x.csv", "-o", "pileup"],
            "--option 'pileup': expected NAME=NUMBER",
        ),
        (
            ["synth", "econt", "--rows", "5", "--out", "x.parquet"],
            "unknown file suffix '.parquet'; allowed: .csv, .npy",
        ),
    ],
)
def test_synth_errors_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a if a not in ("x.csv", "x.parquet") else str(tmp_path / a) for a in args]
    result = runner.invoke(app, ["data", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not any(tmp_path.iterdir())  # nothing written


def test_rows_must_be_positive(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", "econt", "--rows", "0", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "--rows" in result.stderr


def test_check_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    runner.invoke(app, ["data", "synth", "econt", "--rows", "120", "--out", str(path)])
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("econt", "csv with header", "rows", "120", "dropped all-zero rows"):
        assert text in result.stdout


def test_check_reports_bad_files_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(",".join(f"CALQ_{i}" for i in range(48)) + "\n" + "1," * 47 + "oops\n")
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 2
    assert "line 2, CALQ_47: 'oops' is not a number" in " ".join(result.stderr.split())
    missing = runner.invoke(app, ["data", "check", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "file not found" in missing.stderr
