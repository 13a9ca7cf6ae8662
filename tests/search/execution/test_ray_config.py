"""The Ray executor without a Ray session: config checks, ASHA presets, the Searcher adapter's bookkeeping,
the rung reporter's NaN policy, and bad input refused before the sweep exists."""

from __future__ import annotations

import math
import os
import socket
from typing import Any

import pytest
from ray._private.utils import check_version_info
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from search._config import ConfigError, parse_config
from search._types import Completed, Failed, Pruned, Rejected
from search.execution._asha import ParetoASHA
from search.execution._loop import Driver, run_sweep
from search.execution._ray import (
    OUTCOME_KEY,
    DriverSearcher,
    ExecutorError,
    TuneBridge,
    asha_settings,
    decode_outcome,
    encode_outcome,
    explain_connect_error,
    job_from_json,
    job_to_json,
    make_scheduler,
    rung_metric,
    rung_reporter,
)
from search.execution._trial import run_trial, task_data
from search.storage._schema import TrialState
from search.storage._store import Store


def ray_config(store: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "ray-tiny",
        "task": {"name": "econt", "data": "synthetic", "rows": 1500, "val_rows": 300},
        "space": "econt",
        "objectives": [{"emd_mean": "minimize"}, {"bops": "minimize"}],
        "strategy": {"name": "random"},
        "trials": 3,
        "epochs": 9,
        "store": store,
        "seed": 5,
        "executor": {"kind": "ray", "workers": 1},
        "scheduler": {"kind": "asha"},
    }
    config.update(overrides)
    return config


# -- config -------------------------------------------------------------------------------------------
def test_asha_needs_the_ray_executor() -> None:
    with pytest.raises(ConfigError, match=r"scheduler 'asha' needs executor kind 'ray'"):
        parse_config(ray_config("sqlite://", executor={"kind": "local"}))


def test_grace_period_must_leave_epochs_to_cut() -> None:
    with pytest.raises(ConfigError, match=r"scheduler.grace_period 9 must be below epochs 9"):
        parse_config(ray_config("sqlite://", scheduler={"kind": "asha", "grace_period": 9}))


def test_ray_only_keys_are_refused_for_the_local_executor() -> None:
    with pytest.raises(ConfigError, match=r"executor: .*address, num_cpus only apply to kind 'ray'"):
        parse_config(ray_config("sqlite://", executor={"address": "auto", "num_cpus": 2}, scheduler={}))
    with pytest.raises(ConfigError, match=r"num_cpus sizes the local Ray hwnas starts"):
        parse_config(ray_config("sqlite://", executor={"kind": "ray", "address": "auto", "num_cpus": 2}))


def test_execution_knobs_leave_the_fingerprint_alone_but_the_scheduler_does_not() -> None:
    base = parse_config(ray_config("sqlite://"))
    moved = parse_config(ray_config("sqlite://", executor={"kind": "ray", "workers": 2, "address": "auto"}))
    assert moved.fingerprint() == base.fingerprint()
    gentler = parse_config(ray_config("sqlite://", scheduler={"kind": "asha", "mode": "conservative"}))
    assert gentler.fingerprint() != base.fingerprint()
    local = parse_config(ray_config("sqlite://", executor={"kind": "local"}, scheduler={"kind": "none"}))
    unscheduled = local.model_dump(mode="json")
    del unscheduled["scheduler"]  # a sweep stored before schedulers existed keeps its fingerprint
    assert parse_config(unscheduled).fingerprint() == local.fingerprint()


@pytest.mark.parametrize(
    ("mode", "epochs", "expected"),
    [
        ("aggressive", 100, {"grace_period": 6, "reduction_factor": 4, "brackets": 1}),
        ("standard", 9, {"grace_period": 1, "reduction_factor": 3, "brackets": 2}),
        ("conservative", 20, {"grace_period": 5, "reduction_factor": 2, "brackets": 3}),
        ("conservative", 2, {"grace_period": 1, "reduction_factor": 2, "brackets": 3}),
    ],
)
def test_presets_scale_with_the_epochs(mode: str, epochs: int, expected: dict[str, int]) -> None:
    config = parse_config(ray_config("sqlite://", epochs=epochs, scheduler={"kind": "asha", "mode": mode}))
    assert asha_settings(config.scheduler, config.epochs) == expected


