"""Knowledge distillation on the search side: which module teaches a sweep's trials, and how the workers
get it without training it again.

A teacher is resolved to a :class:`TeacherJob` (plain data: the task that builds it, its model config, a
state-dict file and its sha256) that goes with every trial's job; a worker loads it once per process
(:func:`distillation`). The forms of ``distill.teacher``:

- a trial number N of this sweep: trials numbered up to N train alone; no trial starts while N runs, and
  the later ones learn from its checkpoint (a teacher that does not complete stops the sweep);
- ``{sweep, trial}``: a completed trial of another sweep in the same store, from its checkpoint;
- a preset name: the preset trained once on the sweep's task, data and seed as the one-trial sweep
  ``teacher-<preset>-<hash of those settings>`` of the same store; every sweep with the same settings
  (and each of its workers) loads that sweep's checkpoint instead of training it again;
- ``{checkpoint, config}``: a saved state dict and the config of the model of the sweep's task it holds.

:func:`check_distill` checks every form before a sweep exists and writes nothing; :func:`launch_teacher`
trains a preset teacher if the store lacks it, and :func:`trial_teacher` resolves a trial of this sweep
once it has finished (the sweep loop waits for it).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from search._config import CheckpointTeacher, ConfigError, SweepConfig, TaskConfig, parse_config
from search.storage import Store, SweepRecord, TrialRecord, TrialState

log = logging.getLogger(__name__)

_FORMS = "a trial number of this sweep, {sweep, trial}, {checkpoint, config} or a preset"


@dataclass(frozen=True)
class TeacherJob:
    """A resolved teacher as a worker loads it; plain, hashable data that pickles to another process."""

    where: str  # what it is, for messages: "trial 3 of sweep 'a'", "preset 'econt_baseline'", ...
    task: TaskConfig  # the task whose model family builds it
    config_json: str  # its model config
    checkpoint: str  # its state dict file
    sha256: str
    alpha: float
    temperature: float


def _problem(message: str) -> Exception:
    from search.execution._setup import SweepError

    return SweepError(f"distill.teacher: {message}")


@functools.lru_cache(maxsize=2)
def load_teacher(job: TeacherJob) -> torch.nn.Module:
    """The frozen teacher module (eval mode, no gradients), once per process. SweepError naming the teacher
    when its file is missing or changed, its config does not build or the weights do not fit."""
    from search.execution._trial import job_task
    from spaces import SpaceError

    path = Path(job.checkpoint)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise _problem(f"{job.where}: cannot read its checkpoint {path} ({exc.strerror})") from None
    if hashlib.sha256(payload).hexdigest() != job.sha256:
        raise _problem(f"{job.where}: checkpoint {path} does not match its recorded sha256")
    task = job_task(job.task)
    try:
        model = task.build_model(json.loads(job.config_json))
    except SpaceError as exc:
        raise _problem(f"{job.where}: task {task.name!r} cannot build its config: {exc}") from None
    if model.gated:
        model = model.prune_nodes()  # node pruning: a checkpoint holds the smaller network
    try:
        model.load_state_dict(torch.load(io.BytesIO(payload), weights_only=True))
    except Exception as exc:  # a user's file: whatever torch makes of it, the teacher cannot be used
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise _problem(
            f"{job.where}: {path} does not hold the weights of its config's model: {reason}"
        ) from None
    model.eval()
    model.requires_grad_(False)
    return model


def distillation(job: TeacherJob | None) -> Any:
    """The trial's :class:`objectives.Distillation`, or None without a teacher."""
    if job is None:
        return None
    from objectives import Distillation

    return Distillation(load_teacher(job), alpha=job.alpha, temperature=job.temperature)


# -- resolving a teacher ----------------------------------------------------------------------------------
def _same_inputs(teacher: TaskConfig | str, config: SweepConfig, where: str) -> None:
    """SweepError unless the teacher's task (a task config, or a registered task's name) takes the sweep's
    task's inputs."""
    from objectives import get_task
    from search.execution._trial import job_task

    student = job_task(config.task)
    mentor = get_task(teacher) if isinstance(teacher, str) else job_task(teacher)
    if tuple(mentor.input_shape) != tuple(student.input_shape):
        raise _problem(
            f"{where} is a model of task {mentor.name!r} with inputs of shape {tuple(mentor.input_shape)}, "
            f"the sweep's task {student.name!r} has {tuple(student.input_shape)}; allowed: a teacher of the "
            "same input shape"
        )


def _job(
    where: str, task: TaskConfig, model_config: Mapping[str, Any], path: str, sha256: str, config: SweepConfig
) -> TeacherJob:
    distill = config.distill
    assert distill is not None
    job = TeacherJob(
        where=where,
        task=task,
        config_json=json.dumps(dict(model_config), sort_keys=True),
        checkpoint=path,
        sha256=sha256,
        alpha=distill.alpha,
        temperature=distill.temperature,
    )
    load_teacher(job)  # the file is there, unchanged, and fits its config's model
    return job


