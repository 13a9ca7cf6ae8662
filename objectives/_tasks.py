"""What a task is: the `Task` base class every task (built-in or plugin) derives from, and `TaskData`.

A task declares, as class attributes, what the rest of hwnas needs to know about it: its input shape and
quantized input width, the `spaces` model family it builds, its training losses, its metrics with their
directions and the primary quality metric. Its methods read, generate, write and check its data files,
prepare the seeded split, build the model and score it. Register a task with
:func:`objectives.register_task`; the built-in ones register the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

import spaces
from objectives._check import FileSummary
from objectives._errors import DataError, DivergedError, ObjectivesError
from objectives._transform import split_indices

log = logging.getLogger(__name__)

Direction = Literal["minimize", "maximize"]
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SYNTHETIC = "synthetic"
_PREDICT_BATCH = 8192


@dataclass(frozen=True, eq=False)
class TaskData:
    """Prepared tensors of one task, plus what :meth:`Task.evaluate` needs to score in original units.

    ``train_x``/``val_x``/``test_x`` are float32 model inputs of shape (N, *input_shape) (econt: normalised
    (N, 1, 8, 8) images; waveform: (N, 48) pulses); ``test_x`` may have 0 rows. ``val_raw`` holds the
    validation rows before normalisation (as the task read or generated them) and ``val_scale`` their
    per-row scale. ``train_y``/``val_y``/``test_y`` are the training targets of a supervised task (one row
    per input row); None for an autoencoder, whose target is its input (see :attr:`train_targets`).
    """

    task: str
    source: str
    train_x: torch.Tensor
    val_x: torch.Tensor
    test_x: torch.Tensor
    val_raw: np.ndarray
    val_scale: np.ndarray
    train_y: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None

    @property
    def train_targets(self) -> torch.Tensor:
        """What the training loss compares the model's outputs with: ``train_y``, or the input itself."""
        return self.train_x if self.train_y is None else self.train_y

    @property
    def val_targets(self) -> torch.Tensor:
        """The validation targets: ``val_y``, or ``val_x`` for an autoencoder."""
        return self.val_x if self.val_y is None else self.val_y

    def head(self, rows: int) -> TaskData:
        """The same data with only the first ``rows`` validation rows (a fixed subsample for rung metrics)."""
        return dataclasses.replace(
            self,
            val_x=self.val_x[:rows],
            val_raw=self.val_raw[:rows],
            val_scale=self.val_scale[:rows],
            val_y=None if self.val_y is None else self.val_y[:rows],
        )


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


def check_finite(pred: torch.Tensor) -> None:
    """DivergedError unless every output is finite (a NaN metric must fail the trial, not rank it)."""
    if not torch.isfinite(pred).all():
        raise DivergedError("evaluation: the model produced NaN or infinite outputs on the validation set")


def split(n: int, fractions: tuple[float, ...], seed: int, task: str) -> list[np.ndarray]:
    """A seeded permutation of ``n`` rows cut by ``fractions``; ObjectivesError if the first two are empty."""
    parts = split_indices(n, fractions, seed=seed)
    if any(part.size == 0 for part in parts[:2]):
        sizes = "/".join(f"{round(100 * f)}" for f in fractions)
        raise ObjectivesError(
            f"{task}: {n} rows are too few for a {sizes} % split (training or validation empty)"
        )
    return parts


