"""What the dashboard reads: the store through the read-only results layer, each sweep's trials kept in memory
and brought up to date by reading only the trials changed since the last read.

Contract:
- Every read goes through :class:`search.results.Results` (read-only: nothing here can write the store),
  one read at a time (a lock), so request threads never share a connection mid-read.
- A sweep's trials are read in full once, then refreshed at most once per ``REFRESH_S`` with
  ``changed_since``; the window reaches ``OVERLAP`` back past the last change seen, so a write that was
  committed late (its stamp older than one already read) is still picked up.
- Derived figures (front, hypervolume history, importance) are recomputed only when the trials changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from search.results import Results
from search.storage import SweepRecord, TrialRecord, TrialState

T = TypeVar("T")

REFRESH_S = 1.0
OVERLAP = timedelta(seconds=10)


class NotFound(LookupError):
    """No such sweep or trial in the store (the message names what was asked for)."""


class SweepTrials:
    """One sweep's trials as last read, by number; satisfies ``search.results.TrialSource``."""

    def __init__(self, sweep: SweepRecord) -> None:
        self.sweep = sweep
        self.by_number: dict[int, TrialRecord] = {}
        self.cursor: datetime | None = None  # the newest ``updated_at`` seen (the store's clock, not ours)
        self.version = 0  # bumped whenever a trial or the sweep changed
        self.read_at = 0.0
        self._derived: dict[str, tuple[int, float, Any]] = {}

    def trials(
        self, sweep_id: int, states: Sequence[TrialState] | None = None, *, replicates: bool = True
    ) -> list[TrialRecord]:
        """The trials in number order (only ``states`` if given), like ``Results.trials``."""
        if sweep_id != self.sweep.id:
            raise NotFound(f"no sweep with id {sweep_id}")
        wanted = None if states is None else set(states)
        return [
            t
            for t in sorted(self.by_number.values(), key=lambda t: t.number)
            if (wanted is None or t.state in wanted) and (replicates or t.replicate_of is None)
        ]

    def merge(self, sweep: SweepRecord, trials: list[TrialRecord]) -> None:
        """Take in a fresher sweep record and trials. The mapping is replaced, never changed in place, so
        request threads iterating the previous one (outside the read lock) are not disturbed."""
        changed = sweep != self.sweep
        self.sweep = sweep
        updated = dict(self.by_number)
        for trial in trials:
            if updated.get(trial.number) != trial:
                updated[trial.number] = trial
                changed = True
            if trial.updated_at is not None and (self.cursor is None or trial.updated_at > self.cursor):
                self.cursor = trial.updated_at
        if changed:
            self.by_number = updated
            self.version += 1

    def derived(self, key: str, compute: Callable[[], T], *, max_age_s: float = 0.0) -> T:
        """``compute()`` memoised until the trials change (or, with ``max_age_s``, until they changed and
        the last result is older than that: for figures too costly to redo on every new trial)."""
        cached = self._derived.get(key)
        if cached is not None:
            version, made_at, value = cached
            if version == self.version or time.monotonic() - made_at < max_age_s:
                return value  # type: ignore[no-any-return]
        value = compute()
        self._derived[key] = (self.version, time.monotonic(), value)
        return value


class Live:
    """The store opened read-only, with the in-memory trials of the sweeps that were asked for."""

    def __init__(self, url: str) -> None:
        """Open ``url`` read-only. Raises ResultsError if missing, unreachable, not an hwnas store or at
        another schema revision."""
        self.results = Results.open(url)
        self._lock = threading.RLock()
        self._sweeps: dict[int, SweepTrials] = {}

    def close(self) -> None:
        self.results.close()

    def sweeps(self) -> list[SweepTrials]:
        """Every sweep of the store, each up to date."""
        with self._lock:
            overviews = self.results.sweeps()
            return [self._fresh(o.sweep) for o in overviews]

    def sweep(self, sweep_id: int) -> SweepTrials:
        """The sweep with id ``sweep_id``, up to date. Raises NotFound."""
        with self._lock:
            known = self._sweeps.get(sweep_id)
            if known is not None and time.monotonic() - known.read_at < REFRESH_S:
                return known
            name = known.sweep.name if known is not None else self._name_of(sweep_id)
            record = self.results.get_sweep(name)
            if record is None:
                raise NotFound(f"no sweep with id {sweep_id}")
            return self._fresh(record)

    def read(self, work: Callable[[Results], T]) -> T:
        """``work(results)`` under the read lock (for per-trial reads: metrics, costs, artifacts)."""
        with self._lock:
            return work(self.results)

    def _name_of(self, sweep_id: int) -> str:
        for overview in self.results.sweeps():
            if overview.sweep.id == sweep_id:
                return overview.sweep.name
        raise NotFound(f"no sweep with id {sweep_id}")

    def _fresh(self, record: SweepRecord) -> SweepTrials:
        known = self._sweeps.get(record.id)
        if known is not None and time.monotonic() - known.read_at < REFRESH_S:
            return known
        if known is None or known.cursor is None:
            trials = self.results.trials(record.id)
            known = known or SweepTrials(record)
        else:
            trials = self.results.changed_since(record.id, known.cursor - OVERLAP).trials
        known.merge(record, trials)
        known.read_at = time.monotonic()
        self._sweeps[record.id] = known
        return known