def _from_trial(
    trial: TrialRecord,
    artifacts: Sequence[Mapping[str, str]],
    task: TaskConfig,
    where: str,
    config: SweepConfig,
) -> TeacherJob:
    """The teacher a finished trial is; SweepError unless it completed with a checkpoint."""
    if trial.state is not TrialState.COMPLETED:
        reason = f" ({trial.error})" if trial.error else ""
        raise _problem(
            f"{where} is {trial.state.value}{reason}; allowed: a COMPLETED trial, whose checkpoint teaches"
        )
    checkpoints = [a for a in artifacts if a["kind"] == "checkpoint"]
    if not checkpoints:
        raise _problem(f"{where} has no checkpoint (checkpoints are kept next to a SQLite store)")
    _same_inputs(task, config, where)
    return _job(where, task, trial.params, checkpoints[-1]["path"], checkpoints[-1]["sha256"], config)


def _other_sweep(config: SweepConfig, sweep_name: str, number: int) -> TeacherJob:
    """A trial of another sweep of the store, read without writing anything."""
    from search.results import Results
    from search.storage import StoreError

    where = f"trial {number} of sweep {sweep_name!r}"
    try:
        with Results.open(config.store) as results:
            sweep = results.get_sweep(sweep_name)
            if sweep is None:
                known = ", ".join(o.sweep.name for o in results.sweeps()) or "none"
                raise _problem(f"no sweep named {sweep_name!r} in the store; known sweeps: {known}")
            trial = next((t for t in results.trials(sweep.id) if t.number == number), None)
            if trial is None:
                total = len(results.trials(sweep.id))
                raise _problem(f"sweep {sweep_name!r} has no trial {number}; its trials: 0..{total - 1}")
            artifacts = results.artifacts([trial.id]).get(trial.id, [])
    except StoreError as exc:
        raise _problem(f"{where}: {exc}") from None
    try:
        stored = parse_config(
            yaml.safe_load(sweep.config_yaml), source=f"stored config of sweep {sweep_name!r}"
        )
    except ConfigError as exc:
        raise _problem(f"{where}: {exc}") from None
    return _from_trial(trial, artifacts, stored.task, where, config)


