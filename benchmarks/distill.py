"""Knowledge distillation on the real ttbar sample: does a small dense ECON-T encoder reconstruct better (lower
EMD) when it learns from a teacher than when it trains alone?

Usage: .venv/bin/python benchmarks/distill.py [--teacher econt_baseline|"dense 64-64-64->16"] [--seeds 0 1 2]
       [--alphas 0.5 0.9] [--out benchmarks/distill.txt]

Data: ../shared/data/econt/ttbar_0PU.csv, the task's seeded split of its first 25,000 rows (20,000 training
rows, the first 3,000 validation rows scored), loss cwmse, one torch thread per process, 2 processes.
The teacher (the econt_baseline preset: Conv 8 3x3/2 -> latent 16, convtranspose decoder; or a wide dense
encoder, 64 -> 64 -> 64 -> latent 16) trains once, TEACHER_EPOCHS epochs, seed 0. Each student (a dense
encoder 64 -> latent, no hidden layer) trains STUDENT_EPOCHS epochs per seed, alone (alpha 0) and distilled
(`objectives.Distillation`, total loss (1 - alpha) * cwmse to the targets + alpha * cwmse to the teacher's
reconstruction, `Task.distill_loss`); the seed fixes the initial weights and the batch order, the same for
every alpha. The metric is emd_mean on the validation rows (task.evaluate), reported as mean +- std (ddof 1)
over the seeds. ~10 min on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "econt" / "ttbar_0PU.csv"
ROWS, VAL_ROWS = 25_000, 3_000
TEACHER_EPOCHS, STUDENT_EPOCHS = 30, 20
LOSS = "cwmse"
STUDENTS = {
    f"dense 64->{latent}": {
        "n_conv": 0,
        "n_dense": 0,
        "latent": latent,
        "lr": 3e-3,
        "batch_size": 256,
        "quantize": False,
        "sparsity": 0.0,
        "l1_reg": False,
    }
    for latent in (8, 16)
}
# The teachers: the reference design, and a wide dense encoder (the best kind hwnas found on this sample:
# D64 D64 -> L16 scored EMD ~0.7 in 10 epochs, benchmarks/search_real.txt).
TEACHERS = {
    "econt_baseline": None,  # the preset
    "dense 64-64-64->16": {
        **STUDENTS["dense 64->16"],
        "n_dense": 2,
        "dense0_units": 64,
        "dense1_units": 64,
    },
}


@lru_cache(maxsize=1)
def _data() -> Any:
    from objectives import get_task

    return get_task("econt", loss=LOSS).prepare(DATA, rows=ROWS, seed=0, val_rows=VAL_ROWS)


def _run(
    config: dict[str, Any], seed: int, epochs: int, teacher: tuple[dict[str, Any], bytes] | None, alpha: float
) -> tuple[float, bytes]:
    """Train one model as a sweep trial does; (emd_mean, its state dict)."""
    from objectives import Distillation, TrainSettings, get_task, train
    from spaces import get_space

    torch.set_num_threads(1)
    task = get_task("econt", loss=LOSS)
    distill = None
    if teacher is not None:
        mentor_config, weights = teacher
        mentor = task.build_model(mentor_config)
        mentor.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        distill = Distillation(mentor, alpha=alpha)
    canonical = get_space("econt").validate(config)
    assert isinstance(canonical, dict), canonical
    torch.manual_seed(seed)
    model = task.build_model(canonical)
    settings = TrainSettings(
        epochs=epochs, batch_size=int(canonical["batch_size"]), lr=float(canonical["lr"]), seed=seed
    )
    train(model, task, _data(), settings, distill=distill)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return task.evaluate(model, _data())["emd_mean"], buffer.getvalue()


def _student(job: tuple[str, int, float, tuple[dict[str, Any], bytes]]) -> tuple[str, int, float, float]:
    name, seed, alpha, teacher = job
    emd, _ = _run(STUDENTS[name], seed, STUDENT_EPOCHS, teacher if alpha > 0 else None, alpha)
    return name, seed, alpha, emd


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--teacher", choices=list(TEACHERS), default="econt_baseline")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "distill.txt")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"needs the real ttbar sample at {DATA}")
    from spaces import get_preset, get_space

    began = time.monotonic()
    lines = [
        f"# benchmarks/distill.py at {_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        f"# real ttbar ({DATA.name}), {ROWS} rows (80 % training), EMD on {VAL_ROWS} validation rows, {LOSS}; "
        f"teacher {args.teacher} {TEACHER_EPOCHS} epochs (seed 0), students {STUDENT_EPOCHS} epochs, "
        f"seeds {' '.join(map(str, args.seeds))}",
    ]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        mentor = TEACHERS[args.teacher] or get_preset("econt_baseline")
        teacher_emd, weights = pool.apply(_run, (mentor, 0, TEACHER_EPOCHS, None, 0.0))
        teacher = (get_space("econt").validate(mentor), weights)
        lines.append(f"# teacher emd_mean {teacher_emd:.4f} ({time.monotonic() - began:.0f} s)")
        jobs = [
            (name, seed, alpha, teacher)
            for name in STUDENTS
            for alpha in [0.0, *args.alphas]
            for seed in args.seeds
        ]
        results = pool.map(_student, jobs)
    emd: dict[tuple[str, float], list[float]] = {}
    for name, _seed, alpha, value in results:
        emd.setdefault((name, alpha), []).append(value)
    lines += ["", f"{'student':<14} {'alpha':>5}  {'emd_mean':>17}  {'vs alone':>8}  per seed"]
    for name in STUDENTS:
        alone = float(np.mean(emd[(name, 0.0)]))
        for alpha in [0.0, *args.alphas]:
            values = np.array(emd[(name, alpha)])
            spread = values.std(ddof=1) if values.size > 1 else 0.0
            change = "" if alpha == 0 else f"{100 * (values.mean() / alone - 1):+.1f} %"
            label = "alone" if alpha == 0 else f"{alpha:g}"
            lines.append(
                f"{name:<14} {label:>5}  {values.mean():.4f} +- {spread:.4f}  {change:>8}  "
                + " ".join(f"{v:.4f}" for v in values)
            )
    lines += ["", f"# wall time {time.monotonic() - began:.0f} s"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.write_text(text)


if __name__ == "__main__":
    main()
