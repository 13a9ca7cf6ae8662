"""What the CLI prints: trial progress lines, fronts and tables (rich, or written directly for long tables)."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console()
err = Console(stderr=True)
# Past this many rows a table is written directly: rich takes about 1 ms a row.
_RICH_MAX_ROWS = 500
_PLAIN = re.compile(r"^[^\x00-\x1f\x7f]*$")  # no newline, tab or escape: one line per cell, as rich would


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _trial_printer(objectives: list[str]) -> Callable[[Any, int, int], None]:
    def print_trial(trial: Any, done: int, total: int) -> None:
        values = ", ".join(f"{k}={_fmt(trial.results[k])}" for k in objectives if k in trial.results)
        detail = values or (trial.error or "")
        replicate = f" (replicate of {trial.replicate_of})" if trial.replicate_of is not None else ""
        err.print(
            f"[{done}/{total}] trial {trial.number}{replicate} {trial.state.value}: {detail}",
            highlight=False,
            markup=False,
        )

    return print_trial


def _print_front(report: Any) -> None:
    rows = report.rows()
    title = f"Pareto front of {report.sweep.name}"
    if report.hypervolume is not None:
        title += f" (hypervolume {report.hypervolume:.4g}, reference point {report.sweep.reference_point})"
    table = Table(title=title)
    columns = list(rows[0]) if rows else ["trial", *report.objectives]
    for column in columns:
        table.add_column(
            column, justify="right" if column in report.objectives or column == "trial" else "left"
        )
    for row in rows:
        table.add_row(*(_fmt(row[c]) for c in columns))
    out.print(table)
    if not rows:
        out.print("no completed trials yet")
    out.print("cost quantities are estimates from the hls4ml model graph (no synthesis)")


def _print_confirmed(sweep: Any, front: list[Any], volume: float | None) -> None:
    from search.results._report import describe

    names = [o["name"] for o in sweep.objectives]
    title = f"Confirmed front of {sweep.name}"
    if volume is not None:
        title += f" (hypervolume of the means {volume:.4g})"
    table = Table("trial", "runs", *(f"{n} mean ± std" for n in names), "architecture", title=title)
    for point in front:
        table.add_row(
            str(point.trial.number),
            str(point.evaluations),
            *(f"{_fmt(point.mean[n])} ± {_fmt(point.std[n])}" for n in names),
            describe(point.trial.params),
        )
    out.print(table)
    if not front:
        out.print("no confirmed trials yet: run `hwnas sweep confirm NAME --seeds K`")


def _print_rows(title: str, headers: list[str], rows: list[list[str]], *, fast: bool | None = None) -> None:
    """Print a table of plain-text cells (shown literally, never as rich markup), left-justified."""
    widths = [cell_len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            length = cell_len(cell)
            if length > widths[i]:
                widths[i] = length
    total = sum(widths) + 3 * len(widths) + 1
    if fast is None:
        fast = (
            len(rows) > _RICH_MAX_ROWS
            and cell_len(title) <= total
            and all(_PLAIN.match(cell) for row in rows for cell in row)
        )
    if not fast:
        table = Table(*headers, title=title)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        out.print(table)
        return

    def line(cells: list[str], bar: str) -> str:
        padded = (f" {c}{' ' * (w - cell_len(c))} " for c, w in zip(cells, widths, strict=True))
        return bar + bar.join(padded) + bar

    left = (total - cell_len(title)) // 2
    lines = [
        " " * left + title + " " * (total - left - cell_len(title)),
        "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓",
        line(headers, "┃"),
        "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩",
        *(line(row, "│") for row in rows),
        "└" + "┴".join("─" * (w + 2) for w in widths) + "┘",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
