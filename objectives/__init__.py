"""What is optimised: the data of the two reference tasks, quality metrics and the training loop.

Tasks: ``get_task("econt" | "waveform")`` -> :class:`Task` (``prepare``, ``loss``, ``evaluate``).
Metrics: :func:`emd_hex` (exact, fast hexagonal EMD), :func:`emd_1d`, :func:`integral_error`,
:func:`telescope_loss`, :func:`charge_weighted_mse`. Training: :func:`train` with :class:`TrainSettings`.
Data: loaders for the real file formats, calibrated synthetic generators, normalisation, seeded splits.

Example::

    task = get_task("econt")
    data = task.prepare("synthetic", rows=5_000, seed=0, val_rows=1_000)
    result = train(model, task, data, TrainSettings(epochs=10))
    metrics = task.evaluate(model, data)  # {"emd_mean": ..., "val_loss": ...}
"""

from objectives._emd import EMDResult, emd_hex
from objectives._errors import DataError, DivergedError, ObjectivesError
from objectives._geometry import CALQ_TO_PIXEL, from_8x8, to_8x8
from objectives._io import FileSummary, check_file, iter_econt, load_econt, load_waveform, write_dataset
from objectives._losses import charge_weighted_mse, telescope_loss
from objectives._pulse import emd_1d, integral_error
from objectives._synth import synth_econt, synth_waveform
from objectives._tasks import TASK_NAMES, Task, TaskData, get_task
from objectives._train import TrainResult, TrainSettings, train
from objectives._transform import denormalize, normalize, split_indices

__all__ = [
    "CALQ_TO_PIXEL",
    "TASK_NAMES",
    "DataError",
    "DivergedError",
    "EMDResult",
    "FileSummary",
    "ObjectivesError",
    "Task",
    "TaskData",
    "TrainResult",
    "TrainSettings",
    "charge_weighted_mse",
    "check_file",
    "denormalize",
    "emd_1d",
    "emd_hex",
    "from_8x8",
    "get_task",
    "integral_error",
    "iter_econt",
    "load_econt",
    "load_waveform",
    "normalize",
    "split_indices",
    "synth_econt",
    "synth_waveform",
    "telescope_loss",
    "to_8x8",
    "train",
    "write_dataset",
]
