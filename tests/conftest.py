"""Suite-wide settings: one torch thread per test process keeps runs deterministic and fair on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real samples in ../shared/data; tests needing them skip when a clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real sample data not found at {SHARED_DATA} (only present in the development workspace)"
        )
    return SHARED_DATA
