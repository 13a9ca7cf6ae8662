"""Readers and writers for the data files of both tasks: real CSV formats, .npy, streaming, atomic writes.

CSV files are read in chunks of lines so that multi-GB files never need to fit in memory. Every problem
is reported as a DataError naming the file, the 1-based line (row for .npy) and what was expected.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
from numpy.typing import NDArray

from objectives._errors import DataError
from objectives._geometry import N_CELLS

log = logging.getLogger(__name__)

Kind = Literal["econt", "waveform"]
KINDS: tuple[str, ...] = ("econt", "waveform")
N_SAMPLES = 48
CALQ_NAMES: tuple[str, ...] = tuple(f"CALQ_{i}" for i in range(N_CELLS))
SAMPLE_NAMES: tuple[str, ...] = tuple(f"s{i}" for i in range(N_SAMPLES))
_FORMATS = (".csv", ".npy")
_DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class _Layout:
    """Where the numbers are in one CSV file."""

    n_fields: int
    usecols: tuple[int, ...]
    header: bool
    first_line: int  # 1-based line number of the first data line
    reference_line: int  # the line (header or first row) that fixed the column count
    labels: tuple[str, ...]  # how messages name each used column


@dataclass
class _ReadStats:
    dropped_zero_rows: int = 0


def _clean(field: str) -> str:
    return field.strip().strip('"').strip()


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _open_text(path: Path) -> TextIO:
    try:
        return path.open("r", encoding="utf-8", newline=None)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a .csv or .npy file") from None


def _first_line(path: Path, handle: TextIO) -> tuple[int, list[str]]:
    """Skip blank lines; return the 1-based number and the fields of the first line with content."""
    try:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                return number, [_clean(f) for f in line.rstrip("\r\n").split(",")]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason}); expected CSV text or .npy") from None
    raise DataError(f"{path}: no data rows (the file is empty)")


def _rewind_to(handle: TextIO, number: int) -> None:
    """Position the file so that the next line read is line ``number`` (a headerless file's first row)."""
    handle.seek(0)
    for _ in range(number - 1):
        handle.readline()


def _econt_layout(path: Path, number: int, fields: list[str]) -> _Layout:
    if all(_is_number(f) for f in fields):
        if len(fields) < N_CELLS:
            raise DataError(
                f"{path}: line {number}: expected at least {N_CELLS} comma-separated charges "
                f"(CALQ_0..CALQ_47 in columns 1..48), found {len(fields)}"
            )
        labels = tuple(f"column {i + 1} ({name})" for i, name in enumerate(CALQ_NAMES))
        return _Layout(len(fields), tuple(range(N_CELLS)), False, number, number, labels)
    position = {name: index for index, name in enumerate(fields)}
    missing = [name for name in CALQ_NAMES if name not in position]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"{path}: line {number}: the header lacks {len(missing)} of the columns CALQ_0..CALQ_47 "
            f"({shown}); expected a header naming all of them or a headerless file"
        )
    usecols = tuple(position[name] for name in CALQ_NAMES)
    return _Layout(len(fields), usecols, True, number + 1, number, CALQ_NAMES)


def _waveform_layout(path: Path, number: int, fields: list[str]) -> _Layout:
    header = not all(_is_number(f) for f in fields)
    if len(fields) not in (N_SAMPLES, N_SAMPLES + 1):
        raise DataError(
            f"{path}: line {number}: expected {N_SAMPLES} samples or a time column plus {N_SAMPLES} samples "
            f"({N_SAMPLES} or {N_SAMPLES + 1} comma-separated values), found {len(fields)}"
        )
    skip = len(fields) - N_SAMPLES  # a leading time column is dropped
    usecols = tuple(range(skip, len(fields)))
    if header:
        return _Layout(len(fields), usecols, True, number + 1, number, tuple(fields[skip:]))
    labels = tuple(f"column {i + 1}" for i in usecols)
    return _Layout(len(fields), usecols, False, number, number, labels)


