"""Ax proposal time per trial, and how long workers sat idle waiting for a proposal, in a real sweep.

Run: .venv/bin/python benchmarks/ax_overhead.py > benchmarks/ax_overhead.txt
Real sweeps (the driver, 2 worker processes, the demo's ECON-T problem of examples/quick.yaml with TRIALS
trials, no warm start) at three trial lengths (EPOCHS_PER_TRIAL): short trials of a few seconds, where Ax's
proposal time is of the order of a trial, up to the ~100 epochs of a real ECON-T search (on 20k rows). Each
length runs with random search (the baseline without proposal cost), with Ax in its default background mode,
and with Ax and ``fill_random`` (a worker that finds no proposal ready gets a random draw). Two measures of
idle time:
- ``ask wait``: the time the driver blocked in ``strategy.ask`` because no proposal was ready (the Ax
  strategy's own counter). While it blocks at most every worker is idle, so ``ask wait / wall`` bounds the
  share of worker time lost to waiting for Ax from above.
- ``slot gaps``: from the store's trial timestamps, trials assigned to worker slots; the share of slot time
  between the end of one trial and the start of the next (includes the driver's own overhead; a trial that
  finished while the driver was blocked is stamped late, which is why ``ask wait`` is the primary measure).
Wall time runs from the first trial's start to the last trial's end. Target: idle share < 5 %.
Ax's background thread shares the 2 cores with the workers, so its cost also shows as longer trials: the
``trial s`` of Ax against random search at the same length.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from search import TrialRecord, parse_config
from search.execution._loop import SweepLoop

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"
TRIALS = 12
EPOCHS_PER_TRIAL = (3, 30, 100)
WORKERS = 2
N_SOBOL = 4


def sweep_config(name: str, strategy: str, epochs: int, workdir: Path) -> Any:
    raw = yaml.safe_load(EXAMPLE.read_text())
    options: dict[str, Any] = {}
    if strategy.startswith("ax"):  # the defaults: background proposals, batch_size 2
        # PyYAML reads 5.0e6 as a string; pydantic would convert it, strategy options pass verbatim.
        options = {"n_sobol": N_SOBOL, "thresholds": {k: float(v) for k, v in raw["reference_point"].items()}}
        options["fill_random"] = strategy == "ax-fill"
    raw.update(
        name=name,
        strategy={"name": strategy.removesuffix("-fill"), "options": options},
        warm_start=[],
        trials=TRIALS,
        epochs=epochs,
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
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average before the run "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, Python {sys.version.split()[0]}, ax-platform "
        f"{version('ax-platform')}, torch {version('torch')}"
    )
    print(
        f"# sweep: examples/quick.yaml (ECON-T, synthetic 20k rows, cwmse) with {TRIALS} trials, {WORKERS} "
        f"worker processes; ax: default options (background, batch_size 2), n_sobol={N_SOBOL}, thresholds = "
        "the reference point"
    )
    print()
    header = (
        f"{'epochs':>6} {'strategy':<8} {'wall s':>7} {'trial s':>8} {'Ax calls':>8} {'Ax s/prop':>9} "
        f"{'Ax s/call':>9} {'longest':>8} {'ask wait':>9} {'slot gaps':>9} {'random':>6}"
    )
    print(header)
    print("-" * len(header))
    for epochs in EPOCHS_PER_TRIAL:
        for strategy in ("random", "ax", "ax-fill"):
            with tempfile.TemporaryDirectory() as tmp:
                driver = SweepLoop(sweep_config(f"{strategy}-{epochs}", strategy, epochs, Path(tmp)))
                driver.run()
                state = driver.strategy.state_dict()
                driver.strategy.close()
                trials = driver.store.trials(driver.sweep.id)
            idle, wall = slot_gaps(trials)
            busy = [
                (t.finished_at - t.started_at).total_seconds()
                for t in trials
                if t.started_at and t.finished_at
            ]
            row = f"{epochs:>6} {strategy:<8} {wall:7.1f} {sum(busy) / len(busy):8.1f} "
            if strategy.startswith("ax"):
                calls = max(1, state["ax_calls"])
                row += (
                    f"{state['ax_calls']:8d} {state['ax_seconds'] / max(1, state['ax_proposals']):9.2f} "
                    f"{state['ax_seconds'] / calls:9.2f} {state['ax_longest_call_seconds']:8.1f} "
                    f"{100 * state['ask_wait_seconds'] / wall:8.1f}% "
                )
            else:
                row += f"{'-':>8} {'-':>9} {'-':>9} {'-':>8} {'-':>9} "
            fills = state.get("random_fills", 0)
            print(row + f"{100 * idle / (WORKERS * wall):8.1f}% {fills:6d}", flush=True)
    print()
    print("# trial s: mean trial duration (start to end in the store); Ax s/prop: Ax time per proposal;")
    print("# ask wait: driver blocked waiting for a proposal / wall (upper bound of idle worker share);")
    print("# slot gaps: idle slot time between trials / (workers x wall), from the store's timestamps;")
    print("# random: trials that were random draws handed out while no Ax proposal was ready (ax-fill).")


if __name__ == "__main__":
    main()
