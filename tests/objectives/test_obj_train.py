"""The training loop: determinism, reports, early stopping, hooks and divergence."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from objectives import DivergedError, ObjectivesError, TaskData, TrainSettings, get_task, train


def small_econt_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.ReLU(),
        nn.Linear(8, 64),
        nn.Unflatten(1, (1, 8, 8)),
        nn.Sigmoid(),
    )


def small_waveform_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(48, 12), nn.ReLU(), nn.Linear(12, 48))


@pytest.fixture(scope="module")
def econt_data() -> TaskData:
    return get_task("econt").prepare(rows=1500, seed=0, val_rows=200)


@pytest.fixture(scope="module")
def waveform_data() -> TaskData:
    return get_task("waveform").prepare(rows=1500, seed=0)


def test_same_seed_gives_bit_identical_weights(econt_data: TaskData) -> None:
    task = get_task("econt")
    settings = TrainSettings(epochs=3, batch_size=128, seed=7)
    first, second = small_econt_model(), small_econt_model()
    result_a = train(first, task, econt_data, settings)
    result_b = train(second, task, econt_data, settings)
    assert result_a.history == result_b.history
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    third = small_econt_model()
    train(third, task, econt_data, TrainSettings(epochs=3, batch_size=128, seed=8))
    # the seed orders the batches, so another seed ends elsewhere
    assert not torch.equal(third.state_dict()["0.weight"], first.state_dict()["0.weight"])


def test_training_learns_and_reports_every_epoch(waveform_data: TaskData) -> None:
    task = get_task("waveform")
    model = small_waveform_model()
    calls: list[tuple[int, dict[str, float]]] = []
    rng_state = torch.random.get_rng_state()
    result = train(
        model,
        task,
        waveform_data,
        TrainSettings(epochs=6, batch_size=64, lr=3e-3),
        report=lambda e, m: calls.append((e, m)),
    )
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the caller's RNG is untouched
    assert [epoch for epoch, _ in calls] == [1, 2, 3, 4, 5, 6]
    assert all(set(metrics) == {"train_loss", "val_loss"} for _, metrics in calls)
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3, 4, 5, 6]
    assert [m["val_loss"] for _, m in calls] == [entry["val_loss"] for entry in result.history]
    assert result.epochs_run == 6 and not result.stopped_early
    assert result.history[-1]["val_loss"] < 0.5 * result.history[0]["val_loss"]
    assert result.best_val_loss == min(entry["val_loss"] for entry in result.history)
    assert task.evaluate(model, waveform_data)["val_loss"] == pytest.approx(
        result.history[-1]["val_loss"], rel=1e-6
    )


def test_report_exceptions_propagate_unchanged(waveform_data: TaskData) -> None:
    class Prune(Exception):
        pass

    def report(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise Prune("stop at rung 2")

    with pytest.raises(Prune, match="stop at rung 2"):
        train(
            small_waveform_model(),
            get_task("waveform"),
            waveform_data,
            TrainSettings(epochs=5),
            report=report,
        )


class Sabotaged(nn.Module):
    """A model that ruins its own weights from epoch 3 on, so validation loss worsens after epoch 2."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_waveform_model()
        self.calls: list[tuple[int, int]] = []
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def before_epoch(self, epoch: int, n_epochs: int) -> None:
        self.calls.append((epoch, n_epochs))
        if epoch >= 3:
            with torch.no_grad():
                for parameter in self.net.parameters():
                    parameter.add_(5.0)

    def after_step(self) -> None:
        self.steps += 1


def test_early_stopping_restores_the_best_weights_and_hooks_run(waveform_data: TaskData) -> None:
    model = Sabotaged()
    saved: dict[int, dict[str, torch.Tensor]] = {}

    def report(epoch: int, metrics: dict[str, float]) -> None:
        saved[epoch] = copy.deepcopy(model.state_dict())

    settings = TrainSettings(epochs=10, batch_size=100, lr=3e-3, patience=2)
    result = train(model, get_task("waveform"), waveform_data, settings, report=report)
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2
    assert model.calls == [(1, 10), (2, 10), (3, 10), (4, 10)]
    assert model.steps == 4 * math.ceil(waveform_data.train_x.shape[0] / 100)
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[2][name])
    assert result.best_val_loss == result.history[1]["val_loss"]


