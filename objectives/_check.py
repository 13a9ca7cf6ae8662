"""Which task's format a data file is in, and a full check of one: every row read and validated, summarised.

The detection rules are those of the two built-in formats (see :func:`check_file`); each built-in task's
``recognizes`` and ``check_data`` call in here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from objectives._errors import DataError
from objectives._geometry import N_CELLS
from objectives._io import (
    _DEFAULT_CHUNK_ROWS,
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
    load_waveform,
)


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
    """
    file = Path(path)
    if kind is not None and kind not in KINDS:
        raise DataError(f"unknown data kind {kind!r}; allowed: {', '.join(KINDS)}")
    detected, header, columns = detect_kind(file)
    kind = detected if kind is None else kind
    stats = _ReadStats()
    chunks = (
        list(_econt_blocks(file, _DEFAULT_CHUNK_ROWS, stats)) if kind == "econt" else [load_waveform(file)]
    )
    rows = sum(chunk.shape[0] for chunk in chunks)
    row_sums = np.concatenate([chunk.sum(axis=1, dtype=np.float64) for chunk in chunks])
    nonzero = sum(int(np.count_nonzero(chunk)) for chunk in chunks)
    return FileSummary(
        path=file,
        kind=kind,
        format="npy" if file.suffix.lower() == ".npy" else "csv",
        header=header,
        columns=columns,
        rows=rows,
        dropped_zero_rows=stats.dropped_zero_rows,
        nonzero_per_row=nonzero / rows if rows else 0.0,
        row_sum_median=float(np.median(row_sums)) if rows else 0.0,
        row_sum_max=float(row_sums.max()) if rows else 0.0,
        value_min=min((float(chunk.min()) for chunk in chunks if chunk.size), default=0.0),
        value_max=max((float(chunk.max()) for chunk in chunks if chunk.size), default=0.0),
    )