def test_explicit_asha_keys_override_the_preset() -> None:
    scheduler = {
        "kind": "asha",
        "mode": "aggressive",
        "grace_period": 2,
        "reduction_factor": 3,
        "brackets": 2,
    }
    config = parse_config(ray_config("sqlite://", scheduler=scheduler))
    assert asha_settings(config.scheduler, 9) == {"grace_period": 2, "reduction_factor": 3, "brackets": 2}


def test_promotion_must_be_pareto_or_metric() -> None:
    with pytest.raises(
        ConfigError, match=r"scheduler.promotion: got 'loss'; input should be 'pareto' or 'metric'"
    ):
        parse_config(ray_config("sqlite://", scheduler={"kind": "asha", "promotion": "loss"}))
    assert parse_config(ray_config("sqlite://")).scheduler.promotion == "pareto"


def test_make_scheduler_ranks_the_rung_metric_with_the_cost_objectives() -> None:
    objectives = [{"emd_mean": "minimize"}, {"model_kb": "minimize"}, {"bops": "minimize"}]
    config = parse_config(
        ray_config("sqlite://", objectives=objectives, scheduler={"kind": "asha", "metric": "emd"})
    )
    scheduler = make_scheduler(config)
    assert isinstance(scheduler, ParetoASHA)
    assert scheduler.metric == "emd_mean_subsample"
    assert scheduler.costs == [("model_kb", "minimize"), ("bops", "minimize")]  # not emd_mean: a metric
    assert scheduler.milestones == [[1, 3], [3]]  # standard preset at 9 epochs: grace 1, rf 3, 2 brackets
    assert rung_metric(config.scheduler, "waveform") == "emd1d_mean_subsample"
    plain = parse_config(ray_config("sqlite://", scheduler={"kind": "none"}))
    assert isinstance(make_scheduler(plain), FIFOScheduler)


def test_metric_promotion_builds_ray_asha_on_the_rung_metric() -> None:
    config = parse_config(ray_config("sqlite://", scheduler={"kind": "asha", "promotion": "metric"}))
    scheduler = make_scheduler(config)
    assert isinstance(scheduler, ASHAScheduler) and not isinstance(scheduler, ParetoASHA)
    assert scheduler.metric == "val_loss" and scheduler._mode == "min"


def test_outcomes_survive_a_tune_result() -> None:
    for outcome in [
        Completed({"emd_mean": 1.5, "bops": math.inf}, fidelity=9),
        Pruned({"bops": 3.0}, fidelity=2),
        Failed("diverged: loss became nan"),
        Rejected("bops = 10 exceeds budget bops <= 1"),
    ]:
        assert decode_outcome(encode_outcome(outcome)) == outcome


def test_a_job_survives_the_tune_config(sqlite_url: str) -> None:
    driver = Driver(parse_config(ray_config(sqlite_url, budgets=["bops <= 5e5"])))
    job = driver._job(driver.store.create_trial(driver.sweep.id, {"latent": 8}, config_hash="h"))
    assert job_from_json(job_to_json(job)) == job


# -- the worker's rung reporter ---------------------------------------------------------------------
def test_rung_reporter_reports_all_but_the_last_epoch_and_stops_nan(sqlite_url: str) -> None:
    from objectives import DivergedError

    config = parse_config(ray_config(sqlite_url, epochs=3))
    reports: list[dict[str, float]] = []
    driver = Driver(config)
    trial = driver.store.create_trial(driver.sweep.id, {"x": 1}, config_hash="h")
    on_epoch = rung_reporter(driver._job(trial), "val_loss", 500, reports.append)
    costs = {"bops": 5e4}
    on_epoch(1, {"train_loss": 2.0, "val_loss": 1.5}, None, costs)  # type: ignore[arg-type]
    on_epoch(3, {"train_loss": 1.0, "val_loss": 0.5}, None, costs)  # type: ignore[arg-type]
    assert reports == [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "bops": 5e4}]
    with pytest.raises(DivergedError, match=r"rung metric val_loss is nan at epoch 2"):
        on_epoch(2, {"train_loss": 1.0, "val_loss": math.nan}, None, costs)  # type: ignore[arg-type]
    assert len(reports) == 1  # NaN never reaches ASHA


