"""The `hwnas` command line. Only this module prints; every bad input exits with code 2 and one message.

Start-up is kept light: the read commands (`pareto`, `sweep status`, `sweep list`) go through the read-only
results layer and load neither torch, Optuna, Ray nor alembic; heavy modules are imported by the commands
that need them, and the `data` commands are mounted on first use.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from search.results import Results


class _LazyGroup(TyperGroup):
    """The root command group; `hwnas data` (which loads the task code, and with it torch) is mounted only
    when it is invoked, so every other command starts without it."""

    def _mount_data(self) -> None:
        if "data" not in self.commands:
            from search._data_cli import data_app

            self.add_command(typer.main.get_command(data_app), "data")

    # (typer vendors its own click: its types are not the installed click's, hence Any below)
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names if "data" in names else [*names, "data"]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name == "data" and "data" not in self.commands:
            return _DATA_STUB  # lists `data` in --help without loading it
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] == "data":
            self._mount_data()
        return super().resolve_command(ctx, args)


_DATA_STUB = TyperCommand("data", help="Generate and check data files.")

app = typer.Typer(
    cls=_LazyGroup,
    help="hwnas: architecture + hyperparameter search for FPGA/ASIC neural networks.",
    no_args_is_help=True,
)
sweep_app = typer.Typer(help="Launch, resume, validate and inspect sweeps.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", envvar="HWNAS_STORE", help="Store URL (sqlite:///FILE.db or postgresql+psycopg://...)."
    ),
]


# The library's input errors, by defining module: an error can only be raised once its module is loaded, so
# they are looked up in sys.modules instead of imported (which would load torch for every command).
_USER_ERRORS = (
    ("search._config", "ConfigError"),
    ("search.storage._records", "StoreError"),
    ("search.execution._setup", "SweepError"),
    ("search.execution._loop", "SweepError"),
    ("search.strategies._base", "StrategyError"),
    ("spaces._errors", "SpaceError"),
    ("hw_models._errors", "HWError"),
    ("objectives._errors", "DataError"),
)


def _is_user_error(exc: Exception) -> bool:
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type) and isinstance(exc, error):
            return True
    return False


def cli_errors(func: F) -> F:
    """Turn the library's input errors into one clear message and exit code 2 (never a traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if not _is_user_error(exc):
                raise
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("ax", "optuna", "hls4ml", "alembic", "brevitas"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _route_optuna_logging() -> None:
    """Optuna installs its own stderr handler; route its records through ours instead (commands that run
    strategies call this; the read commands never load Optuna)."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def _store_url(store: str | None) -> str:
    from search.storage import DEFAULT_STORE_URL

    return store or DEFAULT_STORE_URL


def _open_results(store: str | None) -> Results:
    """The store opened read-only: missing, unmigrated or newer stores exit 2 and are left as they are."""
    from search.results import Results

    return Results.open(_store_url(store))


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


def _run(config: Any) -> None:
    from search.execution._loop import run_sweep
    from search.storage import DEFAULT_STORE_URL

    _route_optuna_logging()

    def header() -> None:  # printed once the store opened: a refused config prints only its error
        err.print(
            f"sweep [bold]{config.name}[/]: {config.trials} trials of {config.epochs} epochs, strategy "
            f"{config.strategy.name}, {config.executor.workers} worker(s), store {config.store}"
        )

    summary = run_sweep(config, progress=_trial_printer([o.name for o in config.objectives]), on_start=header)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.counts.items()))
    err.print(f"sweep {summary.name}: {counts}" + ("; interrupted" if summary.interrupted else ""))
    for note in summary.notes:
        err.print(note)
    with _open_results(config.store) as results:
        sweep = results.get_sweep(config.name)
        if sweep is not None:
            _print_front(results.report(sweep))
    store_flag = "" if config.store == DEFAULT_STORE_URL else f" --store {config.store}"
    if summary.interrupted:
        err.print(f"continue with: hwnas sweep resume {config.name}{store_flag}")
        raise typer.Exit(130)
    err.print(
        f"next: hwnas pareto {config.name}{store_flag} --plot front.png   |   "
        f"hwnas export {config.name}{store_flag} --pareto --out exports/"
    )


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


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """hwnas: architecture + hyperparameter search for FPGA/ASIC neural networks."""
    _setup_logging(verbose)


@sweep_app.command("launch")
@cli_errors
def launch(
    file: Annotated[Path, typer.Argument(help="Sweep config YAML.")],
    store: StoreOption = None,
    name: Annotated[str | None, typer.Option(help="Override the sweep name.")] = None,
    trials: Annotated[int | None, typer.Option(help="Override the trial budget.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override the number of worker processes.")] = None,
) -> None:
    """Create a sweep from FILE and run it (an identical existing sweep continues)."""
    from search._config import load_config

    base = load_config(file)
    overrides: dict[str, Any] = {"store": store, "name": name, "trials": trials}
    if workers is not None:
        overrides["executor"] = {**base.executor.model_dump(), "workers": workers}
    _run(load_config(file, **overrides))


@sweep_app.command("resume")
@cli_errors
def resume(
    name: Annotated[str, typer.Argument(help="Name of a sweep in the store.")],
    store: StoreOption = None,
    trials: Annotated[int | None, typer.Option(help="Raise the trial budget.")] = None,
    workers: Annotated[int | None, typer.Option(help="Number of worker processes.")] = None,
) -> None:
    """Continue a stopped or crashed sweep with no lost and no duplicated trials."""
    from search._config import parse_config
    from search.execution._loop import load_sweep
    from search.results import require_store
    from search.storage._store import Store

    url = _store_url(store)
    require_store(url)  # resume continues a stored sweep: it never creates a store
    _, config = load_sweep(Store(url), name)
    data = config.model_dump(mode="json")
    data["store"] = url
    if trials is not None:
        data["trials"] = trials
    if workers is not None:
        data["executor"]["workers"] = workers
    _run(parse_config(data, source=f"sweep {name}"))


@sweep_app.command("confirm")
@cli_errors
def confirm(
    name: Annotated[str, typer.Argument(help="Name of a sweep in the store.")],
    seeds: Annotated[
        int, typer.Option(min=1, help="Extra seeds per front trial (existing replicates count).")
    ] = 3,
    store: StoreOption = None,
    workers: Annotated[int | None, typer.Option(help="Number of worker processes.")] = None,
) -> None:
    """Re-evaluate the Pareto front with extra seeds and show the confirmed front (mean ± std)."""
    from search._config import parse_config
    from search.execution._loop import confirm_sweep, load_sweep
    from search.results import require_store
    from search.storage._store import Store

    url = _store_url(store)
    require_store(url)  # confirm re-evaluates a stored sweep: it never creates a store
    _, config = load_sweep(Store(url), name)
    data = config.model_dump(mode="json")
    data["store"] = url
    if workers is not None:
        data["executor"]["workers"] = workers
    config = parse_config(data, source=f"sweep {name}")  # overrides are validated like launch's
    _route_optuna_logging()
    summary = confirm_sweep(config, seeds, progress=_trial_printer([o.name for o in config.objectives]))
    with _open_results(url) as results:
        sweep = results.sweep(name)
        _print_confirmed(sweep, *results.confirmed_front(sweep))
    if summary.interrupted:
        raise typer.Exit(130)


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


@sweep_app.command("validate")
@cli_errors
def validate(file: Annotated[Path, typer.Argument(help="Sweep config YAML.")]) -> None:
    """Check a sweep config and explain what is wrong and where."""
    from search._config import load_config
    from search.execution._loop import prepare
    from search.execution._preflight import check_environment, feasibility

    _route_optuna_logging()
    config = load_config(file)
    space, _, strategy = prepare(config)  # the checks launch makes before it creates anything
    strategy.close()
    notes = check_environment(config)  # store, Ray address, CPUs: read-only, nothing started
    warning = feasibility(config, space)
    out.print(
        f"{file}: valid. sweep {config.name}: task {config.task.name}, objectives "
        + ", ".join(f"{o.name} ({o.direction})" for o in config.objectives)
        + f", strategy {config.strategy.name}, {config.trials} trials x {config.epochs} epochs"
    )
    for note in notes:
        out.print(f"  {note}", highlight=False)
    if warning is not None:
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


@sweep_app.command("list")
@cli_errors
def list_sweeps(store: StoreOption = None) -> None:
    """List the sweeps in the store with their progress."""
    from search.storage._schema import TrialState

    with _open_results(store) as results:
        overviews = results.sweeps()  # one query: sweeps with their counts by state
    table = Table("sweep", "status", "trials", "completed", "failed", "infeasible", "updated")
    for overview in overviews:
        sweep, counts = overview.sweep, overview.counts
        table.add_row(
            sweep.name,
            sweep.status,
            str(overview.total),
            str(counts.get(TrialState.COMPLETED, 0)),
            str(counts.get(TrialState.FAILED, 0)),
            str(counts.get(TrialState.INFEASIBLE, 0)),
            f"{sweep.updated_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@sweep_app.command("status")
@cli_errors
def status(
    name: Annotated[str, typer.Argument()],
    store: StoreOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many trials (the first, by number).")
    ] = None,
    after: Annotated[
        int | None, typer.Option(help="Show only trials numbered above this one (the next page).")
    ] = None,
) -> None:
    """Show a sweep's trials: state, epochs reached, objectives or error."""
    from search.results._report import describe

    with _open_results(store) as results:
        sweep = results.sweep(name)
        if limit is None and after is None:
            trials, next_after = results.trials(sweep.id), None
        else:
            page = results.page(sweep.id, after=after, limit=limit or 2**31 - 1)
            trials, next_after = page.trials, page.next_after
    objectives = [o["name"] for o in sweep.objectives]
    rows = [
        [
            str(t.number),
            t.state.value,
            str(t.fidelity),
            *(_fmt(t.results[o]) if o in t.results else "" for o in objectives),
            describe(t.params),
            (t.error or "")[:80],
        ]
        for t in trials
    ]
    _print_rows(
        f"{name} ({sweep.status})", ["trial", "state", "epochs", *objectives, "architecture", "error"], rows
    )
    if next_after is not None:
        err.print(f"more trials: hwnas sweep status {name} --after {next_after} --limit {limit}")


# Above this many rows a table is laid out here instead of by rich (which takes ~1 ms a row): the characters
# rich prints for a table that fits the console, without its styles (bold header, italic title); a table
# wider than the console is not squeezed into it.
_RICH_MAX_ROWS = 500
_PLAIN = re.compile(r"^[^\x00-\x1f\x7f]*$")  # no newline, tab or escape: one line per cell, as rich would


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


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("pareto")
@cli_errors
def pareto(
    name: Annotated[str, typer.Argument(help="Name of a sweep in the store.")],
    store: StoreOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    plot: Annotated[Path | None, typer.Option(help="Write a quality-vs-cost PNG here.")] = None,
    confirmed: Annotated[
        bool, typer.Option(help="Show the front of replicate means (see `sweep confirm`).")
    ] = False,
) -> None:
    """Print the Pareto front (completed full-fidelity trials) and its hypervolume."""
    with _open_results(store) as results:
        sweep = results.sweep(name)
        if confirmed:
            _print_confirmed(sweep, *results.confirmed_front(sweep))
            return
        report = results.report(sweep)
    if fmt is Format.csv:
        sys.stdout.write(report.to_csv())
    elif fmt is Format.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        _print_front(report)
    if plot is not None:
        if len(report.objectives) < 2:
            raise typer.BadParameter("--plot needs a sweep with at least two objectives")
        report.plot(plot)
        err.print(f"plot written to {plot}")


@app.command("export")
@cli_errors
def export(
    name: Annotated[str, typer.Argument(help="Name of a sweep in the store.")],
    trial: Annotated[
        list[int] | None, typer.Option("--trial", help="Trial number to export (repeatable).")
    ] = None,
    pareto: Annotated[bool, typer.Option("--pareto", help="Export every trial on the Pareto front.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the hls4ml projects.")] = Path(
        "exports"
    ),
    verify: Annotated[bool, typer.Option(help="Compile with g++ and compare with the torch model.")] = True,
    store: StoreOption = None,
) -> None:
    """Write trained encoders as hls4ml projects and verify them bit for bit (g++ emulation)."""
    from search._export import export_trial, select_trials
    from search.execution._loop import load_sweep
    from search.storage._store import Store

    with _open_results(store) as results:  # a missing store exits 2 here, before anything is written
        sweep = results.sweep(name)
        chosen = select_trials(results, sweep, trial or [], pareto)
    db = Store(_store_url(store))  # export records the projects it writes as artifacts
    _, config = load_sweep(db, name)
    failed = 0
    for record in chosen:
        result = export_trial(db, config, record, out_dir / name, verify=verify)
        if result.verified is None:
            check = "not verified"
        else:
            kind = "bit-exact" if result.exact else f"max |error| {result.max_abs_error:.3g}"
            check = ("verified, " if result.verified else "VERIFICATION FAILED, ") + kind
            failed += not result.verified
        out.print(f"trial {result.number}: {result.directory} ({check})", highlight=False)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
