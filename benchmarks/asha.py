"""ASHA vs full training on Ray, 1 vs 2 workers, and Ray's overhead per trial, on the ECON-T space.

    .venv/bin/python benchmarks/asha.py asha      # ASHA vs full training: time to the full run's hypervolume
    .venv/bin/python benchmarks/asha.py workers   # 1 vs 2 Ray workers: trials per hour
    .venv/bin/python benchmarks/asha.py overhead  # Ray vs the in-process executor on tiny trials

Each part appends its section to benchmarks/asha.txt (with --rows/--epochs/--trials to resize). The random
strategy with one seed proposes the same configs in the same order to every run, so runs differ only in
how trials are executed or cut. Hypervolumes use one reference point (the full run's) for both runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
import torch

from search import TrialState, hypervolume, parse_config, run_sweep
from search._pareto import default_reference
from search._store import Store, TrialRecord

OUT = Path(__file__).with_suffix(".txt")
OBJECTIVES = ["emd_mean", "bops"]


def config(name: str, store: str, args: argparse.Namespace, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "task": {"name": "econt", "data": "synthetic", "rows": args.rows, "val_rows": 1000},
        "space": "econt",
        "objectives": [{o: "minimize"} for o in OBJECTIVES],
        "strategy": {"name": "random"},
        "trials": args.trials,
        "epochs": args.epochs,
        "store": store,
        "seed": 7,
        "executor": {"kind": "ray", "workers": 2, "num_cpus": 2},
    }
    data.update(overrides)
    return parse_config(data)


def timed_sweep(cfg: Any) -> tuple[float, list[TrialRecord]]:
    start = time.monotonic()
    run_sweep(cfg)
    wall = time.monotonic() - start
    store = Store(cfg.store)
    return wall, store.trials(store.get_sweep(cfg.name).id)


def hv_curve(trials: list[TrialRecord], reference: list[float]) -> list[tuple[float, float]]:
    """(seconds since the first trial started, hypervolume of the completed trials so far)."""
    t0 = min(t.started_at for t in trials if t.started_at is not None)
    done = sorted((t for t in trials if t.state is TrialState.COMPLETED), key=lambda t: t.finished_at)
    curve, points = [], []
    for trial in done:
        points.append([trial.results[o] for o in OBJECTIVES])
        volume = hypervolume(points, ["minimize"] * 2, reference, scale=[abs(v) for v in reference])
        curve.append(((trial.finished_at - t0).total_seconds(), float(volume)))
    return curve


def header(title: str, args: argparse.Namespace) -> list[str]:
    return [
        f"## {title}",
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPUs, 1 CPU per Ray"
        f" trial; ray {ray.__version__}, torch {torch.__version__}",
        "NOTE: the 2 cores are shared with other jobs while this ran: absolute times are noisy, compare ratios.",
        f"ECON-T synthetic, {args.rows} rows (1000 validation), {args.epochs} epochs, {args.trials} trials, "
        "random strategy seed 7, objectives emd_mean and bops",
    ]


def part_asha(args: argparse.Namespace, tmp: Path) -> list[str]:
    store = f"sqlite:///{tmp / 'asha.db'}"
    full_wall, full = timed_sweep(config("full", store, args))
    asha = {"kind": "asha", "mode": args.mode}
    asha_wall, cut = timed_sweep(config("asha", store, args, scheduler=asha))
    points = [[t.results[o] for o in OBJECTIVES] for t in full if t.state is TrialState.COMPLETED]
    reference = [float(v) for v in default_reference(points, ["minimize"] * 2)]
    full_curve, asha_curve = hv_curve(full, reference), hv_curve(cut, reference)
    target = full_curve[-1][1]
    reached = next((s for s, v in asha_curve if v >= target), None)
    full_reach = next(s for s, v in full_curve if v >= target)
    epochs_full = sum(t.fidelity for t in full)
    epochs_asha = sum(t.fidelity for t in cut)
    lines = header(f"ASHA ({args.mode}) vs full training, 2 Ray workers", args)
    lines += [
        f"reference point (from the full run) {reference}",
        f"{'run':<8}{'wall s':>9}{'epochs':>8}{'completed':>10}{'pruned':>8}{'final HV':>10}{'s to full HV':>14}",
    ]
    for name, wall, trials, curve, reach, epochs in (
        ("full", full_wall, full, full_curve, full_reach, epochs_full),
        ("asha", asha_wall, cut, asha_curve, reached, epochs_asha),
    ):
        count = {s: sum(t.state is s for t in trials) for s in (TrialState.COMPLETED, TrialState.PRUNED)}
        lines.append(
            f"{name:<8}{wall:>9.1f}{epochs:>8}{count[TrialState.COMPLETED]:>10}{count[TrialState.PRUNED]:>8}"
            f"{curve[-1][1] if curve else float('nan'):>10.4f}"
            f"{'never' if reach is None else f'{reach:.1f}':>14}"
        )
    if reached is None:
        lines.append(
            "ASHA's final hypervolume stays below the full run's: no speed-up to report on this metric"
        )
    else:
        lines.append(f"time to the full run's final hypervolume: ASHA {full_reach / reached:.2f}x faster")
    lines.append(
        f"wall time ratio full/asha {full_wall / asha_wall:.2f}; epochs trained ratio "
        f"{epochs_full / epochs_asha:.2f}"
    )
    return lines


def part_workers(args: argparse.Namespace, tmp: Path) -> list[str]:
    lines = header("1 vs 2 Ray workers on 2 cores (full training)", args)
    rates = {}
    for workers in (1, 2):
        store = f"sqlite:///{tmp / f'w{workers}.db'}"
        executor = {"kind": "ray", "workers": workers, "num_cpus": 2}
        wall, trials = timed_sweep(config(f"w{workers}", store, args, executor=executor))
        rates[workers] = len(trials) / wall * 3600
        lines.append(
            f"workers {workers}: {len(trials)} trials in {wall:.1f} s (ray.init included) -> "
            f"{rates[workers]:.0f} trials/hour"
        )
    lines.append(f"speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x")
    return lines


def part_overhead(args: argparse.Namespace, tmp: Path) -> list[str]:
    lines = header("Ray's overhead per trial: Ray (1 worker) vs the in-process local executor", args)
    store = f"sqlite:///{tmp / 'overhead.db'}"
    start = time.monotonic()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    init_s = time.monotonic() - start
    try:
        ray_wall, _ = timed_sweep(config("ray", store, args, executor={"kind": "ray", "workers": 1}))
    finally:
        ray.shutdown()
    local_wall, _ = timed_sweep(config("local", store, args, executor={"kind": "local", "workers": 1}))
    lines += [
        f"ray.init (local, 1 CPU): {init_s:.1f} s, once per sweep",
        f"sweep wall time without ray.init: Ray {ray_wall:.1f} s, local {local_wall:.1f} s",
        f"overhead per trial: {(ray_wall - local_wall) / args.trials:.2f} s "
        f"(trial itself ~{local_wall / args.trials:.2f} s in-process)",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["asha", "workers", "overhead"])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--mode", default="standard", choices=["aggressive", "standard", "conservative"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = {"asha": part_asha, "workers": part_workers, "overhead": part_overhead}[args.part](
            args, Path(tmp)
        )
    text = "\n".join(lines) + "\n\n"
    print(text)
    with OUT.open("a") as out:
        out.write(text)


if __name__ == "__main__":
    main()
