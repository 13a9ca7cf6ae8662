"""Time hw_models.estimate (hls4ml conversion + cost formulas, no compile) per encoder of the built-in spaces.

Claim backed: the per-trial hardware estimate costs well under 0.2 s per encoder (target), so it can run
before training on every trial. Encoders are sampled with a fixed seed from the "econt" and "waveform"
spaces (float and Brevitas-quantized configurations alike); model building is not timed.

Run:  .venv/bin/python benchmarks/hw_cost.py [--samples 40] [--output benchmarks/hw_cost.txt]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from hw_models import estimate
from objectives import get_task
from spaces import get_preset, get_space

TARGET_SECONDS = 0.2
INPUT_SHAPES = {name: get_task(name).input_shape for name in ("econt", "waveform")}


def _time_space(task: str, samples: int, seed: int) -> dict[str, list[float]]:
    space, rng = get_space(task), np.random.default_rng(seed)
    timings: dict[str, list[float]] = {"float": [], "quantized": []}
    while sum(len(values) for values in timings.values()) < samples:
        config = space.validate(space.sample(rng))
        if not isinstance(config, dict):
            continue  # infeasible draws are rejected by the search before any costing
        encoder = get_task(task).build_model(config).encoder
        start = time.perf_counter()
        estimate(encoder, INPUT_SHAPES[task])
        timings["quantized" if config.get("quantize") else "float"].append(time.perf_counter() - start)
    return timings


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<10} n=0"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"  {label:<10} n={len(values):<3} median={statistics.median(values) * 1e3:7.1f} ms  "
        f"p90={p90 * 1e3:7.1f} ms  max={ordered[-1] * 1e3:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="encoders timed per space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_suffix(".txt"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    baseline = get_task("econt").build_model(get_preset("econt_baseline")).encoder
    estimate(baseline, INPUT_SHAPES["econt"])  # warm-up: first-call imports and registrations
    report = estimate(baseline, INPUT_SHAPES["econt"])

    lines = [
        "hw_models.estimate timing (hls4ml conversion + cost formulas; no compile, nothing written)",
        f"date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        "torch threads: 1; load average at start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
        f"versions: python {platform.python_version()}, torch {version('torch')}, hls4ml {version('hls4ml')}, "
        f"brevitas {version('brevitas')}",
        f"samples per space: {args.samples}, seed {args.seed}, target median < {TARGET_SECONDS * 1e3:.0f} ms",
        "",
        "econt_baseline encoder: " + ", ".join(f"{name}={report.value(name):g}" for name in report.totals),
        "",
    ]
    for task in ("econt", "waveform"):
        timings = _time_space(task, args.samples, args.seed)
        everything = timings["float"] + timings["quantized"]
        verdict = "meets" if statistics.median(everything) < TARGET_SECONDS else "MISSES"
        lines += [f"{task}: {verdict} the target", _line("all", everything)]
        lines += [_line(label, values) for label, values in timings.items()]
    text = "\n".join(lines) + "\n"
    args.output.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
