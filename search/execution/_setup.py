"""Everything a sweep needs before its loop runs: the space, warm-start configs, strategy, ASHA rungs,
executor and the sweep's row in the store. Every check that needs more than the config schema is here, so a
sweep that cannot run is refused before anything is created."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from sqlalchemy.engine import make_url

from search._config import ASHA_PRESETS, SchedulerConfig, SweepConfig, parse_config
from search.execution._asha import RungPlan
from search.execution._trial import cost_objectives, cost_oracle
from search.storage import Store, StoreError, SweepRecord
from search.strategies import Strategy, make_strategy

if TYPE_CHECKING:
    from search.execution._executor import Executor


class SweepError(ValueError):
    """The sweep cannot start or continue: conflicting config, unknown sweep, exhausted space, ..."""


def resolve_space(config: SweepConfig) -> Any:
    """The sweep's space: a built-in name, an inline space, or ``{builtin: NAME, override: {...}, add:
    {...}}``.

    An override value replaces a built-in parameter: a scalar fixes it (a one-value choice), a mapping is a
    new parameter definition in the space YAML schema (keeping the built-in condition unless it gives one).
    ``add`` appends parameters the built-in space lacks (e.g. node pruning's ``hidden0_keep``), each a
    scalar (fixed) or a definition.
    """
    from spaces import Space, get_space

    spec = config.space
    if isinstance(spec, str):
        return get_space(spec)
    if "builtin" not in spec:
        return Space.from_dict(spec)
    unknown = set(spec) - {"builtin", "override", "add"}
    if unknown:
        raise SweepError(
            f"space: unknown key(s) {sorted(unknown)} next to 'builtin'; allowed: builtin, override, add"
        )
    base = get_space(spec["builtin"]).to_dict()
    parameters = base["parameters"]
    for name, value in (spec.get("override") or {}).items():
        if name not in parameters:
            raise SweepError(
                f"space.override: {spec['builtin']!r} has no parameter {name!r}; allowed: {', '.join(parameters)}"
            )
        new = dict(value) if isinstance(value, dict) else {"type": "choice", "choices": [value]}
        if "active_if" in parameters[name] and "active_if" not in new:
            new["active_if"] = parameters[name]["active_if"]
        parameters[name] = new
    for name, value in (spec.get("add") or {}).items():
        if name in parameters:
            raise SweepError(f"space.add: {spec['builtin']!r} already has parameter {name!r}; override it")
        parameters[name] = dict(value) if isinstance(value, dict) else {"type": "choice", "choices": [value]}
    return Space.from_dict(base)


def warm_start_configs(config: SweepConfig, space: Any) -> list[dict[str, Any]]:
    """The canonical warm-start configs. Raises SweepError naming an entry that is unknown or infeasible."""
    from spaces import Infeasible, SpaceError, get_preset

    configs = []
    for entry in config.warm_start:
        try:
            if isinstance(entry, str):
                raw = get_preset(entry)
            elif "preset" in entry:  # {preset: NAME, key: value, ...}: a preset with some values changed
                raw = {**get_preset(entry["preset"]), **{k: v for k, v in entry.items() if k != "preset"}}
            else:
                raw = entry
            canonical = space.validate(raw)
        except SpaceError as exc:
            raise SweepError(f"warm_start entry {entry!r}: {exc}") from None
        if isinstance(canonical, Infeasible):
            raise SweepError(f"warm_start entry {entry!r} is infeasible: {canonical.reason}")
        configs.append(canonical)
    return configs


def check_user_task(config: SweepConfig, space: Any, warm_start: list[dict[str, Any]]) -> None:
    """A user (plugin or entry-point) task runs once on a few rows before the sweep exists: its data, model
    (the first warm-start config, else one sampled from the space), a batch, the hls4ml cost path and the
    metrics. SweepError naming the failing step; built-in tasks are proven by the test suite instead."""
    from search._task_check import CHECK_ROWS, TaskCheckError, check_task, is_builtin
    from search.execution._trial import job_task

    task = job_task(config.task)
    if is_builtin(task):
        return
    model_config = warm_start[0] if warm_start else space.sample(np.random.default_rng(config.seed))
    try:
        check_task(
            task,
            config=model_config,
            data=config.task.data,
            hardware=config.hardware,
            seed=config.seed,
            rows=min(config.task.rows, CHECK_ROWS),
        )
    except TaskCheckError as exc:
        raise SweepError(f"task check failed, no sweep created: {exc}") from None


def prepare(config: SweepConfig) -> tuple[Any, list[dict[str, Any]], Strategy]:
    """Space, warm-start configs and the first session's strategy of a sweep: every check that needs more
    than the schema."""
    from search.execution._distill import check_distill
    from search.execution._preflight import check_data, check_space

    space = resolve_space(config)
    check_space(config, space)  # domains within the keys' ranges; a sampled config builds
    check_data(config.task)  # the task's checker accepts the data file, which has usable rows
    check_distill(config)  # the teacher exists, takes the task's inputs and its weights load
    warm_start = warm_start_configs(config, space)
    check_user_task(config, space, warm_start)
    return space, warm_start, build_strategy(config, space, session=1)


def build_strategy(config: SweepConfig, space: Any, *, session: int) -> Strategy:
    """The sweep's strategy for driver session ``session``. Session 1 (the sweep's first driver) is seeded
    with the sweep's seed, so a sweep is reproducible; later sessions (a resume, a second driver at once)
    draw their own stream, so they never repeat the proposals of a driver that ran before or runs beside
    them."""
    seed = config.seed
    if session > 1:
        seed = int(np.random.SeedSequence([config.seed, session]).generate_state(1)[0])
    return make_strategy(
        config.strategy.name,
        space,
        config.objectives,
        seed=seed,
        options=config.strategy.options,
        reference_point=config.reference_point,
        costs=cost_oracle(config.task, config.hardware, [o.name for o in config.objectives], config.budgets),
    )


def checkpoint_dir(config: SweepConfig) -> str | None:
    """Checkpoints live next to a SQLite store (``<db>.runs/<sweep>``); none for server databases."""
    url = make_url(config.store)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(Path(url.database).with_suffix(".runs") / config.name)


def existing_sweep(store: Store, config: SweepConfig) -> SweepRecord | None:
    """The stored sweep of ``config.name``, None if there is none; SweepError if it has another config."""
    existing = store.get_sweep(config.name)
    if existing is not None and existing.config_hash != config.fingerprint():
        raise SweepError(
            f"a sweep named {config.name!r} already exists in {make_url(config.store).render_as_string()} "
            "with a different config; choose another name (--name) or resume it with "
            f"`hwnas sweep resume {config.name}`"
        )
    return existing


def open_sweep(store: Store, config: SweepConfig) -> SweepRecord:
    """Create the sweep, or return the existing one if it was created from the same config."""
    existing = existing_sweep(store, config)
    if existing is None:
        reference = None
        if config.reference_point is not None:
            reference = [config.reference_point[o.name] for o in config.objectives]
        try:
            return store.create_sweep(
                config.name,
                config_yaml=config.to_yaml(),
                config_hash=config.fingerprint(),
                objectives=[{"name": o.name, "direction": o.direction} for o in config.objectives],
                reference_point=reference,
            )
        except StoreError:
            existing = existing_sweep(store, config)  # lost a creation race to another driver
            if existing is None:
                raise
    return existing


def load_sweep(store: Store, name: str) -> tuple[SweepRecord, SweepConfig]:
    """A stored sweep and the config it was created from. Raises SweepError naming the known sweeps."""
    sweep = store.get_sweep(name)
    if sweep is None:
        known = ", ".join(s.name for s in store.list_sweeps()) or "none"
        raise SweepError(f"no sweep named {name!r} in the store; known sweeps: {known}")
    return sweep, parse_config(yaml.safe_load(sweep.config_yaml), source=f"stored config of sweep {name!r}")


def rung_metric(scheduler: SchedulerConfig, task: str) -> str:
    """Name of the metric ASHA compares at rungs: ``val_loss`` or the task's EMD on a fixed subsample."""
    if scheduler.metric == "val_loss":
        return "val_loss"
    from objectives import get_task

    return f"{get_task(task).primary_metric}_subsample"


