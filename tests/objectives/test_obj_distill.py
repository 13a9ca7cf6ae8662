"""Knowledge distillation in training: each task's distillation loss against hand-computed values, alpha 0 as
plain training, and a student pulled towards its teacher."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch

from objectives import CALQ_TO_PIXEL, Distillation, ObjectivesError, TrainSettings, get_task, train
from objectives._trigger_task import trigger_distill_loss

WAVEFORM = {
    "n_hidden": 1,
    "hidden0_units": 16,
    "latent": 4,
    "lr": 3e-3,
    "batch_size": 64,
    "quantize": False,
    "sparsity": 0.0,
    "l1_reg": False,
}
TRIGGER = {
    "n_conv": 1,
    "conv0_filters": 2,
    "conv0_kernel": 8,
    "conv0_stride": 8,
    "conv0_pool": True,
    "n_dense": 1,
    "dense0_units": 4,
    "lr": 3e-3,
    "batch_size": 64,
    "quantize": False,
    "sparsity": 0.0,
    "l1_reg": False,
}


def test_econt_distillation_loss_is_the_task_loss_to_the_clipped_teacher_on_the_48_cells() -> None:
    task = get_task("econt", loss="cwmse")
    student = torch.zeros(2, 1, 8, 8)
    teacher = torch.zeros(2, 1, 8, 8)
    first, second = (divmod(int(CALQ_TO_PIXEL[i]), 8) for i in (0, 1))
    teacher[0, 0, first[0], first[1]] = 3.0  # (3 - 0)**2 * max(3, 0)
    teacher[
        1, 0, second[0], second[1]
    ] = -2.0  # clipped to 0; unclipped it adds (-2 + 1)**2 * max(-2, -1) = -1
    student[1, 0, second[0], second[1]] = -1.0
    padding = next(p for p in range(64) if p not in set(CALQ_TO_PIXEL))
    teacher[1, 0, padding // 8, padding % 8] = 100.0  # no charge there: it must not count
    assert float(task.distill_loss(student, teacher, 2.0)) == pytest.approx(27.0 / (2 * 48))
    plain = get_task("econt", loss="mse")
    assert float(plain.distill_loss(student, teacher, 2.0)) == pytest.approx((9.0 + 1.0) / (2 * 48))


def test_waveform_distillation_loss_is_the_mse_of_the_reconstructions() -> None:
    task = get_task("waveform")
    student = torch.zeros(2, 48)
    teacher = torch.zeros(2, 48)
    teacher[0, :2] = torch.tensor([1.0, 2.0])
    assert float(task.distill_loss(student, teacher, 5.0)) == pytest.approx((1 + 4) / 96)


def _bernoulli_kl(q: float, r: float) -> float:
    return q * math.log(q / r) + (1 - q) * math.log((1 - q) / (1 - r))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_trigger_distillation_loss_is_the_softened_kl_times_t_squared() -> None:
    task = get_task("trigger")
    teacher = torch.tensor([[0.5, 2.0, 0.0], [0.1, -1.0, 3.0]])
    student = torch.tensor([[0.3, 0.0, 1.0], [0.1, -1.0, 3.0]])  # the second event agrees with the teacher
    t = 2.0
    curvature = 10 * (0.3 - 0.5) ** 2
    charge = t**2 * _bernoulli_kl(_sigmoid(2.0 / t), _sigmoid(0.0 / t))
    presence = t**2 * _bernoulli_kl(_sigmoid(0.0 / t), _sigmoid(1.0 / t))
    expected = ((curvature + charge) * _sigmoid(0.0) + presence) / 2  # mean over the 2 events
    assert float(task.distill_loss(student, teacher, t)) == pytest.approx(expected, rel=1e-6)
    assert float(trigger_distill_loss(teacher, teacher, 0.5)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("alpha", "temperature"), [(-0.1, 1.0), (1.5, 1.0), (0.5, 0.0), (0.5, math.inf)])
def test_distillation_refuses_alpha_outside_0_1_and_a_temperature_not_above_0(
    alpha: float, temperature: float
) -> None:
    with pytest.raises(ObjectivesError, match=r"distillation (alpha must be in \[0, 1\]|temperature)"):
        Distillation(torch.nn.Identity(), alpha=alpha, temperature=temperature)


def _setup(name: str, config: dict[str, Any]) -> tuple[Any, Any, torch.nn.Module, torch.nn.Module]:
    """Task, tiny data, a student and a teacher of another seed (its outputs differ from the student's)."""
    task = get_task(name)
    data = task.prepare(rows=400, seed=0)
    torch.manual_seed(1)
    student = task.build_model(config)
    torch.manual_seed(2)
    teacher = task.build_model(config).eval()
    return task, data, student, teacher


def _distance(task: Any, model: torch.nn.Module, teacher: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(task.distill_loss(model.eval()(x), teacher(x), 2.0))


def test_alpha_0_trains_exactly_as_without_a_teacher() -> None:
    task, data, student, teacher = _setup("waveform", WAVEFORM)
    settings = TrainSettings(epochs=2, batch_size=64, lr=3e-3, seed=3)
    plain, taught = copy.deepcopy(student), copy.deepcopy(student)
    plain_result = train(plain, task, data, settings)
    taught_result = train(taught, task, data, settings, distill=Distillation(teacher, alpha=0.0))
    assert taught_result.history == plain_result.history
    for name, value in plain.state_dict().items():
        assert torch.equal(value, taught.state_dict()[name]), name


@pytest.mark.parametrize(("name", "config"), [("waveform", WAVEFORM), ("trigger", TRIGGER)])
def test_distillation_pulls_the_student_towards_its_teacher(name: str, config: dict[str, Any]) -> None:
    task, data, student, teacher = _setup(name, config)
    settings = TrainSettings(epochs=3, batch_size=16, lr=1e-2, seed=3)
    plain, taught = copy.deepcopy(student), copy.deepcopy(student)
    plain_result = train(plain, task, data, settings)
    distill = Distillation(teacher, alpha=0.8, temperature=2.0)
    taught_result = train(taught, task, data, settings, distill=distill)
    alone, distilled = (_distance(task, model, teacher, data.val_x) for model in (plain, taught))
    assert distilled < 0.3 * alone, (distilled, alone)
    # the reported losses stay the task's, so early stopping and ASHA compare like with like
    assert plain_result.history[0]["val_loss"] != taught_result.history[0]["val_loss"]
    assert teacher.training is False and all(p.grad is None for p in teacher.parameters())