def test_rung_reports_carry_the_pre_training_costs_which_the_store_keeps_out_of_the_metrics(
    sqlite_url: str,
) -> None:
    from spaces import get_preset

    objectives = [{"emd_mean": "minimize"}, {"bops": "minimize"}, {"model_kb": "minimize"}]
    config = parse_config(ray_config(sqlite_url, objectives=objectives, epochs=2))
    driver = Driver(config)
    trial = driver.store.create_trial(driver.sweep.id, get_preset("econt_baseline"), config_hash="h")
    reports: list[dict[str, float]] = []
    outcome = run_trial(
        driver._job(trial), on_epoch=rung_reporter(driver._job(trial), "val_loss", 500, reports.append)
    )
    assert isinstance(outcome, Completed)
    totals = driver.store.costs([trial.id])[trial.id]["totals"]
    assert [set(r) for r in reports] == [{"epoch", "train_loss", "val_loss", "bops", "model_kb"}]
    assert reports[0]["bops"] == totals["bops"] and reports[0]["model_kb"] > 0
    assert {k for row in driver.store.metrics(trial.id) for k in row} == {"epoch", "train_loss", "val_loss"}


def test_emd_rung_metric_is_the_emd_of_a_fixed_validation_subsample(sqlite_url: str) -> None:
    import torch

    from objectives import emd_hex, from_8x8, get_task
    from objectives._tasks import predict
    from spaces import get_preset

    config = parse_config(
        ray_config(sqlite_url, scheduler={"kind": "asha", "metric": "emd", "emd_rows": 120})
    )
    driver = Driver(config)
    trial = driver.store.create_trial(driver.sweep.id, get_preset("econt_baseline"), config_hash="h")
    job = driver._job(trial)
    torch.manual_seed(0)
    model = get_task("econt").build_model(get_preset("econt_baseline"))
    reports: list[dict[str, float]] = []
    rung_reporter(job, "emd_mean_subsample", 120, reports.append)(1, {"val_loss": 1.0}, model, {})
    data = task_data(job.task, job.data_seed)
    cells = from_8x8(predict(model, data.val_x[:120])).clamp_min(0.0).double().numpy()
    expected = float(emd_hex(data.val_raw[:120], cells).as_dict()["emd_mean"])
    assert reports[0]["emd_mean_subsample"] == pytest.approx(expected, rel=1e-12)


# -- the Searcher adapter -------------------------------------------------------------------------------
def test_searcher_turns_tune_events_into_store_states_and_strategy_outcomes(sqlite_url: str) -> None:
    config = parse_config(ray_config(sqlite_url, trials=3, max_retries=1, scheduler={"kind": "none"}))
    driver = Driver(config)
    bridge = TuneBridge(driver)
    searcher = DriverSearcher(bridge)
    store = driver.store

    first = searcher.suggest("ray-a")
    assert job_from_json(first["job"]).number == 0 and first["rung_metric"] == "val_loss"
    assert store.get_trial(job_from_json(first["job"]).trial_id).state is TrialState.RUNNING
    second = searcher.suggest("ray-b")
    assert job_from_json(second["job"]).number == 1

    # A full run reports its outcome; an ASHA stop ends with a rung result marked done.
    done = Completed({"emd_mean": 2.0, "bops": 5e4, "val_loss": 0.3}, fidelity=9)
    searcher.on_trial_complete("ray-a", {"epoch": 9, "val_loss": 0.3, OUTCOME_KEY: encode_outcome(done)})
    store.record_cost(job_from_json(second["job"]).trial_id, {"totals": {"bops": 7e4, "ops": 900.0}})
    searcher.on_trial_complete("ray-b", {"epoch": 3, "val_loss": 0.8, "train_loss": 0.9, "done": True})
    a, b = (
        store.get_trial(job_from_json(first["job"]).trial_id),
        store.get_trial(job_from_json(second["job"]).trial_id),
    )
    assert a.state is TrialState.COMPLETED and a.fidelity == 9 and a.results["emd_mean"] == 2.0
    assert b.state is TrialState.PRUNED and b.fidelity == 3
    assert b.results == {"bops": 7e4, "ops": 900.0, "val_loss": 0.8, "train_loss": 0.9}

    # A dead worker: the trial runs again under the same number and strategy key, then fails.
    third = searcher.suggest("ray-c")
    number, trial_id = job_from_json(third["job"]).number, job_from_json(third["job"]).trial_id
    key = bridge.keys[trial_id]
    searcher.on_trial_complete("ray-c", None, error=True)  # Ray's reason comes through the callback
    assert store.get_trial(trial_id).state is TrialState.RUNNING
    bridge.errored("ray-c", "Ray worker failed: The actor died unexpectedly")
    requeued = store.get_trial(trial_id)
    assert requeued.state is TrialState.QUEUED
    assert requeued.error == "Ray worker failed: The actor died unexpectedly; retried"
    again = searcher.suggest("ray-d")
    assert job_from_json(again["job"]).number == number and bridge.keys[trial_id] == key
    assert searcher.suggest("ray-e") is None  # budget spent, one still running: wait, do not finish
    bridge.errored("ray-d", "Ray worker failed: The actor died unexpectedly")
    failed = store.get_trial(trial_id)
    assert failed.state is TrialState.FAILED and failed.attempts == 2
    assert failed.error == "Ray worker failed: The actor died unexpectedly (after 2 attempt(s))"

    assert searcher.suggest("ray-f") == "FINISHED"
    seen = driver.strategy.state_dict()["seen"]
    assert seen == {"completed": 1, "pruned": 1, "failed": 1, "rejected": 0}
    assert driver.strategy.state_dict()["pending"] == 0  # every key told exactly once


