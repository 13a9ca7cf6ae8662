"""The two reference tasks: data preparation, training loss and final quality metrics."""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from objectives._collapse import COLLAPSE_METRICS, collapse_metrics
from objectives._emd import emd_hex
from objectives._errors import DivergedError, ObjectivesError
from objectives._geometry import from_8x8, to_8x8
from objectives._io import load_econt, load_waveform
from objectives._losses import charge_weighted_mse, telescope_loss
from objectives._pulse import emd_1d, integral_error
from objectives._synth import synth_econt, synth_waveform
from objectives._transform import normalize, split_indices

log = logging.getLogger(__name__)

Direction = Literal["minimize", "maximize"]
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TASK_NAMES: tuple[str, ...] = ("econt", "waveform")
SYNTHETIC = "synthetic"
_PREDICT_BATCH = 8192


@dataclass(frozen=True, eq=False)
class TaskData:
    """Prepared tensors of one task, plus what :meth:`Task.evaluate` needs to score in original units.

    ``train_x``/``val_x``/``test_x`` are float32 model inputs (econt: normalised (N, 1, 8, 8) images;
    waveform: (N, 48) pulses); ``test_x`` may have 0 rows. ``val_raw`` holds the validation rows before
    normalisation ((N, 48), CALQ order or samples) and ``val_scale`` their per-row scale.
    """

    task: str
    source: str
    train_x: torch.Tensor
    val_x: torch.Tensor
    test_x: torch.Tensor
    val_raw: np.ndarray
    val_scale: np.ndarray


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = _PREDICT_BATCH) -> torch.Tensor:
    """The model's outputs for ``x`` in eval mode, without gradients, batched; restores the model's mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat(
                [model(x[start : start + batch_size]) for start in range(0, x.shape[0], batch_size)]
            )
    finally:
        model.train(was_training)


def _check_finite(pred: torch.Tensor) -> None:
    if not torch.isfinite(pred).all():
        raise DivergedError("evaluation: the model produced NaN or infinite outputs on the validation set")


def _source_label(source: str | os.PathLike[str]) -> str:
    return SYNTHETIC if str(source) == SYNTHETIC else str(Path(source))


def _check_prepare_args(rows: int, val_rows: int | None) -> None:
    if rows < 1:
        raise ObjectivesError(f"rows must be >= 1, got {rows}")
    if val_rows is not None and val_rows < 1:
        raise ObjectivesError(f"val_rows must be >= 1 or None, got {val_rows}")


def _split(n: int, fractions: tuple[float, ...], seed: int, task: str) -> list[np.ndarray]:
    parts = split_indices(n, fractions, seed=seed)
    if any(part.size == 0 for part in parts[:2]):
        sizes = "/".join(f"{round(100 * f)}" for f in fractions)
        raise ObjectivesError(
            f"{task}: {n} rows are too few for a {sizes} % split (training or validation empty)"
        )
    return parts


class Task(ABC):
    """One reference task: what the model sees, how it is trained and how it is scored.

    ``metric_directions`` maps every metric :meth:`evaluate` returns to ``"minimize"`` or ``"maximize"``.
    Build tasks with :func:`get_task`.
    """

    name: ClassVar[str]
    input_shape: ClassVar[tuple[int, ...]]
    metric_directions: ClassVar[Mapping[str, Direction]]
    _losses: ClassVar[Mapping[str, LossFunction]]
    loss_name: str

    def __init__(self, loss: str) -> None:
        if loss not in self._losses:
            raise ObjectivesError(
                f"unknown loss {loss!r} for task {self.name}; allowed: {', '.join(self._losses)}"
            )
        self.loss_name = loss
        self._loss = self._losses[loss]

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, loss={self.loss_name!r})"

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss (a differentiable scalar, mean over the batch)."""
        return self._loss(pred, target)

    @abstractmethod
    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Generate (``source="synthetic"``) or read (a file path, first ``rows`` rows) and split the data."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Final quality metrics of ``model`` on ``data.val_x`` (never NaN)."""


