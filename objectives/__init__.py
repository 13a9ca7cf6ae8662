"""What is optimised: the task registry, the data of the reference tasks, quality metrics and the training loop.

Tasks: ``get_task(name, loss=...)`` -> :class:`Task` (``input_shape``, ``metric_directions``,
``primary_metric``, ``build_model``, ``on_chip``, ``prepare``, ``loss``, ``evaluate``, data hooks);
``task_names()`` lists the registered ones. A new task is one module: a :class:`Task` subclass declaring
its attributes plus ``register_task(name, factory)``; the built-ins (econt, waveform, trigger, trigger9)
register that way, and plugins are loaded by :func:`load_task_plugin` (``file.py:Class``, ``module:Class``)
or from the ``hwnas.tasks`` entry-point group. See docs/tasks.md.
Metrics: :func:`emd_hex` (exact, fast hexagonal EMD), :func:`emd_1d`, :func:`integral_error`,
:func:`telescope_loss`, :func:`charge_weighted_mse`. Training: :func:`train` with :class:`TrainSettings`; :func:`fit` (train, node pruning's rebuild included);
knowledge distillation from a frozen teacher with :class:`Distillation` (``Task.distill_loss``).
Data: loaders for the real file formats, calibrated synthetic generators, normalisation, seeded splits.

Example::

    task = get_task("econt")
    data = task.prepare("synthetic", rows=5_000, seed=0, val_rows=1_000)
    result = train(model, task, data, TrainSettings(epochs=10))
    metrics = task.evaluate(model, data)  # {"emd_mean": ..., "val_loss": ...}
"""

from objectives._check import FileSummary, check_file
from objectives._emd import EMDResult, emd_hex
from objectives._errors import DataError, DivergedError, ObjectivesError
from objectives._geometry import CALQ_TO_PIXEL, from_8x8, to_8x8
from objectives._io import iter_econt, load_econt, load_waveform, write_dataset
from objectives._losses import charge_weighted_mse, telescope_loss
from objectives._plugins import ENTRY_POINT_GROUP, load_task_plugin
from objectives._pulse import emd_1d, integral_error
from objectives._registry import (
    TaskFactory,
    get_task,
    register_task,
    task_for_file,
    task_names,
    unregister_task,
)
from objectives._synth import synth_econt, synth_waveform
from objectives._tasks import Task, TaskData, summarize
from objectives._train import TRAIN_KEY_RANGES, Distillation, TrainResult, TrainSettings, fit, train
from objectives._transform import denormalize, normalize, split_indices
from objectives._trigger import synth_trigger

# The built-in tasks register themselves on import, through register_task like any plugin.
from objectives import _econt_task, _waveform_task  # noqa: F401  # isort: skip
from objectives import _trigger_task  # noqa: F401  # isort: skip

__all__ = [
    "CALQ_TO_PIXEL",
    "ENTRY_POINT_GROUP",
    "TRAIN_KEY_RANGES",
    "DataError",
    "Distillation",
    "DivergedError",
    "EMDResult",
    "FileSummary",
    "ObjectivesError",
    "Task",
    "TaskData",
    "TaskFactory",
    "TrainResult",
    "TrainSettings",
    "charge_weighted_mse",
    "check_file",
    "denormalize",
    "emd_1d",
    "emd_hex",
    "fit",
    "from_8x8",
    "get_task",
    "integral_error",
    "iter_econt",
    "load_econt",
    "load_task_plugin",
    "load_waveform",
    "normalize",
    "register_task",
    "split_indices",
    "summarize",
    "synth_econt",
    "synth_trigger",
    "synth_waveform",
    "task_for_file",
    "task_names",
    "telescope_loss",
    "to_8x8",
    "train",
    "unregister_task",
    "write_dataset",
]
