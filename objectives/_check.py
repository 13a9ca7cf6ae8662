"""Which task's format a data file is in, and a full check of one: every row read and validated, summarised.

The detection rules are those of the two built-in formats (see :func:`check_file`); each built-in task's
``recognizes`` and ``check_data`` call in here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from objectives._errors import DataError
from objectives._geometry import N_CELLS
from objectives._io import (
    _FORMATS,
    KINDS,
    N_SAMPLES,
    Kind,
    _econt_blocks,
    _first_line,
    _is_number,
    _open_npy,
    _open_text,
    _ReadStats,
    _waveform_blocks,
)

# Rows parsed at a time by check_file: its peak memory is a few copies of one chunk (about 5 MB each for
# 48 float64 columns) plus the bounded row-sum median, whatever the file's size.
_CHECK_CHUNK_ROWS = 16_384


@dataclass(frozen=True)
class FileSummary:
    """What :func:`check_file` found in a data file.

    ``columns`` counts the columns stored in the file, ``rows`` the usable rows (all-zero ECON-T rows are
    excluded and counted in ``dropped_zero_rows``); the statistics are over the usable rows.
    """

    path: Path
    kind: str  # the task (or data kind) the file was read as
    format: Literal["csv", "npy"]
    header: bool
    columns: int
    rows: int
    dropped_zero_rows: int
    nonzero_per_row: float
    row_sum_median: float
    row_sum_max: float
    value_min: float
    value_max: float


def detect_kind(path: Path) -> tuple[Kind, bool, int]:
    """(kind, has header, stored columns) from the file's shape and first rows (rules: :func:`check_file`)."""
    if path.suffix.lower() == ".npy":
        array = _open_npy(path)
        columns = array.shape[1] if array.ndim == 2 else 0
        if columns == N_SAMPLES + 1:
            return "waveform", False, columns
        head = np.asarray(array[:1000], dtype=np.float64) if array.ndim == 2 else np.zeros(0)
        integral = bool(np.all(head == np.round(head)))
        return ("econt" if integral else "waveform"), False, columns
    with _open_text(path) as handle:
        _, fields = _first_line(path, handle)
        header = not all(_is_number(f) for f in fields)
        if header:
            return ("econt" if "CALQ_0" in fields else "waveform"), True, len(fields)
        if len(fields) != N_SAMPLES:
            return ("econt" if len(fields) > N_SAMPLES + 1 else "waveform"), False, len(fields)
        integral = all(float(f) == round(float(f)) for f in fields)
        return ("econt" if integral else "waveform"), False, len(fields)


def looks_like(path: str | os.PathLike[str], kind: Kind) -> bool:
    """Whether ``path`` is a .csv/.npy file that :func:`check_file` would read as ``kind`` data.

    False, never an error, for other suffixes and for files the detector cannot read (another task's
    format); the column count must fit: 48 or 49 for waveform, at least 48 for econt.
    """
    file = Path(path)
    if file.suffix.lower() not in _FORMATS:
        return False
    try:
        detected, _, columns = detect_kind(file)
    except DataError:
        return False
    if kind == "waveform":
        return detected == kind and columns in (N_SAMPLES, N_SAMPLES + 1)
    return detected == kind and columns >= N_CELLS


def check_file(path: str | os.PathLike[str], kind: Kind | None = None) -> FileSummary:
    """Read a whole data file as ``kind`` data, validating every row, and summarise it.

    Without ``kind`` it is inferred: a header naming CALQ_0 means econt, another header waveform; without a
    header more than 49 columns means econt (the public headerless format), 49 waveform (time + samples),
    and for 48 columns integer values mean econt (ADC counts) and fractional ones waveform. Raises
    DataError as the loaders do, or for an unknown ``kind``.

    Memory is bounded: rows are read in chunks of 16,384 and only running statistics are kept (the row-sum
    median is exact up to a million rows, then estimated within 0.11 %: see ``_RowSumMedian``).
    """
    file = Path(path)
    if kind is not None and kind not in KINDS:
        raise DataError(f"unknown data kind {kind!r}; allowed: {', '.join(KINDS)}")
    detected, header, columns = detect_kind(file)
    kind = detected if kind is None else kind
    stats = _ReadStats()
    chunks: Iterator[np.ndarray] = (
        _econt_blocks(file, _CHECK_CHUNK_ROWS, stats)
        if kind == "econt"
        else _waveform_blocks(file, _CHECK_CHUNK_ROWS)
    )
    rows = nonzero = 0
    row_sums = _RowSumMedian()
    row_sum_max = value_min = value_max = 0.0
    for chunk in chunks:  # one chunk in memory at a time: running statistics only
        if not chunk.size:
            continue
        sums = chunk.sum(axis=1, dtype=np.float64)
        row_sums.add(sums)
        first = rows == 0
        rows += chunk.shape[0]
        nonzero += int(np.count_nonzero(chunk))
        row_sum_max = float(sums.max()) if first else max(row_sum_max, float(sums.max()))
        value_min = float(chunk.min()) if first else min(value_min, float(chunk.min()))
        value_max = float(chunk.max()) if first else max(value_max, float(chunk.max()))
    return FileSummary(
        path=file,
        kind=kind,
        format="npy" if file.suffix.lower() == ".npy" else "csv",
        header=header,
        columns=columns,
        rows=rows,
        dropped_zero_rows=stats.dropped_zero_rows,
        nonzero_per_row=nonzero / rows if rows else 0.0,
        row_sum_median=row_sums.median(),
        row_sum_max=row_sum_max,
        value_min=value_min,
        value_max=value_max,
    )


class _RowSumMedian:
    """The median of the row sums in bounded memory: exact while at most ``EXACT_ROWS`` sums have been seen
    (kept as float64, 8 MB), then estimated from a histogram of 20,000 log-spaced bins over [1e-6, 1e12)
    (row sums are never negative; sums below 1e-6 count in an underflow bin as 0, above 1e12 in the last
    bin), whose relative error is below 0.11 % (half a bin)."""

    EXACT_ROWS = 1_000_000
    _LOW, _HIGH, _BINS = -6.0, 12.0, 20_000

    def __init__(self) -> None:
        self._exact: list[np.ndarray] | None = []
        self._kept = 0
        self._counts = np.zeros(self._BINS + 1, dtype=np.int64)  # [0]: below 1e-6

    def add(self, sums: np.ndarray) -> None:
        if self._exact is not None:
            self._exact.append(sums)
            self._kept += sums.size
            if self._kept <= self.EXACT_ROWS:
                return
            sums, self._exact = np.concatenate(self._exact), None
        with np.errstate(divide="ignore"):
            logs = np.log10(sums)
        index = np.floor((logs - self._LOW) / (self._HIGH - self._LOW) * self._BINS).astype(np.int64) + 1
        index = np.clip(np.where(np.isfinite(logs), index, 0), 0, self._BINS)
        self._counts += np.bincount(index, minlength=self._BINS + 1)

    def median(self) -> float:
        if self._exact is not None:
            return float(np.median(np.concatenate(self._exact))) if self._kept else 0.0
        total = int(self._counts.sum())
        position = np.searchsorted(np.cumsum(self._counts), (total + 1) / 2)
        if position == 0:
            return 0.0
        width = (self._HIGH - self._LOW) / self._BINS
        return float(10 ** (self._LOW + (position - 0.5) * width))
