"""The checks of a sweep config beyond its schema, none of which creates or changes anything.

``prepare`` (validate, and the sweep loop before the sweep is created) runs :func:`check_space` and
:func:`check_data`: a space whose domains leave the meaningful range of a key, a space whose configs the
task's model family cannot build, or a data file the task's checker refuses fail the config. ``hwnas sweep
validate`` adds :func:`check_environment` (the store URL and server, the Ray address and the CPUs, which
launch checks when it starts) and :func:`feasibility` (a warning when (almost) no config of the space is
feasible and within the budgets).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from search._config import ExecutorConfig, SweepConfig, TaskConfig

log = logging.getLogger(__name__)

_FEASIBILITY_DRAWS = 200
_PRICING_S = 3.0  # wall time validate spends costing sampled configs against the budgets
_CONNECT_TIMEOUT_S = 5.0


def _error(message: str) -> Exception:
    from search.execution._setup import SweepError

    return SweepError(message)


# -- the space ----------------------------------------------------------------------------------------
def check_space(config: SweepConfig, space: Any) -> None:
    """SweepError naming every parameter whose domain leaves its key's range, or a key the task's model
    family needs and the space lacks (a sampled config is built by the task)."""
    from objectives import TRAIN_KEY_RANGES, get_task
    from spaces import MODEL_KEY_RANGES, Infeasible, SpaceError, keep_problems, range_problems

    problems = range_problems(space, [TRAIN_KEY_RANGES, MODEL_KEY_RANGES]) + keep_problems(space)
    if problems:
        raise _error("space: " + "; ".join(problems))
    task = get_task(config.task.name, loss=config.task.loss)
    rng = np.random.default_rng(config.seed)
    with _quiet("spaces"):
        sample = space.sample(rng)
    canonical = space.validate(sample)
    if isinstance(canonical, Infeasible):
        return  # feasibility warns about that; an infeasible draw is not built
    try:
        task.build_model(canonical)
    except (SpaceError, ValueError, RuntimeError) as exc:
        raise _error(
            f"space: a sampled config cannot be built by task {task.name!r} (model family "
            f"{task.model_family!r}): {exc}"
        ) from None


# -- the data file ------------------------------------------------------------------------------------
def check_data(task: TaskConfig) -> None:
    """SweepError naming ``task.data`` and the problem when the task's checker refuses the file or the file
    holds no usable row (each file is read once per process and state)."""
    if task.data == "synthetic":
        return
    path = Path(task.data)
    try:
        stat = path.stat()
    except OSError as exc:
        raise _error(f"task.data {task.data!r}: cannot be read ({exc.strerror})") from None
    problem = _data_problem(task.name, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        raise _error(f"task.data {task.data!r}: {problem}")


@functools.lru_cache(maxsize=8)
def _data_problem(task: str, path: str, mtime_ns: int, size: int) -> str | None:
    from objectives import ObjectivesError, get_task

    try:
        summary = get_task(task).check_data(path)
    except ObjectivesError as exc:  # DataError included
        return str(exc)
    if summary.rows == 0:
        return f"no usable rows ({summary.dropped_zero_rows} all-zero rows dropped)"
    return None


# -- feasibility --------------------------------------------------------------------------------------
def feasibility(config: SweepConfig, space: Any, draws: int = _FEASIBILITY_DRAWS) -> str | None:
    """A warning when (almost) no sampled config is feasible, or (with budgets) within the budgets.

    ``draws`` configs are drawn and validated; with budgets, feasible ones are costed with the task's model
    for at most a few seconds.
    """
    from search.execution._trial import cost_oracle
    from spaces import Infeasible

    rng = np.random.default_rng(config.seed)
    feasible: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    with _quiet("spaces"):
        for _ in range(draws):
            canonical = space.validate(space.sample(rng, max_attempts=1))
            if isinstance(canonical, Infeasible):
                reasons[canonical.reason] = reasons.get(canonical.reason, 0) + 1
            else:
                feasible.append(canonical)
    if len(feasible) <= draws // 100:
        common = max(reasons, key=lambda r: reasons[r]) if reasons else ""
        return (
            f"only {len(feasible)} of {draws} sampled configs are feasible (most common reason: {common}); "
            "the sweep will stop after 100 infeasible proposals in a row"
        )
    if not config.budgets:
        return None
    costs = cost_oracle(config.task, config.hardware, [o.name for o in config.objectives], config.budgets)
    priced = within = 0
    last = ""
    deadline = time.monotonic() + _PRICING_S
    for canonical in feasible:
        if time.monotonic() > deadline and priced:
            break
        result = costs(canonical)
        priced += 1
        if isinstance(result, str):
            last = result
        else:
            within += 1
    if within == 0:
        return (
            f"none of {priced} sampled feasible configs is within the budgets "
            f"({', '.join(config.budgets)}); e.g. {last}"
        )
    return None


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence one logger's warnings (sampling infeasible configs on purpose logs one per draw)."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


# -- store, Ray, CPUs ---------------------------------------------------------------------------------
def check_environment(config: SweepConfig) -> list[str]:
    """What launch checks when it starts, checked without creating anything: the store URL (and an
    existing SQLite file or a PostgreSQL server), the Ray address and the CPUs. Returns notes on what was
    and was not checked; raises SweepError for a problem."""
    return [check_store(config.store), *check_sweep_name(config), *check_executor(config.executor)]


def check_sweep_name(config: SweepConfig) -> list[str]:
    """SweepError if the store (read-only, when it exists) holds a sweep of this name with another config,
    which launch refuses; nothing is created or migrated."""
    from sqlalchemy.engine import make_url

    from search.results import Results, ResultsError

    if make_url(config.store).get_backend_name() == "sqlite":
        path = _sqlite_file(config.store)
        if path is None or not path.is_file():
            return []
    try:
        with Results.open(config.store) as results:
            existing = results.get_sweep(config.name)
    except ResultsError as exc:
        return [f"sweep name not checked against the store ({exc})"]
    if existing is None:
        return [f"sweep {config.name}: new in this store"]
    if existing.config_hash != config.fingerprint():
        raise _error(
            f"a sweep named {config.name!r} already exists in the store with a different config; choose "
            f"another name (--name) or resume it with `hwnas sweep resume {config.name}`"
        )
    return [f"sweep {config.name}: exists with this config; launch continues it"]


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_problem(path: Path) -> str | None:
    """Why an existing file is not a SQLite database it can read; None if it is. Read through SQLite
    (immutable: no lock, no -wal/-shm): closing a handle of our own on the file would drop the POSIX locks
    this process's connections to it hold (see search.results._open)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        return f"cannot be read ({text})" if "unable to open" in text else "is not a SQLite database"
    return None


