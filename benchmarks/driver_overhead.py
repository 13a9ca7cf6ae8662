"""Driver overhead per trial (ask + validate + store writes + tell) for each strategy, against a real trial.

Run: .venv/bin/python benchmarks/driver_overhead.py > benchmarks/driver_overhead.txt
The overhead loop is the driver's own sequence of calls with the training replaced by a cheap synthetic
result, on a real SQLite store (WAL); the typical trial is the demo's (examples/quick.yaml) reference model
trained for the demo's epochs, run through the real trial runner. Target: overhead < 5 % of a trial.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from search._config import load_config
from search._types import Completed, Rejected
from search.execution._setup import open_sweep
from search.execution._trial import TrialJob, run_trial
from search.storage._schema import TrialState
from search.storage._store import Store
from search.strategies import STRATEGY_NAMES, make_strategy
from spaces import Infeasible, get_preset, get_space

TRIALS_PER_STRATEGY = 60
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"


def synthetic_values(config: dict[str, object]) -> dict[str, float]:
    rng = np.random.default_rng(abs(hash(str(sorted(config.items())))) % 2**32)
    return {"emd_mean": float(rng.uniform(0.5, 3)), "bops": float(rng.uniform(1e4, 1e6))}


def overhead_per_trial(strategy_name: str, workdir: Path) -> list[float]:
    config = load_config(EXAMPLE, store=f"sqlite:///{workdir / (strategy_name + '.db')}", name=strategy_name)
    store = Store(config.store)
    sweep = open_sweep(store, config)
    space = get_space("econt")
    options = {"float_points": 3} if strategy_name == "grid" else None  # grid needs points on float ranges
    strategy = make_strategy(strategy_name, space, config.objectives, seed=0, options=options)
    times = []
    for _ in range(TRIALS_PER_STRATEGY):
        start = time.perf_counter()
        proposals = strategy.ask(1)
        if not proposals:
            break
        proposal = proposals[0]
        canonical = space.validate(proposal.config)
        if isinstance(canonical, Infeasible):
            strategy.tell(proposal.key, Rejected(canonical.reason))
            continue
        trial = store.create_trial(sweep.id, canonical, config_hash=space.config_hash(canonical))
        store.start_trial(trial.id, worker="bench", host="bench")
        values = synthetic_values(canonical)
        store.finish_trial(trial.id, TrialState.COMPLETED, results=values, fidelity=config.epochs)
        strategy.tell(proposal.key, Completed(values, fidelity=config.epochs))
        times.append(time.perf_counter() - start)
    return times


def typical_trial_seconds(workdir: Path) -> float:
    config = load_config(EXAMPLE, store=f"sqlite:///{workdir / 'trial.db'}", name="typical")
    store = Store(config.store)
    sweep = open_sweep(store, config)
    canonical = get_preset("econt_baseline")
    trial = store.create_trial(sweep.id, canonical, config_hash="baseline", state=TrialState.RUNNING)
    job = TrialJob(
        store_url=config.store,
        trial_id=trial.id,
        number=0,
        task=config.task,
        config=canonical,
        objectives=("emd_mean", "bops"),
        budgets=(),
        hardware=config.hardware,
        epochs=config.epochs,
        patience=None,
        data_seed=0,
        seed=0,
        checkpoint_dir=None,
    )
    run_trial(job)  # warm the data cache: a sweep prepares its data once per worker
    trial = store.create_trial(sweep.id, canonical, config_hash="baseline2", state=TrialState.RUNNING)
    start = time.perf_counter()
    outcome = run_trial(TrialJob(**{**job.__dict__, "trial_id": trial.id, "number": 1}))
    elapsed = time.perf_counter() - start
    if not isinstance(outcome, Completed):
        raise SystemExit(f"the typical trial did not complete: {outcome}")
    return elapsed


def main() -> None:
    torch.set_num_threads(1)
    print(f"# driver overhead per trial — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {sys.version.split()[0]}"
    )
    print(f"# optuna {version('optuna')}, sqlalchemy {version('sqlalchemy')}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        trial_s = typical_trial_seconds(workdir)
        print(f"typical trial (econt_baseline, quick.yaml settings, 1 thread): {trial_s:.2f} s")
        print(f"{'strategy':<14} {'trials':>6} {'median ms':>10} {'p90 ms':>8} {'share of a trial':>17}")
        for name in STRATEGY_NAMES:
            times = overhead_per_trial(name, workdir)
            median = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else median
            print(
                f"{name:<14} {len(times):>6} {median * 1e3:>10.1f} {p90 * 1e3:>8.1f} {median / trial_s:>16.2%}"
            )


if __name__ == "__main__":
    main()
