"""The store: the only code that writes SQL (SQLAlchemy 2 models, alembic migrations)."""

from search.storage._schema import TrialState
from search.storage._store import DEFAULT_STORE_URL, Store, StoreError, SweepRecord, TrialRecord

__all__ = ["DEFAULT_STORE_URL", "Store", "StoreError", "SweepRecord", "TrialRecord", "TrialState"]