def asha_settings(scheduler: SchedulerConfig, epochs: int) -> dict[str, int]:
    """ASHA's grace period, reduction factor and brackets: the mode's preset, overridden by explicit keys."""
    reduction, brackets, grace_fraction = ASHA_PRESETS[scheduler.mode]
    grace = scheduler.grace_period or min(max(1, round(epochs * grace_fraction)), max(1, epochs - 1))
    return {
        "grace_period": grace,
        "reduction_factor": scheduler.reduction_factor or reduction,
        "brackets": scheduler.brackets or brackets,
    }


def rung_plan(config: SweepConfig) -> RungPlan | None:
    """The sweep's ASHA rungs, or None without a scheduler. Pareto promotion ranks the rung metric with
    the sweep's cost objectives (known before training); metric promotion ranks the metric alone."""
    if config.scheduler.kind == "none":
        return None
    costs: list[tuple[str, str]] = []
    if config.scheduler.promotion == "pareto":
        names = cost_objectives([o.name for o in config.objectives])
        costs = [(o.name, o.direction) for o in config.objectives if o.name in names]
    return RungPlan.build(
        metric=rung_metric(config.scheduler, config.task.name),
        costs=costs,
        epochs=config.epochs,
        emd_rows=config.scheduler.emd_rows,
        **asha_settings(config.scheduler, config.epochs),
    )


def make_executor(config: SweepConfig) -> Executor:
    """The sweep's executor; Ray is started or joined here (imported only for sweeps that use it)."""
    if config.executor.kind == "ray":
        from search.execution._ray import RayExecutor

        return RayExecutor(config.executor)
    from search.execution._executor import local_executor

    return local_executor(config.executor.workers)
