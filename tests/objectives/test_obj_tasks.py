"""Tasks: data preparation, metric sets and evaluation against known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from objectives import (
    DivergedError,
    ObjectivesError,
    charge_weighted_mse,
    emd_hex,
    from_8x8,
    get_task,
    synth_econt,
    task_names,
    telescope_loss,
    write_dataset,
)


class Constant(nn.Module):
    """Outputs a fixed tensor per row (shape of the input), for known metric values."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value)


def test_task_names_and_shapes() -> None:
    assert task_names() == ("econt", "waveform", "trigger", "trigger9")
    assert get_task("econt").input_shape == (1, 8, 8)
    assert get_task("waveform").input_shape == (48,)
    assert repr(get_task("econt")) == "Task(name='econt', loss='telescope')"


def test_unknown_names_list_the_allowed_ones() -> None:
    with pytest.raises(ObjectivesError, match=r"unknown task 'images'; allowed: econt, waveform"):
        get_task("images")
    with pytest.raises(
        ObjectivesError, match=r"unknown loss 'l1' for task econt; allowed: telescope, cwmse, mse"
    ):
        get_task("econt", loss="l1")


def test_econt_prepare_normalises_splits_and_subsamples() -> None:
    task = get_task("econt")
    data = task.prepare("synthetic", rows=1000, seed=3, val_rows=150)
    assert data.train_x.shape == (800, 1, 8, 8) and data.val_x.shape == (150, 1, 8, 8)
    assert data.test_x.shape == (0, 1, 8, 8) and data.train_x.dtype == torch.float32
    sums = data.train_x.sum(dim=(1, 2, 3))
    assert bool(((sums >= 1 - 1e-5) & (sums < 2)).all())
    assert not data.train_x[:, :, 4:, 4:].any()
    raw = synth_econt(1000, seed=3)
    # val_raw rows are rows of the generated data, and val_x is their normalised image
    matches = (data.val_raw[:, None, :] == raw[None, :, :]).all(axis=2).any(axis=1)
    assert matches.all()
    np.testing.assert_allclose(
        from_8x8(data.val_x.numpy()) * data.val_scale[:, None], data.val_raw, rtol=1e-6
    )
    again = task.prepare("synthetic", rows=1000, seed=3, val_rows=150)
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.val_x, data.val_x)


def test_econt_prepare_from_a_file(tmp_path: Path) -> None:
    write_dataset(synth_econt(400, seed=1), tmp_path / "m.csv")
    data = get_task("econt").prepare(tmp_path / "m.csv", rows=300, seed=0)
    assert data.source == str(tmp_path / "m.csv")
    assert data.train_x.shape[0] + data.val_x.shape[0] == 300


def test_waveform_prepare_split() -> None:
    data = get_task("waveform").prepare(rows=1000, seed=0)
    assert (data.train_x.shape[0], data.val_x.shape[0], data.test_x.shape[0]) == (480, 270, 250)
    assert data.val_x.shape[1:] == (48,)
    np.testing.assert_array_equal(data.val_raw, data.val_x.numpy())


@pytest.mark.parametrize(
    ("rows", "val_rows", "message"),
    [
        (0, None, r"rows must be >= 1, got 0"),
        (10, 0, r"val_rows must be >= 1 or None, got 0"),
        (2, None, r"2 rows are too few for a 80/20 % split"),
    ],
)
def test_prepare_rejects_bad_sizes(rows: int, val_rows: int | None, message: str) -> None:
    with pytest.raises(ObjectivesError, match=message):
        get_task("econt").prepare(rows=rows, seed=0, val_rows=val_rows)


def test_econt_evaluate_a_perfect_model() -> None:
    task = get_task("econt")
    data = task.prepare(rows=500, seed=0)
    metrics = task.evaluate(nn.Identity(), data)
    assert set(metrics) == set(task.metric_directions)
    assert metrics["val_loss"] == 0.0 and metrics["emd_sentinels"] == 0.0
    assert metrics["emd_mean"] == pytest.approx(0.0, abs=1e-6)


def test_econt_evaluate_matches_the_metric_functions() -> None:
    task = get_task("econt")
    data = task.prepare(rows=600, seed=1, val_rows=100)
    model = Constant(0.02)
    metrics = task.evaluate(model, data)
    expected = emd_hex(data.val_raw, np.full((100, 48), 0.02)).as_dict()
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
    pred = torch.full_like(data.val_x, 0.02)
    assert metrics["val_loss"] == pytest.approx(telescope_loss(pred, data.val_x).item())
    cwmse = get_task("econt", loss="cwmse")
    expected_cwmse = charge_weighted_mse(from_8x8(pred), from_8x8(data.val_x)).item()
    assert cwmse.evaluate(model, data)["val_loss"] == pytest.approx(expected_cwmse)


def test_collapsed_and_diverged_models() -> None:
    task = get_task("econt")
    data = task.prepare(rows=200, seed=0)
    metrics = task.evaluate(Constant(0.0), data)
    assert metrics["emd_sentinels"] == data.val_x.shape[0] and math.isinf(metrics["emd_mean"])
    with pytest.raises(DivergedError, match="NaN or infinite outputs"):
        task.evaluate(Constant(float("nan")), data)


def test_waveform_evaluate() -> None:
    task = get_task("waveform")
    data = task.prepare(rows=400, seed=0)
    perfect = task.evaluate(nn.Identity(), data)
    assert set(perfect) == set(task.metric_directions)
    assert perfect == {k: 0.0 for k in perfect}
    scaled = task.evaluate(ScaledIdentity(1.1), data)
    val = data.val_x.numpy().astype(np.float64)
    baseline = np.median(val[:, :10], axis=1)
    errors = 100 * 0.1 * val.sum(axis=1) / (val.sum(axis=1) - 48 * baseline)
    assert scaled["integral_error_mean"] == pytest.approx(errors.mean(), rel=1e-5)
    assert scaled["integral_error_abs"] == pytest.approx(errors.mean(), rel=1e-5)
    assert scaled["emd1d_mean"] == pytest.approx(0.0, abs=1e-6)  # same shape, different scale
    assert scaled["mse"] == pytest.approx(float(((0.1 * data.val_x) ** 2).mean()), rel=1e-5)


class ScaledIdentity(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def test_evaluate_restores_the_training_mode() -> None:
    task = get_task("waveform")
    data = task.prepare(rows=100, seed=0)
    model = nn.Sequential(nn.Linear(48, 4), nn.Dropout(0.5), nn.Linear(4, 48))
    model.train()
    task.evaluate(model, data)
    assert model.training