def _econt_cells_loss(loss: LossFunction) -> LossFunction:
    def on_cells(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss(from_8x8(pred), from_8x8(target))

    return on_cells


class _EcontTask(Task):
    name = "econt"
    input_shape = (1, 8, 8)
    metric_directions = MappingProxyType(
        {
            "emd_mean": "minimize",
            "emd_std": "minimize",
            "emd_median": "minimize",
            "emd_p16": "minimize",
            "emd_p84": "minimize",
            "emd_sentinels": "minimize",
            "val_loss": "minimize",
            **COLLAPSE_METRICS,  # collapse detector (objectives/_collapse.py)
        }
    )
    _losses = MappingProxyType(
        {
            "telescope": telescope_loss,
            "cwmse": _econt_cells_loss(charge_weighted_mse),
            "mse": _econt_cells_loss(nn.functional.mse_loss),
        }
    )

    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Modules normalised per row (sum/2**floor(log2 sum)) as 8x8 images, split 80/20 train/val.

        The split is a seeded permutation; ``val_rows`` keeps only the first rows of the (already random)
        validation part, so per-trial EMD stays cheap. There is no test part (``test_x`` has 0 rows).
        Raises ObjectivesError for rows/val_rows < 1 or too few rows for both parts, DataError for an
        unusable file.
        """
        _check_prepare_args(rows, val_rows)
        label = _source_label(source)
        raw = synth_econt(rows, seed=seed) if label == SYNTHETIC else load_econt(source, max_rows=rows)
        if raw.shape[0] < rows:
            log.info("%s holds %d usable rows, fewer than the %d asked for", label, raw.shape[0], rows)
        train, val = _split(raw.shape[0], (0.8, 0.2), seed, self.name)
        val = val[:val_rows]
        normalised, scale = normalize(raw, "sumlog2")
        images = torch.from_numpy(to_8x8(normalised.astype(np.float32)))
        return TaskData(
            task=self.name,
            source=label,
            train_x=images[train],
            val_x=images[val],
            test_x=images[:0],
            val_raw=raw[val],
            val_scale=scale[val],
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """EMD summary (``emd_mean/std/median/p16/p84/sentinels``), ``val_loss`` and the collapse detector's
        ``collapsed`` (0/1), ``constant_emd``, ``emd_ratio``, ``output_spread`` on the validation set.

        Negative outputs carry no charge and are clipped to 0 before the EMD. Raises DivergedError when the
        model outputs NaN or inf.
        """
        pred = predict(model, data.val_x)
        _check_finite(pred)
        cells = from_8x8(pred).clamp_min(0.0).double().numpy()
        metrics = emd_hex(data.val_raw, cells).as_dict()
        metrics["val_loss"] = float(self.loss(pred, data.val_x))
        # Collapse detector: collapsed (0/1), constant_emd, emd_ratio, output_spread.
        metrics.update(collapse_metrics(metrics["emd_mean"], cells, data.val_raw, from_8x8(data.train_x)))
        return metrics


class _WaveformTask(Task):
    name = "waveform"
    input_shape = (48,)
    metric_directions = MappingProxyType(
        {
            "integral_error_mean": "minimize",  # signed bias, informative; optimise integral_error_abs
            "integral_error_std": "minimize",
            "integral_error_abs": "minimize",
            "emd1d_mean": "minimize",
            "mse": "minimize",
            "val_loss": "minimize",
        }
    )
    _losses = MappingProxyType({"mse": nn.functional.mse_loss, "cwmse": charge_weighted_mse})

    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Pulses (not normalised: the dumps are already scaled), split 48/15/12/25 % by a seeded permutation.

        The reference's two validation parts (15 % and 12 %) both go to ``val_x``, which serves early
        stopping and the final metrics; the last 25 % is ``test_x``. ``val_rows`` keeps the first rows of
        the validation part. Raises ObjectivesError for rows/val_rows < 1 or too few rows, DataError for
        an unusable file.
        """
        _check_prepare_args(rows, val_rows)
        label = _source_label(source)
        raw = synth_waveform(rows, seed=seed) if label == SYNTHETIC else load_waveform(source)[:rows]
        train, val, second_val, test = _split(raw.shape[0], (0.48, 0.15, 0.12, 0.25), seed, self.name)
        val = np.concatenate((val, second_val))[:val_rows]
        pulses = torch.from_numpy(raw)
        return TaskData(
            task=self.name,
            source=label,
            train_x=pulses[train],
            val_x=pulses[val],
            test_x=pulses[test],
            val_raw=raw[val],
            val_scale=np.ones(val.size, dtype=np.float32),
        )

    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Integral error in % (mean, std, |mean|), mean 1-D EMD, MSE and ``val_loss`` on the validation set.

        Negative outputs are clipped to 0 for the 1-D EMD only; rows whose output sums to 0 are left out of
        ``emd1d_mean`` (+inf when no row remains). Raises DivergedError when the model outputs NaN or inf.
        """
        pred = predict(model, data.val_x)
        _check_finite(pred)
        outputs = pred.double().numpy()
        error_mean, error_std = integral_error(data.val_raw, outputs)
        distances = emd_1d(data.val_raw, np.clip(outputs, 0.0, None))
        valid = distances[~np.isnan(distances)]
        return {
            "integral_error_mean": error_mean,
            "integral_error_std": error_std,
            "integral_error_abs": abs(error_mean),
            "emd1d_mean": float(valid.mean()) if valid.size else math.inf,
            "mse": float(nn.functional.mse_loss(pred, data.val_x)),
            "val_loss": float(self.loss(pred, data.val_x)),
        }


_TASKS: Mapping[str, tuple[type[Task], str]] = MappingProxyType(
    {"econt": (_EcontTask, "telescope"), "waveform": (_WaveformTask, "mse")}
)


def get_task(name: str, *, loss: str | None = None) -> Task:
    """The task called ``name`` (one of TASK_NAMES) with its default loss or ``loss``.

    Losses: econt ``telescope`` (default), ``cwmse``, ``mse`` (on the 48 cells); waveform ``mse``
    (default), ``cwmse``. Raises ObjectivesError for an unknown task or loss, listing the allowed names.
    """
    if name not in _TASKS:
        raise ObjectivesError(f"unknown task {name!r}; allowed: {', '.join(TASK_NAMES)}")
    task_class, default_loss = _TASKS[name]
    return task_class(default_loss if loss is None else loss)
