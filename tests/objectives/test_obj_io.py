"""Loaders and writers: the real CSV formats, .npy, streaming, error messages and atomic writes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from objectives import (
    DataError,
    check_file,
    iter_econt,
    load_econt,
    load_waveform,
    synth_econt,
    synth_waveform,
    write_dataset,
)

HEADER = ",".join(f"CALQ_{i}" for i in range(48))


def charges(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 50, (rows, 48)).astype(np.float32)


def csv_text(rows: np.ndarray, fmt: str = "%d") -> str:
    return "\n".join(",".join(fmt % v for v in row) for row in rows) + "\n"


def test_headerless_public_format_uses_columns_0_to_47(tmp_path: Path) -> None:
    data = charges(20)
    extra = np.random.default_rng(1).random((20, 9))  # columns 48..56: tc_eta/tc_phi and others
    text = "\n".join(
        ",".join([*(str(int(v)) for v in row), *(f"{e:.4f}" for e in more)])
        for row, more in zip(data, extra, strict=True)
    )
    path = tmp_path / "public.csv"
    path.write_text(text + "\n")
    np.testing.assert_array_equal(load_econt(path), data[data.sum(axis=1) > 0])


def test_header_with_shuffled_and_extra_columns(tmp_path: Path) -> None:
    data = charges(15, seed=2)
    order = np.random.default_rng(3).permutation(48)
    names = ["ModType", *(f"CALQ_{i}" for i in order), "SimEnergyFraction"]
    lines = [",".join(names)]
    lines += [",".join(["MT1", *(str(int(row[i])) for i in order), "0.5"]) for row in data]
    path = tmp_path / "with_header.csv"
    path.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is fine
    loaded = load_econt(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, data)


def test_zero_rows_are_dropped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = charges(10)
    data[[2, 5, 7]] = 0.0
    path = tmp_path / "zeros.csv"
    path.write_text(HEADER + "\n" + csv_text(data))
    with caplog.at_level(logging.INFO, logger="objectives"):
        loaded = load_econt(path)
    np.testing.assert_array_equal(loaded, np.delete(data, [2, 5, 7], axis=0))
    assert "dropped 3 rows whose 48 charges sum to 0" in caplog.text
    summary = check_file(path)
    assert (summary.rows, summary.dropped_zero_rows, summary.kind, summary.header) == (7, 3, "econt", True)


def test_streaming_chunks_and_max_rows(tmp_path: Path) -> None:
    data = charges(250, seed=4) + 1.0
    path = tmp_path / "stream.csv"
    path.write_text(HEADER + "\n" + csv_text(data))
    chunks = list(iter_econt(path, chunk_rows=64))
    assert [c.shape[0] for c in chunks] == [64, 64, 64, 58]
    np.testing.assert_array_equal(np.concatenate(chunks), data)
    np.testing.assert_array_equal(load_econt(path, max_rows=100), data[:100])


def test_npy_round_trip(tmp_path: Path) -> None:
    data = synth_econt(300, seed=1)
    path = tmp_path / "modules.npy"
    assert write_dataset(data, path) == 300
    np.testing.assert_array_equal(load_econt(path), data)
    assert check_file(path).kind == "econt"


def test_csv_round_trip_of_chunks_for_both_kinds(tmp_path: Path) -> None:
    modules = synth_econt(120, seed=2)
    write_dataset([modules[:50], modules[50:]], tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text().startswith("CALQ_0,CALQ_1,")
    np.testing.assert_array_equal(load_econt(tmp_path / "m.csv"), modules)
    pulses = synth_waveform(30, seed=3)
    write_dataset(pulses, tmp_path / "p.csv", kind="waveform")
    assert (tmp_path / "p.csv").read_text().startswith("s0,s1,")
    np.testing.assert_array_equal(load_waveform(tmp_path / "p.csv"), pulses)  # 9 digits round-trip float32
    summary = check_file(tmp_path / "p.csv")
    assert (summary.kind, summary.rows, summary.columns) == ("waveform", 30, 48)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            HEADER + "\n\n" + "1," * 47 + "1\n" + "1," * 46 + "1\n",
            r"bad\.csv: line 4: expected 48 comma-separated values \(as on line 1\), found 47",
        ),
        (
            "1," * 47 + "1\n" + "1," * 20 + "x" + ",1" * 27 + "\n",
            r"bad\.csv: line 2, column 21 \(CALQ_20\): 'x' is not a number",
        ),
        (
            HEADER + "\n" + "1," * 10 + "," + "1," * 36 + "1\n",
            r"bad\.csv: line 2, CALQ_10: '' is not a number",
        ),
        (HEADER + "\n" + "1," * 47 + "-3\n", r"bad\.csv: line 2, CALQ_47: value -3\.0 is a negative charge"),
        (
            "1," * 47 + "1\n" + "1," * 5 + "nan," + "1," * 41 + "1\n",
            r"bad\.csv: line 2, column 6 \(CALQ_5\): value nan is not finite",
        ),
        ("1," * 46 + "1\n", r"bad\.csv: line 1: expected at least 48 comma-separated charges .* found 47"),
        (
            ",".join(f"CALQ_{i}" for i in range(40)) + "\n",
            r"bad\.csv: line 1: the header lacks 8 of the columns CALQ_0\.\.CALQ_47 "
            r"\(CALQ_40, CALQ_41, CALQ_42, CALQ_43, CALQ_44, \.\.\.\)",
        ),
        ("", r"bad\.csv: no data rows \(the file is empty\)"),
        (HEADER + "\n", r"bad\.csv: no data rows with a non-zero charge \(0 all-zero rows\)"),
        (
            HEADER + "\n" + "0," * 47 + "0\n",
            r"bad\.csv: no data rows with a non-zero charge \(1 all-zero rows\)",
        ),
    ],
)
def test_econt_errors_name_file_line_and_expectation(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_econt(path)


def test_missing_file_and_bad_npy(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv: file not found"):
        load_econt(tmp_path / "nowhere.csv")
    np.save(tmp_path / "wide.npy", np.ones((3, 50)))
    with pytest.raises(
        DataError, match=r"wide\.npy: expected a 2-D array with 48 columns, found shape \(3, 50\)"
    ):
        load_econt(tmp_path / "wide.npy")
    negative = np.ones((4, 48))
    negative[2, 9] = -1
    np.save(tmp_path / "negative.npy", negative)
    with pytest.raises(DataError, match=r"negative\.npy: row 3, CALQ_9: value -1\.0 is a negative charge"):
        load_econt(tmp_path / "negative.npy")


def test_waveform_formats(tmp_path: Path) -> None:
    pulses = synth_waveform(5, seed=0)
    with_time = np.column_stack((np.linspace(0.1, 0.5, 5), pulses))
    header = "time," + ",".join(f"s{i}" for i in range(48))
    (tmp_path / "timed.csv").write_text(header + "\n" + csv_text(with_time, "%.9g"))
    np.testing.assert_array_equal(load_waveform(tmp_path / "timed.csv"), pulses)
    (tmp_path / "plain.csv").write_text(csv_text(pulses, "%.9g"))
    np.testing.assert_array_equal(load_waveform(tmp_path / "plain.csv"), pulses)
    np.save(tmp_path / "timed.npy", with_time)
    np.testing.assert_allclose(load_waveform(tmp_path / "timed.npy"), pulses)
    assert check_file(tmp_path / "timed.npy").kind == "waveform"


def test_waveform_errors(tmp_path: Path) -> None:
    (tmp_path / "short.csv").write_text("0.1," * 29 + "0.1\n")
    with pytest.raises(
        DataError,
        match=r"short\.csv: line 1: expected 48 samples or a time column plus 48 samples .* found 30",
    ):
        load_waveform(tmp_path / "short.csv")
    (tmp_path / "ragged.csv").write_text("0.1," * 47 + "0.1\n" + "0.1," * 48 + "0.1\n")
    with pytest.raises(
        DataError, match=r"ragged\.csv: line 2: expected 48 comma-separated values \(as on line 1\), found 49"
    ):
        load_waveform(tmp_path / "ragged.csv")


def test_write_is_atomic_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old content\n")
    good = synth_econt(10, seed=0)
    bad = good.copy()
    bad[3, 4] = np.nan
    with pytest.raises(DataError, match=r"write_dataset: row 14, CALQ_4: value nan is not finite"):
        write_dataset([good, bad], target)  # the second chunk fails after the first was written
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left behind
    write_dataset(good, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").stat().st_mode == target.stat().st_mode  # usual permissions, not 0600
    with pytest.raises(DataError, match=r"unknown file suffix '\.txt'; allowed: \.csv, \.npy"):
        write_dataset(good, tmp_path / "out.txt")
    with pytest.raises(DataError, match=r"unknown data kind 'images'; allowed: econt, waveform"):
        write_dataset(good, target, kind="images")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"must have shape \(N, 48\), got \(10, 47\)"):
        write_dataset(good[:, :47], target)
    with pytest.raises(DataError, match=r"no rows to write"):
        write_dataset([], target)
    with pytest.raises(DataError, match=r"cannot write in .*missing"):
        write_dataset(good, tmp_path / "missing" / "out.csv")
    assert target.read_text() == "old content\n"


def test_real_samples_load_with_the_documented_statistics(shared_data: Path) -> None:
    ttbar = load_econt(shared_data / "econt" / "ttbar_0PU.csv")
    electrons = load_econt(shared_data / "econt" / "electron_pt20_eta15-30_0PU.csv")
    assert ttbar.shape == (38_382, 48) and electrons.shape == (17_382, 48)
    assert (ttbar > 0).sum(axis=1).mean() == pytest.approx(2.48, abs=0.01)
    assert np.median(electrons.sum(axis=1)) == 4.0
    assert ttbar.max() == 13_632 and electrons.max() == 5_656
    summary = check_file(shared_data / "econt" / "ttbar_0PU.csv")
    assert (summary.kind, summary.rows, summary.row_sum_median) == ("econt", 38_382, 16.0)
    pulses = load_waveform(shared_data / "fadc250_examples.csv")
    assert pulses.shape == (6, 48)
    np.testing.assert_allclose(pulses.max(axis=1), 0.99502, rtol=1e-6)
