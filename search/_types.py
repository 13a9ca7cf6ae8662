"""Value types shared by the strategies, the driver and the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["minimize", "maximize"]

# The result a worker stores with every trial it trains: its wall time in seconds, from the start of training
# to the end of evaluation (what a trial costs a sweep run against the clock).
TRIAL_SECONDS = "trial_seconds"


@dataclass(frozen=True)
class Objective:
    """One optimised quantity: a task metric (``emd_mean``) or a hardware cost (``bops``)."""

    name: str
    direction: Direction = "minimize"


@dataclass(frozen=True)
class Proposal:
    """A configuration a strategy wants evaluated; ``key`` is the strategy's own handle for ``tell``."""

    key: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Completed:
    """Full-fidelity result: every objective has a finite or infinite (never NaN) value.

    ``sem`` holds the standard error of objectives whose noise was measured by replicates (``confirm``);
    the values are then means over the trial's evaluations. ``collapsed``: the task's collapse detector
    flagged the trained model (a near-constant output), so its quality says the training failed, not how
    good the architecture can be. ``seconds``: the trial's wall time in its worker (None if not measured).
    """

    values: dict[str, float]
    fidelity: int = 0
    sem: dict[str, float] | None = None
    collapsed: bool = False
    seconds: float | None = None


@dataclass(frozen=True)
class Pruned:
    """Stopped early by a scheduler at ``fidelity`` epochs with these partial values; ``seconds``: its wall
    time in its worker up to the stop (None if not measured)."""

    values: dict[str, float]
    fidelity: int
    seconds: float | None = None


@dataclass(frozen=True)
class Failed:
    """The trial raised or diverged; ``reason`` is stored verbatim."""

    reason: str


@dataclass(frozen=True)
class Rejected:
    """The config was never trained: infeasible shape or over a hardware budget."""

    reason: str


Outcome = Completed | Pruned | Failed | Rejected
