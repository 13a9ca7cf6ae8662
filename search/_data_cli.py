"""`hwnas data`: generate synthetic data files and check data files before a sweep uses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from objectives import (
    TASK_NAMES,
    DataError,
    ObjectivesError,
    check_file,
    synth_econt,
    synth_waveform,
    write_dataset,
)

data_app = typer.Typer(
    help="Generate and check data files (econt: 48 trigger-cell charges per row; waveform: 48 samples).",
    no_args_is_help=True,
)

_CHUNK_ROWS = 100_000  # rows generated per step; part of what --seed reproduces


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _chunks(task: str, rows: int, seed: int, pileup: float, progress: Progress) -> Iterator[np.ndarray]:
    """Generate ``rows`` rows in chunks, each seeded from (seed, chunk index), advancing the progress bar."""
    bar = progress.add_task(f"{task} rows", total=rows)
    seeds = np.random.SeedSequence(seed).spawn((rows + _CHUNK_ROWS - 1) // _CHUNK_ROWS)
    for index, chunk_seed in enumerate(seeds):
        size = min(_CHUNK_ROWS, rows - index * _CHUNK_ROWS)
        state = int(chunk_seed.generate_state(1)[0])
        if task == "econt":
            yield synth_econt(size, seed=state, pileup=pileup)
        else:
            yield synth_waveform(size, seed=state)
        progress.advance(bar, size)


@data_app.command()
def synth(
    task: Annotated[str, typer.Argument(help=f"Task whose data to generate: {', '.join(TASK_NAMES)}.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Number of rows to generate.")],
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv (with header) or .npy.")],
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed and rows give the same file.")
    ] = 0,
    pileup: Annotated[
        float,
        typer.Option("--pileup", min=0.0, help="econt only: mean pile-up charge per cell in ADC counts."),
    ] = 0.0,
) -> None:
    """Generate synthetic rows for TASK and write them atomically to OUT."""
    if task not in TASK_NAMES:
        raise _fail(f"unknown task {task!r}; allowed: {', '.join(TASK_NAMES)}")
    if pileup > 0 and task != "econt":
        raise _fail(f"--pileup applies to the econt task only, not {task!r}")
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            chunks = _chunks(task, rows, seed, pileup, progress)
            written = write_dataset(chunks, out, kind="econt" if task == "econt" else "waveform")
    except ObjectivesError as exc:  # DataError included: a bad --out suffix or an unwritable directory
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {written} {task} rows to {out}")


@data_app.command()
def check(file: Annotated[Path, typer.Argument(help="Data file to check (.csv or .npy).")]) -> None:
    """Read every row of FILE, validate it and print a summary."""
    try:
        summary = check_file(file)
    except DataError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=str(summary.path), show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("kind", summary.kind),
        ("format", summary.format + (" with header" if summary.header else "")),
        ("columns in file", str(summary.columns)),
        ("rows", f"{summary.rows:,}"),
        ("dropped all-zero rows", f"{summary.dropped_zero_rows:,}"),
        ("non-zero values per row (mean)", f"{summary.nonzero_per_row:.3g}"),
        ("row sum median", f"{summary.row_sum_median:.6g}"),
        ("row sum max", f"{summary.row_sum_max:.6g}"),
        ("value range", f"{summary.value_min:.6g} .. {summary.value_max:.6g}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
