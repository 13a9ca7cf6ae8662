"""What the store hands out (snapshots, the error type, the default URL): light, no alembic, no engine.

The results layer imports these without loading the writer (``search.storage._store`` and alembic).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.storage._schema import TrialState

# The store a command uses when given none (and $HWNAS_STORE is unset): a SQLite file in the working folder.
DEFAULT_STORE_URL = "sqlite:///hwnas.db"


class StoreError(ValueError):
    """The store cannot do what was asked: unreachable database, newer schema, illegal transition, ..."""


class BudgetSpent(StoreError):
    """No trial was added: the sweep already has as many search trials as its budget allows."""


class ConfigTaken(StoreError):
    """No trial was added: a search trial of the sweep (``trial_id``) already has this config."""

    def __init__(self, message: str, trial_id: int) -> None:
        super().__init__(message)
        self.trial_id = trial_id


@dataclass(frozen=True)
class SweepRecord:
    id: int
    name: str
    config_yaml: str
    config_hash: str
    objectives: list[dict[str, str]]
    reference_point: list[float] | None
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    id: int
    sweep_id: int
    number: int
    params: dict[str, Any]
    config_hash: str
    state: TrialState
    origin: str
    replicate_of: int | None
    seed: int
    fidelity: int
    attempts: int
    error: str | None
    worker: str | None
    host: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    results: dict[str, float]
    # When the trial row last changed (any write to it); None only for records built without one.
    updated_at: datetime | None = None


def redacted(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
