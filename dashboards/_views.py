"""The JSON the API answers with: its pydantic models (they make the OpenAPI schema) and the functions that
shape stored records into them.

Non-finite numbers (a stored ±inf objective, a NaN per-epoch metric) are ``null``: JSON has no infinity.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dashboards._live import SweepTrials
from search.results import (
    ConfirmedPoint,
    default_reference,
    describe,
    hypervolume_history,
    sweep_front,
)
from search.storage import TrialRecord, TrialState

ERROR_PREVIEW = 200  # characters of an error shown in lists (the trial page shows all of it)


class Objective(BaseModel):
    name: str
    direction: str


class SweepSummary(BaseModel):
    id: int
    name: str
    status: str
    objectives: list[Objective]
    counts: dict[str, int] = Field(description="trials in each state (confirm replicates included)")
    total: int
    best: dict[str, float | None] = Field(description="best completed value of each objective")
    hypervolume: float | None = Field(description="of the front, normalised by the reference point")
    provisional_reference: bool = Field(
        description="no reference point stored yet: one derived from the trials"
    )
    created_at: datetime
    updated_at: datetime = Field(description="the latest change to the sweep or any of its trials")


class Param(BaseModel):
    name: str
    kind: str = Field(description="'number' or 'category'")
    values: list[Any] = Field(description="the distinct values seen (categories), or [min, max] (numbers)")


class SweepDetail(SweepSummary):
    config_yaml: str
    reference_point: list[float] | None
    params: list[Param]
    cursor: datetime | None = Field(description="pass as `since` to /changes to get later changes")


class Point(BaseModel):
    """A trial as the plots and the table show it."""

    number: int
    state: str
    fidelity: int
    origin: str
    replicate_of: int | None
    results: dict[str, float | None]
    architecture: str
    params: dict[str, Any]
    error: str | None = Field(description=f"first {ERROR_PREVIEW} characters of a failed trial's error")
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    updated_at: datetime | None


class PointPage(BaseModel):
    points: list[Point]
    next_after: int | None = Field(description="pass as `after` for the next page; null: this was the last")


class Changes(BaseModel):
    points: list[Point] = Field(description="trials changed after `since` (a few seconds more, to be safe)")
    cursor: datetime | None
    counts: dict[str, int]


class TableRows(BaseModel):
    total: int = Field(description="trials matching the filters")
    offset: int
    limit: int
    rows: list[Point]


class ConfirmedTrial(BaseModel):
    number: int
    evaluations: int
    mean: dict[str, float | None]
    std: dict[str, float | None]


class Front(BaseModel):
    objectives: list[Objective]
    trials: list[int] = Field(description="numbers of the trials on the Pareto front (all objectives)")
    hypervolume: float | None
    reference_point: list[float] | None
    provisional_reference: bool
    references: list[int] = Field(description="the warm-start reference models")
    confirmed: list[ConfirmedTrial] = Field(description="the front of replicate means (`sweep confirm`)")
    confirmed_hypervolume: float | None


class HypervolumePoint(BaseModel):
    trial: int
    hypervolume: float | None
    finished_at: datetime | None
    elapsed_s: float | None = Field(description="since the sweep's first trial started")


class HypervolumeHistory(BaseModel):
    provisional_reference: bool
    points: list[HypervolumePoint]


class Curve(BaseModel):
    number: int
    epochs: list[dict[str, float | None]] = Field(description='rows {"epoch": n, metric: value, ...}')


class Importance(BaseModel):
    method: str
    trials_used: int
    objectives: dict[str, dict[str, float]] = Field(description="objective -> parameter -> share (sums to 1)")
    fit: dict[str, float | None] = Field(description="held-out R² of the model behind each objective")
    note: str | None


class Export(BaseModel):
    kind: str
    folder: str = Field(description="the export folder's name (the full path stays on the server)")
    sha256: str
    download: str


class TrialDetail(Point):
    sweep_id: int
    seed: int
    attempts: int
    worker: str | None
    host: str | None
    full_error: str | None
    created_at: datetime
    heartbeat_at: datetime | None
    metrics: list[dict[str, float | None]]
    cost: dict[str, Any] | None = Field(description="the hardware cost report: totals and per-layer rows")
    replicates: list[Point] = Field(description="re-evaluations of this trial with other seeds")
    export: Export | None


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def finite_map(values: dict[str, Any]) -> dict[str, float | None]:
    return {key: finite(None if value is None else float(value)) for key, value in values.items()}


def point(trial: TrialRecord) -> Point:
    duration = None
    if trial.started_at is not None and trial.finished_at is not None:
        duration = (trial.finished_at - trial.started_at).total_seconds()
    return Point(
        number=trial.number,
        state=trial.state.value,
        fidelity=trial.fidelity,
        origin=trial.origin,
        replicate_of=trial.replicate_of,
        results=finite_map(trial.results),
        architecture=describe(trial.params),
        params=trial.params,
        error=None if trial.error is None else trial.error[:ERROR_PREVIEW],
        started_at=trial.started_at,
        finished_at=trial.finished_at,
        duration_s=duration,
        updated_at=trial.updated_at,
    )


def counts(live: SweepTrials) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in live.by_number.values():
        out[trial.state.value] = out.get(trial.state.value, 0) + 1
    return out


def _front(live: SweepTrials) -> tuple[list[TrialRecord], float | None]:
    return live.derived("front", lambda: sweep_front(live, live.sweep))


def summary(live: SweepTrials) -> SweepSummary:
    sweep = live.sweep
    front, volume = _front(live)
    best: dict[str, float | None] = {}
    for objective in sweep.objectives:
        values = [t.results[objective["name"]] for t in front if objective["name"] in t.results]
        pick = max if objective["direction"] == "maximize" else min
        best[objective["name"]] = finite(pick(values)) if values else None
    stamps = [sweep.updated_at, *(t.updated_at for t in live.by_number.values() if t.updated_at)]
    return SweepSummary(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        objectives=[Objective(**o) for o in sweep.objectives],
        counts=counts(live),
        total=len(live.by_number),
        best=best,
        hypervolume=finite(volume),
        provisional_reference=sweep.reference_point is None,
        created_at=sweep.created_at,
        updated_at=max(stamps),
    )


def params(live: SweepTrials) -> list[Param]:
    """Every parameter seen in the sweep's trials: numbers with their range, the rest as categories."""
    seen: dict[str, list[Any]] = {}
    for trial in live.by_number.values():
        for name, value in trial.params.items():
            seen.setdefault(name, []).append(value)
    out = []
    for name in sorted(seen):
        values = seen[name]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out.append(Param(name=name, kind="number", values=[min(values), max(values)]))
        else:
            distinct = sorted({str(v) if isinstance(v, list | dict) else v for v in values}, key=str)
            out.append(Param(name=name, kind="category", values=distinct))
    return out


