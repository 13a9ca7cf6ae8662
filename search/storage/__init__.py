"""The store: the only code that writes SQL (SQLAlchemy 2 models, alembic migrations).

Names are imported on first use: the records, ``StoreError`` and ``DEFAULT_STORE_URL`` come without the
writer, so the read-only results layer does not load alembic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.storage._records import (
        DEFAULT_STORE_URL,
        BudgetSpent,
        ConfigTaken,
        StoreError,
        SweepRecord,
        TrialRecord,
    )
    from search.storage._schema import TrialState
    from search.storage._store import Store

_EXPORTS = {
    "search.storage._schema": ("TrialState",),
    "search.storage._records": (
        "DEFAULT_STORE_URL",
        "BudgetSpent",
        "ConfigTaken",
        "StoreError",
        "SweepRecord",
        "TrialRecord",
    ),
    "search.storage._store": ("Store",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "DEFAULT_STORE_URL",
    "BudgetSpent",
    "ConfigTaken",
    "Store",
    "StoreError",
    "SweepRecord",
    "TrialRecord",
    "TrialState",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'search.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
