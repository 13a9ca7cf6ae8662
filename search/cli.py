"""The `hwnas` command line. Only this module prints; every bad input exits with code 2 and one message."""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="hwnas: architecture + hyperparameter search for FPGA/ASIC neural networks.", no_args_is_help=True
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


def _user_errors() -> tuple[type[Exception], ...]:
    from hw_models import HWError
    from objectives import ObjectivesError
    from search._config import ConfigError
    from search.execution._loop import SweepError
    from search.storage._store import StoreError
    from search.strategies import StrategyError
    from spaces import SpaceError

    return (ConfigError, StoreError, SweepError, StrategyError, SpaceError, HWError, ObjectivesError)


def cli_errors(func: F) -> F:
    """Turn the library's input errors into one clear message and exit code 2 (never a traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _user_errors() as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import optuna

    # Optuna installs its own stderr handler; route its records through ours instead.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    for noisy in ("ax", "optuna", "hls4ml", "alembic", "brevitas"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    from search.results._report import front_report
    from search.storage._store import Store

    err.print(
        f"sweep [bold]{config.name}[/]: {config.trials} trials of {config.epochs} epochs, strategy "
        f"{config.strategy.name}, {config.executor.workers} worker(s), store {config.store}"
    )
    summary = run_sweep(config, progress=_trial_printer([o.name for o in config.objectives]))
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.counts.items()))
    err.print(f"sweep {summary.name}: {counts}" + ("; interrupted" if summary.interrupted else ""))
    for note in summary.notes:
        err.print(note)
    store = Store(config.store)
    sweep = store.get_sweep(config.name)
    if sweep is not None:
        _print_front(front_report(store, sweep))
    store_flag = "" if config.store == "sqlite:///hwnas.db" else f" --store {config.store}"
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
    from search.storage._store import Store

    url = store or "sqlite:///hwnas.db"
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
    seeds: Annotated[int, typer.Option(help="Extra seeds per front trial (existing replicates count).")] = 3,
    store: StoreOption = None,
    workers: Annotated[int | None, typer.Option(help="Number of worker processes.")] = None,
) -> None:
    """Re-evaluate the Pareto front with extra seeds and show the confirmed front (mean ± std)."""
    from search.execution._loop import confirm_sweep, load_sweep
    from search.results import confirmed_front
    from search.storage._store import Store

    url = store or "sqlite:///hwnas.db"
    db = Store(url)
    _, config = load_sweep(db, name)
    overrides: dict[str, Any] = {"store": url}
    if workers is not None:
        overrides["executor"] = config.executor.model_copy(update={"workers": workers})
    config = config.model_copy(update=overrides)
    summary = confirm_sweep(config, seeds, progress=_trial_printer([o.name for o in config.objectives]))
    sweep, _ = load_sweep(db, name)
    _print_confirmed(sweep, *confirmed_front(db, sweep))
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

    config = load_config(file)
    prepare(config)
    out.print(
        f"{file}: valid. sweep {config.name}: task {config.task.name}, objectives "
        + ", ".join(f"{o.name} ({o.direction})" for o in config.objectives)
        + f", strategy {config.strategy.name}, {config.trials} trials x {config.epochs} epochs"
    )


@sweep_app.command("list")
@cli_errors
def list_sweeps(store: StoreOption = None) -> None:
    """List the sweeps in the store with their progress."""
    from search.storage._store import Store

    db = Store(store or "sqlite:///hwnas.db")
    table = Table("sweep", "status", "trials", "completed", "failed", "infeasible", "updated")
    for sweep in db.list_sweeps():
        trials = db.trials(sweep.id)
        states = [t.state.value for t in trials]
        table.add_row(
            sweep.name,
            sweep.status,
            str(len(trials)),
            str(states.count("COMPLETED")),
            str(states.count("FAILED")),
            str(states.count("INFEASIBLE")),
            f"{sweep.updated_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@sweep_app.command("status")
@cli_errors
def status(name: Annotated[str, typer.Argument()], store: StoreOption = None) -> None:
    """Show a sweep's trials: state, epochs reached, objectives or error."""
    from search.execution._loop import load_sweep
    from search.results._report import describe
    from search.storage._store import Store

    db = Store(store or "sqlite:///hwnas.db")
    sweep, config = load_sweep(db, name)
    objectives = [o.name for o in config.objectives]
    table = Table(
        "trial", "state", "epochs", *objectives, "architecture", "error", title=f"{name} ({sweep.status})"
    )
    for t in db.trials(sweep.id):
        table.add_row(
            str(t.number),
            t.state.value,
            str(t.fidelity),
            *(_fmt(t.results[o]) if o in t.results else "" for o in objectives),
            describe(t.params),
            (t.error or "")[:80],
        )
    out.print(table)


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
    from search.execution._loop import load_sweep
    from search.results._report import front_report
    from search.storage._store import Store

    db = Store(store or "sqlite:///hwnas.db")
    sweep, _ = load_sweep(db, name)
    if confirmed:
        from search.results import confirmed_front

        _print_confirmed(sweep, *confirmed_front(db, sweep))
        return
    report = front_report(db, sweep)
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

    db = Store(store or "sqlite:///hwnas.db")
    sweep, config = load_sweep(db, name)
    failed = 0
    for record in select_trials(db, sweep, trial or [], pareto):
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


def _mount_data_commands() -> None:
    from search._data_cli import data_app

    app.add_typer(data_app, name="data")
    from search._task_cli import task_app

    app.add_typer(task_app, name="task")


_mount_data_commands()

if __name__ == "__main__":
    app()
