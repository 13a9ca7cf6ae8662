"""Hexagonal EMD: objectives.emd_hex against a per-row POT ``ot.emd2`` loop, side by side in one run.

Usage: .venv/bin/python benchmarks/emd.py [--rows 20000] [--reference-rows 2000] [--seed 0] [--real FILE]

Inputs are realistic sparse synthetic modules (``synth_econt``, calibrated on the real ttbar sample).
Two kinds of reconstruction are scored:
  sparse  the input with every occupied cell rescaled by 0.6-1.4 and 5 % spurious 2-10 count cells
          (another sparse module, as from a zero-suppressed readout);
  dense   the input plus a small positive value in every cell (like a sigmoid decoder's output).
The POT loop runs on the first ``--reference-rows`` rows (it is slow) and its rows/s is compared with
emd_hex on all rows; both run on one core. The values are checked to agree to 1e-9 on every reference row,
and the run fails unless emd_hex is at least 10x faster on the sparse case. ``n_jobs=2`` is timed on a
warm process pool (the pool's one-off start-up is printed separately).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import ot
import torch

from objectives import emd_hex, load_econt, synth_econt
from objectives._geometry import CELL_CENTRES

REQUIRED_SPEEDUP = 10.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def reconstructions(x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spurious = np.where(rng.random(x.shape) < 0.05, rng.integers(2, 11, x.shape), 0)
    sparse = np.rint(x * rng.uniform(0.6, 1.4, x.shape)) + spurious
    unit = x / x.sum(axis=1, keepdims=True)
    dense = unit + rng.uniform(1e-4, 2e-2, x.shape)
    return {"sparse": sparse, "dense": dense}


def pot_loop(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cost = ot.dist(CELL_CENTRES, CELL_CENTRES, metric="euclidean")
    return np.array([ot.emd2(a / a.sum(), b / b.sum(), cost) for a, b in zip(x, y, strict=True)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--reference-rows", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--real", type=Path, help="use the rows of this ECON-T file instead of synthetic ones"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.real is not None:
        x = load_econt(args.real, max_rows=args.rows).astype(np.float64)
        source = f"real rows from {args.real.name}"
    else:
        x = synth_econt(args.rows, seed=args.seed).astype(np.float64)
        source = f"synth_econt(seed={args.seed})"
    occupancy = (x > 0).sum(axis=1)
    print("# objectives.emd_hex vs per-row ot.emd2 (POT), one core unless n_jobs says otherwise")
    print(f"date      {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"machine   {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"load average {load} at start (other jobs share the cores)"
    )
    print(
        f"versions  python {platform.python_version()}, numpy {np.__version__}, POT {ot.__version__}, "
        f"torch {torch.__version__}"
    )
    print(f"command   {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(
        f"inputs    {x.shape[0]} rows, {source}; occupied cells per row: mean {occupancy.mean():.2f}, "
        f"1 cell {np.mean(occupancy == 1):.0%}, 2 cells {np.mean(occupancy == 2):.0%}, "
        f">=3 cells {np.mean(occupancy >= 3):.0%}"
    )
    print()
    print(f"{'case':<8} {'POT loop rows/s':>16} {'emd_hex rows/s':>15} {'speed-up':>9} {'max |diff|':>11}")
    failures = []
    reference_rows = min(args.reference_rows, x.shape[0])
    for case, y in reconstructions(x, args.seed + 1).items():
        start = time.perf_counter()
        reference = pot_loop(x[:reference_rows], y[:reference_rows])
        pot_rate = reference_rows / (time.perf_counter() - start)
        start = time.perf_counter()
        result = emd_hex(x, y)
        fast_rate = x.shape[0] / (time.perf_counter() - start)
        difference = float(np.max(np.abs(result.values[:reference_rows] - reference)))
        speedup = fast_rate / pot_rate
        print(f"{case:<8} {pot_rate:>16,.0f} {fast_rate:>15,.0f} {speedup:>8.1f}x {difference:>11.1e}")
        if difference > 1e-9:
            failures.append(f"{case}: values differ from ot.emd2 by {difference:.2e}")
        if case == "sparse" and speedup < REQUIRED_SPEEDUP:
            failures.append(f"sparse: speed-up {speedup:.1f}x is below the claimed {REQUIRED_SPEEDUP:.0f}x")

    print()
    y = reconstructions(x, args.seed + 1)["dense"]
    start = time.perf_counter()
    emd_hex(x, y, n_jobs=2)
    start_up = time.perf_counter() - start
    start = time.perf_counter()
    serial = emd_hex(x, y, n_jobs=1)
    serial_time = time.perf_counter() - start
    start = time.perf_counter()
    parallel = emd_hex(x, y, n_jobs=2)
    parallel_time = time.perf_counter() - start
    identical = np.array_equal(serial.values, parallel.values, equal_nan=True)
    print(
        f"n_jobs=2  dense case: {x.shape[0] / parallel_time:,.0f} rows/s on a warm pool vs "
        f"{x.shape[0] / serial_time:,.0f} with n_jobs=1 ({serial_time / parallel_time:.2f}x); "
        f"first call incl. pool start-up {start_up:.1f} s; identical values: {identical}"
    )
    if not identical:
        failures.append("n_jobs=2 changed the values")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