def detail(live: SweepTrials) -> SweepDetail:
    return SweepDetail(
        **summary(live).model_dump(),
        config_yaml=live.sweep.config_yaml,
        reference_point=live.sweep.reference_point,
        params=live.derived("params", lambda: params(live)),
        cursor=live.cursor,
    )


def _confirmed(point: ConfirmedPoint) -> ConfirmedTrial:
    return ConfirmedTrial(
        number=point.trial.number,
        evaluations=point.evaluations,
        mean=finite_map(point.mean),
        std=finite_map(point.std),
    )


def front(live: SweepTrials) -> Front:
    sweep = live.sweep
    trials, volume = _front(live)
    confirmed, confirmed_volume = live.derived("confirmed", lambda: sweep_confirmed(live))
    return Front(
        objectives=[Objective(**o) for o in sweep.objectives],
        trials=[t.number for t in trials],
        hypervolume=finite(volume),
        reference_point=sweep.reference_point,
        provisional_reference=sweep.reference_point is None,
        references=sorted(
            t.number
            for t in live.by_number.values()
            if t.origin == "warm-start" and t.state is TrialState.COMPLETED
        ),
        confirmed=[_confirmed(p) for p in confirmed],
        confirmed_hypervolume=finite(confirmed_volume),
    )


def sweep_confirmed(live: SweepTrials) -> tuple[list[ConfirmedPoint], float | None]:
    from search.results import confirmed_front

    return confirmed_front(live, live.sweep)


def history(live: SweepTrials) -> HypervolumeHistory:
    """Hypervolume after each completed search trial in completion order, against the stored reference
    point (or, before the sweep has one, the provisional reference the front's hypervolume uses)."""
    sweep = live.sweep
    names = [o["name"] for o in sweep.objectives]
    directions = [o["direction"] for o in sweep.objectives]
    completed = [
        t
        for t in live.trials(sweep.id, [TrialState.COMPLETED])
        if t.replicate_of is None and all(n in t.results for n in names)
    ]
    if not completed:
        return HypervolumeHistory(provisional_reference=sweep.reference_point is None, points=[])
    completed.sort(key=lambda t: (t.finished_at is None, t.finished_at, t.number))
    values = [[t.results[n] for n in names] for t in completed]
    reference = sweep.reference_point or default_reference(values, directions)
    volumes = hypervolume_history(values, directions, reference, scale=[abs(v) or 1.0 for v in reference])
    starts = [t.started_at for t in live.by_number.values() if t.started_at is not None]
    start = min(starts) if starts else None
    return HypervolumeHistory(
        provisional_reference=sweep.reference_point is None,
        points=[
            HypervolumePoint(
                trial=t.number,
                hypervolume=finite(v),
                finished_at=t.finished_at,
                elapsed_s=None
                if start is None or t.finished_at is None
                else (t.finished_at - start).total_seconds(),
            )
            for t, v in zip(completed, volumes, strict=True)
        ],
    )


