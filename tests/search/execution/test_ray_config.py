"""Scheduling and the Ray executor without a Ray session: config checks, ASHA presets and rung plans, the
rungs a trial reports, and bad Ray input refused before the sweep exists."""

from __future__ import annotations

import math
import os
import socket
from typing import Any

import pytest
from ray._private.utils import check_version_info
from sweep_configs import tiny_sweep

from search._config import ConfigError, parse_config
from search._types import Completed, Failed, Pruned
from search.execution._loop import SweepLoop, run_sweep
from search.execution._ray import ExecutorError, explain_connect_error
from search.execution._setup import asha_settings, rung_metric, rung_plan
from search.execution._trial import run_trial, task_data
from search.storage import Store


def ray_config(store: str, **overrides: Any) -> dict[str, Any]:
    ray = {"name": "ray-tiny", "epochs": 9, "seed": 5, "executor": {"kind": "ray", "workers": 1}}
    return tiny_sweep(store, **{**ray, "scheduler": {"kind": "asha"}, **overrides})


def local(store: str, **overrides: Any) -> SweepLoop:
    """A sweep loop on the in-process executor (no Ray), for running single trials by hand."""
    return SweepLoop(parse_config(ray_config(store, executor={"kind": "local"}, **overrides)))


# -- config -------------------------------------------------------------------------------------------
def test_asha_runs_on_the_local_executor_too() -> None:
    config = parse_config(ray_config("sqlite://", executor={"kind": "local", "workers": 2}))
    assert rung_plan(config) == rung_plan(parse_config(ray_config("sqlite://")))


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


def test_the_rung_plan_ranks_the_rung_metric_with_the_cost_objectives() -> None:
    objectives = [{"emd_mean": "minimize"}, {"model_kb": "minimize"}, {"bops": "minimize"}]
    config = parse_config(
        ray_config("sqlite://", objectives=objectives, scheduler={"kind": "asha", "metric": "emd"})
    )
    plan = rung_plan(config)
    assert plan is not None and plan.metric == "emd_mean_subsample"
    assert plan.costs == (("model_kb", "minimize"), ("bops", "minimize"))  # not emd_mean: a metric
    assert plan.milestones == ((1, 3), (3,))  # standard preset at 9 epochs: grace 1, rf 3, 2 brackets
    assert rung_metric(config.scheduler, "waveform") == "emd1d_mean_subsample"
    assert rung_plan(parse_config(ray_config("sqlite://", scheduler={"kind": "none"}))) is None
    metric_only = parse_config(ray_config("sqlite://", scheduler={"kind": "asha", "promotion": "metric"}))
    assert rung_plan(metric_only).costs == ()  # type: ignore[union-attr]


# -- the rungs a trial reports ----------------------------------------------------------------------
def test_a_trial_records_its_rung_points_and_a_dominated_one_is_pruned_there(
    sqlite_url: str, monkeypatch: Any
) -> None:
    import search.execution._trial as trial_module
    from spaces import get_preset

    scheduler = {"kind": "asha", "grace_period": 1, "reduction_factor": 2, "brackets": 1}
    loop = local(sqlite_url, epochs=4, scheduler=scheduler)
    preset = get_preset("econt_baseline")
    rung_values = iter([1.0, 1.0, 2.0])  # first trial at rungs 1 and 2, then the second at rung 1
    monkeypatch.setattr(trial_module, "_rung_metric", lambda *args: next(rung_values))
    first = loop.store.create_trial(loop.sweep.id, preset, config_hash="a")
    outcome = run_trial(loop._job(first))
    assert isinstance(outcome, Completed) and outcome.fidelity == 4  # alone at its rungs: goes on
    # The same architecture (same cost) with a worse rung metric is cut at its first rung.
    second = loop.store.create_trial(loop.sweep.id, {**preset, "lr": 1e-4}, config_hash="b")
    pruned = run_trial(loop._job(second))
    assert isinstance(pruned, Pruned) and pruned.fidelity == 1
    assert pruned.values["val_loss"] == 2.0 and {"train_loss", "bops", "ops"} <= set(pruned.values)
    assert [row["epoch"] for row in loop.store.metrics(second.id)] == [1]


def test_a_non_finite_rung_metric_fails_the_trial_as_diverged(sqlite_url: str, monkeypatch: Any) -> None:
    import search.execution._trial as trial_module
    from spaces import get_preset

    loop = local(sqlite_url, epochs=3)
    trial = loop.store.create_trial(loop.sweep.id, get_preset("econt_baseline"), config_hash="h")
    monkeypatch.setattr(trial_module, "_rung_metric", lambda *args: math.nan)
    outcome = run_trial(loop._job(trial))
    assert isinstance(outcome, Failed) and "rung metric val_loss is nan at epoch 1" in outcome.reason


def test_emd_rung_metric_is_the_emd_of_a_fixed_validation_subsample(sqlite_url: str) -> None:
    import torch

    from objectives import emd_hex, from_8x8, get_task
    from objectives._tasks import predict
    from search.execution._trial import _rung_metric
    from spaces import get_preset

    loop = local(sqlite_url, scheduler={"kind": "asha", "metric": "emd", "emd_rows": 120})
    trial = loop.store.create_trial(loop.sweep.id, get_preset("econt_baseline"), config_hash="h")
    job = loop._job(trial)
    torch.manual_seed(0)
    model = get_task("econt").build_model(get_preset("econt_baseline"))
    assert job.rungs is not None
    value = _rung_metric(job, job.rungs, {"val_loss": 1.0}, model)
    data = task_data(job.task, job.data_seed)
    cells = from_8x8(predict(model, data.val_x[:120])).clamp_min(0.0).double().numpy()
    expected = float(emd_hex(data.val_raw[:120], cells).as_dict()["emd_mean"])
    assert value == pytest.approx(expected, rel=1e-12)


def test_replicates_are_never_cut(sqlite_url: str) -> None:
    loop = local(sqlite_url)
    trial = loop.store.create_trial(loop.sweep.id, {"latent": 8}, config_hash="h", replicate_of=0)
    assert loop._job(trial).rungs is None


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
