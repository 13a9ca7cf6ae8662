"""The `hwnas` command line. Only this module prints; every bad input exits with code 2 and one message.

Start-up is kept light: the read commands (`pareto`, `sweep status`, `sweep list`) go through the read-only
results layer and load neither torch, Optuna, Ray nor alembic; heavy modules are imported by the commands
that need them, and the `data` commands are mounted on first use.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from search._cli_output import _fmt, _print_confirmed, _print_front, _print_rows, _trial_printer, err, out

if TYPE_CHECKING:
    from search.results import Results


class _LazyGroup(TyperGroup):
    """The root command group; `hwnas data` and `hwnas task` (which load the task code, and with it torch)
    are mounted only when invoked, so every other command starts without them."""

    def _mount(self, name: str) -> None:
        if name not in self.commands:
            if name == "data":
                from search._data_cli import data_app as sub_app
            else:
                from search._task_cli import task_app as sub_app
            self.add_command(typer.main.get_command(sub_app), name)

    # (typer vendors its own click: its types are not the installed click's, hence Any below)
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return [*names, *(name for name in _LAZY if name not in names)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            return _LAZY[cmd_name]  # listed in --help without loading it
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in _LAZY:
            self._mount(args[0])
        return super().resolve_command(ctx, args)


_LAZY = {
    "data": TyperCommand("data", help="Generate and check data files."),
    "task": TyperCommand("task", help="List the tasks and check one (data, model, cost path)."),
}

app = typer.Typer(
    cls=_LazyGroup,
    help="hwnas: architecture + hyperparameter search for FPGA/ASIC neural networks.",
    no_args_is_help=True,
)
sweep_app = typer.Typer(help="Launch, resume, validate and inspect sweeps.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")


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
    ("objectives._errors", "ObjectivesError"),  # DataError included
    ("dashboards._serve", "DashboardError"),
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


class IOType(StrEnum):
    io_parallel = "io_parallel"
    io_stream = "io_stream"


class Strategy(StrEnum):
    Latency = "Latency"
    Resource = "Resource"
    distributed_arithmetic = "distributed_arithmetic"


@app.command("export")
@cli_errors
def export(
    name: Annotated[str, typer.Argument(help="Name of a sweep in the store.")],
    pareto: Annotated[
        bool, typer.Option("--pareto", help="Export every member of the Pareto front.")
    ] = False,
    trial: Annotated[
        list[int] | None, typer.Option("--trial", help="Trial number to export (repeatable).")
    ] = None,
    best: Annotated[
        str | None,
        typer.Option("--best", metavar="METRIC", help="Export the trial with the best mean of METRIC."),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--max", metavar="COST_EXPR", help="With --best: a cost limit such as 'ops <= 6544' (repeatable)."
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="New (or empty) output directory; default exports/NAME.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out directory.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Export the whole model (decoder too), not just the on-chip part.")
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(help="One fixed-point type for every tensor of a float model, e.g. 'ap_fixed<18,8>'."),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(min=0.0, help="Largest relative change of the task metrics in the hls4ml emulation."),
    ] = 0.01,
    io_type: Annotated[IOType | None, typer.Option(help="Override the sweep's io_type.")] = None,
    reuse_factor: Annotated[
        int | None, typer.Option(min=1, help="Override the sweep's reuse factor.")
    ] = None,
    strategy: Annotated[Strategy | None, typer.Option(help="Override the sweep's hls4ml strategy.")] = None,
    store: StoreOption = None,
) -> None:
    """Export trained models to firmware: per model a verified hls4ml project (g++ emulation), (Q)ONNX,
    weights, cost report, metrics and a model card; an index ranks them along the front.

    Exit code 0 when every model verified, 1 when one missed its tolerance (it is still written), 2 on bad
    input (nothing is written).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search._export import ExportOptions, export_settings, export_trials, select_trials
    from search.execution._loop import load_sweep
    from search.execution._trial import job_task
    from search.storage._store import Store

    with _open_results(store) as results:  # a missing store exits 2 here, before anything is written
        sweep = results.sweep(name)
        db = Store(_store_url(store))  # export records what it writes as artifacts
        _, config = load_sweep(db, name)
        directions = {
            **dict(job_task(config.task).metric_directions),
            **{o["name"]: o["direction"] for o in sweep.objectives},
        }
        chosen, ranks = select_trials(
            results,
            sweep,
            numbers=trial or [],
            pareto=pareto,
            best=best,
            limits=limit or [],
            directions=directions,
        )
    options = ExportOptions(
        out=out_dir if out_dir is not None else Path("exports") / name,
        full=full,
        precision=precision,
        tolerance=tolerance,
        io_type=None if io_type is None else io_type.value,
        reuse_factor=reuse_factor,
        strategy=None if strategy is None else strategy.value,
        force=force,
    )
    export_settings(config, options)  # bad overrides exit 2 before any work
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task_id = bar.add_task("export", total=len(chosen))
        done: set[int] = set()

        def progress(record: Any, step: str) -> None:
            if step == "done":
                done.add(record.number)
            bar.update(task_id, completed=len(done), description=f"trial {record.number}: {step}")

        summary = export_trials(db, config, chosen, options, ranks=ranks, progress=progress)
    for member in summary.members:
        if member.problem is not None and not member.precision:
            check = f"NOT EXPORTED: {member.problem}"
        elif member.exact:
            check = "verified, bit-exact"
        else:
            changes = ", ".join(f"{k} {v:+.3%}" for k, v in member.metric_changes.items())
            verdict = "verified" if member.verified else "VERIFICATION FAILED"
            check = f"{verdict}: {changes} (tolerance ±{tolerance:.2%}), max |error| {member.max_abs_error:.3g}; {member.precision}"
            if member.problem:
                check += f"; {member.problem}"
        out.print(f"trial {member.number}: {summary.out / member.folder} ({check})", highlight=False)
    out.print(f"index: {summary.out / 'index.md'} and index.csv", highlight=False)
    if not summary.all_verified:
        failed = [m.number for m in summary.members if not m.verified]
        err.print(f"not verified: trial(s) {', '.join(map(str, failed))} (see their verification.json)")
        raise typer.Exit(1)


@app.command("dashboard")
@cli_errors
def dashboard(
    store: StoreOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but a loopback address serves the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8765,
) -> None:
    """Serve a read-only web dashboard of the store's sweeps, live while they run (Ctrl-C stops it)."""
    from dashboards import is_loopback, serve
    from search.storage._records import redacted

    url = _store_url(store)

    def ready(address: str) -> None:
        err.print(f"dashboard of {redacted(url)} at {address} (read-only; Ctrl-C stops it)", highlight=False)
        if not is_loopback(host):
            err.print(
                f"[bold yellow]warning:[/] listening on {host}, not on this machine only: anyone who can "
                f"reach {address} can read every sweep in the store",
                highlight=False,
            )

    serve(url, host=host, port=port, on_ready=ready)


if __name__ == "__main__":
    app()