def _locate_bad_number(
    path: Path, layout: _Layout, lines: Sequence[str], numbers: NDArray[np.int64]
) -> DataError:
    """Find the first cell that is not a number (only on the error path, so a Python scan is fine)."""
    for line, number in zip(lines, numbers, strict=True):
        fields = line.rstrip("\r\n").split(",")
        for column, label in zip(layout.usecols, layout.labels, strict=True):
            if not _is_number(_clean(fields[column])):
                return DataError(
                    f"{path}: line {number}, {label}: {fields[column].strip()!r} is not a number"
                )
    return DataError(f"{path}: lines {numbers[0]}..{numbers[-1]} hold a value that is not a number")


def _csv_blocks(
    path: Path, handle: TextIO, layout: _Layout, chunk_rows: int
) -> Iterator[tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Yield (values of the used columns, 1-based line numbers) for successive chunks of data lines."""
    next_line = layout.first_line
    while True:
        raw = list(itertools.islice(handle, chunk_rows))
        if not raw:
            return
        kept = [index for index, line in enumerate(raw) if line.strip()]
        numbers = next_line + np.asarray(kept, dtype=np.int64)
        next_line += len(raw)
        lines = raw if len(kept) == len(raw) else [raw[index] for index in kept]
        if not lines:
            continue
        commas = np.fromiter((line.count(",") for line in lines), dtype=np.int64, count=len(lines))
        wrong = np.flatnonzero(commas != layout.n_fields - 1)
        if wrong.size:
            first = int(wrong[0])
            raise DataError(
                f"{path}: line {numbers[first]}: expected {layout.n_fields} comma-separated values "
                f"(as on line {layout.reference_line}), found {commas[first] + 1}"
            )
        try:
            values = np.loadtxt(
                lines, delimiter=",", usecols=layout.usecols, dtype=np.float64, ndmin=2, comments=None
            )
        except ValueError:
            raise _locate_bad_number(path, layout, lines, numbers) from None
        yield values, numbers


def _open_npy(path: Path) -> NDArray[Any]:
    """A memory-mapped .npy array; DataError when the file is missing or not an .npy array."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except ValueError as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None


def _npy_blocks(
    path: Path, allowed_columns: Sequence[int], chunk_rows: int
) -> Iterator[tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Yield (values, 1-based row numbers) for successive chunks of a 2-D .npy array (memory-mapped)."""
    array = _open_npy(path)
    if array.ndim != 2 or array.shape[1] not in allowed_columns:
        expected = " or ".join(str(c) for c in allowed_columns)
        raise DataError(f"{path}: expected a 2-D array with {expected} columns, found shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: expected a numeric array, found dtype {array.dtype}")
    skip = array.shape[1] - allowed_columns[0]
    for start in range(0, array.shape[0], chunk_rows):
        block = np.asarray(array[start : start + chunk_rows, skip:], dtype=np.float64)
        yield block, np.arange(start + 1, start + 1 + block.shape[0], dtype=np.int64)


def _check_values(
    source: object,
    values: NDArray[np.float64],
    numbers: NDArray[np.int64],
    where: str,
    names: Sequence[str],
    what: str,
) -> None:
    """Raise DataError at the first non-finite or negative value, naming its line/row and column."""
    bad = ~np.isfinite(values)
    problem = "is not finite"
    if not bad.any():
        bad = values < 0
        problem = f"is a negative {what}"
        if not bad.any():
            return
    row, column = np.argwhere(bad)[0]
    raise DataError(
        f"{source}: {where} {numbers[row]}, {names[column]}: value {float(values[row, column])!r} {problem}"
    )


def _econt_blocks(path: Path, chunk_rows: int, stats: _ReadStats) -> Iterator[NDArray[np.float32]]:
    """Validated (rows, 48) float32 chunks with all-zero rows removed (counted in ``stats``)."""
    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if path.suffix.lower() == ".npy":
        blocks = _npy_blocks(path, (N_CELLS,), chunk_rows)
        yield from _econt_checked(path, blocks, "row", CALQ_NAMES, stats)
        return
    with _open_text(path) as handle:
        number, fields = _first_line(path, handle)
        layout = _econt_layout(path, number, fields)
        if not layout.header:
            _rewind_to(handle, number)
        blocks = _csv_blocks(path, handle, layout, chunk_rows)
        yield from _econt_checked(path, blocks, "line", layout.labels, stats)


def _econt_checked(
    path: Path,
    blocks: Iterator[tuple[NDArray[np.float64], NDArray[np.int64]]],
    where: str,
    names: Sequence[str],
    stats: _ReadStats,
) -> Iterator[NDArray[np.float32]]:
    kept = 0
    for values, numbers in blocks:
        _check_values(path, values, numbers, where, names, "charge")
        nonzero = values.sum(axis=1) > 0
        stats.dropped_zero_rows += int(values.shape[0] - nonzero.sum())
        if nonzero.any():
            kept += int(nonzero.sum())
            yield values[nonzero].astype(np.float32)
    if kept == 0:
        raise DataError(
            f"{path}: no data rows with a non-zero charge ({stats.dropped_zero_rows} all-zero rows)"
        )
    if stats.dropped_zero_rows:
        log.info("%s: dropped %d rows whose 48 charges sum to 0", path, stats.dropped_zero_rows)


def iter_econt(path: str | os.PathLike[str], chunk_rows: int = _DEFAULT_CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Stream an ECON-T data file as float32 chunks of shape (rows, 48), CALQ_0..CALQ_47 order.

    Formats: headerless CSV (columns 1..48 are the charges, further columns such as tc_eta/tc_phi are
    ignored), CSV with a header naming CALQ_0..CALQ_47 in any order (other columns ignored), or a
    (N, 48) .npy array. Rows whose charges sum to 0 are dropped and the count is logged. Chunks hold at
    most ``chunk_rows`` rows. Raises DataError (naming file, line and the expectation) for a missing file,
    a wrong number of columns, a non-numeric, NaN/inf or negative charge, or a file without data rows;
    chunks before the bad line have already been yielded.
    """
    yield from _econt_blocks(Path(path), chunk_rows, _ReadStats())


def load_econt(path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
    """Read an ECON-T data file (formats as :func:`iter_econt`) into one float32 (N, 48) array.

    At most ``max_rows`` non-zero rows are returned (the first ones in the file). Raises DataError as
    :func:`iter_econt` does, or for ``max_rows < 1``; nothing is returned on error.
    """
    if max_rows is not None and max_rows < 1:
        raise DataError(f"max_rows must be >= 1 or None, got {max_rows}")
    chunks: list[np.ndarray] = []
    collected = 0
    chunk_rows = _DEFAULT_CHUNK_ROWS if max_rows is None else min(_DEFAULT_CHUNK_ROWS, max_rows)
    for chunk in iter_econt(path, chunk_rows):
        chunks.append(chunk)
        collected += chunk.shape[0]
        if max_rows is not None and collected >= max_rows:
            break
    return np.concatenate(chunks)[:max_rows]


def _waveform_blocks(file: Path, chunk_rows: int = _DEFAULT_CHUNK_ROWS) -> Iterator[NDArray[np.float64]]:
    """Validated (rows, 48) float64 chunks of a waveform file, streamed (DataError as :func:`load_waveform`)."""
    rows = 0
    if file.suffix.lower() == ".npy":
        for values, numbers in _npy_blocks(file, (N_SAMPLES, N_SAMPLES + 1), chunk_rows):
            _check_values(file, values, numbers, "row", SAMPLE_NAMES, "sample")
            rows += values.shape[0]
            yield values
    else:
        with _open_text(file) as handle:
            number, fields = _first_line(file, handle)
            layout = _waveform_layout(file, number, fields)
            if not layout.header:
                _rewind_to(handle, number)
            for values, numbers in _csv_blocks(file, handle, layout, chunk_rows):
                _check_values(file, values, numbers, "line", layout.labels, "sample")
                rows += values.shape[0]
                yield values
    if rows == 0:
        raise DataError(f"{file}: no data rows")


def load_waveform(path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
    """Read pulses as a float32 (N, 48) array from CSV or .npy.

    Rows hold 48 samples, or 49 values whose first (a time value) is dropped; a CSV header row is
    allowed. Raises DataError (naming file, line and the expectation) for a missing file, a wrong number
    of columns, a non-numeric, NaN/inf or negative sample, or no rows. With ``max_rows`` only the first
    rows are read (and validated). Memory: the float32 result (twice while its chunks are joined) plus one
    float64 chunk being parsed.
    """
    if max_rows is not None and max_rows < 1:
        raise DataError(f"max_rows must be >= 1 or None, got {max_rows}")
    chunk_rows = _DEFAULT_CHUNK_ROWS if max_rows is None else min(_DEFAULT_CHUNK_ROWS, max_rows)
    chunks: list[np.ndarray] = []
    collected = 0
    for values in _waveform_blocks(Path(path), chunk_rows):
        chunks.append(values.astype(np.float32))
        collected += values.shape[0]
        if max_rows is not None and collected >= max_rows:
            break
    return np.concatenate(chunks)[:max_rows]


def _as_chunks(x: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    if isinstance(x, np.ndarray):
        yield x
    else:
        yield from x


def _validated(chunk: np.ndarray, kind: Kind, first_row: int) -> NDArray[np.float64]:
    array = np.asarray(chunk)
    if array.ndim != 2 or array.shape[1] != N_CELLS:
        raise DataError(f"write_dataset: {kind} data must have shape (N, 48), got {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"write_dataset: expected numeric data, got dtype {array.dtype}")
    values = array.astype(np.float64)
    numbers = np.arange(first_row, first_row + values.shape[0], dtype=np.int64)
    names = CALQ_NAMES if kind == "econt" else SAMPLE_NAMES
    _check_values("write_dataset", values, numbers, "row", names, "value")
    return values


def write_dataset(
    x: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str], *, kind: Kind = "econt"
) -> int:
    """Write (N, 48) rows (one array or an iterable of chunks) to ``.csv`` or ``.npy``; returns N.

    CSV gets a header (``CALQ_0..CALQ_47`` for econt, ``s0..s47`` for waveform); integer-valued data is
    written as integers, other data with 9 significant digits (float32 round-trips exactly). The file is
    written to a temporary file in the same directory and renamed at the end, so a reader never sees a
    partial file and an error leaves no file behind (an existing file stays untouched). Chunks of a .npy
    are gathered in memory first (the format needs the row count up front). Raises DataError for an
    unknown kind or suffix, a wrong shape, non-numeric, NaN/inf or negative values, no rows, or a path that
    cannot be written.
    """
    target = Path(path)
    if kind not in KINDS:
        raise DataError(f"unknown data kind {kind!r}; allowed: {', '.join(KINDS)}")
    suffix = target.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(f"{target}: unknown file suffix {target.suffix!r}; allowed: {', '.join(_FORMATS)}")
    # A unique hidden name next to the target (same file system, so the rename is atomic); unlike
    # tempfile.mkstemp, open() gives the final file the usual permissions of the umask.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        handle = temporary.open("xb")
    except OSError as exc:
        raise DataError(f"{target}: cannot write in {target.parent} ({exc.strerror})") from None
    rows = 0
    try:
        with handle:
            if suffix == ".npy":
                chunks = []
                for chunk in _as_chunks(x):
                    chunks.append(_validated(chunk, kind, rows + 1).astype(np.float32))
                    rows += chunks[-1].shape[0]
                if rows:
                    np.save(handle, np.concatenate(chunks))
            else:
                names = CALQ_NAMES if kind == "econt" else SAMPLE_NAMES
                handle.write((",".join(names) + "\n").encode())
                for chunk in _as_chunks(x):
                    values = _validated(chunk, kind, rows + 1)
                    integral = bool(np.all(values == np.round(values)))
                    np.savetxt(handle, values, fmt="%d" if integral else "%.9g", delimiter=",")
                    rows += values.shape[0]
        if rows == 0:
            raise DataError(f"write_dataset: no rows to write to {target}")
        os.replace(temporary, target)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DataError(f"{target}: could not be written ({exc.strerror or exc})") from exc
        raise
    return rows
