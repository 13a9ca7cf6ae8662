"""Ax proposal time per trial, and how long workers sat idle waiting for a proposal, in a real sweep.

Run: .venv/bin/python benchmarks/ax_overhead.py > benchmarks/ax_overhead.txt
A short real sweep (the driver, 2 worker processes, the demo's ECON-T problem of examples/quick.yaml with
fewer epochs and trials, no warm start) per Ax setting. Two measures of idle time:
- ``ask wait``: the time the driver blocked in ``strategy.ask`` because no proposal was ready (the Ax
  strategy's own counter). While it blocks at most every worker is idle, so ``ask wait / wall`` bounds the
  share of worker time lost to waiting for Ax from above.
- ``slot gaps``: from the store's trial timestamps, trials assigned to worker slots; the share of slot time
  between the end of one trial and the start of the next (includes the driver's own overhead; a trial that
  finished while the driver was blocked is stamped late, which is why ``ask wait`` is the primary measure).
Wall time runs from the first trial's start to the last trial's end. Target: idle share < 5 %.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from search import TrialRecord, parse_config
from search._driver import Driver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"
TRIALS = 10
EPOCHS = 3
WORKERS = 2
# One setting: the machine is shared and each Bayesian-optimisation call takes 10-70 s of it here.
SETTINGS: list[tuple[str, dict[str, Any]]] = [("background, batch_size 2 (default)", {"background": True})]
N_SOBOL = 4


def sweep_config(name: str, options: Mapping[str, Any], workdir: Path) -> Any:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw.update(
        name=name,
        strategy={
            "name": "ax",
            "options": {
                "n_sobol": N_SOBOL,
                # PyYAML reads 5.0e6 as a string; pydantic would convert it, strategy options pass verbatim.
                "thresholds": {k: float(v) for k, v in raw["reference_point"].items()},
                **options,
            },
        },
        warm_start=[],
        trials=TRIALS,
        epochs=EPOCHS,
        executor={"kind": "local", "workers": WORKERS},
        store=f"sqlite:///{workdir / 'ax_overhead.db'}",
    )
    return parse_config(raw)


def slot_gaps(trials: list[TrialRecord]) -> tuple[float, float]:
    """(idle slot-seconds between trials, wall seconds) with trials placed greedily on WORKERS slots."""
    ran = sorted((t for t in trials if t.started_at and t.finished_at), key=lambda t: t.started_at)
    begin, end = ran[0].started_at, max(t.finished_at for t in ran)
    free_at = [begin] * WORKERS
    idle = 0.0
    for trial in ran:
        # The slot that freed last before this start ran the previous trial on it.
        candidates = [i for i, free in enumerate(free_at) if free <= trial.started_at] or [
            min(range(WORKERS), key=lambda i: free_at[i])
        ]
        slot = max(candidates, key=lambda i: free_at[i])
        idle += max(0.0, (trial.started_at - free_at[slot]).total_seconds())
        free_at[slot] = trial.finished_at
    return idle, (end - begin).total_seconds()


def main() -> None:
    print(f"# Ax overhead in a real sweep ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs while "
        f"this ran), Python {sys.version.split()[0]}, ax-platform {version('ax-platform')}, "
        f"torch {version('torch')}"
    )
    print(
        f"# sweep: examples/quick.yaml (ECON-T, synthetic 20k rows, cwmse) with {TRIALS} trials x {EPOCHS} "
        f"epochs, {WORKERS} worker processes, ax n_sobol={N_SOBOL}, thresholds = the reference point"
    )
    print()
    header = (
        f"{'setting':<42} {'wall s':>7} {'trial s':>8} {'Ax calls':>8} {'Ax s/prop':>9} {'Ax s/call':>9} "
        f"{'longest':>8} {'ask wait':>9} {'slot gaps':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, options in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            driver = Driver(sweep_config("ax-overhead", options, Path(tmp)))
            driver.run()
            strategy = driver.strategy
            state = strategy.state_dict()
            strategy.close()  # type: ignore[attr-defined]
            trials = driver.store.trials(driver.sweep.id)
        idle, wall = slot_gaps(trials)
        busy = [
            (t.finished_at - t.started_at).total_seconds() for t in trials if t.started_at and t.finished_at
        ]
        bo_calls = max(1, state["ax_calls"])
        print(
            f"{label:<42} {wall:7.1f} {sum(busy) / len(busy):8.1f} {state['ax_calls']:8d} "
            f"{state['ax_seconds'] / max(1, state['ax_proposals']):9.2f} {state['ax_seconds'] / bo_calls:9.2f} "
            f"{state['ax_longest_call_seconds']:8.1f} {100 * state['ask_wait_seconds'] / wall:8.1f}% "
            f"{100 * idle / (WORKERS * wall):8.1f}%",
            flush=True,
        )
    print()
    print("# trial s: mean trial duration (start to end in the store); Ax s/prop: Ax time per proposal;")
    print("# ask wait: driver blocked waiting for a proposal / wall (upper bound of idle worker share);")
    print("# slot gaps: idle slot time between trials / (workers x wall), from the store's timestamps.")


if __name__ == "__main__":
    main()