def export_of(sweep_id: int, number: int, artifacts: list[dict[str, str]]) -> Export | None:
    """The newest export the store recorded for a trial (``hwnas export`` records its folder)."""
    exports = [a for a in artifacts if a["kind"] == "export"]
    if not exports:
        return None
    newest = exports[-1]
    return Export(
        kind=newest["kind"],
        folder=newest["path"].rstrip("/").rsplit("/", 1)[-1],
        sha256=newest["sha256"],
        download=f"/api/sweeps/{sweep_id}/trials/{number}/export.zip",
    )


def trial_detail(
    live: SweepTrials,
    trial: TrialRecord,
    metrics: list[dict[str, Any]],
    cost: dict[str, Any] | None,
    artifacts: list[dict[str, str]],
) -> TrialDetail:
    replicates = [t for t in live.trials(live.sweep.id) if t.replicate_of == trial.number]
    return TrialDetail(
        **point(trial).model_dump(),
        sweep_id=trial.sweep_id,
        seed=trial.seed,
        attempts=trial.attempts,
        worker=trial.worker,
        host=trial.host,
        full_error=trial.error,
        created_at=trial.created_at,
        heartbeat_at=trial.heartbeat_at,
        metrics=[finite_map(row) for row in metrics],
        cost=_json_safe(cost),
        replicates=[point(t) for t in replicates],
        export=export_of(live.sweep.id, trial.number, artifacts),
    )


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None, at any depth (a cost report is nested JSON)."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


class BadQuery(ValueError):
    """A query parameter the API cannot use (``parameter``; the message names it and what is allowed)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


_FIXED_SORTS = ("number", "state", "fidelity", "duration", "finished")


def _matches(value: Any, wanted: str) -> bool:
    """Whether a parameter's value is the one a person typed: numbers compare as numbers."""
    if isinstance(value, bool):
        return wanted.strip().lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


def table(
    live: SweepTrials,
    *,
    states: list[TrialState],
    param: str | None,
    value: str | None,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> TableRows:
    """One page of the sweep's trials, filtered by state and by a parameter's value, sorted by ``sort``:
    number, state, fidelity, duration, finished, ``results.NAME`` or ``params.NAME`` (missing values last).
    Raises BadQuery naming the bad parameter and what is allowed."""
    names = [o["name"] for o in live.sweep.objectives]
    known = {p.name for p in live.derived("params", lambda: params(live))}
    allowed = [*_FIXED_SORTS, *(f"results.{n}" for n in names), *(f"params.{p}" for p in sorted(known))]
    if sort not in allowed:
        raise BadQuery("sort", f"sort={sort!r} is not allowed; allowed: {', '.join(allowed)}")
    if (param is None) != (value is None):
        raise BadQuery(
            "param" if param is None else "value", "filter by a parameter with both `param` and `value`"
        )
    if param is not None and param not in known:
        raise BadQuery(
            "param", f"param={param!r} is not a parameter of this sweep; known: {', '.join(sorted(known))}"
        )
    trials = live.trials(live.sweep.id, states or None)
    if param is not None and value is not None:
        trials = [t for t in trials if param in t.params and _matches(t.params[param], value)]

    def key(trial: TrialRecord) -> Any:
        if sort == "number":
            return trial.number
        if sort == "state":
            return trial.state.value
        if sort == "fidelity":
            return trial.fidelity
        if sort == "finished":
            return trial.finished_at
        if sort == "duration":
            if trial.started_at is None or trial.finished_at is None:
                return None
            return (trial.finished_at - trial.started_at).total_seconds()
        group, _, name = sort.partition(".")
        found = (trial.results if group == "results" else trial.params).get(name)
        return None if isinstance(found, float) and math.isnan(found) else found

    present = [t for t in trials if key(t) is not None]
    missing = [t for t in trials if key(t) is None]
    try:
        present.sort(key=lambda t: (key(t), t.number), reverse=descending)
    except TypeError:  # a parameter holding values of several types: order them as text
        present.sort(key=lambda t: (str(key(t)), t.number), reverse=descending)
    ordered = present + missing
    return TableRows(
        total=len(ordered),
        offset=offset,
        limit=limit,
        rows=[point(t) for t in ordered[offset : offset + limit]],
    )
