"""Cost formulas per layer type, checked against hand counts and against the hls4ml graph's attributes."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable

import brevitas.nn as qnn
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
from hls4ml.model import ModelGraph
from hls4ml.model.layers import Layer
from torch import nn

from hw_models import (
    COST_QUANTITIES,
    FORMULA_VERSION,
    CostReport,
    HWError,
    HWSettings,
    LayerCost,
    estimate,
    to_hls4ml,
)


def _row(report: CostReport, class_name: str, index: int = 0) -> LayerCost:
    return [layer for layer in report.layers if layer.class_name == class_name][index]


def _graph(model: nn.Module, input_shape: tuple[int, ...], settings: HWSettings | None = None) -> ModelGraph:
    with tempfile.TemporaryDirectory() as output_dir:  # nothing is written without compile/write
        return to_hls4ml(model, input_shape, settings, output_dir=output_dir)


def _graph_layer(model: nn.Module, input_shape: tuple[int, ...], class_name: str) -> Layer:
    return next(layer for layer in _graph(model, input_shape).get_layers() if layer.class_name == class_name)


def test_reference_encoder_counts_6544_ops_and_2144_params(reference_encoder: nn.Module) -> None:
    report = estimate(reference_encoder, (1, 8, 8))
    # 2*(128*9) + 128 + 2*(128*16) + 16, the ECON-T reference count (no activation term).
    assert report.value("ops") == 6544
    assert report.value("params") == 2144
    assert report.value("multiplications") == 16 * 72 + 2048
    assert report.is_estimate and report.formula_version == FORMULA_VERSION
    assert set(report.totals) == set(COST_QUANTITIES)
    assert not report.quantized


def test_dense_float_hand_counts_and_graph_attributes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 6))
    row = _row(estimate(model, (20,)), "Dense")
    graph_layer = _graph_layer(model, (20,), "Dense")
    assert (row.n_in, row.n_out) == (graph_layer.get_attr("n_in"), graph_layer.get_attr("n_out")) == (20, 6)
    assert row.pixels == 1
    assert row.params == 126 and row.nonzero_params == 126
    assert row.multiplications == 120
    assert row.ops == 2 * 120 + 6
    # ap_fixed<16,6> everywhere for a float model.
    assert row.weight_bits == row.input_bits == graph_layer.get_weights("weight").type.precision.width == 16
    assert row.bops == pytest.approx(120 * (16 * 16 + 16 + 16 + math.log2(20)))
    assert row.multipliers == 120 and row.dsp == 120 and row.lut == 0  # 16-bit weights -> DSPs
    # II = RF = 1; latency = RF + ceil(ceil(log2 20) / 2 levels per cycle at 5 ns) + 2.
    assert (row.ii, row.latency_cycles) == (1, 1 + 3 + 2)


def test_dense_without_bias_counts_no_bias_terms() -> None:
    row = _row(estimate(nn.Sequential(nn.Linear(10, 4, bias=False)), (10,)), "Dense")
    assert row.params == 40
    assert row.ops == 2 * 40


@pytest.mark.parametrize(
    ("input_shape", "stride", "padding", "out_hw"),
    [((3, 9, 7), 2, 1, (5, 4)), ((3, 8, 8), 1, 0, (6, 6)), ((3, 8, 8), 1, 1, (8, 8))],
)
def test_conv2d_stride_and_padding(
    input_shape: tuple[int, int, int], stride: int, padding: int, out_hw: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=stride, padding=padding))
    row = _row(estimate(model, input_shape), "Conv2D")
    graph_layer = _graph_layer(model, input_shape, "Conv2D")
    pixels = out_hw[0] * out_hw[1]  # hand count: floor((H + 2p - 3) / s) + 1 per axis
    assert (graph_layer.get_attr("out_height"), graph_layer.get_attr("out_width")) == out_hw
    assert row.pixels == pixels
    assert row.n_in == graph_layer.get_attr("n_chan") * 9 == 27
    assert row.n_out == graph_layer.get_attr("n_filt") == 5
    assert row.params == 27 * 5 + 5
    assert row.multiplications == pixels * 135
    assert row.ops == 2 * pixels * 135 + pixels * 5
    assert row.bops == pytest.approx(pixels * 135 * (16 * 16 + 32 + math.log2(27)))
    # io_parallel: II = n_partitions * RF with n_partitions = output pixels by default.
    assert row.ii == graph_layer.get_attr("n_partitions") == pixels
    assert row.latency_cycles == pixels + math.ceil(5 / 2) + 2


def test_conv2d_io_stream_ii_counts_padded_input() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=1, padding=1))
    report = estimate(model, (1, 8, 8), HWSettings(io_type="io_stream"))
    assert _row(report, "Conv2D").ii == 10 * 10  # 8x8 input + 1 pixel of 'same' padding each side
    assert report.value("ii") == 100


def test_maxpool_and_relu_cost_no_arithmetic() -> None:
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    report = estimate(model, (2, 8, 8))
    pool, relu = _row(report, "Pooling2D"), _row(report, "Activation")
    for row in (pool, relu):
        assert row.params == row.multiplications == row.ops == row.multipliers == row.dsp == 0
        assert row.bops == 0 and row.lut == 0
    assert pool.n_out == 4 * 4 * 2
    assert pool.latency_cycles == 1 + 1  # register + ceil(ceil(log2 4) / 2) comparator levels
    assert relu.latency_cycles == 1 and relu.ii == 1
    assert report.value("latency_cycles") == 3


def test_quantized_dense_uses_brevitas_bit_widths() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=10),
        qnn.QuantLinear(20, 6, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=5),
    ).eval()
    report = estimate(model, (20,))
    row = _row(report, "Dense")
    nonzero = int(torch.count_nonzero(model[1].quant_weight().value))
    graph_layer = _graph_layer(model, (20,), "Dense")
    assert report.quantized
    assert (row.input_bits, row.weight_bits) == (10, 5)
    assert graph_layer.get_weights("weight").nonzeros == nonzero
    assert row.multiplications == nonzero
    assert row.bops == pytest.approx(120 * ((nonzero / 120) * 50 + 15 + math.log2(20)))
    assert row.multipliers == nonzero and row.dsp == 0  # 5-bit products go to LUTs
    assert row.lut == pytest.approx(0.5 * nonzero * 50)
    assert row.ops == 2 * 120 + 6  # the reference op count ignores bit widths and sparsity


def test_quantized_conv_uses_brevitas_bit_widths() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8),
        qnn.QuantConv2d(1, 4, 3, padding=0, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=7),
    ).eval()
    row = _row(estimate(model, (1, 6, 6)), "Conv2D")
    nonzero = int(torch.count_nonzero(model[1].quant_weight().value))
    assert (row.input_bits, row.weight_bits, row.pixels) == (8, 7, 16)
    assert row.multiplications == 16 * nonzero
    assert row.bops == pytest.approx(16 * 36 * ((nonzero / 36) * 56 + 15 + math.log2(9)))


def test_quantized_layer_precisions_follow_the_quantizers(
    quant_conv_encoder: Callable[..., nn.Module],
) -> None:
    model = quant_conv_encoder()
    graph = _graph(model, (1, 8, 8))
    layers = list(graph.get_layers())
    conv = next(layer for layer in layers if layer.class_name == "Conv2D")
    weight_precision = conv.get_weights("weight").type.precision
    frac = -int(math.log2(float(model[1].quant_weight().scale.detach())))
    assert (weight_precision.width, weight_precision.integer, weight_precision.signed) == (6, 6 - frac, True)
    assert "SAT_SYM" in str(weight_precision)
    input_precision = layers[0].get_output_variable().type.precision
    input_frac = -int(math.log2(float(model[0].act_quant.scale())))
    assert (input_precision.width, input_precision.integer, input_precision.signed) == (
        10,
        10 - input_frac,
        True,
    )
    relu = next(layer for layer in layers if layer.get_attr("activation") == "relu")
    relu_precision = relu.get_output_variable().type.precision
    assert (relu_precision.width, relu_precision.signed) == (8, False)
    assert "RND_CONV" in str(relu_precision)


def test_sparsity_reduces_multiplications_bops_and_multipliers_not_ops() -> None:
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(128, 16))
    sparse = nn.Sequential(nn.Linear(128, 16))
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():
        sparse[0].weight[:, ::2] = 0.0  # half of the weights pruned
    full, pruned = estimate(dense, (128,)), estimate(sparse, (128,))
    assert pruned.value("multiplications") == full.value("multiplications") / 2 == 1024
    assert pruned.value("multipliers") == 1024
    assert pruned.value("nonzero_params") == 1024 + 16
    assert pruned.value("ops") == full.value("ops")
    saved = 2048 * 0.5 * 16 * 16  # the (1 - f_p) * b_a * b_w term halves
    assert full.value("bops") - pruned.value("bops") == pytest.approx(saved)


def test_reuse_factor_shares_multipliers_and_sets_ii() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 16))
    with torch.no_grad():
        model[0].weight[:, ::2] = 0.0
    row = _row(estimate(model, (128,), HWSettings(reuse_factor=4)), "Dense")
    assert row.reuse_factor == 4
    assert row.multipliers == math.ceil(2048 / 4) - 1024 // 4
    assert row.ii == 4
    assert row.latency_cycles == 4 + math.ceil(7 / 2) + 2
    assert row.bram == 0  # Latency strategy keeps weights in registers


def test_resource_strategy_puts_weights_in_bram() -> None:
    model = nn.Sequential(nn.Linear(128, 16))
    row = _row(estimate(model, (128,), HWSettings(reuse_factor=4, strategy="Resource")), "Dense")
    assert row.strategy == "resource" and row.reuse_factor == 4
    assert row.bram == math.ceil(2048 * 16 / (4 * 36))


def test_distributed_arithmetic_costs_the_kept_weights_without_multipliers() -> None:
    # hls4ml's DA templates delete each kernel's weights from the graph; the costs still count them.
    torch.manual_seed(7)
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8),
        qnn.QuantConv2d(1, 4, 3, padding=0, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=6),
        nn.Flatten(),
        qnn.QuantLinear(64, 5, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=6),
    ).eval()
    distributed = HWSettings(strategy="distributed_arithmetic")
    latency, report = estimate(model, (1, 6, 6)), estimate(model, (1, 6, 6), distributed)
    graph = _graph(model, (1, 6, 6), distributed)
    for class_name in ("Conv2D", "Dense"):
        plain, row = _row(latency, class_name), _row(report, class_name)
        assert row.strategy == "distributed_arithmetic" and row.params == plain.params > 0
        assert (row.nonzero_params, row.multiplications, row.bops, row.ops) == (
            plain.nonzero_params,
            plain.multiplications,
            plain.bops,
            plain.ops,
        )
        layer = next(layer for layer in graph.get_layers() if layer.class_name == class_name)
        assert "weight" not in layer.weights  # the graph itself no longer holds them
        assert row.multipliers == row.dsp == 0
        assert row.lut == layer.get_attr("da_kernel_cost") * layer.get_attr("parallelization_factor", 1) > 0
    with pytest.raises(HWError, match=r"distributed_arithmetic needs a quantized \(Brevitas\) model"):
        estimate(nn.Sequential(nn.Linear(4, 2)), (4,), distributed)


def test_clock_period_sets_adder_levels_and_ns() -> None:
    model = nn.Sequential(nn.Linear(128, 16))
    fast = estimate(model, (128,), HWSettings(clock_period_ns=2.0))
    slow = estimate(model, (128,), HWSettings(clock_period_ns=10.0))
    assert fast.value("latency_cycles") == 1 + 7 + 2  # one adder level per cycle
    assert slow.value("latency_cycles") == 1 + 3 + 2  # three levels per cycle
    assert slow.value("latency_ns") == slow.value("latency_cycles") * 10.0


def test_io_parallel_model_latency_is_sum_and_ii_is_max(reference_encoder: nn.Module) -> None:
    report = estimate(reference_encoder, (1, 8, 8))
    assert report.value("latency_cycles") == sum(layer.latency_cycles for layer in report.layers)
    assert report.value("ii") == max(layer.ii for layer in report.layers) == 16
    assert report.value("latency_ns") == report.value("latency_cycles") * 5.0


def test_estimate_prints_nothing(reference_encoder: nn.Module, capsys: pytest.CaptureFixture[str]) -> None:
    estimate(reference_encoder, (1, 8, 8))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_estimate_does_not_change_the_model(quant_conv_encoder: Callable[..., nn.Module]) -> None:
    model = quant_conv_encoder().train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    estimate(model, (1, 8, 8))
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_conv1d_and_pointwise_conv_hand_counts() -> None:
    conv1d = _row(estimate(nn.Sequential(nn.Conv1d(3, 5, 3, padding=1)), (3, 16)), "Conv1D")
    assert (conv1d.n_in, conv1d.n_out, conv1d.pixels) == (9, 5, 16)
    assert conv1d.ops == 2 * 16 * 45 + 16 * 5
    report = estimate(nn.Sequential(nn.Conv2d(3, 5, 1)), (3, 4, 4))
    pointwise = next(layer for layer in report.layers if "Conv" in layer.class_name)
    assert (pointwise.n_in, pointwise.n_out, pointwise.pixels) == (3, 5, 16)
    assert pointwise.ops == 2 * 16 * 15 + 16 * 5


def test_settings_reach_the_hls4ml_configuration() -> None:
    settings = HWSettings(
        part="xc7z020clg400-1", clock_period_ns=4.0, io_type="io_stream", strategy="Resource"
    )
    graph = _graph(nn.Sequential(nn.Linear(8, 4)), (8,), settings)
    assert graph.config.get_config_value("Part") == "xc7z020clg400-1"
    assert float(graph.config.get_config_value("ClockPeriod")) == 4.0
    assert graph.config.get_config_value("IOType") == "io_stream"
    dense = next(layer for layer in graph.get_layers() if layer.class_name == "Dense")
    assert dense.get_attr("strategy") == "resource"