def test_a_trial_stopped_by_an_interrupted_experiment_stays_running_for_resume(sqlite_url: str) -> None:
    driver = Driver(parse_config(ray_config(sqlite_url)))
    bridge = TuneBridge(driver)
    suggested = bridge.suggest("ray-a")
    assert isinstance(suggested, dict)
    bridge.complete("ray-a", {"epoch": 2, "val_loss": 0.5})  # not done, no outcome: Tune was shut down
    assert driver.store.get_trial(job_from_json(suggested["job"]).trial_id).state is TrialState.RUNNING
    assert "ray-a" in bridge.inflight


def test_errors_inside_tune_are_kept_for_the_driver(sqlite_url: str) -> None:
    driver = Driver(parse_config(ray_config(sqlite_url)))
    driver._rejections = 100  # as if the space had yielded nothing feasible for that long
    bridge = TuneBridge(driver)
    assert DriverSearcher(bridge).suggest("ray-a") == "FINISHED"  # Tune stops cleanly ...
    assert "100 configs in a row were infeasible" in str(bridge.error)  # ... and run() re-raises this


# -- bad input before anything starts --------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_cluster_is_refused_before_the_sweep_exists(sqlite_url: str) -> None:
    address = f"127.0.0.1:{_free_port()}"
    config = parse_config(ray_config(sqlite_url, executor={"kind": "ray", "address": address}))
    with pytest.raises(ExecutorError, match=rf"cannot reach the Ray cluster at '{address}' \(.*refused"):
        run_sweep(config)
    assert Store(sqlite_url).list_sweeps() == []


def test_more_cpus_than_the_machine_has_are_refused_before_the_sweep_exists(sqlite_url: str) -> None:
    cpus = (os.cpu_count() or 1) + 1
    config = parse_config(ray_config(sqlite_url, executor={"kind": "ray", "num_cpus": cpus}))
    with pytest.raises(ExecutorError, match=rf"executor.num_cpus {cpus} is more than the {cpus - 1} CPU"):
        run_sweep(config)
    assert Store(sqlite_url).list_sweeps() == []


def test_a_malformed_address_names_the_allowed_forms(sqlite_url: str) -> None:
    config = parse_config(ray_config(sqlite_url, executor={"kind": "ray", "address": "headnode"}))
    with pytest.raises(ExecutorError, match=r"'headnode' is not 'auto', 'HOST:PORT' or 'ray://HOST:PORT'"):
        run_sweep(config)


def test_a_ray_version_mismatch_is_explained() -> None:
    metadata = {"ray_version": "2.9.3", "python_version": "3.10.12"}
    with pytest.raises(RuntimeError) as info:  # Ray's own check, as ray.init runs it on connect
        check_version_info(metadata, "127.0.0.1:6379")
    message = explain_connect_error("10.0.0.5:6379", info.value)
    assert message.startswith("the Ray cluster at '10.0.0.5:6379' runs another Ray or Python version")
    assert "Ray: 2.9.3" in message and "install the cluster's Ray version" in message
