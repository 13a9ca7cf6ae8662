"""ASHA vs full training on Ray, 1 vs 2 workers, and Ray's overhead per trial, on the ECON-T space.

    .venv/bin/python benchmarks/asha.py asha      # ASHA (Pareto and metric-only promotion) vs full training
    .venv/bin/python benchmarks/asha.py workers   # 1 vs 2 Ray workers: trials per hour
    .venv/bin/python benchmarks/asha.py overhead  # Ray vs the in-process executor on tiny trials

Each part appends its section to benchmarks/asha.txt (with --rows/--epochs/--trials to resize). The random
strategy with one seed proposes the same configs in the same order to every run, so runs differ only in
how trials are executed or cut. Hypervolumes use one reference point (the full run's) for all runs, and
only full-fidelity (COMPLETED) trials. ``asha`` runs full training, then ASHA with Pareto promotion (the
default) and with the rung metric alone, and reports for each the wall time until its hypervolume reached
the full run's final one, 99.9 % and 99 % of it.
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
from search.results._pareto import default_reference
from search.storage._store import Store, TrialRecord

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
        f"load average before the run (1/5/15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"ECON-T synthetic, {args.rows} rows (1000 validation), {args.epochs} epochs, {args.trials} trials, "
        "random strategy seed 7, objectives emd_mean and bops",
    ]


def part_asha(args: argparse.Namespace, tmp: Path) -> list[str]:
    """Full training, then ASHA with Pareto promotion (the default) and with the rung metric alone."""
    lines = header(f"ASHA ({args.mode}) vs full training, 2 Ray workers", args)
    store = f"sqlite:///{tmp / 'asha.db'}"
    runs = {"full": timed_sweep(config("full", store, args))}
    for promotion in ("pareto", "metric"):
        asha = {"kind": "asha", "mode": args.mode, "promotion": promotion}
        runs[f"asha-{promotion}"] = timed_sweep(config(f"asha-{promotion}", store, args, scheduler=asha))
    full_wall, full = runs["full"]
    points = [[t.results[o] for o in OBJECTIVES] for t in full if t.state is TrialState.COMPLETED]
    reference = [float(v) for v in default_reference(points, ["minimize"] * 2)]
    # Same configs and seeds train to the same values, up to floating-point summation order, so ASHA's
    # completed trials are a subset of the full run's and its hypervolume can at best equal the full one:
    # "100 %" allows a relative 1e-6, and 99.9 % / 99 % show how close each run gets how fast.
    full_hv = hv_curve(full, reference)[-1][1]
    levels = {"100%": 1 - 1e-6, "99.9%": 0.999, "99%": 0.99}
    epochs = {name: sum(t.fidelity or 0 for t in trials) for name, (_, trials) in runs.items()}
    lines += [
        f"reference point (from the full run) {reference}",
        f"{'run':<13}{'wall s':>8}{'epochs':>8}{'completed':>10}{'pruned':>8}{'final HV':>10}"
        + "".join(f"{'s to ' + level:>12}" for level in levels),
    ]
    reached: dict[str, dict[str, float | None]] = {}
    for name, (wall, trials) in runs.items():
        curve = hv_curve(trials, reference)
        reached[name] = {
            level: next((s for s, v in curve if v >= share * full_hv), None)
            for level, share in levels.items()
        }
        count = {s: sum(t.state is s for t in trials) for s in (TrialState.COMPLETED, TrialState.PRUNED)}
        lines.append(
            f"{name:<13}{wall:>8.1f}{epochs[name]:>8}{count[TrialState.COMPLETED]:>10}"
            f"{count[TrialState.PRUNED]:>8}{curve[-1][1] if curve else float('nan'):>10.6f}"
            + "".join(f"{'never' if s is None else f'{s:.1f}':>12}" for s in reached[name].values())
        )
    for name, (wall, _) in runs.items():
        if name == "full":
            continue
        speedups = []
        for level in levels:
            full_s, run_s = reached["full"][level], reached[name][level]
            speedups.append(
                f"{level} " + ("never" if full_s is None or run_s is None else f"{full_s / run_s:.2f}x")
            )
        lines.append(
            f"{name}: faster than full to the full run's final HV: {', '.join(speedups)}; wall time ratio "
            f"full/{name} {full_wall / wall:.2f}; epochs trained ratio {epochs['full'] / epochs[name]:.2f}"
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
    parser.add_argument("--trials", type=int, default=24)
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