class Task(ABC):
    """One task: what the model sees, how it is trained and scored, and its data files.

    Declared attributes (class attributes of every concrete task, checked by ``register_task``):

    - ``name``: the registry name, e.g. ``"econt"``.
    - ``input_shape``: one model input without the batch dimension, e.g. ``(1, 8, 8)``.
    - ``input_bits`` / ``input_signed``: the input quantizer's width when a quantized config does not set
      ``input_bits``, and whether inputs can be negative.
    - ``model_family``: the `spaces` family (``spaces.family_names()``) that :meth:`build_model` builds.
    - ``losses`` (name -> loss function) and ``default_loss``: the values the ``loss`` option allows.
    - ``metric_directions``: every metric :meth:`evaluate` returns -> ``"minimize"`` or ``"maximize"``.
    - ``primary_metric``: the quality metric schedulers rank by (one of ``metric_directions``).
    - ``synth_options``: keyword options of :meth:`synthesize` (name -> help), numbers; none by default.
    - ``preset`` (optional): the reference model's config (a `spaces` preset name or a config mapping),
      which ``hwnas task check`` builds; ``default_space`` (optional): a built-in space name for it.
    """

    name: ClassVar[str]
    input_shape: ClassVar[tuple[int, ...]]
    input_bits: ClassVar[int]
    input_signed: ClassVar[bool]
    model_family: ClassVar[str]
    losses: ClassVar[Mapping[str, LossFunction]]
    default_loss: ClassVar[str]
    metric_directions: ClassVar[Mapping[str, Direction]]
    primary_metric: ClassVar[str]
    synth_options: ClassVar[Mapping[str, str]] = MappingProxyType({})
    preset: ClassVar[str | Mapping[str, Any] | None] = None
    default_space: ClassVar[str | None] = None
    loss_name: str

    def __init__(self, loss: str | None = None) -> None:
        loss = self.default_loss if loss is None else loss
        if loss not in self.losses:
            raise ObjectivesError(
                f"unknown loss {loss!r} for task {self.name}; allowed: {', '.join(self.losses)}"
            )
        self.loss_name = loss
        self._loss = self.losses[loss]

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, loss={self.loss_name!r})"

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss (a differentiable scalar, mean over the batch)."""
        return self._loss(pred, target)

    def distill_loss(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """How far the student's outputs are from a teacher's on the same batch (knowledge distillation; a
        differentiable scalar, mean over the batch). Default: the task's own loss with the teacher's outputs
        as the targets, which suits autoencoders and regressions (``temperature`` is unused): the student
        learns what the teacher reconstructs, weighed as the task weighs errors (a plain MSE would not:
        ECON-T students distilled by MSE to their teacher scored 50-80 % worse EMD than alone,
        benchmarks/distill.txt). A classifier overrides it with softened logits."""
        return self.loss(student, teacher)

    # -- the model ---------------------------------------------------------------------------------------
    @property
    def model_input(self) -> spaces.ModelInput:
        """The input as the model family needs it (shape, default quantizer width, signedness)."""
        return spaces.ModelInput(self.input_shape, bits=self.input_bits, signed=self.input_signed)

    def build_model(self, config: Mapping[str, Any]) -> spaces.Autoencoder:
        """The model a canonical config describes, built by the task's `spaces` family for its input."""
        return spaces.build_model(self.model_family, config, self.model_input)

    def on_chip(self, model: spaces.Autoencoder) -> nn.Module:
        """The part of ``model`` that goes on chip, is costed and exported: the encoder."""
        return model.encoder

    # -- data files --------------------------------------------------------------------------------------
    @abstractmethod
    def read_data(self, path: str | os.PathLike[str], *, max_rows: int | None = None) -> np.ndarray:
        """The rows of a data file in the task's real formats (at most ``max_rows``); DataError if unusable."""

    @abstractmethod
    def synthesize(self, rows: int, *, seed: int, **options: float) -> np.ndarray:
        """``rows`` synthetic rows, the same for the same seed; ``options`` are those in synth_options."""

    def write_data(self, rows: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike[str]) -> int:
        """Write rows (an array or chunks) atomically to ``path`` in a format read_data reads; the count.

        Default: a ``.npy`` file of the 2-D float32 array (DataError for another suffix); override it for
        other formats.
        """
        array = rows if isinstance(rows, np.ndarray) else np.concatenate(list(rows))
        target = Path(path)
        if target.suffix.lower() != ".npy":
            raise DataError(f"{target}: task {self.name!r} writes .npy files only")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as stream:
                np.save(stream, np.asarray(array, dtype=np.float32))
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{target}: cannot write: {exc}") from None
        return int(array.shape[0])

    def check_data(self, path: str | os.PathLike[str]) -> FileSummary:
        """Read and validate every row of a data file and summarise it; DataError naming the first problem.

        Default: every row through :meth:`read_data`, summarised by :func:`summarize`.
        """
        return summarize(path, self.name, self.read_data(path))

    def recognizes(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file looks like this task's data, for ``hwnas data check`` without ``--task``."""
        return False

    def check_synth_options(self, options: Mapping[str, float]) -> None:
        """ObjectivesError naming an option :meth:`synthesize` does not take, and the ones it does."""
        for key in options:
            if key not in self.synth_options:
                allowed = ", ".join(self.synth_options) or "none"
                raise ObjectivesError(
                    f"task {self.name!r} takes no synthetic-data option {key!r}; its options: {allowed}"
                )

    def raw_rows(self, source: str | os.PathLike[str], *, rows: int, seed: int) -> tuple[str, np.ndarray]:
        """(source label, rows): ``rows`` synthetic rows for ``"synthetic"``, else the file's first rows.

        Raises ObjectivesError for rows < 1, DataError for an unusable file.
        """
        if rows < 1:
            raise ObjectivesError(f"rows must be >= 1, got {rows}")
        if str(source) == SYNTHETIC:
            return SYNTHETIC, self.synthesize(rows, seed=seed)
        label = str(Path(source))
        raw = self.read_data(source, max_rows=rows)
        if raw.shape[0] < rows:
            log.info("%s holds %d usable rows, fewer than the %d asked for", label, raw.shape[0], rows)
        return label, raw

    # -- training and scoring ----------------------------------------------------------------------------
    @abstractmethod
    def prepare(
        self, source: str | os.PathLike[str] = SYNTHETIC, *, rows: int, seed: int, val_rows: int | None = None
    ) -> TaskData:
        """Generate (``source="synthetic"``) or read (a file path, first ``rows`` rows) and split the data.

        The split is seeded by ``seed``; ``val_rows`` keeps only the first validation rows (None: all).
        """

    @abstractmethod
    def evaluate(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Final quality metrics of ``model`` on ``data.val_x`` (never NaN), keyed as metric_directions."""


def check_prepare_args(rows: int, val_rows: int | None) -> None:
    """ObjectivesError for rows < 1 or val_rows < 1 (checked before any data is read)."""
    if rows < 1:
        raise ObjectivesError(f"rows must be >= 1, got {rows}")
    if val_rows is not None and val_rows < 1:
        raise ObjectivesError(f"val_rows must be >= 1 or None, got {val_rows}")


def summarize(path: str | os.PathLike[str], kind: str, values: np.ndarray) -> FileSummary:
    """A `FileSummary` of the rows ``values`` (N, ...) read from ``path`` (statistics over all values)."""
    target = Path(path)
    flat = np.asarray(values, dtype=np.float64).reshape(values.shape[0], -1)
    sums = flat.sum(axis=1)
    return FileSummary(
        path=target,
        kind=kind,
        format="npy" if target.suffix.lower() == ".npy" else "csv",
        header=False,
        columns=flat.shape[1],
        rows=flat.shape[0],
        dropped_zero_rows=0,
        nonzero_per_row=float(np.count_nonzero(flat, axis=1).mean()) if flat.size else 0.0,
        row_sum_median=float(np.median(sums)) if flat.size else 0.0,
        row_sum_max=float(sums.max()) if flat.size else 0.0,
        value_min=float(flat.min()) if flat.size else 0.0,
        value_max=float(flat.max()) if flat.size else 0.0,
    )
