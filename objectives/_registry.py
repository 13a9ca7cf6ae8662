"""The task registry: a name -> a factory of `Task` objects, the one place that knows which tasks exist.

The built-in tasks (econt, waveform) call :func:`register_task` when their modules are imported, exactly as
a plugin task would; everything else (config validation, the data CLI, trials, export) asks
:func:`get_task` and :func:`task_names`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import spaces
from objectives._errors import DataError, ObjectivesError
from objectives._tasks import Task

_DIRECTIONS = ("minimize", "maximize")
_DECLARED = (
    "name",
    "input_shape",
    "input_bits",
    "input_signed",
    "model_family",
    "losses",
    "default_loss",
    "metric_directions",
    "primary_metric",
)


class TaskFactory(Protocol):
    """Makes a task with its default loss (``loss=None``) or the named one; a `Task` subclass is one."""

    def __call__(self, *, loss: str | None = None) -> Task: ...


_FACTORIES: dict[str, TaskFactory] = {}
# Entry-point tasks (group hwnas.tasks) are registered on first use of the registry; broken ones by name.
_ENTRY_POINTS: dict[str, str] | None = None


def _load_entry_points() -> None:
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        _ENTRY_POINTS = {}
        from objectives._plugins import register_entry_points

        _ENTRY_POINTS = register_entry_points()


def _declaration_problem(name: str, task: object) -> str | None:
    """What is wrong with the attributes the task declares, or None; checked once, at registration."""
    if not isinstance(task, Task):
        return f"the factory made {type(task).__name__}, not a Task"
    missing = [attribute for attribute in _DECLARED if not hasattr(task, attribute)]
    if missing:
        return f"it does not declare {', '.join(missing)}"
    if task.name != name:
        return f"it declares name {task.name!r}"
    shape = task.input_shape
    if not (
        isinstance(shape, tuple)
        and shape
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        return f"input_shape {shape!r} is not a non-empty tuple of positive integers"
    if task.model_family not in spaces.family_names():
        return f"model_family {task.model_family!r} is not one of {', '.join(spaces.family_names())}"
    if not isinstance(task.metric_directions, Mapping) or not task.metric_directions:
        return "metric_directions must map at least one metric to a direction"
    bad = {m: d for m, d in task.metric_directions.items() if d not in _DIRECTIONS}
    if bad:
        return f"metric_directions {bad} use a direction other than {' or '.join(_DIRECTIONS)}"
    if task.primary_metric not in task.metric_directions:
        return (
            f"primary_metric {task.primary_metric!r} is not one of its metrics {list(task.metric_directions)}"
        )
    return None


def register_task(name: str, factory: TaskFactory) -> None:
    """Make ``factory`` resolvable as task ``name`` (``get_task(name, loss=...)`` calls ``factory(loss=...)``).

    The factory is called once here (default loss) to check what the task declares: its name, input
    shape, model family (a registered `spaces` family), metric directions and primary metric. Raises
    ObjectivesError for a name already taken or not an identifier, or a bad declaration, naming it.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ObjectivesError(f"task name must be an identifier like 'econt', got {name!r}")
    if name in _FACTORIES:
        raise ObjectivesError(f"task {name!r} is already registered")
    try:
        problem = _declaration_problem(name, factory())
    except (ObjectivesError, AttributeError) as exc:  # e.g. a default_loss that is not one of its losses
        problem = f"making it with its default loss failed: {exc}"
    if problem is not None:
        raise ObjectivesError(f"cannot register task {name!r}: {problem}")
    _FACTORIES[name] = factory


def unregister_task(name: str) -> None:
    """Forget task ``name`` (tests, plugin reloads); ObjectivesError if it is not registered."""
    if name not in _FACTORIES:
        raise ObjectivesError(f"unknown task {name!r}; allowed: {', '.join(_FACTORIES)}")
    del _FACTORIES[name]


def task_names() -> tuple[str, ...]:
    """Names of the registered tasks, in registration order (entry-point tasks included)."""
    _load_entry_points()
    return tuple(_FACTORIES)


def get_task(name: str, *, loss: str | None = None) -> Task:
    """The task called ``name`` with its default loss or ``loss``.

    Raises ObjectivesError for an unknown task or loss, listing the allowed names.
    """
    _load_entry_points()
    if name not in _FACTORIES:
        if _ENTRY_POINTS and name in _ENTRY_POINTS:
            raise ObjectivesError(_ENTRY_POINTS[name])
        raise ObjectivesError(f"unknown task {name!r}; allowed: {', '.join(_FACTORIES)}")
    return _FACTORIES[name](loss=loss)


def task_for_file(path: str | os.PathLike[str]) -> Task:
    """The first registered task that recognizes the data file; ObjectivesError if none does.

    DataError (a subclass) when there is no such file.
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    for name in task_names():
        task = get_task(name)
        if task.recognizes(path):
            return task
    raise ObjectivesError(
        f"{path}: no registered task recognizes this file; name one of {', '.join(_FACTORIES)}"
    )
