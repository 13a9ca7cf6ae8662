"""The collapse detector: a constant-output model is flagged, a trained one is not (synthetic data, fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from objectives import TaskData, TrainSettings, emd_hex, from_8x8, get_task, train
from objectives._collapse import COLLAPSE_METRICS, collapse_metrics, constant_output_emd, row_spread


@pytest.fixture(scope="module")
def econt_data() -> TaskData:
    return get_task("econt", loss="cwmse").prepare("synthetic", rows=3_000, seed=0, val_rows=400)


class ConstantModel(nn.Module):
    """Predicts the same image for every input (the collapsed state)."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(image.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image.expand(x.shape[0], -1, -1, -1)


def dense_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 64), nn.Unflatten(1, (1, 8, 8))
    )


def test_a_constant_output_model_is_flagged(econt_data: TaskData) -> None:
    task = get_task("econt", loss="cwmse")
    mean_model = ConstantModel(econt_data.train_x.mean(0, keepdim=True))
    metrics = task.evaluate(mean_model, econt_data)
    assert metrics["collapsed"] == 1.0
    assert metrics["emd_ratio"] == pytest.approx(1.0, rel=1e-9)  # it *is* the constant-output model
    assert metrics["output_spread"] < 1e-9
    # constant_emd is the EMD of the training mean image predicted for every validation row, by hand:
    mean_cells = from_8x8(econt_data.train_x).double().numpy().mean(axis=0)
    by_hand = emd_hex(econt_data.val_raw, np.tile(mean_cells, (econt_data.val_raw.shape[0], 1))).mean
    assert metrics["constant_emd"] == pytest.approx(by_hand, rel=1e-12)
    # Another constant image (one that scores better or worse than the mean) is caught by the spread.
    other = ConstantModel(econt_data.val_x[:1])
    assert task.evaluate(other, econt_data)["collapsed"] == 1.0
    # An all-zero output (every EMD row a sentinel, emd_mean +inf) is collapsed too.
    assert task.evaluate(ConstantModel(torch.zeros(1, 1, 8, 8)), econt_data)["collapsed"] == 1.0


def test_a_trained_model_is_not_flagged(econt_data: TaskData) -> None:
    task = get_task("econt", loss="cwmse")
    model = dense_model()
    train(model, task, econt_data, TrainSettings(epochs=6, batch_size=64, lr=3e-3, seed=0))
    metrics = task.evaluate(model, econt_data)
    assert metrics["collapsed"] == 0.0
    assert metrics["emd_ratio"] < 0.9 and metrics["output_spread"] > 0.1
    assert set(COLLAPSE_METRICS) <= set(metrics) and set(COLLAPSE_METRICS) <= set(task.metric_directions)


def test_the_thresholds() -> None:
    rng = np.random.default_rng(0)
    val_raw = rng.random((50, 48)) * (rng.random((50, 48)) < 0.2)
    val_raw[:, 0] += 1.0
    train_cells = rng.random((80, 48))
    constant = constant_output_emd(train_cells, val_raw)
    varied = rng.random((50, 48))
    just_below = collapse_metrics(0.89 * constant, varied, val_raw, train_cells)
    at_limit = collapse_metrics(0.9 * constant, varied, val_raw, train_cells)
    assert just_below["collapsed"] == 0.0 and at_limit["collapsed"] == 1.0
    assert collapse_metrics(float("inf"), varied, val_raw, train_cells)["collapsed"] == 1.0
    flat = np.tile(varied[:1], (50, 1))
    assert row_spread(flat) < 1e-12
    assert collapse_metrics(0.1 * constant, flat, val_raw, train_cells)["collapsed"] == 1.0


def test_the_constant_output_emd_is_computed_once_per_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import objectives._collapse as collapse

    calls = []
    real = collapse.constant_output_emd

    def counting(train_cells: np.ndarray, val_raw: np.ndarray) -> float:
        calls.append(1)
        return real(train_cells, val_raw)

    monkeypatch.setattr(collapse, "constant_output_emd", counting)
    rng = np.random.default_rng(3)
    val_raw, train_cells, pred = rng.random((20, 48)), rng.random((30, 48)), rng.random((20, 48))
    first = collapse_metrics(1.0, pred, val_raw, train_cells)
    second = collapse_metrics(2.0, pred, val_raw, train_cells.copy())  # equal content, another array
    assert len(calls) == 1 and first["constant_emd"] == second["constant_emd"]
    collapse_metrics(1.0, pred, val_raw[:10], train_cells)  # a subsample is other data
    assert len(calls) == 2
