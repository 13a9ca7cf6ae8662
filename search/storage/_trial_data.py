"""What a trial records besides its state and results: per-epoch metrics, hardware costs, artifacts, ASHA
rung points and the worker that runs it.

:class:`TrialData` is a mixin of :class:`search.storage._store.Store` (one class for its callers) and keeps
its contract: one transaction per method, snapshots out, an unknown trial id is a StoreError, and every
public method waits while the store is busy. Per-epoch metrics store NaN as NULL; rung points store
infinities as NULL (JSON has none) and hand them back as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from search.storage._engine import every_public_method_waits_when_busy
from search.storage._records import StoreError
from search.storage._schema import (
    ArtifactRow,
    HWCostRow,
    TrialMetricRow,
    TrialRow,
    TrialRungRow,
    TrialState,
    utcnow,
)


@every_public_method_waits_when_busy
class TrialData:
    """Per-trial data of the store; ``Store`` supplies the session scope."""

    _session: Callable[[], AbstractContextManager[Session]]

    @staticmethod
    def _require_trial(session: Session, trial_id: int) -> None:
        """An unknown id is a StoreError, not the foreign-key IntegrityError an insert would raise. The
        trial's row stays locked until the write commits (PostgreSQL; SQLite has one writer anyway): two
        attempts of one trial reporting at once then replace each other's rows in turn instead of both
        deleting nothing and colliding on the unique keys."""
        if session.get(TrialRow, trial_id, with_for_update=True) is None:
            raise StoreError(f"no trial with id {trial_id}")

    def record_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch metrics (replacing any of the same epoch and name: a worker of an earlier attempt that
        was thought dead may still report); also advances the trial's fidelity to ``epoch``."""
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.execute(
                delete(TrialMetricRow).where(
                    TrialMetricRow.trial_id == trial_id,
                    TrialMetricRow.epoch == epoch,
                    TrialMetricRow.name.in_(list(metrics)),
                )
            )
            session.add_all(
                TrialMetricRow(
                    trial_id=trial_id, epoch=epoch, name=k, value=None if math.isnan(v) else float(v)
                )
                for k, v in metrics.items()
            )
            session.execute(
                update(TrialRow).where(TrialRow.id == trial_id).values(fidelity=epoch, heartbeat_at=utcnow())
            )

    def metrics(self, trial_id: int) -> list[dict[str, Any]]:
        """Per-epoch metrics as rows {"epoch", name: value, ...} in epoch order (NaN for NULL)."""
        with self._session() as session:
            rows = session.scalars(
                select(TrialMetricRow)
                .where(TrialMetricRow.trial_id == trial_id)
                .order_by(TrialMetricRow.epoch)
            )
            by_epoch: dict[int, dict[str, Any]] = {}
            for row in rows:
                by_epoch.setdefault(row.epoch, {"epoch": row.epoch})[row.name] = (
                    math.nan if row.value is None else row.value
                )
            return list(by_epoch.values())

    def record_cost(self, trial_id: int, report: Mapping[str, Any]) -> None:
        """Store (or replace) a trial's hardware cost report (``CostReport.to_dict()``)."""
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.execute(delete(HWCostRow).where(HWCostRow.trial_id == trial_id))
            session.add(
                HWCostRow(
                    trial_id=trial_id,
                    formula_version=str(report.get("formula_version", "")),
                    totals=dict(report.get("totals", {})),
                    report=dict(report),
                )
            )
            # The cost is part of the trial: readers asking what changed since a time see it.
            session.execute(update(TrialRow).where(TrialRow.id == trial_id).values(updated_at=utcnow()))

    def costs(self, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The cost reports of those of ``trial_ids`` that have one, by trial id."""
        with self._session() as session:
            rows = session.scalars(select(HWCostRow).where(HWCostRow.trial_id.in_(list(trial_ids))))
            return {r.trial_id: dict(r.report) for r in rows}

    def formula_versions(self, sweep_id: int) -> dict[str, int]:
        """How many of the sweep's cost reports each formula version made (one grouped query, no reports)."""
        with self._session() as session:
            rows = session.execute(
                select(HWCostRow.formula_version, func.count())
                .join(TrialRow, TrialRow.id == HWCostRow.trial_id)
                .where(TrialRow.sweep_id == sweep_id)
                .group_by(HWCostRow.formula_version)
            )
            return {str(version): int(count) for version, count in rows}

    def add_artifact(self, trial_id: int, kind: str, path: str, sha256: str) -> None:
        with self._session() as session:
            self._require_trial(session, trial_id)
            session.add(ArtifactRow(trial_id=trial_id, kind=kind, path=path, sha256=sha256))

    def last_artifact(self, sweep_id: int, kind: str) -> tuple[int, dict[str, str]] | None:
        """The trial number and the artifact of ``kind`` added last to any trial of the sweep, or None."""
        with self._session() as session:
            row = session.execute(
                select(TrialRow.number, ArtifactRow)
                .join(TrialRow, TrialRow.id == ArtifactRow.trial_id)
                .where(TrialRow.sweep_id == sweep_id, ArtifactRow.kind == kind)
                .order_by(ArtifactRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            number, artifact = row
            return int(number), {"kind": artifact.kind, "path": artifact.path, "sha256": artifact.sha256}

    def artifacts(self, trial_id: int) -> list[dict[str, str]]:
        """A trial's artifacts in the order they were added (the last checkpoint is the newest)."""
        with self._session() as session:
            rows = session.scalars(
                select(ArtifactRow).where(ArtifactRow.trial_id == trial_id).order_by(ArtifactRow.id)
            )
            return [{"kind": r.kind, "path": r.path, "sha256": r.sha256} for r in rows]

    def record_rung(
        self, trial_id: int, bracket: int, milestone: int, point: Sequence[float]
    ) -> tuple[list[list[float]], int]:
        """Record a trial's ASHA point at a rung (once: a retried trial keeps its first point). Returns the
        points of every trial of its sweep at that rung in recording order (infinities as such) and the
        index of this trial's point among them."""
        stored = [None if math.isinf(v) else float(v) for v in point]  # JSON has no infinity
        with self._session() as session:
            sweep_id = session.scalar(select(TrialRow.sweep_id).where(TrialRow.id == trial_id))
            if sweep_id is None:
                raise StoreError(f"no trial with id {trial_id}")
            known = session.scalar(
                select(TrialRungRow.id).where(
                    TrialRungRow.trial_id == trial_id, TrialRungRow.milestone == milestone
                )
            )
            if known is None:
                session.add(
                    TrialRungRow(
                        sweep_id=sweep_id,
                        trial_id=trial_id,
                        bracket=bracket,
                        milestone=milestone,
                        point=stored,
                    )
                )
                session.flush()
            rows = session.execute(
                select(TrialRungRow.trial_id, TrialRungRow.point)
                .where(
                    TrialRungRow.sweep_id == sweep_id,
                    TrialRungRow.bracket == bracket,
                    TrialRungRow.milestone == milestone,
                )
                .order_by(TrialRungRow.id)
            ).all()
        points = [[math.inf if v is None else v for v in row.point] for row in rows]
        return points, next(i for i, row in enumerate(rows) if row.trial_id == trial_id)

    def record_worker(self, trial_id: int, *, worker: str, host: str) -> None:
        """Name the process and host that run a RUNNING trial (a remote executor learns them at start),
        which starts it: a trial may wait in an executor's queue between ``start_trial`` and a free worker.

        A trial no longer RUNNING (already finished or requeued) is left as it is.
        """
        now = utcnow()
        with self._session() as session:
            session.execute(
                update(TrialRow)
                .where(TrialRow.id == trial_id, TrialRow.state == TrialState.RUNNING.value)
                .values(worker=worker, host=host, heartbeat_at=now, started_at=now)
            )
