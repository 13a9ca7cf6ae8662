"""`hwnas data check` streams: its peak memory does not grow with the file (running statistics per chunk)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# The peak RSS of checking a 60 MB file may exceed that of a 6 MB one by at most this much. Before the
# check streamed, it held every row (float32 and the float64 row sums): about 190 MB more for 60 MB.
MARGIN_MB = 30

# A fresh interpreter runs the check as its only child, so RUSAGE_CHILDREN is that check's peak alone.
MEASURE = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "search.cli", "data", "check", sys.argv[1]], capture_output=True)
assert done.returncode == 0, done.stderr.decode()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _econt_csv(path: Path, megabytes: float) -> Path:
    rng = np.random.default_rng(0)
    block = rng.poisson(2.0, size=(10_000, 48))
    block[:, 0] += 1  # no all-zero rows
    text = "\n".join(",".join(map(str, row)) for row in block.tolist()) + "\n"
    header = ",".join(f"CALQ_{i}" for i in range(48)) + "\n"
    with path.open("w") as handle:
        handle.write(header)
        for _ in range(max(1, round(megabytes * 1e6 / len(text)))):
            handle.write(text)
    return path


def _peak_rss_mb(path: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True, timeout=600
    )
    return int(result.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def test_peak_memory_of_data_check_does_not_grow_with_the_file(tmp_path: Path) -> None:
    small = _econt_csv(tmp_path / "small.csv", 6)
    large = _econt_csv(tmp_path / "large.csv", 60)
    assert large.stat().st_size > 9 * small.stat().st_size
    small_mb, large_mb = _peak_rss_mb(small), _peak_rss_mb(large)
    assert large_mb - small_mb < MARGIN_MB, (small_mb, large_mb)
