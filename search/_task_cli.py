"""`hwnas task`: list the registered tasks and what they declare, and check that a task works end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

task_app = typer.Typer(help="List tasks (built-in, plugin, entry point) and check one.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def resolve(name_or_spec: str, loss: str | None = None) -> Any:
    """A registered task by name, or a plugin spec (``file.py:Class``, ``module:Class``) loaded first."""
    from objectives import ObjectivesError, get_task, load_task_plugin
    from objectives._plugins import absolute_spec

    try:
        name = name_or_spec
        if ":" in name_or_spec or name_or_spec.endswith(".py"):
            name = load_task_plugin(absolute_spec(name_or_spec))
        return get_task(name, loss=loss)
    except ObjectivesError as exc:
        raise _fail(str(exc)) from None


@task_app.command("list")
def list_tasks(
    plugin: Annotated[
        list[str] | None, typer.Option("--plugin", help="Also load this plugin spec (repeatable).")
    ] = None,
) -> None:
    """Every registered task: input shape, model family, losses, metrics (direction), primary metric."""
    from objectives import get_task, task_names

    for spec in plugin or []:
        resolve(spec)
    table = Table("task", "input", "family", "losses (default)", "metrics", "primary", "preset", "defined in")
    for name in task_names():
        task = get_task(name)
        losses = ", ".join(f"{loss}*" if loss == task.default_loss else loss for loss in task.losses)
        metrics = ", ".join(
            f"{m} ({'min' if d == 'minimize' else 'max'})" for m, d in task.metric_directions.items()
        )
        preset = task.preset if isinstance(task.preset, str) else ("yes" if task.preset else "-")
        table.add_row(
            name,
            "x".join(map(str, task.input_shape)),
            task.model_family,
            losses,
            metrics,
            task.primary_metric,
            preset,
            type(task).__module__,
        )
    Console(width=max(Console().width, 160)).print(table)


@task_app.command("check")
def check(
    task: Annotated[
        str, typer.Argument(help="A task name, or a plugin spec 'file.py:Class' / 'module:Class'.")
    ],
    data: Annotated[
        Path | None, typer.Option("--data", help="Data file to read (default: the task's synthetic data).")
    ] = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample", help="Build a config sampled from the task's default space, not its preset."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the data split and the sampled config.")] = 0,
    loss: Annotated[str | None, typer.Option(help="Training loss (default: the task's).")] = None,
) -> None:
    """Check TASK: its data reads or generates, a model builds (preset or sampled), one batch trains, the
    on-chip part converts to hls4ml and is costed, and the metrics are the declared, non-NaN numbers."""
    import numpy as np

    from search._task_check import TaskCheckError, check_task
    from spaces import SpaceError, get_space

    chosen = resolve(task, loss)
    config = None
    if sample:
        if chosen.default_space is None:
            raise _fail(f"task {chosen.name!r} declares no default_space to sample from; drop --sample")
        try:
            config = get_space(chosen.default_space).sample(np.random.default_rng(seed))
        except SpaceError as exc:
            raise _fail(str(exc)) from None
    if data is not None and not data.is_file():
        raise _fail(f"--data {data}: file not found")
    try:
        result = check_task(chosen, config=config, data=str(data) if data else "synthetic", seed=seed)
    except TaskCheckError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"task {result.task}: OK", show_header=False)
    table.add_column("check")
    table.add_column("result")
    costs = result.costs
    rows = [
        ("data", result.source),
        ("model", f"{chosen.model_family}, {result.params:,} parameters"),
        ("one batch", f"loss {result.loss:.4g}, gradients ok"),
        (
            "hls4ml",
            f"converted; {costs.get('multiplications', 0):,.0f} multiplications, {costs.get('lut', 0):,.0f} LUT, "
            f"{costs.get('dsp', 0):,.0f} DSP, latency {costs.get('latency_ns', 0):.0f} ns (estimates)",
        ),
        ("metrics (untrained)", ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(width=max(Console().width, 160)).print(table)