def _checkpoint_file(config: SweepConfig, spec: CheckpointTeacher) -> TeacherJob:
    """A state dict file and its config, a model of the sweep's own task."""
    where = f"checkpoint {spec.checkpoint!r}"
    path = Path(spec.checkpoint)
    if not path.is_file():
        raise _problem(
            f"no checkpoint file {spec.checkpoint!r} (relative to {Path.cwd()}); allowed: a file of torch.save(model.state_dict())"
        )
    model_config: Any = spec.config
    if isinstance(model_config, str):
        try:
            model_config = yaml.safe_load(Path(model_config).read_text())  # JSON is YAML too
        except OSError as exc:
            raise _problem(f"{where}: cannot read its config file {spec.config!r} ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise _problem(f"{where}: its config file {spec.config!r} is not YAML or JSON: {exc}") from None
        if not isinstance(model_config, dict):
            raise _problem(f"{where}: its config file {spec.config!r} holds no mapping of a model config")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise _problem(f"{where}: cannot read it ({exc.strerror})") from None
    return _job(where, config.task, model_config, str(path.resolve()), digest, config)


def _preset(config: SweepConfig, name: str) -> dict[str, Any]:
    """The canonical config of a preset teacher; SweepError for an unknown preset, one made for another
    input shape, or one the sweep's task cannot build."""
    from objectives import get_task, task_names
    from search.execution._trial import job_task
    from spaces import PRESET_NAMES, SpaceError, get_preset

    if name not in PRESET_NAMES:
        raise _problem(f"unknown preset {name!r}; allowed: {_FORMS} ({', '.join(PRESET_NAMES)})")
    student = job_task(config.task)
    homes = [task for task in task_names() if get_task(task).preset == name]
    if student.name not in homes and homes:
        _same_inputs(homes[0], config, f"preset {name!r}")
    canonical = get_preset(name)
    try:
        student.build_model(canonical)
    except SpaceError as exc:
        raise _problem(f"preset {name!r}: task {student.name!r} cannot build it: {exc}") from None
    return canonical


def teacher_sweep(config: SweepConfig, preset: str, canonical: Mapping[str, Any]) -> SweepConfig:
    """The one-trial sweep that trains a preset teacher: the sweep's task, data and seed, the teacher's
    epochs. Its name carries a hash of those, so sweeps with the same settings share it."""
    from objectives import get_task

    assert config.distill is not None
    epochs = config.distill.epochs or config.epochs
    task = config.task.model_dump(mode="json")
    settings = {"task": task, "preset": dict(canonical), "epochs": epochs, "seed": config.seed}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    primary = get_task(config.task.name).primary_metric
    return parse_config(
        {
            "name": f"teacher-{preset}-{digest}",
            "task": task,
            "space": {"parameters": {k: {"type": "choice", "choices": [v]} for k, v in canonical.items()}},
            "objectives": [{primary: get_task(config.task.name).metric_directions[primary]}],
            "strategy": {"name": "random"},
            "trials": 1,
            "epochs": epochs,
            "seed": config.seed,
            "store": config.store,
        },
        source=f"teacher sweep of preset {preset!r}",
    )


def check_distill(config: SweepConfig) -> None:
    """Every check of ``config.distill`` that needs more than the schema, before anything is created: the
    teacher exists (a preset is known), takes the task's inputs and its weights load. Writes nothing."""
    from search.execution._setup import checkpoint_dir

    distill = config.distill
    if distill is None:
        return
    teacher = distill.teacher
    if isinstance(teacher, CheckpointTeacher):
        _checkpoint_file(config, teacher)
        return
    if checkpoint_dir(config) is None:
        raise _problem(
            "a trial or preset teacher is loaded from its checkpoint, which only a SQLite store keeps; "
            "allowed with this store: {checkpoint, config}"
        )
    if isinstance(teacher, int):
        if teacher >= config.trials:
            raise _problem(
                f"trial {teacher} of this sweep never runs: its trials are numbered 0..{config.trials - 1}; "
                f"allowed: a number below trials ({config.trials})"
            )
    elif isinstance(teacher, str):
        _preset(config, teacher)
    else:
        _other_sweep(config, teacher.sweep, teacher.trial)


def launch_teacher(config: SweepConfig) -> TeacherJob | None:
    """The sweep's teacher as it launches (after :func:`check_distill`): a preset is trained now unless the
    store has it; None without distillation or with a trial of this sweep (see :func:`trial_teacher`)."""
    distill = config.distill
    if distill is None or isinstance(distill.teacher, int):
        return None
    teacher = distill.teacher
    if isinstance(teacher, CheckpointTeacher):
        return _checkpoint_file(config, teacher)
    if not isinstance(teacher, str):
        return _other_sweep(config, teacher.sweep, teacher.trial)
    canonical = _preset(config, teacher)
    trainer = teacher_sweep(config, teacher, canonical)
    where = f"preset {teacher!r} (sweep {trainer.name})"
    store = Store(config.store)
    try:
        if not _finished_trial(store, trainer.name):
            from search.execution._loop import run_sweep

            log.info("training the teacher %s once, as sweep %s", teacher, trainer.name)
            # A driver beside this one training it too: this loop waits for that driver's trial.
            if run_sweep(trainer).interrupted:
                raise KeyboardInterrupt
        sweep = store.get_sweep(trainer.name)
        assert sweep is not None
        (trial,) = store.trials(sweep.id)
        if trial.state is not TrialState.COMPLETED:  # its one-trial budget is spent: it will not train again
            raise _problem(
                f"{where}: its training ended {trial.state.value} ({trial.error or 'no error recorded'}); "
                f"remove sweep {trainer.name!r} from the store to train it again"
            )
        return _from_trial(trial, store.artifacts(trial.id), config.task, where, config)
    finally:
        store.close()


def _finished_trial(store: Store, sweep_name: str) -> bool:
    sweep = store.get_sweep(sweep_name)
    return sweep is not None and any(t.state.finished for t in store.trials(sweep.id))


def check_same_teacher(store: Store, sweep: SweepRecord, teacher: TeacherJob) -> None:
    """SweepError when the last distilled trial of a resumed sweep learnt from another file than ``teacher``
    (its checkpoint was replaced since): the trials after the resume would learn from another model."""
    last = store.last_artifact(sweep.id, "teacher")
    if last is not None and last[1]["sha256"] != teacher.sha256:
        number, taught = last
        raise _problem(
            f"{teacher.where} has changed since trial {number} of this sweep learnt from it "
            f"(sha256 {taught['sha256'][:12]}... then, {teacher.sha256[:12]}... now); allowed: restore "
            "that file, or launch a new sweep (another name) with the new teacher"
        )


def trial_teacher(store: Store, trial: TrialRecord, config: SweepConfig) -> TeacherJob:
    """A finished trial of this sweep as its teacher; SweepError if it did not complete."""
    return _from_trial(
        trial, store.artifacts(trial.id), config.task, f"trial {trial.number} of this sweep", config
    )
