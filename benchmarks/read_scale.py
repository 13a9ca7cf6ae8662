"""Cost of the read commands against the size of a store: 100 to 100,000 trials.

Run: git archive 4d7c562 | tar -x -C /tmp/hwnas-before   # the code before the results layer, optional
     .venv/bin/python benchmarks/read_scale.py --baseline-code /tmp/hwnas-before > benchmarks/read_scale.txt
     (--sizes 100,1000 for a quick look; --keep DIR keeps the generated stores there)

For each size a SQLite store (WAL, at the current schema) is filled with bulk inserts shaped like a real
ECON-T sweep: one sweep with the demo's config, trials with canonical params (88 % completed, 5 % pruned,
4 % failed, 3 % infeasible, a few confirm replicates), two objective results per completed trial, five
epochs of three per-epoch metrics, and a hardware cost report with per-layer JSON (~2.5 kB, as
``CostReport.to_dict()`` writes). Then every read command runs as a fresh process, three times:
``hwnas pareto NAME --format json``, ``hwnas sweep status NAME``, ``hwnas sweep list``; its wall time
(median), CPU time (user + system, median) and peak RSS (max) are printed, as /usr/bin/time reports them. Start-up is
``hwnas --help`` and ``hwnas sweep list`` on the smallest store. Targets (issue 12): a read command on
10,000 trials in <= 1.5 s and <= 200 MB, start-up <= 0.5 s, cost growing no faster than linearly. With
``--baseline-code DIR`` the same commands of that older checkout run on the 10,000-trial store taken back
to the schema it knows (revision 0002), for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 1_000, 10_000, 100_000)
RUNS = 3
NAME = "econt-quick"
EXAMPLE = ROOT / "examples" / "quick.yaml"
STATES = ("COMPLETED",) * 88 + ("PRUNED",) * 5 + ("FAILED",) * 4 + ("INFEASIBLE",) * 3
EPOCHS, METRICS = 5, ("train_loss", "val_loss", "emd_mean")


def _cost_report(rng: random.Random, bops: float) -> dict[str, object]:
    layer = {
        "n_in": 64, "n_out": 64, "pixels": 1, "reuse_factor": 1, "strategy": "latency", "weight_bits": 16,
        "input_bits": 16, "output_bits": 16, "params": 0, "nonzero_params": 0, "multiplications": 0,
        "ops": 0, "bops": 0.0, "multipliers": 0, "dsp": 0, "lut": 0.0, "bram": 0, "latency_cycles": 0,
        "ii": 1,
    }  # fmt: skip
    classes = ("Input", "Conv2D", "Activation", "Dense", "Activation", "Dense", "Activation")
    layers = [
        {**layer, "name": f"_{i}", "class_name": c, "bops": rng.random() * bops}
        for i, c in enumerate(classes)
    ]
    totals = {
        "params": 2144.0, "nonzero_params": 2144.0, "multiplications": 3200.0, "ops": 6544.0, "bops": bops,
        "multipliers": 2120.0, "dsp": 2120.0, "lut": 0.0, "bram": 0.0, "ii": 16.0, "latency_cycles": 29.0,
        "latency_ns": 145.0,
    }  # fmt: skip
    settings = {
        "io_type": "io_parallel", "reuse_factor": 1, "strategy": "Latency",
        "default_precision": "ap_fixed<16,6>", "clock_period_ns": 5.0, "part": "xcvu13p-flga2577-2-e",
        "backend": "Vitis",
    }  # fmt: skip
    return {
        "formula_version": "hwnas-cost/1", "is_estimate": True, "quantized": False, "settings": settings,
        "totals": totals, "layers": layers,
    }  # fmt: skip


def _params(rng: random.Random) -> dict[str, object]:
    n_conv = rng.randint(1, 3)
    params: dict[str, object] = {"n_conv": n_conv}
    for i in range(n_conv):
        params |= {
            f"conv{i}_filters": rng.choice([4, 8, 16, 32]),
            f"conv{i}_kernel": rng.choice([1, 3, 5]),
            f"conv{i}_stride": rng.choice([1, 2]),
            f"conv{i}_pool": rng.random() < 0.3,
        }
    n_dense = rng.randint(0, 2)
    params["n_dense"] = n_dense
    params |= {f"dense{i}_units": rng.choice([8, 16, 32, 64]) for i in range(n_dense)}
    params |= {
        "latent": rng.choice([8, 12, 16]),
        "decoder": "convtranspose",
        "lr": round(10 ** rng.uniform(-3, -2), 6),
        "batch_size": 128,
        "quantize": rng.random() < 0.5,
        "weight_bits": rng.randint(3, 8),
        "act_bits": rng.randint(4, 10),
        "sparsity": round(rng.random() * 0.8, 3),
        "l1_reg": False,
    }
    return params


def build_store(path: Path, trials: int, seed: int = 0) -> None:
    """A store at the current schema (created by the Store) filled with ``trials`` trials by bulk inserts."""
    from search.storage._store import Store

    Store(f"sqlite:///{path}").close()
    rng = random.Random(seed)
    config = yaml.safe_load(EXAMPLE.read_text())
    start = datetime(2026, 11, 1, tzinfo=UTC)
    stamp = lambda t: (start + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    objectives = json.dumps(
        [{"name": "emd_mean", "direction": "minimize"}, {"name": "bops", "direction": "minimize"}]
    )
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "INSERT INTO sweeps (id, name, config_yaml, config_hash, objectives, reference_point, status,"
            " created_at, updated_at) VALUES (1, ?, ?, 'h', ?, ?, 'DONE', ?, ?)",
            (
                NAME,
                yaml.safe_dump(config),
                objectives,
                json.dumps([3.0, 5.0e6]),
                stamp(0),
                stamp(trials * 60),
            ),
        )
        trial_rows, result_rows, metric_rows, cost_rows = [], [], [], []
        for number in range(trials):
            trial_id = number + 1
            state = rng.choice(STATES)
            replicate_of = rng.randrange(number) if number > 50 and rng.random() < 0.02 else None
            if replicate_of is not None:
                state = "COMPLETED"
            t0 = number * 60
            epochs = EPOCHS if state == "COMPLETED" else (0 if state == "INFEASIBLE" else rng.randint(1, 4))
            trial_rows.append((
                trial_id, 1, number, json.dumps(_params(rng)), f"{rng.getrandbits(128):032x}", state,
                "search", replicate_of, number, epochs, 1 if state != "INFEASIBLE" else 0,
                "diverged: loss is NaN" if state == "FAILED" else None, "worker-1", "host",
                stamp(t0 + 50), stamp(t0), stamp(t0 + 1), stamp(t0 + 55), stamp(t0 + 55),
            ))  # fmt: skip
            emd, bops = rng.uniform(0.5, 3.0), 10 ** rng.uniform(4, 6.5)
            if state == "COMPLETED":
                result_rows += [(trial_id, "emd_mean", emd), (trial_id, "bops", bops)]
            for epoch in range(1, epochs + 1):
                metric_rows += [(trial_id, epoch, m, rng.random()) for m in METRICS]
            if state != "INFEASIBLE" or rng.random() < 0.5:
                report = _cost_report(rng, bops)
                cost_rows.append((trial_id, "hwnas-cost/1", json.dumps(report["totals"]), json.dumps(report)))
        connection.executemany(
            "INSERT INTO trials (id, sweep_id, number, params, config_hash, state, origin, replicate_of, seed,"
            " fidelity, attempts, error, worker, host, heartbeat_at, created_at, started_at, finished_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            trial_rows,
        )
        connection.executemany(
            "INSERT INTO trial_results (trial_id, name, value) VALUES (?, ?, ?)", result_rows
        )
        connection.executemany(
            "INSERT INTO trial_metrics (trial_id, epoch, name, value) VALUES (?, ?, ?, ?)", metric_rows
        )
        connection.executemany(
            "INSERT INTO hw_costs (trial_id, formula_version, totals, report) VALUES (?, ?, ?, ?)", cost_rows
        )
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _hwnas() -> list[str]:
    script = Path(sys.executable).with_name("hwnas")
    return [str(script)] if script.exists() else [sys.executable, "-m", "search.cli"]


def measure(args: list[str], code: Path = ROOT) -> tuple[float, float, float]:
    """(median wall s, median CPU s, max peak RSS MB) of ``RUNS`` fresh runs of ``hwnas ARGS``.

    Measured by /usr/bin/time around each run, so the peak RSS is the command's own (a child forked from
    this process would count this process's pages until it execs)."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(code)}
    command = _hwnas() if code == ROOT else [sys.executable, "-m", "search.cli"]
    walls, cpus, rss = [], [], []
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        for _ in range(RUNS):
            timed = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", report.name, *command, *args]
            proc = subprocess.run(
                timed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=code, check=False
            )
            if proc.returncode != 0:
                raise SystemExit(f"hwnas {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
            wall, user, system, peak_kb = Path(report.name).read_text().split()[-4:]
            walls.append(float(wall))
            cpus.append(float(user) + float(system))
            rss.append(int(peak_kb) / 1024)
    return statistics.median(walls), statistics.median(cpus), max(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated trial counts")
    parser.add_argument("--keep", type=Path, default=None, help="keep the stores in this folder")
    parser.add_argument(
        "--baseline-code",
        type=Path,
        default=None,
        help="also time the commands of an older checkout (e.g. `git archive 4d7c562 | tar -x -C DIR`) on "
        "the 10,000-trial store taken back to its schema (revision 0002)",
    )
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    workdir = options.keep or Path(tempfile.mkdtemp(prefix="hwnas-read-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)

    print(f"# read commands against store size — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"# sqlalchemy {version('sqlalchemy')}, typer {version('typer')}, sqlite {sqlite3.sqlite_version}")
    print(f"# load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"# each figure: {RUNS} fresh processes; wall and CPU (user+sys) medians, peak RSS max")
    stores = {}
    for size in sizes:
        path = workdir / f"store-{size}.db"
        if not path.exists():
            start = time.perf_counter()
            build_store(path, size)
            print(
                f"# built {size:,} trials in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 2**20:.1f} MB)"
            )
        stores[size] = f"sqlite:///{path}"
    sys.stdout.flush()

    smallest = stores[min(sizes)]
    print("\nstart-up                          wall s   CPU s  peak MB")
    for label, args in (
        ("hwnas --help", ["--help"]),
        (f"hwnas sweep list ({min(sizes)} trials)", ["sweep", "list", "--store", smallest]),
    ):
        wall, cpu, rss = measure(args)
        print(f"{label:32s} {wall:7.2f} {cpu:7.2f} {rss:8.0f}")
        sys.stdout.flush()

    commands = {
        "pareto --format json": ["pareto", NAME, "--format", "json"],
        "sweep status": ["sweep", "status", NAME],
        "sweep list": ["sweep", "list"],
    }
    print(f"\n{'command':22s} {'trials':>8s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s}")
    for label, args in commands.items():
        for size in sizes:
            wall, cpu, rss = measure([*args, "--store", stores[size]])
            print(f"{label:22s} {size:8,d} {wall:8.2f} {cpu:8.2f} {rss:8.0f}")
            sys.stdout.flush()
    if options.baseline_code is not None and 10_000 in stores:
        old = workdir / "store-10000-rev0002.db"
        shutil.copy(workdir / "store-10000.db", old)
        downgrade = sqlite3.connect(old)
        with downgrade:
            downgrade.execute("DROP INDEX ix_trials_sweep_updated")
            downgrade.execute("ALTER TABLE trials DROP COLUMN updated_at")
            downgrade.execute("DROP TABLE trial_rungs")
            downgrade.execute("UPDATE alembic_version SET version_num = '0002'")
        downgrade.close()
        print(
            f"\nbaseline: {options.baseline_code} (python -m search.cli), the same 10,000 trials at revision 0002"
        )
        for label, args in {"hwnas --help": ["--help"], **commands}.items():
            extra = [] if args == ["--help"] else ["--store", f"sqlite:///{old}"]
            wall, cpu, rss = measure([*args, *extra], code=options.baseline_code.resolve())
            print(f"{label:22s} {10_000:8,d} {wall:8.2f} {cpu:8.2f} {rss:8.0f}")
            sys.stdout.flush()
    print(f"# load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if options.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
