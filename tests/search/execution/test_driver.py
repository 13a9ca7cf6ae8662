"""The sweep driver end to end on small real sweeps (in-process, one worker, real SQLite/PostgreSQL)."""

from __future__ import annotations

import itertools
import math
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sweep_configs import tiny_sweep

from objectives import DivergedError
from search._config import parse_config
from search._types import Completed
from search.execution._loop import SweepError, load_sweep, run_sweep
from search.storage import TrialRecord
from search.storage._schema import TrialState
from search.storage._store import Store


def small_config(store: str, **overrides: Any) -> dict[str, Any]:
    return tiny_sweep(store, **overrides)


def record_outcomes(driver: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every outcome the driver gives its strategy from now on, as ("tell" | "observe", outcome)."""
    calls: list[tuple[str, Any]] = []
    tell, observe = driver.strategy.tell, driver.strategy.observe
    monkeypatch.setattr(
        driver.strategy, "tell", lambda key, outcome: (calls.append(("tell", outcome)), tell(key, outcome))
    )
    monkeypatch.setattr(
        driver.strategy,
        "observe",
        lambda config, outcome: (calls.append(("observe", outcome)), observe(config, outcome)),
    )
    return calls


def test_sweep_records_every_trial_with_metrics_costs_and_checkpoints(sqlite_url: str) -> None:
    config = parse_config(small_config(sqlite_url, warm_start=["econt_baseline"]))
    summary = run_sweep(config)
    store = Store(sqlite_url)
    sweep, stored = load_sweep(store, "tiny")
    assert stored.fingerprint() == config.fingerprint()
    trained = store.trials(sweep.id, [TrialState.COMPLETED])
    assert len(trained) == 3
    assert trained[0].origin == "warm-start" and trained[0].number == 0
    for trial in trained:
        assert trial.fidelity == 1
        assert {"emd_mean", "bops", "ops", "model_kb"} <= set(trial.results)
        assert 0 < trial.results["emd_mean"] < 20
        assert [row["epoch"] for row in store.metrics(trial.id)] == [1]
        assert store.costs([trial.id])[trial.id]["totals"]["bops"] == trial.results["bops"]
        (artifact,) = store.artifacts(trial.id)
        assert Path(artifact["path"]).is_file() and len(artifact["sha256"]) == 64
    baseline = trained[0]
    assert baseline.results["ops"] == 6544  # the reference encoder, costed the reference's way
    assert summary.front and summary.hypervolume is not None and summary.hypervolume > 0
    assert store.get_sweep("tiny").reference_point is not None  # fixed once, stored with the sweep


def test_over_budget_configs_are_rejected_without_training(sqlite_url: str) -> None:
    config = parse_config(small_config(sqlite_url, budgets=["bops <= 5e5"], warm_start=["econt_baseline"]))
    run_sweep(config)
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    baseline = trials[0]
    assert baseline.origin == "warm-start" and baseline.state is TrialState.INFEASIBLE
    assert baseline.error == "bops = 939588 exceeds budget bops <= 500000"
    assert store.metrics(baseline.id) == []  # never trained
    completed = store.trials(sweep.id, [TrialState.COMPLETED])
    assert len(completed) == 3 and all(t.results["bops"] <= 5e5 for t in completed)


def test_a_budget_nothing_meets_stops_the_sweep_cleanly(sqlite_url: str) -> None:
    with pytest.raises(
        SweepError, match=r"in a row were infeasible, over budget or already in the sweep \(bops <= 1\)"
    ):
        run_sweep(parse_config(small_config(sqlite_url, budgets=["bops <= 1"])))
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    assert store.get_sweep("tiny").status == "STOPPED"
    assert {t.state for t in store.trials(sweep.id)} == {TrialState.INFEASIBLE}
    assert all(store.metrics(t.id) == [] for t in store.trials(sweep.id))
    rows = len(store.trials(sweep.id))
    with pytest.raises(SweepError, match=r"in a row were infeasible"):  # a resume stops at once ...
        run_sweep(parse_config(small_config(sqlite_url, budgets=["bops <= 1"])))
    assert len(store.trials(sweep.id)) == rows  # ... adding no rows


def test_failing_and_diverging_trials_never_stop_the_sweep(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import objectives._train

    real_train = objectives._train.train  # what every trial's fit() calls, stage by stage
    calls = {"n": 0}

    def faulty_train(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")
        if calls["n"] == 2:
            raise DivergedError("loss became nan at epoch 1")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(objectives._train, "train", faulty_train)
    summary = run_sweep(parse_config(small_config(sqlite_url, trials=3)))
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    assert [t.state for t in trials] == [TrialState.FAILED, TrialState.FAILED, TrialState.COMPLETED]
    assert trials[0].error == "RuntimeError: injected fault"
    assert trials[1].error is not None and trials[1].error.startswith("diverged:")
    assert summary.counts == {"FAILED": 2, "COMPLETED": 1}


def test_nan_objective_fails_the_trial(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from objectives import get_task

    task_class = type(get_task("econt"))
    real_evaluate = task_class.evaluate

    def nan_emd(self: Any, model: Any, data: Any) -> dict[str, float]:
        return {**real_evaluate(self, model, data), "emd_mean": math.nan}

    monkeypatch.setattr(task_class, "evaluate", nan_emd)
    run_sweep(parse_config(small_config(sqlite_url, trials=1)))
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    (trial,) = store.trials(sweep.id)
    assert trial.state is TrialState.FAILED and trial.error == "objective emd_mean is NaN"
    assert trial.results == {}


def test_same_name_with_a_different_config_is_refused(sqlite_url: str) -> None:
    run_sweep(parse_config(small_config(sqlite_url, trials=1)))
    with pytest.raises(SweepError, match=r"'tiny' already exists .* with a different config"):
        run_sweep(parse_config(small_config(sqlite_url, trials=1, epochs=3)))
    store = Store(sqlite_url)
    assert len(store.list_sweeps()) == 1
    sweep, _ = load_sweep(store, "tiny")
    assert len(store.trials(sweep.id)) == 1


def test_relaunch_with_a_larger_budget_continues_without_repeats(sqlite_url: str) -> None:
    run_sweep(parse_config(small_config(sqlite_url, trials=2)))
    run_sweep(parse_config(small_config(sqlite_url, trials=4)))
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert len({t.config_hash for t in trials}) == 4  # the rebuilt strategy did not replay its first configs


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_postgres(postgres_url: str) -> None:
    config = parse_config(small_config(postgres_url, trials=4, executor={"kind": "local", "workers": 2}))
    summary = run_sweep(config)
    assert summary.counts == {"COMPLETED": 4}
    store = Store(postgres_url)
    sweep, _ = load_sweep(store, "tiny")
    workers = {t.worker for t in store.trials(sweep.id)}
    assert 1 <= len(workers) <= 2  # each trial names the pool process (host:pid) that ran it
    assert all(
        w is not None and w.split(":")[1].isdigit() and int(w.split(":")[1]) != os.getpid() for w in workers
    )
    assert all(len(store.metrics(t.id)) == 1 for t in store.trials(sweep.id))  # written by the workers


def test_confirm_replicates_the_front_and_builds_the_front_of_means(sqlite_url: str) -> None:
    from search.execution._loop import confirm_sweep
    from search.results import confirmed_front, sweep_front

    config = parse_config(small_config(sqlite_url, trials=3))
    run_sweep(config)
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    front_before, volume_before = sweep_front(store, sweep)

    confirm_sweep(config, 2)
    trials = store.trials(sweep.id)
    replicates = [t for t in trials if t.replicate_of is not None]
    assert len(replicates) == 2 * len(front_before)
    assert all(t.state is TrialState.COMPLETED and t.origin == "confirm" for t in replicates)
    originals = {t.number: t for t in trials if t.replicate_of is None}
    for replicate in replicates:
        assert replicate.params == originals[replicate.replicate_of].params
    assert len({t.seed for t in trials}) == len(trials)  # every evaluation trained with its own seed

    # Replicates neither join the search front nor count against the trial budget.
    front_after, volume_after = sweep_front(store, sweep)
    assert [t.number for t in front_after] == [
        t.number for t in front_before
    ] and volume_after == volume_before
    confirm_sweep(config, 2)  # idempotent: the replicates exist already
    assert len(store.trials(sweep.id)) == len(trials)

    confirmed, volume = confirmed_front(store, sweep)
    assert confirmed and volume is not None
    for point in confirmed:
        group = [point.trial] + [t for t in replicates if t.replicate_of == point.trial.number]
        emd = [t.results["emd_mean"] for t in group]
        assert point.evaluations == 3
        assert point.mean["emd_mean"] == pytest.approx(sum(emd) / 3)
        assert point.std["emd_mean"] == pytest.approx(float(np.std(emd, ddof=1)))


def test_after_confirm_the_strategy_is_told_means_with_standard_errors(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.execution._loop import SweepLoop, confirm_sweep
    from search.results import evaluations, pooled_std

    config = parse_config(small_config(sqlite_url, trials=3))
    run_sweep(config)
    confirm_sweep(config, 2)
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    runs = evaluations(trials)
    replicated = [[t.results["emd_mean"] for t in group] for group in runs.values() if len(group) > 1]
    assert replicated
    squares = sum(((np.array(emd) - np.mean(emd)) ** 2).sum() for emd in replicated)
    expected_std = math.sqrt(squares / sum(len(emd) - 1 for emd in replicated))
    noise = pooled_std(runs.values(), ["emd_mean", "bops"])
    assert noise["emd_mean"] == pytest.approx(expected_std)
    assert "bops" not in noise  # the same architecture costs the same whatever the seed

    driver = SweepLoop(parse_config(small_config(sqlite_url, trials=4)))
    calls = record_outcomes(driver, monkeypatch)
    driver.run()
    observed = [outcome for method, outcome in calls if method == "observe"]
    told = [outcome for method, outcome in calls if method == "tell"]
    search_trials = [t for t in trials if t.replicate_of is None]
    assert len(observed) == len(search_trials) == 3
    for trial, outcome in zip(search_trials, observed, strict=True):
        group = runs[trial.number]
        assert outcome.values["emd_mean"] == pytest.approx(np.mean([t.results["emd_mean"] for t in group]))
        assert outcome.sem == pytest.approx({"emd_mean": expected_std / math.sqrt(len(group))})
        assert outcome.collapsed == (trial.results["collapsed"] == 1.0)  # the trial's own flag and time
        assert outcome.seconds == trial.results["trial_seconds"]
    # The new trial's single evaluation carries the pooled noise too: one kind of data per objective.
    (new,) = told
    assert new.sem == pytest.approx({"emd_mean": expected_std})


def test_the_strategy_is_told_which_trials_collapsed_and_how_long_they_took_and_so_is_a_resumed_one(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.execution._loop import SweepLoop

    # A linear encoder at a high rate learns something in 3 epochs; most random draws collapse.
    linear = {"preset": "econt_baseline", "n_conv": 0, "decoder": "dense", "lr": 0.01, "batch_size": 128}

    def told_completed(trials: int) -> list[tuple[bool, float | None]]:
        """Run the sweep up to ``trials``; (collapsed, seconds) of the completed outcomes told or observed."""
        config = small_config(sqlite_url, trials=trials, warm_start=[linear], epochs=3)
        driver = SweepLoop(parse_config(config))
        calls = record_outcomes(driver, monkeypatch)
        driver.run()
        return [(o.collapsed, o.seconds) for _, o in calls if isinstance(o, Completed)]

    told = told_completed(6)
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    completed = store.trials(sweep.id, [TrialState.COMPLETED])
    flags = [trial.results["collapsed"] == 1.0 for trial in completed]
    assert any(flags) and not all(flags)
    # The worker's wall time: within the trial's span in the store (which adds queueing and bookkeeping).
    seconds = [trial.results["trial_seconds"] for trial in completed]
    for trial, took in zip(completed, seconds, strict=True):
        assert trial.started_at is not None and trial.finished_at is not None
        assert 0 < took <= (trial.finished_at - trial.started_at).total_seconds()
    assert told == list(zip(flags, seconds, strict=True))
    assert told_completed(7)[: len(flags)] == told  # a resume replays them with their flags and times


def test_a_strategy_failure_stops_the_sweep_cleanly_and_resume_finishes_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.execution._loop import SweepLoop
    from search.strategies import StrategyError

    config = parse_config(small_config(sqlite_url, trials=3))
    driver = SweepLoop(config)
    ask = driver.strategy.ask
    asked: list[int] = []

    def fail_on_the_second_ask(n: int) -> Any:
        asked.append(n)
        if len(asked) == 2:
            raise StrategyError("Ax failed to propose trials: RuntimeError: boom")
        return ask(n)

    monkeypatch.setattr(driver.strategy, "ask", fail_on_the_second_ask)
    with pytest.raises(StrategyError, match="boom"):
        driver.run()
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    assert sweep.status == "STOPPED"
    before = store.trials(sweep.id)
    assert [t.state for t in before] == [TrialState.COMPLETED]  # the first trial finished and was kept

    summary = run_sweep(config)  # resume
    after = store.trials(sweep.id)
    assert summary.counts == {"COMPLETED": 3}
    assert [t.number for t in after] == [0, 1, 2] and after[0].results == before[0].results


def test_a_ctrl_c_a_library_swallows_still_stops_the_sweep_and_requeues_the_trial(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.execution._executor
    from search._types import Failed

    def trial_whose_import_eats_ctrl_c(job: Any) -> Failed:
        # What pybind11 does when a SIGINT lands in a C extension's first import: the KeyboardInterrupt
        # comes out as an ImportError, which a trial records as its own failure.
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            return Failed("ImportError: initialization failed")
        return Failed("no SIGINT arrived")

    monkeypatch.setattr(search.execution._executor, "run_trial", trial_whose_import_eats_ctrl_c)
    summary = run_sweep(parse_config(small_config(sqlite_url, trials=3)))
    assert summary.interrupted
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    (trial,) = store.trials(sweep.id)
    assert trial.state is TrialState.QUEUED and trial.error is not None
    assert trial.error.startswith("interrupted by the user")
    assert sweep.status == "STOPPED"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the latch is removed again


def test_confirm_needs_at_least_one_seed(sqlite_url: str) -> None:
    from search.execution._loop import confirm_sweep

    with pytest.raises(SweepError, match="--seeds must be at least 1, got 0"):
        confirm_sweep(parse_config(small_config(sqlite_url)), 0)


def test_a_sweep_on_a_real_format_data_file(sqlite_url: str, tmp_path: Path) -> None:
    from objectives import synth_econt, write_dataset

    path = tmp_path / "modules.csv"
    write_dataset(synth_econt(1500, seed=5), path, kind="econt")
    task = {"name": "econt", "data": str(path), "rows": 1500, "val_rows": 300}
    summary = run_sweep(parse_config(small_config(sqlite_url, task=task, trials=1)))
    assert summary.counts == {"COMPLETED": 1}


def test_a_missing_data_file_is_a_config_error(tmp_path: Path) -> None:
    from search._config import ConfigError

    task = {"name": "econt", "data": str(tmp_path / "nope.csv"), "rows": 100}
    with pytest.raises(ConfigError, match=r"task.data: no data file '.*nope.csv'"):
        parse_config(small_config("sqlite:///unused.db", task=task))


@pytest.mark.slow
def test_asha_on_local_workers_prunes_trials_that_stay_out_of_the_front(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search._types import Pruned
    from search.execution._loop import SweepLoop
    from search.execution._records import outcome_of
    from search.results import sweep_front

    scheduler = {"kind": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1}
    config = parse_config(
        small_config(sqlite_url, trials=8, epochs=4, executor={"workers": 2}, scheduler=scheduler)
    )
    loop = SweepLoop(config)
    told = record_outcomes(loop, monkeypatch)
    summary = loop.run()
    store = Store(sqlite_url)
    sweep = store.get_sweep("tiny")
    assert sweep is not None
    trials = [t for t in store.trials(sweep.id) if t.state is not TrialState.INFEASIBLE]
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    assert len(pruned) + len(completed) == 8 and pruned
    for trial in pruned:
        assert 1 <= trial.fidelity < 4 and "emd_mean" not in trial.results and "bops" in trial.results
        assert [row["epoch"] for row in store.metrics(trial.id)] == list(range(1, trial.fidelity + 1))
        # Told (and, after a resume, observed) with the time it took to its rung: the strategy's time model
        # learns what the architectures an early rung cuts cost the clock.
        resumed = outcome_of(trial, loop.objectives)
        assert isinstance(resumed, Pruned) and resumed.fidelity == trial.fidelity
        assert resumed.seconds == trial.results["trial_seconds"] > 0
    told_pruned = sorted((o.fidelity, o.seconds) for _, o in told if isinstance(o, Pruned))
    assert told_pruned == sorted((t.fidelity, t.results["trial_seconds"]) for t in pruned)
    front, volume = sweep_front(store, sweep)
    assert {t.number for t in front} <= {t.number for t in completed}
    assert [t.number for t in summary.front] == [t.number for t in front] and summary.hypervolume == volume


def test_a_resumed_sweep_draws_its_own_stream_and_never_trains_a_config_twice(sqlite_url: str) -> None:
    from search.execution._loop import SweepLoop

    run_sweep(parse_config(small_config(sqlite_url, trials=2)))
    resumed = SweepLoop(parse_config(small_config(sqlite_url, trials=4)))
    assert resumed.strategy.seed != 3  # session 2 of the sweep: not the first session's stream
    resumed.run()
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trained = [t for t in store.trials(sweep.id) if t.state is not TrialState.INFEASIBLE]
    assert len(trained) == 4 and len({t.config_hash for t in trained}) == 4


def test_a_proposal_of_a_config_the_sweep_has_is_told_its_outcome_not_trained(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search._types import Proposal
    from search.execution._loop import SweepLoop
    from spaces import get_preset

    loop = SweepLoop(parse_config(small_config(sqlite_url, trials=2, warm_start=["econt_baseline"])))
    ask, tell = loop.strategy.ask, loop.strategy.tell
    told: list[Any] = []
    first = [True]

    def ask_the_warm_start_again(n: int) -> list[Proposal]:
        if first[0]:  # the strategy's first proposal repeats the (finished) warm-start config
            first[0] = False
            loop.strategy._pending.add("again")
            return [Proposal(key="again", config=get_preset("econt_baseline"))]
        return ask(n)

    monkeypatch.setattr(loop.strategy, "ask", ask_the_warm_start_again)
    monkeypatch.setattr(
        loop.strategy, "tell", lambda key, outcome: (told.append((key, outcome)), tell(key, outcome))
    )
    loop.run()
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    assert len(trials) == 2 and len({t.config_hash for t in trials}) == 2  # the repeat was never trained
    again = next(outcome for key, outcome in told if key == "again")
    assert again.values["emd_mean"] == trials[0].results["emd_mean"]  # told the warm start's outcome


def test_confirm_seeds_re_evaluates_front_members_while_the_sweep_runs(sqlite_url: str) -> None:
    from search.results import sweep_front

    waveform = {"name": "waveform", "data": "synthetic", "rows": 200, "val_rows": 40}
    objectives = [{"emd1d_mean": "minimize"}, {"params": "minimize"}]
    config = parse_config(
        small_config(
            sqlite_url, task=waveform, space="waveform", objectives=objectives, trials=4, confirm_seeds=1
        )
    )
    run_sweep(config)
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    trials = store.trials(sweep.id)
    replicates = [t for t in trials if t.replicate_of is not None]
    search = [t for t in trials if t.replicate_of is None]
    front, _ = sweep_front(store, sweep)
    replicated = [t.replicate_of for t in replicates]
    # Each trial that entered the front (some left it later) got its one extra seed; the final front all.
    assert len(replicated) == len(set(replicated)) and {t.number for t in front} <= set(replicated)
    assert all(t.state is TrialState.COMPLETED and t.origin == "confirm" for t in replicates)
    # A replicate was queued as soon as its trial entered the front, before the search went on.
    assert min(t.id for t in replicates) < max(t.id for t in search)
    assert len(search) == 4  # replicates do not count against the budget


def test_a_resume_warns_when_older_formulas_costed_some_trials(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from hw_models import FORMULA_VERSION
    from search.execution._loop import SweepLoop

    run_sweep(parse_config(small_config(sqlite_url, trials=2)))
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    first = store.trials(sweep.id)[0]
    report = store.costs([first.id])[first.id]
    store.record_cost(first.id, {**report, "formula_version": "hwnas-cost/1"})  # costed by an older release
    with caplog.at_level(logging.WARNING, logger="search.execution._loop"):
        resumed = SweepLoop(parse_config(small_config(sqlite_url, trials=2)))
    resumed.store.close()
    resumed.executor.shutdown()
    assert (
        f"sweep tiny: 1 trial(s) were costed with older formulas (hwnas-cost/1: 1); new trials are costed "
        f"with {FORMULA_VERSION}" in caplog.text
    )
    caplog.clear()
    store.record_cost(first.id, report)
    with caplog.at_level(logging.WARNING, logger="search.execution._loop"):
        again = SweepLoop(parse_config(small_config(sqlite_url, trials=2)))
    again.store.close()
    again.executor.shutdown()
    assert "older formulas" not in caplog.text


def test_a_completed_replicate_revises_its_original_for_the_strategy(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.execution._loop import SweepLoop
    from search.results import evaluations

    waveform = {"name": "waveform", "data": "synthetic", "rows": 200, "val_rows": 40}
    objectives = [{"emd1d_mean": "minimize"}, {"params": "minimize"}]
    config = parse_config(
        small_config(
            sqlite_url, task=waveform, space="waveform", objectives=objectives, trials=4, confirm_seeds=1
        )
    )
    driver = SweepLoop(config)
    revised: list[tuple[dict[str, Any], Completed]] = []
    revise = driver.strategy.revise
    monkeypatch.setattr(
        driver.strategy,
        "revise",
        lambda params, outcome: (revised.append((params, outcome)), revise(params, outcome)),
    )
    driver.run()
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    runs = {n: group for n, group in evaluations(store.trials(sweep.id)).items() if len(group) > 1}
    assert runs and len(revised) == len(runs)  # one revision per completed replicate
    for params, outcome in revised:
        group = next(g for g in runs.values() if g[0].params == params)
        assert outcome.values["emd1d_mean"] == pytest.approx(
            np.mean([t.results["emd1d_mean"] for t in group])
        )
        assert outcome.values["params"] == group[0].results["params"]
        assert outcome.sem is not None and outcome.sem["emd1d_mean"] > 0  # the noise measured so far


def test_a_front_member_outside_the_reference_box_is_not_replicated(sqlite_url: str) -> None:
    from search.execution._records import queue_replicates

    store = Store(sqlite_url)
    objectives = [{"name": "emd_mean", "direction": "minimize"}, {"name": "ops", "direction": "minimize"}]
    sweep = store.create_sweep(
        "s", config_yaml="a: 1\n", config_hash="h", objectives=objectives, reference_point=None
    )
    numbers = {}
    for label, results in (
        ("cheap", {"emd_mean": 1.5, "ops": 100.0}),
        ("dear", {"emd_mean": 1.0, "ops": 5e6}),
    ):
        trial = store.create_trial(sweep.id, {"label": label}, config_hash=label, state=TrialState.RUNNING)
        store.finish_trial(trial.id, TrialState.COMPLETED, results=results)
        numbers[label] = trial.number
    assert (
        queue_replicates(store, sweep, 1, {"emd_mean": 2.0, "ops": 1e6}) == 1
    )  # the dear one adds no volume
    assert [t.replicate_of for t in store.trials(sweep.id) if t.replicate_of is not None] == [
        numbers["cheap"]
    ]


def test_a_worker_that_finishes_finds_its_next_trial_waiting(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pool, the next trial is proposed while every worker is busy, so a worker never waits for the
    driver's ask; a trial starts when a worker takes it, not when it was queued."""
    from search.execution._loop import SweepLoop

    driver = SweepLoop(parse_config(small_config(sqlite_url, trials=6, executor={"workers": 2})))
    running_at_ask: list[int] = []
    ask = driver.strategy.ask
    monkeypatch.setattr(
        driver.strategy, "ask", lambda n: (running_at_ask.append(len(driver._running)), ask(n))[1]
    )
    driver.run()
    assert max(running_at_ask) == 2  # both workers busy: the proposal waits in the pool's queue
    store = Store(sqlite_url)
    sweep, _ = load_sweep(store, "tiny")
    by_worker: dict[str | None, list[TrialRecord]] = {}
    for trial in store.trials(sweep.id, [TrialState.COMPLETED]):
        by_worker.setdefault(trial.worker, []).append(trial)
    for trials in by_worker.values():
        trials.sort(key=lambda t: t.number)
        for before, after in itertools.pairwise(trials):
            assert before.started_at is not None and after.started_at is not None
            took = timedelta(seconds=before.results["trial_seconds"])
            assert after.started_at >= before.started_at + took  # one worker runs one trial at a time
