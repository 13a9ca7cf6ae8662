"""The one helper for sweep configs in tests: a tiny ECON-T sweep on synthetic data, overridable per test."""

from __future__ import annotations

from typing import Any


def tiny_task(rows: int = 1500, val_rows: int = 300, **extra: Any) -> dict[str, Any]:
    return {"name": "econt", "data": "synthetic", "rows": rows, "val_rows": val_rows, **extra}


def tiny_sweep(store: str, **overrides: Any) -> dict[str, Any]:
    """A 3-trial, 1-epoch random search of the built-in econt space (EMD vs BOPs) into ``store``."""
    config: dict[str, Any] = {
        "name": "tiny",
        "task": tiny_task(),
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "trials": 3,
        "epochs": 1,
        "store": store,
        "seed": 3,
    }
    config.update(overrides)
    return config
