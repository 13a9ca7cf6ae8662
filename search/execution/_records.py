"""What the sweep loop writes about a sweep besides trial states: the outcome a stored trial stands for, the
reference point, and the replicates of ``confirm``."""

from __future__ import annotations

from collections.abc import Mapping

from search._types import TRIAL_SECONDS, Completed, Failed, Outcome, Pruned, Rejected
from search.results import completed_search_trials, sweep_front
from search.results._pareto import default_reference
from search.storage import Store, SweepRecord, TrialRecord, TrialState


def completed_as_told(results: Mapping[str, float], objectives: list[str], fidelity: int) -> Completed:
    """A completed trial as strategies are told it: its objectives, whether the task flagged it collapsed
    (the ``collapsed`` metric, 0 or 1) and its wall time."""
    return Completed(
        {k: results[k] for k in objectives},
        fidelity=fidelity,
        collapsed=float(results.get("collapsed", 0.0)) >= 0.5,
        seconds=_seconds(results),
    )


def pruned_as_told(results: Mapping[str, float], objectives: list[str], fidelity: int) -> Pruned:
    """A pruned trial as strategies are told it: its partial objectives, the rung's epoch and the wall time
    it took until then (what an early stop still cost the sweep)."""
    return Pruned(
        {k: v for k, v in results.items() if k in objectives}, fidelity=fidelity, seconds=_seconds(results)
    )


def _seconds(results: Mapping[str, float]) -> float | None:
    seconds = results.get(TRIAL_SECONDS)
    return None if seconds is None else float(seconds)


def outcome_of(trial: TrialRecord, objectives: list[str]) -> Outcome:
    """The outcome a finished trial stands for, as strategies are told it."""
    if trial.state is TrialState.COMPLETED:
        return completed_as_told(trial.results, objectives, trial.fidelity)
    if trial.state is TrialState.PRUNED:
        return pruned_as_told(trial.results, objectives, trial.fidelity)
    if trial.state is TrialState.INFEASIBLE:
        return Rejected(trial.error or "infeasible")
    return Failed(trial.error or "failed")


def state_for(outcome: Outcome) -> TrialState:
    return {
        Completed: TrialState.COMPLETED,
        Pruned: TrialState.PRUNED,
        Failed: TrialState.FAILED,
        Rejected: TrialState.INFEASIBLE,
    }[type(outcome)]


def fix_reference_point(store: Store, sweep: SweepRecord) -> None:
    """Store a reference point derived from the completed trials, once, if the config gave none."""
    if sweep.reference_point is not None:
        return
    names = [o["name"] for o in sweep.objectives]
    points = [[t.results[n] for n in names] for t in completed_search_trials(store, sweep)]
    if points:
        store.set_reference_point(
            sweep.id, default_reference(points, [o["direction"] for o in sweep.objectives])
        )


def queue_replicates(
    store: Store, sweep: SweepRecord, seeds: int, reference: Mapping[str, float] | None = None
) -> int:
    """Queue replicates so every trial on the front has ``seeds`` of them; returns how many were added.

    Seeds go where they can change the confirmed front's hypervolume: a trial not strictly inside the box of
    the config's ``reference`` point (objective -> value) is not replicated.
    """
    front, _ = sweep_front(store, sweep)
    front = [t for t in front if _inside(t, reference, sweep)]
    existing: dict[int, int] = {}
    for trial in store.trials(sweep.id):
        if trial.replicate_of is not None:
            existing[trial.replicate_of] = existing.get(trial.replicate_of, 0) + 1
    added = 0
    for trial in front:
        for _ in range(seeds - existing.get(trial.number, 0)):
            store.create_trial(
                sweep.id,
                trial.params,
                config_hash=trial.config_hash,
                origin="confirm",
                replicate_of=trial.number,
            )
            added += 1
    return added


def _inside(trial: TrialRecord, reference: Mapping[str, float] | None, sweep: SweepRecord) -> bool:
    """Whether completed ``trial`` is strictly better than ``reference`` in every objective it names."""
    for objective in sweep.objectives:
        name = objective["name"]
        if reference is None or name not in reference:
            continue
        value, limit = trial.results[name], reference[name]
        if not (value < limit if objective["direction"] == "minimize" else value > limit):
            return False
    return True
