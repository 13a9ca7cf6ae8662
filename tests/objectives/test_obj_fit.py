"""fit(): node pruning's gated phase and rebuild, and staged recipes (train -> prune -> retrain -> quantize)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from brevitas.proxy.quant_proxy import QuantProxyFromInjector

from objectives import ObjectivesError, TaskData, TrainSettings, fit, get_task
from spaces import Autoencoder, get_preset
from spaces._nodes import widths

SMALL = {**get_preset("waveform_baseline"), "hidden0_units": 32, "hidden1_units": 16, "latent": 8}


@pytest.fixture(scope="module")
def data() -> TaskData:
    return get_task("waveform").prepare(rows=600, seed=0, val_rows=100)


def quantizing(model: Autoencoder) -> bool:
    proxies = [m for m in model.encoder.modules() if isinstance(m, QuantProxyFromInjector)]
    return bool(proxies) and not proxies[0].disable_quant


def run(config: dict[str, Any], data: TaskData, **settings: Any) -> tuple[Autoencoder, Any, list[Any]]:
    """fit() the model of ``config``, recording per reported epoch (epoch, sparsity, quantizers on, widths)."""
    task = get_task("waveform")
    torch.manual_seed(0)
    current = [task.build_model(config)]
    rebuilt: list[Autoencoder] = []
    seen: list[tuple[int, float, bool, list[int]]] = []

    def report(epoch: int, _: dict[str, float]) -> None:
        model = current[0]
        seen.append((epoch, round(model.weight_sparsity(), 2), quantizing(model), widths(model.encoder)))

    def on_rebuild(model: Any) -> None:
        rebuilt.append(model)
        current[0] = model

    model, result = fit(current[0], task, data, TrainSettings(batch_size=128, **settings), report, on_rebuild)
    assert model is current[0]
    return model, result, [seen, rebuilt]


def test_node_pruning_trains_gated_then_the_smaller_network(data: TaskData) -> None:
    model, result, (seen, rebuilt) = run({**SMALL, "hidden0_keep": 12, "hidden1_keep": 0.5}, data, epochs=4)
    assert len(rebuilt) == 1 and model is rebuilt[0] and not model.gated
    assert [s[0] for s in seen] == [1, 2, 3, 4] and [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert [s[3] for s in seen] == [[32, 16, 8]] * 2 + [[12, 8, 8]] * 2  # gated for half the epochs
    assert result.epochs_run == 4 and result.best_epoch in (3, 4)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_staged_recipe_prunes_then_quantizes_in_its_stages(data: TaskData) -> None:
    config = {
        **SMALL,
        "sparsity": 0.5,
        "quantize": True,
        "weight_bits": 8,
        "act_bits": 8,
        "output_bits": 9,
        "hidden0_keep": 16,
    }
    stages = (("train", 2), ("prune", 2), ("retrain", 1), ("quantize", 1), ("retrain", 1))
    model, result, (seen, rebuilt) = run(config, data, epochs=7, stages=stages)
    assert [s[0] for s in seen] == list(range(1, 8))
    sparsity = [s[1] for s in seen]
    assert sparsity[:2] == [0.0, 0.0] and 0 < sparsity[2] < 0.5 and sparsity[3:] == [0.5] * 4
    assert [s[2] for s in seen] == [False] * 5 + [True] * 2  # quantizers on from the quantize stage
    assert [s[3] for s in seen] == [[32, 16, 8]] * 4 + [[16, 16, 8]] * 3  # rebuilt after the prune stage
    assert len(rebuilt) == 1 and quantizing(model) and model.weight_sparsity() == pytest.approx(0.5, abs=0.01)
    assert result.epochs_run == 7


def test_stages_must_add_up_and_be_known() -> None:
    with pytest.raises(ObjectivesError, match="epochs 5 must be the stages' total 3"):
        TrainSettings(epochs=5, stages=(("train", 1), ("prune", 2)))
    with pytest.raises(ObjectivesError, match="stage \\('distill', 1\\) must be one of train, prune"):
        TrainSettings(epochs=1, stages=(("distill", 1),))
