"""The training loop shared by every trial: Adam, per-epoch reports, early stopping, model hooks."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from objectives._errors import DivergedError, ObjectivesError
from objectives._tasks import Task, TaskData, predict
from spaces import STAGES, ValueRange

log = logging.getLogger(__name__)

Reporter = Callable[[int, dict[str, float]], None]
LR_SCHEDULES: tuple[str, ...] = ("constant", "warmup", "warmup_cosine")
_WARMUP_FRACTION = 0.05
_FINAL_LR_FACTOR = 0.05
# Node pruning: the gated network trains for this share of the epochs, the rebuilt smaller one for the rest.
_GATING_FRACTION = 0.5


@dataclass(frozen=True)
class TrainSettings:
    """How to train: ``epochs`` at most, Adam with ``lr`` and ``weight_decay``, shuffled mini-batches.

    ``patience`` (None: off) stops after that many epochs without a ``val_loss`` improvement larger than
    ``min_delta`` and restores the best weights. ``seed`` fixes the batch order (and any randomness in
    the model's forward pass). ``lr_schedule`` (:meth:`lr_factor`): ``"warmup"`` (the default: a linear
    warm-up over the first 10 % of the steps keeps high learning rates from killing every latent ReLU in
    the first steps), ``"constant"`` or ``"warmup_cosine"`` (trained less far in 10-epoch ECON-T runs);
    see benchmarks/collapse.txt. ``stages`` (:func:`fit`): a staged recipe of ``(kind, epochs)`` pairs
    (kinds: `spaces.STAGES`) whose epochs add up to ``epochs``; empty: the model's own schedule.
    ``grad_clip`` (None: off) rescales each step's gradient to at most that L2 norm: at lr near 1e-2 the
    first steps of some conv stacks had larger gradients and left every decoder ReLU dead (a no-op on
    the others; benchmarks/collapse.txt after-v7).
    """

    epochs: int
    batch_size: int = 500
    lr: float = 1e-3
    seed: int = 0
    patience: int | None = None
    min_delta: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "warmup"
    stages: tuple[tuple[str, int], ...] = ()
    grad_clip: float | None = 1.0

    def lr_factor(self, step: int, total_steps: int) -> float:
        """The multiplier of ``lr`` at 0-based optimiser ``step`` of ``total_steps``: 1 for ``"constant"``;
        ``"warmup"`` rises linearly from 1/10 of the rate over the first 10 % of the steps (at least 1),
        then stays at 1; ``"warmup_cosine"`` warms up the same way over 5 % of the steps, then decays on
        a cosine to 1/20 of the rate at the last step."""
        if self.lr_schedule == "constant":
            return 1.0
        fraction = _WARMUP_FRACTION if self.lr_schedule == "warmup_cosine" else 2 * _WARMUP_FRACTION
        warmup = max(1, round(fraction * total_steps))
        if step < warmup:
            return 0.1 + 0.9 * step / warmup
        if self.lr_schedule == "warmup":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - 1 - warmup)
        return _FINAL_LR_FACTOR + (1 - _FINAL_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a finite value > 0, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be >= 1 or None, got {self.patience}")
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            problems.append(f"min_delta must be a finite value >= 0, got {self.min_delta}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a finite value >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            problems.append(f"grad_clip must be a finite value > 0 or None, got {self.grad_clip}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for kind, epochs in self.stages:
            if kind not in STAGES or epochs < 1:
                problems.append(
                    f"stage ({kind!r}, {epochs}) must be one of {', '.join(STAGES)} with epochs >= 1"
                )
        if self.stages and sum(epochs for _, epochs in self.stages) != self.epochs:
            problems.append(
                f"epochs {self.epochs} must be the stages' total {sum(e for _, e in self.stages)}"
            )
        if problems:
            raise ObjectivesError("invalid TrainSettings: " + "; ".join(problems))


# The ranges of the training keys a trial reads from its config (``batch_size``, ``lr``: TrainSettings'
# fields), which ``hwnas sweep validate`` checks every space against (with spaces.MODEL_KEY_RANGES).
TRAIN_KEY_RANGES: Mapping[str, ValueRange] = {
    "batch_size": ValueRange(1, integer=True, meaning="rows per training step"),
    "lr": ValueRange(0, low_open=True, meaning="Adam learning rate"),
}


@dataclass(frozen=True)
class TrainResult:
    """What happened: epochs run, per-epoch ``{"epoch", "train_loss", "val_loss"}``, the best validation loss
    and its 1-based epoch (an improvement must exceed ``min_delta`` to count), and whether early stopping
    ended the run before ``epochs``."""

    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    stopped_early: bool = False


@dataclass(frozen=True, eq=False)
class Distillation:
    """Knowledge distillation: train against a frozen ``teacher`` as well as the targets.

    The training objective becomes ``(1 - alpha) * task.loss + alpha * task.distill_loss(student, teacher,
    temperature)``; alpha 0 is plain training (the teacher is not run). The teacher is built for the same
    inputs as the student and scored in eval mode without gradients.
    """

    teacher: nn.Module
    alpha: float = 0.5
    temperature: float = 2.0  # the sweep config's default

    def __post_init__(self) -> None:
        if not (0.0 <= self.alpha <= 1.0):
            raise ObjectivesError(f"distillation alpha must be in [0, 1], got {self.alpha}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ObjectivesError(
                f"distillation temperature must be a finite value > 0, got {self.temperature}"
            )


def _finite_or_raise(value: torch.Tensor, epoch: int, what: str) -> float:
    number = float(value.detach())
    if not math.isfinite(number):
        raise DivergedError(f"epoch {epoch}: {what} is {number}")
    return number


def _hook(model: nn.Module, name: str) -> Callable[..., Any] | None:
    """An optional duck-typed method of the model (pruning schedules, masks, regularisers)."""
    hook = getattr(model, name, None)
    return hook if callable(hook) else None


def train(
    model: nn.Module,
    task: Task,
    data: TaskData,
    settings: TrainSettings,
    report: Reporter | None = None,
    distill: Distillation | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.train_x`` with ``task.loss`` against ``data.train_targets``
    (``data.train_y`` of a supervised task; the input itself for an autoencoder).

    Each epoch: ``model.before_epoch(epoch, n_epochs)`` if the model has it (1-based epoch; the
    compression schedule: pruning masks, quantizers on/off), seeded shuffled mini-batches of Adam steps
    (learning rate ``lr`` times ``settings.lr_factor``) on the task loss plus ``model.regularization()`` if
    present, ``model.after_step()`` after every step if present (re-apply pruning masks), then
    ``val_loss`` on ``data.val_x`` and ``report(epoch, {"train_loss", "val_loss"})`` (``train_loss``: mean
    task loss over the epoch's samples, without regularisation). Exceptions from ``report`` propagate
    unchanged (a scheduler prunes this way). On CPU the same seed, model and data give bit-identical
    weights. A model with ``final_form_epoch(n_epochs)`` is only in its final form (target sparsity,
    quantized) from that epoch on: earlier epochs are never the best epoch and do not count towards
    ``patience``. ``model.after_training()``, if present, runs at the end (it switches quantizers back
    on). With ``patience`` set, the weights of the best validation epoch are restored at the end (buffers
    such as pruning masks included: it is that epoch's model). The global torch RNG state is left as it
    was. With ``distill`` the step's objective mixes in the distillation loss (:class:`Distillation`);
    ``train_loss`` and ``val_loss`` stay the task loss. The teacher's outputs on the training rows are
    computed once, before the first epoch (it is frozen: they are the same every epoch).

    Raises DivergedError as soon as a training or validation loss is NaN or infinite (naming the epoch
    and value), ObjectivesError when the training or validation set is empty.
    """
    if data.train_x.shape[0] == 0 or data.val_x.shape[0] == 0:
        raise ObjectivesError(
            f"train needs training and validation rows, got {data.train_x.shape[0]} and {data.val_x.shape[0]}"
        )
    before_epoch = _hook(model, "before_epoch")
    after_step = _hook(model, "after_step")
    regularization = _hook(model, "regularization")
    after_training = _hook(model, "after_training")
    final_form = _hook(model, "final_form_epoch")
    # Epochs before this one train a model that is not yet in its final form (dense, float): they are
    # neither the best epoch nor count towards patience.
    first_final = int(final_form(settings.epochs)) if final_form is not None else 1
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(data.train_x.shape[0] / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    step = 0
    order_generator = torch.Generator().manual_seed(settings.seed)
    train_x = data.train_x
    train_y, val_y = data.train_targets, data.val_targets  # task hook: supervised targets, else the input
    if distill is not None and distill.alpha > 0:
        taught: torch.Tensor | None = predict(distill.teacher, train_x)
    else:
        taught = None
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)  # dropout or stochastic quantisers draw from the global generator
        for epoch in range(1, settings.epochs + 1):
            if before_epoch is not None:
                before_epoch(epoch, settings.epochs)
            model.train()
            order = torch.randperm(train_x.shape[0], generator=order_generator)
            loss_sum = 0.0
            for start in range(0, train_x.shape[0], settings.batch_size):
                rows = order[start : start + settings.batch_size]
                batch = train_x[rows]
                pred = model(batch)
                loss = task.loss(pred, train_y[rows])
                objective = loss
                if distill is not None and taught is not None:
                    soft = task.distill_loss(pred, taught[rows], distill.temperature)
                    objective = (1 - distill.alpha) * loss + distill.alpha * soft
                if regularization is not None:
                    objective = objective + regularization()
                _finite_or_raise(objective, epoch, "training loss")
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if settings.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                for group in optimizer.param_groups:
                    group["lr"] = settings.lr * settings.lr_factor(step, total_steps)
                optimizer.step()
                step += 1
                if after_step is not None:
                    after_step()
                loss_sum += float(loss.detach()) * batch.shape[0]
            val_loss = _finite_or_raise(
                task.loss(predict(model, data.val_x), val_y), epoch, "validation loss"
            )
            metrics = {"train_loss": loss_sum / train_x.shape[0], "val_loss": val_loss}
            history.append({"epoch": float(epoch), **metrics})
            if epoch >= first_final and val_loss < best_loss - settings.min_delta:
                best_loss, best_epoch = val_loss, epoch
                if settings.patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            if report is not None:
                report(epoch, dict(metrics))
            if (
                settings.patience is not None
                and epoch - max(best_epoch, first_final - 1) >= settings.patience
            ):
                stopped_early = epoch < settings.epochs
                break
    if after_training is not None:
        after_training()
    if best_state is not None:
        model.load_state_dict(best_state)
        log.debug("restored the weights of epoch %d (val_loss %.6g)", best_epoch, best_loss)
    return TrainResult(len(history), history, best_loss, best_epoch, stopped_early)


