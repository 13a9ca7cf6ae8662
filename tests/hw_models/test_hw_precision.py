"""Per-layer fixed-point types of a float model from its weights and profiled activations (no compile)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from hw_models import (
    HWError,
    HWSettings,
    TensorRange,
    estimate,
    fixed_type,
    layer_precisions,
    profile_ranges,
    to_hls4ml,
)


@pytest.mark.parametrize(
    ("value_range", "width", "expected"),
    [
        (TensorRange(1.96875, signed=False), 12, "ufixed<12,1,RND,SAT>"),  # < 2: one integer bit
        (TensorRange(2.6, signed=True), 12, "fixed<12,3,RND,SAT>"),  # sign + 2 bits for < 4
        (TensorRange(0.02, signed=True), 8, "fixed<8,1,RND,SAT>"),  # at least the sign bit
        (TensorRange(0.0, signed=False), 8, "ufixed<8,1,RND,SAT>"),
        (TensorRange(100.0, signed=True), 16, "fixed<16,8,RND,SAT>"),
    ],
)
def test_fixed_type_has_just_enough_integer_bits(value_range: TensorRange, width: int, expected: str) -> None:
    assert fixed_type(value_range, width) == expected


def test_fixed_type_refuses_a_bad_width() -> None:
    with pytest.raises(HWError, match=r"width = 2 is invalid; allowed: an integer from 4 to 64"):
        fixed_type(TensorRange(1.0, signed=True), 2)


def test_profiled_precisions_reach_the_hls4ml_graph_and_its_cost(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    x = 5 * torch.rand(64, 8)
    ranges = profile_ranges(model, x)
    with torch.no_grad():
        hidden = model[0](x)
    assert ranges["_0"]["result"].max_abs == pytest.approx(float(hidden.abs().max()))
    assert ranges["_0"]["result"].signed and not ranges["_1"]["result"].signed
    assert ranges["_0"]["weight"].max_abs == pytest.approx(float(model[0].weight.detach().abs().max()))
    precisions = layer_precisions(ranges, 10)
    graph = to_hls4ml(model, (8,), output_dir=str(tmp_path), precisions=precisions)
    types = {layer.name: layer for layer in graph.get_layers()}
    assert str(types["_0"].types["weight_t"].precision).startswith("fixed<10,")
    assert str(types["_1"].get_output_variable().type.precision).startswith("ufixed<10,")
    assert estimate(model, (8,), precisions=precisions).layers[1].weight_bits == 10
    assert estimate(model, (8,)).layers[1].weight_bits == 16  # the default precision otherwise


def test_precisions_for_an_unknown_layer_or_a_bad_type_are_refused() -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(
        HWError, match=r"precisions name layer 'fc', which the model lacks; its layers: input_1, _0"
    ):
        to_hls4ml(model, (8,), precisions={"fc": {"result": "fixed<8,2>"}})
    with pytest.raises(HWError, match=r"layer '_0', weight: precision 'float16' is not understood"):
        to_hls4ml(model, (8,), precisions={"_0": {"weight": "float16"}})


def test_distributed_arithmetic_needs_reuse_factor_1() -> None:
    with pytest.raises(HWError, match=r"reuse_factor = 4 is invalid with strategy distributed_arithmetic"):
        HWSettings(strategy="distributed_arithmetic", reuse_factor=4)
