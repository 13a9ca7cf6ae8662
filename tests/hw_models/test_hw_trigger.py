"""The quantized trigger CNN (the whole network on chip, a non-square 4 x 384 input) converts bit-exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hw_models import estimate, to_hls4ml, verify_bit_exact
from objectives import get_task
from spaces import get_preset


def _quantized_trigger() -> tuple[torch.nn.Module, torch.Tensor]:
    task = get_task("trigger")
    config = {**get_preset("trigger_baseline"), "quantize": True, "weight_bits": 6, "act_bits": 8}
    network = task.on_chip(task.build_model(config))
    data = task.prepare("synthetic", rows=300, seed=0)
    network.train()  # let the activation scales follow the data, as a few training steps would
    with torch.no_grad():
        for _ in range(20):
            network(data.train_x[:128])
    return network.eval(), data.val_x[:50]


def test_the_whole_trigger_network_is_costed_with_its_non_square_input() -> None:
    task = get_task("trigger")
    network = task.on_chip(task.build_model(get_preset("trigger_baseline")))
    report = estimate(network, task.input_shape)
    assert report.value("params") == 935  # every parameter is on chip
    assert 0 < report.value("latency_ns") <= 400  # the study's budget at 200 MHz


@pytest.mark.slow
def test_a_quantized_trigger_cnn_is_bit_exact_in_hls4ml_emulation(tmp_path: Path) -> None:
    network, x = _quantized_trigger()
    report = verify_bit_exact(network, to_hls4ml(network, (1, 4, 384), output_dir=str(tmp_path)), x)
    assert report.exact and report.passed and report.n_outputs == 150, report
