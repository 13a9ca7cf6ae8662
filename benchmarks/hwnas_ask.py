"""Time per ``ask`` of the ``hwnas`` strategy on the ECON-T space with the real cost oracle.

Run: .venv/bin/python benchmarks/hwnas_ask.py > benchmarks/hwnas_ask.txt
The oracle is what a trial computes before training (``search.execution._trial.run_trial``): build the model
from the config, ``hw_models.estimate`` of its encoder with the default hardware settings, a budget
(``bops <= 2e7``) turning into a rejection reason. Objectives ``emd_mean`` (a synthetic function of size and
lr with noise, a fifth of the trials told as Failed, like collapsed runs) and ``bops``. The strategy first
observes OBSERVED finished trials (a resume), then ASKS proposals are asked one at a time and told. The
target (issue 13): the driver overhead of the strategy at most 5 % of a 10-epoch trial (7-15 s here), i.e.
well under 0.3 s per ask on average. The oracle's share is reported apart: it is ~50-200 ms per new
architecture, up to four per ask by default (``cost_calls``), more on the first ask.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import numpy as np

from search._types import Completed, Failed, Objective
from search.strategies import make_strategy

OBSERVED = 20
ASKS = 20
SEEDS = (0, 1, 2)


def main() -> None:
    import torch

    from hw_models import Budget, HWError, HWSettings, estimate
    from objectives import get_task
    from spaces import get_space

    logging.basicConfig(level=logging.WARNING)
    space = get_space("econt")
    task = get_task("econt")
    settings = HWSettings()
    budget = Budget.parse("bops <= 2e7")
    oracle_time = [0.0, 0]  # time and calls while inside ask
    asking = [False]

    def oracle(config: dict[str, Any]) -> dict[str, float] | str:
        start = time.perf_counter()
        try:
            # Seeded like run_trial: bops and nonzero_params of a quantized model count the weights that
            # do not quantize to 0, which depends on the initial weights.
            torch.manual_seed(0)
            report = estimate(task.on_chip(task.build_model(config)), task.input_shape, settings)
            reason = budget.check(report)
            return reason if reason is not None else {k: float(v) for k, v in report.totals.items()}
        except HWError as exc:
            return f"hardware model: {exc}"
        finally:
            if asking[0]:
                oracle_time[0] += time.perf_counter() - start
                oracle_time[1] += 1

    def quality(config: dict[str, Any], bops: float, rng: np.random.Generator) -> float:
        size = math.log10(1.0 + bops)
        return 3.5 / (1.0 + size / 3.0) + 0.4 * abs(math.log10(config["lr"]) + 2.7) + rng.normal(0, 0.05)

    oracle(space.sample(np.random.default_rng(99)))  # imports (hls4ml, brevitas) outside the timing
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# hwnas ask time ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, load average before the run {load}, Python "
        f"{platform.python_version()}, scikit-learn {version('scikit-learn')}, hls4ml {version('hls4ml')}"
    )
    print(
        f"# econt space, objectives emd_mean + bops, budget bops <= 2e7; {OBSERVED} observed, then {ASKS} asks"
    )
    print()
    print("model seed  mean s  median s  max s  first s  oracle calls  oracle s/ask  rest s/ask")
    print("-" * 82)
    for model in ("rf", "gp"):
        for seed in SEEDS:
            rng = np.random.default_rng(seed + 100)
            objectives = (Objective("emd_mean"), Objective("bops"))
            strategy = make_strategy(
                "hwnas", space, objectives, seed=seed, options={"model": model}, costs=oracle
            )
            told = 0
            while told < OBSERVED:
                config = space.validate(space.sample(rng))
                costs = oracle(config) if isinstance(config, dict) else "infeasible"
                if isinstance(config, dict) and not isinstance(costs, str):
                    if told % 5 == 4:
                        strategy.observe(config, Failed("collapsed"))
                    else:
                        value = quality(config, costs["bops"], rng)
                        strategy.observe(config, Completed({"emd_mean": value, "bops": costs["bops"]}))
                    told += 1
            oracle_time[:] = [0.0, 0]
            times = []
            for _ in range(ASKS):
                asking[0] = True
                start = time.perf_counter()
                (proposal,) = strategy.ask(1)
                times.append(time.perf_counter() - start)
                asking[0] = False
                costs = oracle(proposal.config)  # the trial's own costing, outside the strategy's time
                assert not isinstance(costs, str)
                value = quality(proposal.config, costs["bops"], rng)
                strategy.tell(proposal.key, Completed({"emd_mean": value, "bops": costs["bops"]}))
            calls = oracle_time[1]
            oracle_per_ask = oracle_time[0] / ASKS
            mean = float(np.mean(times))
            print(
                f"{model:>5} {seed:4d} {mean:7.3f} {np.median(times):9.3f} {max(times):6.3f} {times[0]:8.3f} "
                f"{calls:13d} {oracle_per_ask:13.3f} {mean - oracle_per_ask:11.3f}"
            )
            sys.stdout.flush()
    print()
    print("# first s: the first ask after the resume, which imports scikit-learn and prices the")
    print("# architectures of the observed failed trials; oracle s/ask: time in the strategy's oracle calls;")
    print("# rest s/ask: pool, model fit and acquisition.")


if __name__ == "__main__":
    main()
