"""Soak: SIGKILL the driver of a small sweep at many random moments, resume each time, count the damage.

    .venv/bin/python benchmarks/soak.py                      # 50 kills on SQLite, appends to soak.txt
    .venv/bin/python benchmarks/soak.py --kills 10 --store postgresql+psycopg://postgres@127.0.0.1/DB

Each round runs ``hwnas sweep launch`` (which continues the identical existing sweep) as a subprocess,
waits until it runs a trial and SIGKILLs it after a further random delay (uniform in
--delay-min..--delay-max s: mid-trial, between trials, while it records); a last round runs the sweep to its end. The sweep: the built-in econt space, random strategy,
1 epoch on 1,500 synthetic rows, 2 workers, heartbeat 0.5 s. The figures: kills, resumes, trials (the
budget), completed, lost (trials left queued or running), duplicated (search trials with the config of
another), counted (trials against the budget: no overshoot when it equals the budget), wall time. The
same code runs in tests/reliability/test_soak.py with 10 kills.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))

from soak import soak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay-min", type=float, default=0.0)
    parser.add_argument("--delay-max", type=float, default=5.0)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop killing after this wall time (kills done are reported)",
    )
    parser.add_argument("--store", default=None, help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or f"sqlite:///{Path(tmp) / 'soak.db'}"
        load_before = os.getloadavg()
        result = soak(
            Path(tmp),
            store,
            kills=args.kills,
            trials=args.trials,
            seed=args.seed,
            delay_s=(args.delay_min, args.delay_max),
            kill_for_s=None if args.max_minutes is None else 60 * args.max_minutes,
        )
        load_after = os.getloadavg()
    backend = store.split(":", 1)[0]
    lines = [
        f"## soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {backend}",
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}",
        f"delays {args.delay_min:g}..{args.delay_max:g} s after the driver started a trial, seed {args.seed}; "
        f"kills asked {args.kills}"
        + (f", killing stopped after {args.max_minutes:g} min" if args.max_minutes is not None else ""),
        f"kills {result.kills}, resumes {result.resumes}, trials {result.trials}, completed {result.completed}, "
        f"lost {result.lost}, duplicated {result.duplicated}, counted {result.counted}, "
        f"wall {result.wall_s:.0f} s",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with args.out.open("a") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