def check_store(url: str) -> str:
    """Parse the store URL and check, read-only, an existing SQLite file or a PostgreSQL server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _error(
            f"store URL {url!r} is not a database URL; use sqlite:///FILE.db or postgresql+psycopg://HOST/DB"
        ) from None
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return f"store {shown}: in memory (not checked)"
        path = Path(parsed.database)
        if not path.exists():
            if not path.parent.is_dir():
                raise _error(f"store {shown}: directory {str(path.parent)!r} does not exist")
            if not os.access(path.parent, os.W_OK):
                raise _error(f"store {shown}: directory {str(path.parent)!r} is not writable")
            return f"store {shown}: does not exist yet; launch creates it (directory checked)"
        problem = _sqlite_problem(path)
        if problem is not None:
            raise _error(f"store {shown}: {str(path)!r} {problem}")
        return f"store {shown}: existing SQLite file (checked read-only)"
    if backend != "postgresql":
        raise _error(f"store backend {backend!r} is not supported; allowed: sqlite, postgresql")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, connect_args={"connect_timeout": int(_CONNECT_TIMEOUT_S)})
    except (ArgumentError, SQLAlchemyError) as exc:
        raise _error(f"cannot use store URL {shown}: {exc}") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            connection.rollback()
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", exc)).split())[:300]
        raise _error(f"store {shown}: cannot connect to the PostgreSQL server ({detail})") from None
    finally:
        engine.dispose()
    return f"store {shown}: PostgreSQL server reachable (connected read-only, nothing created)"


def check_executor(executor: ExecutorConfig) -> list[str]:
    """The Ray address reachable (TCP, Ray not started) and the CPUs a local Ray would get."""
    if executor.kind != "ray":
        return []
    if executor.address is None:
        cpus, available = local_ray_cpus(executor)
        problem = local_cpus_problem(executor)
        if problem is not None:
            raise _error(problem)
        if executor.workers > cpus:
            raise _error(
                f"executor.workers {executor.workers} needs {executor.workers} CPUs (one per trial) but the "
                f"local Ray gets {cpus} (num_cpus); allowed: workers <= {cpus}"
            )
        return [f"executor: a local Ray with {cpus} CPU(s) (of {available})"]
    if executor.address == "auto":
        return ["executor: Ray address 'auto' not checked (found when launch starts)"]
    problem = ray_address_problem(executor.address)
    if problem is not None:
        raise _error(problem)
    return [f"executor: Ray at {executor.address} reachable (its CPUs are checked when launch joins it)"]


def local_ray_cpus(executor: ExecutorConfig) -> tuple[int, int]:
    """The CPUs a local Ray of ``executor`` asks for, and the CPUs this machine has."""
    return executor.num_cpus or executor.workers, os.cpu_count() or 1


def local_cpus_problem(executor: ExecutorConfig) -> str | None:
    """Why a local Ray cannot get the CPUs ``executor`` asks for, or None (validate and launch alike)."""
    cpus, available = local_ray_cpus(executor)
    if cpus <= available:
        return None
    return f"executor.num_cpus {cpus} is more than the {available} CPU(s) of this machine; allowed: 1..{available}"


def ray_address_problem(address: str) -> str | None:
    """Why a Ray address ('HOST:PORT' or 'ray://HOST:PORT') cannot be joined, from a TCP connect without
    Ray; None if it answers. Shared by validate and by the Ray executor before ``ray.init``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return f"executor.address {address!r} is not 'auto', 'HOST:PORT' or 'ray://HOST:PORT'"
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return (
            f"cannot reach the Ray cluster at {address!r} ({exc}); start it with `ray start --head` "
            "or fix executor.address"
        )
    return None
