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

from objectives import ObjectivesError, Task, get_task, task_for_file, task_names


def _synth_options_help() -> str:
    described = [
        f"{name}: {option} ({help_text})"
        for name in task_names()
        for option, help_text in get_task(name).synth_options.items()
    ]
    return "Generator option NAME=VALUE of the task (repeatable). " + ("; ".join(described) or "none")


data_app = typer.Typer(
    help=f"Generate and check data files of the registered tasks ({', '.join(task_names())}).",
    no_args_is_help=True,
)

_CHUNK_ROWS = 100_000  # rows generated per step; part of what --seed reproduces


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _parse_options(task: Task, texts: list[str]) -> dict[str, float]:
    """``["pileup=5"]`` -> ``{"pileup": 5.0}``, each option one the task's generator takes."""
    options: dict[str, float] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        try:
            number = float(value) if sep else None
        except ValueError:
            number = None
        if number is None:
            raise _fail(f"--option {text!r}: expected NAME=NUMBER, e.g. pileup=5")
        options[key.strip()] = number
    try:
        task.check_synth_options(options)
    except ObjectivesError as exc:
        raise _fail(str(exc)) from None
    return options


def _chunks(
    task: Task, rows: int, seed: int, options: dict[str, float], progress: Progress
) -> Iterator[np.ndarray]:
    """Generate ``rows`` rows in chunks, each seeded from (seed, chunk index), advancing the progress bar."""
    bar = progress.add_task(f"{task.name} rows", total=rows)
    seeds = np.random.SeedSequence(seed).spawn((rows + _CHUNK_ROWS - 1) // _CHUNK_ROWS)
    for index, chunk_seed in enumerate(seeds):
        size = min(_CHUNK_ROWS, rows - index * _CHUNK_ROWS)
        state = int(chunk_seed.generate_state(1)[0])
        yield task.synthesize(size, seed=state, **options)
        progress.advance(bar, size)


def _task(name: str) -> Task:
    try:
        return get_task(name)
    except ObjectivesError as exc:
        raise _fail(str(exc)) from None


@data_app.command()
def synth(
    task: Annotated[str, typer.Argument(help=f"Task whose data to generate: {', '.join(task_names())}.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Number of rows to generate.")],
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv (with header) or .npy.")],
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed and rows give the same file.")
    ] = 0,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", metavar="NAME=VALUE", help=_synth_options_help())
    ] = None,
) -> None:
    """Generate synthetic rows for TASK with the task's generator and write them atomically to OUT."""
    chosen = _task(task)
    options = _parse_options(chosen, option or [])
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            written = chosen.write_data(_chunks(chosen, rows, seed, options, progress), out)
    except ObjectivesError as exc:  # DataError included: a bad --out suffix or an unwritable directory
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {written} {task} rows to {out}")


@data_app.command()
def check(
    file: Annotated[Path, typer.Argument(help="Data file to check (.csv or .npy).")],
    task: Annotated[
        str | None,
        typer.Option("--task", help="Task whose checker reads FILE; default: the task that recognizes it."),
    ] = None,
) -> None:
    """Read every row of FILE with the task's checker, validate it and print a summary."""
    try:
        checker = task_for_file(file) if task is None else get_task(task)
        summary = checker.check_data(file)
    except ObjectivesError as exc:  # DataError included
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