class CompressedLater(Sabotaged):
    """Sabotaged (best epoch 2), but only in its final form from epoch 4: epochs 1-3 cannot be the best."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = 0

    def final_form_epoch(self, n_epochs: int) -> int:
        return 4

    def after_training(self) -> None:
        self.finished += 1


def test_the_best_epoch_and_patience_wait_for_the_final_form(waveform_data: TaskData) -> None:
    model = CompressedLater()
    settings = TrainSettings(epochs=10, batch_size=100, lr=3e-3, patience=2)
    result = train(model, get_task("waveform"), waveform_data, settings)
    # epochs 1-3 are ignored: 4 is the first candidate, then two epochs without improvement stop at 6
    assert result.best_epoch >= 4 and result.epochs_run >= 6
    assert result.best_val_loss == min(h["val_loss"] for h in result.history[3:])
    assert model.finished == 1


def test_lr_factor_schedules() -> None:
    constant = TrainSettings(epochs=2, lr_schedule="constant")
    assert TrainSettings(epochs=2).lr_schedule == "warmup"  # the default
    assert [constant.lr_factor(step, 100) for step in (0, 50, 99)] == [1.0, 1.0, 1.0]
    cosine = TrainSettings(epochs=2, lr_schedule="warmup_cosine")
    assert cosine.lr_factor(0, 100) == pytest.approx(0.1)  # warm-up from lr/10 over 5 steps
    assert cosine.lr_factor(5, 100) == pytest.approx(1.0)
    assert cosine.lr_factor(99, 100) == pytest.approx(0.05)
    warmup = TrainSettings(epochs=2, lr_schedule="warmup")
    assert warmup.lr_factor(0, 100) == pytest.approx(0.1) and warmup.lr_factor(5, 100) == pytest.approx(0.55)
    assert warmup.lr_factor(10, 100) == 1.0 and warmup.lr_factor(99, 100) == 1.0
    with pytest.raises(ObjectivesError, match="lr_schedule must be one of constant, warmup, warmup_cosine"):
        TrainSettings(epochs=2, lr_schedule="step")


def test_min_delta_counts_small_gains_as_no_improvement(waveform_data: TaskData) -> None:
    settings = TrainSettings(epochs=8, batch_size=100, patience=1, min_delta=1e6)
    result = train(small_waveform_model(), get_task("waveform"), waveform_data, settings)
    assert result.epochs_run == 2 and result.best_epoch == 1 and result.stopped_early


class Regularised(nn.Module):
    def __init__(self, strength: float) -> None:
        super().__init__()
        self.net = small_waveform_model()
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def regularization(self) -> torch.Tensor:
        return self.strength * torch.stack([p.abs().sum() for p in self.net.parameters()]).sum()


def test_regularization_enters_the_objective_but_not_the_reported_loss(waveform_data: TaskData) -> None:
    plain, penalised = Regularised(0.0), Regularised(1.0)
    task = get_task("waveform")
    settings = TrainSettings(epochs=3, batch_size=100, lr=1e-2)
    train(plain, task, waveform_data, settings)
    result = train(penalised, task, waveform_data, settings)
    weight_sum = sum(p.abs().sum().item() for p in penalised.net.parameters())
    assert weight_sum < 0.5 * sum(p.abs().sum().item() for p in plain.net.parameters())
    assert result.history[-1]["train_loss"] < 1.0  # the task loss alone, not the L1 penalty (~weight_sum)


class Exploding(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.net = small_waveform_model()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def regularization(self) -> torch.Tensor:
        return torch.tensor(self.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_divergence_is_raised_with_epoch_and_value(waveform_data: TaskData, value: float) -> None:
    with pytest.raises(DivergedError, match=rf"epoch 1: training loss is {value}"):
        train(Exploding(value), get_task("waveform"), waveform_data, TrainSettings(epochs=2))


def test_settings_and_data_are_validated(waveform_data: TaskData) -> None:
    with pytest.raises(ObjectivesError, match=r"epochs must be >= 1, got 0; batch_size must be >= 1, got 0"):
        TrainSettings(epochs=0, batch_size=0)
    with pytest.raises(ObjectivesError, match=r"lr must be a finite value > 0, got nan"):
        TrainSettings(epochs=1, lr=float("nan"))
    with pytest.raises(ObjectivesError, match=r"patience must be >= 1 or None, got 0"):
        TrainSettings(epochs=1, patience=0)
    with pytest.raises(ObjectivesError, match=r"grad_clip must be a finite value > 0 or None, got 0"):
        TrainSettings(epochs=1, grad_clip=0)
    empty = TaskData(
        "waveform",
        "synthetic",
        waveform_data.train_x,
        waveform_data.val_x[:0],
        waveform_data.test_x,
        waveform_data.val_raw[:0],
        waveform_data.val_scale[:0],
    )
    with pytest.raises(ObjectivesError, match=r"needs training and validation rows, got 720 and 0"):
        train(small_waveform_model(), get_task("waveform"), empty, TrainSettings(epochs=1))


@pytest.mark.parametrize("clip", [0.1, 0.01])
def test_grad_clip_bounds_every_step_s_gradient_norm(waveform_data: TaskData, clip: float) -> None:
    norms: list[float] = []

    def record(optimizer: torch.optim.Optimizer, *_: object) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    task = get_task("waveform")
    handle = register_optimizer_step_pre_hook(record)
    try:
        train(small_waveform_model(), task, waveform_data, TrainSettings(epochs=1, lr=1e-2, grad_clip=None))
        unclipped, norms[:] = list(norms), []
        train(small_waveform_model(), task, waveform_data, TrainSettings(epochs=1, lr=1e-2, grad_clip=clip))
    finally:
        handle.remove()
    assert max(unclipped) > clip  # the bound is reached at least once
    assert len(norms) == len(unclipped) and max(norms) <= clip * (1 + 1e-5)
