"""Knowledge distillation through the CLI on tiny waveform sweeps: a preset teacher trained once per store
(whatever the trials and workers), a trial of another sweep and a trial of the same sweep as teachers, and
the validate-time messages for bad teachers and settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from search.cli import app
from search.storage import TrialRecord
from search.storage._store import Store

runner = CliRunner(env={"COLUMNS": "200"})

FIXED = {
    "n_hidden": 1,
    "hidden0_units": 16,
    "lr": 0.003,
    "batch_size": 64,
    "quantize": False,
    "sparsity": 0.0,
    "l1_reg": False,
}


def sweep(name: str, store: str, *, latents: tuple[int, ...] = (4, 6), **extra: Any) -> dict[str, Any]:
    """A grid sweep over the latent width of one small dense autoencoder: the same configs in the same
    order (and so the same trial seeds) in every sweep, distilled or not."""
    parameters = {k: {"type": "choice", "choices": [v]} for k, v in FIXED.items()}
    parameters["latent"] = {"type": "choice", "choices": list(latents)}
    return {
        "name": name,
        "task": {"name": "waveform", "data": "synthetic", "rows": 600, "val_rows": 150},
        "space": {"parameters": parameters},
        "objectives": [{"emd1d_mean": "minimize"}],
        "strategy": {"name": "grid"},
        "trials": len(latents),
        "epochs": 1,
        "store": store,
        **extra,
    }


def launch(path: Path, config: dict[str, Any]) -> list[TrialRecord]:
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 0, result.output
    return trials_of(config["store"], config["name"])


def trials_of(url: str, name: str) -> list[TrialRecord]:
    store = Store(url)
    try:
        record = store.get_sweep(name)
        assert record is not None
        return store.trials(record.id)
    finally:
        store.close()


def by_number(trials: list[TrialRecord]) -> dict[int, TrialRecord]:
    assert all(t.state.value == "COMPLETED" for t in trials), [t.error for t in trials]
    return {t.number: t for t in trials}


def same_training(a: TrialRecord, b: TrialRecord) -> bool:
    assert a.params == b.params and a.seed == b.seed  # the same config and seed: only a teacher differs
    return a.results["val_loss"] == b.results["val_loss"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[int, TrialRecord]]:
    """A store holding the undistilled sweep ``plain`` (latents 4, 6, 8), the reference of the others."""
    folder = tmp_path_factory.mktemp("distill")
    url = f"sqlite:///{folder / 'hwnas.db'}"
    return url, by_number(launch(folder / "plain.yaml", sweep("plain", url, latents=(4, 6, 8))))


def test_preset_teacher_is_trained_once_for_every_trial_worker_and_sweep(
    tmp_path: Path, plain: tuple[str, dict[int, TrialRecord]]
) -> None:
    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    distill = {"teacher": "waveform_baseline", "alpha": 0.7, "epochs": 2}
    two_workers = {"executor": {"kind": "local", "workers": 2}}
    kd = by_number(
        launch(tmp_path / "a.yaml", sweep("kd", url, latents=(4, 6, 8), distill=distill, **two_workers))
    )
    assert not any(same_training(kd[n], plain[1][n]) for n in kd)  # every trial learnt from the teacher
    # a second sweep with the same task, data and teacher settings loads the same teacher
    by_number(launch(tmp_path / "b.yaml", sweep("kd-again", url, latents=(6,), distill=distill)))
    store = Store(url)
    try:
        teachers = [s for s in store.list_sweeps() if s.name.startswith("teacher-waveform_baseline-")]
        assert len(teachers) == 1
        (trial,) = store.trials(teachers[0].id)
        assert trial.state.value == "COMPLETED" and trial.attempts == 1
        assert len(store.metrics(trial.id)) == 2  # one training of the teacher's 2 epochs
        assert [a["kind"] for a in store.artifacts(trial.id)] == ["checkpoint"]
    finally:
        store.close()


def test_a_trial_of_another_sweep_teaches(tmp_path: Path, plain: tuple[str, dict[int, TrialRecord]]) -> None:
    url, reference = plain
    distill = {"teacher": {"sweep": "plain", "trial": 2}, "alpha": 0.9}
    kd = by_number(launch(tmp_path / "kd.yaml", sweep("kd-other", url, distill=distill)))
    assert not same_training(kd[0], reference[0]) and not same_training(kd[1], reference[1])


def test_a_trial_of_this_sweep_teaches_the_later_ones(
    tmp_path: Path, plain: tuple[str, dict[int, TrialRecord]]
) -> None:
    url, reference = plain
    config = sweep("kd-self", url, latents=(4, 6, 8), distill={"teacher": 1, "alpha": 0.9})
    config["executor"] = {
        "kind": "local",
        "workers": 2,
    }  # trial 2 waits for trial 1 although a worker is free
    kd = by_number(launch(tmp_path / "kd.yaml", config))
    assert same_training(kd[0], reference[0]) and same_training(kd[1], reference[1])  # trained alone
    assert not same_training(kd[2], reference[2])
    assert kd[2].started_at is not None and kd[1].finished_at is not None
    assert kd[2].started_at >= kd[1].finished_at


def _state_dict_file(path: Path) -> Path:
    torch.save({"weight": torch.zeros(3)}, path)
    return path


@pytest.mark.parametrize(
    ("distill", "message"),
    [
        ({"teacher": 0, "alpha": 1.5}, "distill.alpha: alpha 1.5 is outside [0, 1]"),
        ({"teacher": 0, "alpha": -0.1}, "distill.alpha: alpha -0.1 is outside [0, 1]"),
        ({"teacher": 0, "temperature": 0}, "distill.temperature: temperature 0.0 must be a finite value > 0"),
        (
            {"teacher": 0, "tempreature": 2},
            "distill.tempreature: unknown key (did you mean 'temperature'?); allowed: teacher, alpha, "
            "temperature, epochs",
        ),
        ({"teacher": {"sweep": "plain", "trail": 1}}, "distill.teacher.{sweep, trial}.trail: unknown key"),
        ({"teacher": [1]}, "distill.teacher: a teacher is a trial number of this sweep, a preset name"),
        ({"teacher": 1, "epochs": 3}, "distill: epochs only applies to a preset teacher"),
        ({"teacher": 5}, "distill.teacher: trial 5 of this sweep never runs: its trials are numbered 0..1"),
        (
            {"teacher": "no_such_model"},
            "distill.teacher: unknown preset 'no_such_model'; allowed: a trial number of this sweep, {sweep, "
            "trial}, {checkpoint, config} or a preset (econt_baseline, waveform_baseline, trigger_baseline)",
        ),
        (
            {"teacher": "econt_baseline"},
            "distill.teacher: preset 'econt_baseline' is a model of task 'econt' with inputs of shape (1, 8, 8), "
            "the sweep's task 'waveform' has (48,); allowed: a teacher of the same input shape",
        ),
        (
            {"teacher": {"sweep": "nowhere", "trial": 0}},
            "distill.teacher: trial 0 of sweep 'nowhere': no store at",
        ),
        (
            {"teacher": {"checkpoint": "missing.pt", "config": {"latent": 4}}},
            "distill.teacher: no checkpoint file 'missing.pt'",
        ),
        (
            {"teacher": {"checkpoint": "{dir}/wrong.pt", "config": {**FIXED, "latent": 4}}},
            "distill.teacher: checkpoint '{dir}/wrong.pt': {dir}/wrong.pt does not hold the weights of its "
            "config's model",
        ),
    ],
)
def test_bad_distill_settings_exit_2_at_validate_and_launch_and_create_nothing(
    tmp_path: Path, sqlite_url: str, distill: dict[str, Any], message: str
) -> None:
    _state_dict_file(tmp_path / "wrong.pt")
    distill = yaml.safe_load(yaml.safe_dump(distill).replace("{dir}", str(tmp_path)))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sweep("bad", sqlite_url, distill=distill)))
    for command in (["sweep", "validate", str(path)], ["sweep", "launch", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert message.replace("{dir}", str(tmp_path)) in " ".join(result.output.split())
        assert "Traceback" not in result.output
    assert not (tmp_path / "hwnas.db").exists()  # launch created nothing


@pytest.mark.parametrize(
    ("teacher", "task", "message"),
    [
        (
            {"sweep": "nothing", "trial": 0},
            "waveform",
            "no sweep named 'nothing' in the store; known sweeps: plain",
        ),
        ({"sweep": "plain", "trial": 9}, "waveform", "sweep 'plain' has no trial 9; its trials: 0..2"),
        (
            {"sweep": "plain", "trial": 0},
            "econt",
            "trial 0 of sweep 'plain' is a model of task 'waveform' with inputs of shape (48,), the sweep's "
            "task 'econt' has (1, 8, 8)",
        ),
    ],
)
def test_a_missing_or_mismatched_teacher_trial_exits_2_and_writes_nothing(
    tmp_path: Path,
    plain: tuple[str, dict[int, TrialRecord]],
    teacher: dict[str, Any],
    task: str,
    message: str,
) -> None:
    url, _ = plain
    config = sweep("bad-teacher", url, distill={"teacher": teacher})
    if task == "econt":
        config["task"] = {"name": "econt", "data": "synthetic", "rows": 600, "val_rows": 150}
        config["space"], config["objectives"] = "econt", [{"emd_mean": "minimize"}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    for command in (["sweep", "validate", str(path)], ["sweep", "launch", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert f"distill.teacher: {message}" in " ".join(result.output.split())
    store = Store(url)
    try:
        assert store.get_sweep("bad-teacher") is None
    finally:
        store.close()


def test_a_name_clash_exits_2_before_the_preset_teacher_is_trained(
    tmp_path: Path, plain: tuple[str, dict[int, TrialRecord]]
) -> None:
    url, _ = plain
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump(sweep("plain", url, distill={"teacher": "waveform_baseline"})))
    store = Store(url)
    try:
        before = [s.name for s in store.list_sweeps()]
    finally:
        store.close()
    result = runner.invoke(app, ["sweep", "launch", str(path)])
    assert result.exit_code == 2 and "a sweep named 'plain' already exists" in " ".join(result.output.split())
    store = Store(url)
    try:
        assert [s.name for s in store.list_sweeps()] == before  # no teacher sweep was trained
    finally:
        store.close()


def test_a_resume_refuses_a_checkpoint_teacher_replaced_since_trials_learnt_from_it(
    tmp_path: Path, plain: tuple[str, dict[int, TrialRecord]]
) -> None:
    url, reference = plain
    teacher = reference[2]
    store = Store(url)
    try:
        (source,) = [a["path"] for a in store.artifacts(teacher.id) if a["kind"] == "checkpoint"]
    finally:
        store.close()
    weights = torch.load(source)
    checkpoint = tmp_path / "teacher.pt"
    torch.save(weights, checkpoint)
    config = sweep(
        "kd-file", url, distill={"teacher": {"checkpoint": str(checkpoint), "config": teacher.params}}
    )
    config["time_limit_s"] = 0.5  # stops after its first trial, to be resumed
    kd = launch(tmp_path / "kd.yaml", config)
    taught = [t for t in kd if t.state.value == "COMPLETED"]
    assert taught
    store = Store(url)
    try:  # each distilled trial records which teacher file taught it
        recorded = [a for t in taught for a in store.artifacts(t.id) if a["kind"] == "teacher"]
    finally:
        store.close()
    assert [a["path"] for a in recorded] == [str(checkpoint.resolve())] * len(taught)
    torch.save({name: tensor + 1.0 for name, tensor in weights.items()}, checkpoint)  # same shapes
    result = runner.invoke(app, ["sweep", "resume", "kd-file", "--store", url])
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert (
        f"checkpoint '{checkpoint}' has changed since trial {taught[-1].number} of this sweep learnt"
        in message
    )
    assert trials_of(url, "kd-file") == kd  # nothing trained or written


def test_the_teacher_trial_and_replicates_are_never_cut_and_replicates_train_as_their_original(
    tmp_path: Path,
) -> None:
    from search._config import parse_config
    from search.execution._loop import SweepLoop

    url = f"sqlite:///{tmp_path / 'hwnas.db'}"
    config = sweep("kd-asha", url, latents=(4, 6, 8), distill={"teacher": 1}, epochs=4)
    config["scheduler"] = {"kind": "asha", "mode": "aggressive"}
    driver = SweepLoop(parse_config(config))
    try:
        assert driver.rungs is not None
        rows = {}
        for number, latent in enumerate((4, 6, 8)):
            params = {**FIXED, "latent": latent}
            rows[number] = driver.store.create_trial(driver.sweep.id, params, config_hash=f"h{number}")
        replicates = {
            number: driver.store.create_trial(
                driver.sweep.id, rows[number].params, config_hash=f"h{number}", replicate_of=number
            )
            for number in (0, 2)
        }
        jobs = {number: driver._job(trial) for number, trial in rows.items()}
        assert jobs[0].rungs is not None and jobs[2].rungs is not None  # search trials may be cut
        assert jobs[1].rungs is None  # the teacher must complete
        assert all(driver._job(r).rungs is None for r in replicates.values())  # replicates confirm
        # A replicate learns from the teacher only if its original did: trial 0 trained alone.
        assert not driver._learns_from_teacher_trial(replicates[0])
        assert driver._learns_from_teacher_trial(replicates[2])
        assert driver._pending_teacher() == driver.store.get_trial(rows[1].id)  # queued: the later ones wait
    finally:
        driver.store.close()
        driver.executor.shutdown()
