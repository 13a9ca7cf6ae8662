"""Start-up of `hwnas dashboard` on a store of 10,000 trials (issue 16: under 3 s).

Run: .venv/bin/python benchmarks/dashboard_startup.py > benchmarks/dashboard_startup.txt

The store is the one benchmarks/read_scale.py builds (one ECON-T-shaped sweep, 10,000 trials with
results, per-epoch metrics and cost reports). Each run starts a fresh `hwnas dashboard --port 0` process and
times, from the launch: (1) the sweeps list answering (`/api/sweeps`, which reads every trial to give each
sweep's best values and hypervolume), and (2) everything the sweep page loads before it draws (the sweep,
its front, all 10,000 points in pages of 5,000, the hypervolume history and the first table page).
Medians of 3 runs; the machine's load is printed with them.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from read_scale import build_store

TRIALS = 10_000
RUNS = 3


def one_run(url: str) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "dashboard", "--store", url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert process.stderr is not None
        address = None
        for line in process.stderr:
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
            if found:
                address = found.group(1)
                break
        if address is None:
            raise SystemExit(f"the dashboard did not start (exit {process.wait()})")
        with httpx.Client(base_url=address, timeout=60) as client:
            sweeps = client.get("/api/sweeps").raise_for_status().json()
            listed = time.perf_counter() - start
            sweep = sweeps[0]["id"]
            client.get(f"/api/sweeps/{sweep}").raise_for_status()
            client.get(f"/api/sweeps/{sweep}/front").raise_for_status()
            after = None
            while True:
                query = {"limit": 5000} | ({} if after is None else {"after": after})
                page = client.get(f"/api/sweeps/{sweep}/points", params=query).raise_for_status().json()
                after = page["next_after"]
                if after is None:
                    break
            client.get(f"/api/sweeps/{sweep}/hypervolume").raise_for_status()
            client.get(f"/api/sweeps/{sweep}/trials", params={"limit": 25}).raise_for_status()
            drawn = time.perf_counter() - start
        return listed, drawn
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.db"
        built = time.perf_counter()
        build_store(path, TRIALS)
        built = time.perf_counter() - built
        url = f"sqlite:///{path}"
        runs = [one_run(url) for _ in range(RUNS)]
    print(f"# hwnas dashboard start-up on {TRIALS:,} trials — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"# fastapi {version('fastapi')}, uvicorn {version('uvicorn')}, sqlalchemy {version('sqlalchemy')}")
    print(f"# load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"# store built in {built:.1f} s; {RUNS} fresh processes, medians (min-max)")
    print()
    for label, values in (
        ("launch -> sweeps list answered", [r[0] for r in runs]),
        ("launch -> sweep page data loaded", [r[1] for r in runs]),
    ):
        print(f"{label:<36} {statistics.median(values):5.2f} s  ({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    main()
