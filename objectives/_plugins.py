"""User tasks: load a `Task` subclass from a file or module, or from the ``hwnas.tasks`` entry points.

A plugin spec is ``path/to/file.py:ClassName`` or ``package.module:ClassName`` (``:ClassName`` may be left
out when the module defines exactly one Task subclass). The class is checked against the Task API (it
must derive from :class:`objectives.Task`, implement its abstract methods and declare its attributes) and
registered under its declared ``name`` with :func:`register_task`, like the built-in tasks. Loading the
same class again returns its name (worker processes load the spec of their job this way).

Installed packages can expose tasks without any config key: an entry point in the group ``hwnas.tasks``
whose name is the task name and whose value is ``module:ClassName`` (or a factory ``module:function``
taking ``loss=``). They are registered the first time the registry is asked for its tasks; a broken one
is reported when its name is used.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from objectives._errors import ObjectivesError
from objectives._registry import _DECLARED, _FACTORIES, register_task
from objectives._tasks import Task

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hwnas.tasks"
_API_METHODS = ("read_data", "synthesize", "prepare", "evaluate", "build_model", "on_chip", "loss")
# spec key -> registered task name, so a spec is imported and registered once per process.
_LOADED: dict[tuple[str, str], str] = {}


def split_spec(spec: str) -> tuple[str, str | None]:
    """(file path or module name, class name or None) of a plugin spec; ObjectivesError if malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ObjectivesError(f"plugin {spec!r}: expected 'path/to/file.py:ClassName' or 'module:ClassName'")
    source, sep, cls = spec.strip().rpartition(":")
    if not sep or (len(source) == 1 and source.isalpha()):  # no ':' (a Windows drive letter is not one)
        return spec.strip(), None
    if not cls.isidentifier():
        raise ObjectivesError(f"plugin {spec!r}: {cls!r} is not a class name")
    return source, cls


def is_file_spec(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def absolute_spec(spec: str) -> str:
    """The spec with a relative plugin file made absolute (against the working directory)."""
    source, cls = split_spec(spec)
    if not is_file_spec(source):
        return spec
    resolved = str(Path(source).expanduser().resolve())
    return resolved if cls is None else f"{resolved}:{cls}"


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ObjectivesError(f"plugin file {path} does not exist (relative paths start at {Path.cwd()})")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"hwnas_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ObjectivesError(f"plugin file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ObjectivesError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ObjectivesError(f"plugin module {name!r} cannot be found: {exc}") from None
    except Exception as exc:
        raise ObjectivesError(
            f"plugin module {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def _task_classes(module: ModuleType) -> list[type]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Task)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]


def api_problem(cls: Any) -> str | None:
    """What keeps ``cls`` from satisfying the Task API (naming the missing methods/attributes), or None."""
    if not inspect.isclass(cls):
        return f"{cls!r} is not a class"
    if not issubclass(cls, Task):
        missing = [name for name in (*_API_METHODS, *_DECLARED) if not hasattr(cls, name)]
        lacks = f"; it lacks {', '.join(missing)}" if missing else ""
        return f"class {cls.__name__} does not derive from objectives.Task{lacks}"
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        return f"class {cls.__name__} does not implement the Task method(s) {', '.join(abstract)}"
    missing = [name for name in _DECLARED if not hasattr(cls, name)]
    if missing:
        return f"class {cls.__name__} does not declare the Task attribute(s) {', '.join(missing)}"
    return None


def _register(cls: type[Task], where: str) -> str:
    name = getattr(cls, "name", None)
    existing = _FACTORIES.get(name) if isinstance(name, str) else None
    if existing is not None:
        if (
            getattr(existing, "__qualname__", None) == cls.__qualname__
            and getattr(existing, "__module__", None) == cls.__module__
        ):
            return str(name)
        raise ObjectivesError(f"{where}: task name {name!r} is already taken by another task; rename it")
    try:
        register_task(str(name), cls)
    except ObjectivesError as exc:
        raise ObjectivesError(f"{where}: {exc}") from None
    return str(name)


def load_task_plugin(spec: str) -> str:
    """Import the plugin ``spec`` names, check its class against the Task API, register it; its task name.

    Raises ObjectivesError with one message: a file or module that does not exist or fails to import, a
    module without the named class (listing the Task subclasses it has), a class that does not satisfy
    the Task API (naming what it lacks), or a declaration ``register_task`` refuses.
    """
    source, cls_name = split_spec(spec)
    key = (absolute_spec(source) if is_file_spec(source) else source, cls_name or "")
    if key in _LOADED and _LOADED[key] in _FACTORIES:
        return _LOADED[key]
    module = _import_file(Path(key[0])) if is_file_spec(source) else _import_module(source)
    found = [c.__name__ for c in _task_classes(module)]
    if cls_name is None:
        if len(found) != 1:
            listed = ", ".join(found) or "none"
            raise ObjectivesError(
                f"plugin {spec!r}: name the class as {source}:ClassName; Task subclasses in it: {listed}"
            )
        cls_name = found[0]
    if not hasattr(module, cls_name):
        raise ObjectivesError(
            f"plugin {spec!r}: {source} has no class {cls_name!r}; Task subclasses in it: {', '.join(found) or 'none'}"
        )
    cls = getattr(module, cls_name)
    problem = api_problem(cls)
    if problem is not None:
        raise ObjectivesError(f"plugin {spec!r}: {problem} (see docs/tasks.md)")
    name = _register(cls, f"plugin {spec!r}")
    _LOADED[key] = name
    return name


def register_entry_points() -> dict[str, str]:
    """Register the tasks of the ``hwnas.tasks`` entry points; {name: why it failed} for broken ones."""
    broken: dict[str, str] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP}"
        try:
            target = entry.load()
        except Exception as exc:
            broken[entry.name] = f"{where} failed to load: {type(exc).__name__}: {exc}"
            continue
        problem = api_problem(target) if inspect.isclass(target) else None
        if problem is None and getattr(target, "name", entry.name) != entry.name:
            problem = f"it declares task name {target.name!r}, not {entry.name!r}"
        try:
            if problem is None:
                if inspect.isclass(target):
                    _register(cast(type[Task], target), where)
                else:
                    register_task(entry.name, target)
        except ObjectivesError as exc:
            problem = str(exc)
        if problem is not None:
            broken[entry.name] = problem if problem.startswith(where) else f"{where}: {problem}"
            log.warning("%s", broken[entry.name])
    return broken