def fit(
    model: nn.Module,
    task: Task,
    data: TaskData,
    settings: TrainSettings,
    report: Reporter | None = None,
    on_rebuild: Callable[[nn.Module], None] | None = None,
    distill: Distillation | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train ``model`` as :func:`train` does and return (the trained model, the result).

    A model whose ``gated`` is true (node pruning, `spaces` ``<layer>_keep`` keys) trains gated for the
    first half of the epochs (at least 1; float, no early stopping), is then rebuilt with its kept nodes
    only (``model.prune_nodes()``, passed to ``on_rebuild``) and the smaller model trains for the remaining
    epochs with its own compression schedule: that smaller model is returned.

    With ``settings.stages`` each stage is one :func:`train` run of its epochs (a fresh optimiser and
    learning-rate warm-up, as retraining is) after ``model.set_stage(kind)``; a gated model is rebuilt
    after each ``prune`` stage (and after the last stage if it still is). Only the last run early-stops
    (``patience``). Either way epochs are reported and recorded 1..``settings.epochs`` across the runs.
    ``distill`` applies to every run. Raises what :func:`train` raises.
    """
    if settings.stages:
        plan = [(kind, epochs) for kind, epochs in settings.stages]
    elif getattr(model, "gated", False):
        gating = max(1, round(_GATING_FRACTION * settings.epochs)) if settings.epochs > 1 else 1
        plan = [("", gating), ("", settings.epochs - gating)]  # "": the model's own schedule
    else:
        return model, train(model, task, data, settings, report, distill)
    done = 0
    results: list[TrainResult] = []
    for index, (kind, epochs) in enumerate(plan):
        last = index == len(plan) - 1
        set_stage = _hook(model, "set_stage")
        if epochs > 0:
            if kind and set_stage is not None:  # a model without the hook trains its epochs unstaged
                set_stage(kind)
            offset = done

            def shifted(epoch: int, metrics: dict[str, float], offset: int = offset) -> None:
                if report is not None:
                    report(offset + epoch, metrics)

            patience = settings.patience if last else None
            stage = dataclasses.replace(settings, epochs=epochs, patience=patience, stages=())
            results.append(train(model, task, data, stage, shifted, distill))
            done += results[-1].epochs_run
        if getattr(model, "gated", False) and (kind in ("", "prune") or last):
            model = model.prune_nodes()  # type: ignore[operator]
            if on_rebuild is not None:
                on_rebuild(model)
    history = [
        {**entry, "epoch": entry["epoch"] + sum(r.epochs_run for r in results[:i])}
        for i, result in enumerate(results)
        for entry in result.history
    ]
    final = results[-1]
    before = done - final.epochs_run
    return model, TrainResult(
        done,
        history,
        final.best_val_loss,
        final.best_epoch + before if final.best_epoch else 0,
        final.stopped_early,
    )
