"""Bit-accurate verification: hls4ml's C++ emulation (compiled with g++) against the torch forward pass.

The compiling tests are slow (~8-13 s each on 2 cores)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hw_models import HWError, HWSettings, to_hls4ml, verify_bit_exact


class _UnflattenDecoder(nn.Module):
    """Linear -> view(C, H, W) -> Upsample -> Conv: the pattern hls4ml mis-orders without a row permutation."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.act = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2)
        self.conv = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(self.act(self.fc(x)).view(-1, 8, 2, 2)))


def _images(n: int, seed: int) -> torch.Tensor:
    return 3 * torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
def test_quantized_conv_encoder_is_bit_exact(
    quant_conv_encoder: Callable[..., nn.Module], tmp_path: Path
) -> None:
    model = quant_conv_encoder()
    x = _images(200, seed=10)
    with torch.no_grad():
        distinct = torch.unique(model(x)).numel()
    assert distinct > 20  # a non-trivial output, so equality means something
    report = verify_bit_exact(model, to_hls4ml(model, (1, 8, 8), output_dir=str(tmp_path)), x)
    assert report.exact and report.passed
    assert report.max_abs_error == 0.0 and report.identical_share == 1.0
    assert report.n_outputs == 200 * 16 and report.tolerance == 0.0


@pytest.mark.slow
def test_quantized_conv_encoder_with_pooling_is_bit_exact_in_io_stream(
    quant_conv_encoder: Callable[..., nn.Module], tmp_path: Path
) -> None:
    model = quant_conv_encoder(pool=True)
    graph = to_hls4ml(model, (1, 8, 8), HWSettings(io_type="io_stream"), output_dir=str(tmp_path))
    report = verify_bit_exact(model, graph, _images(100, seed=11))
    assert report.exact and report.passed and report.n_outputs == 100 * 16


@pytest.mark.slow
def test_quantized_dense_encoder_with_quantized_biases_is_bit_exact(
    quant_dense_encoder: nn.Module, tmp_path: Path
) -> None:
    x = torch.randn(300, 48, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        assert torch.unique(quant_dense_encoder(x)).numel() > 10
    graph = to_hls4ml(quant_dense_encoder, (48,), output_dir=str(tmp_path))
    report = verify_bit_exact(quant_dense_encoder, graph, x.numpy())
    assert report.exact and report.passed and report.n_outputs == 300 * 8


@pytest.mark.slow
def test_float_unflatten_decoder_matches_within_tolerance_and_detects_a_wrong_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    decoder = _UnflattenDecoder()
    x = torch.rand(50, 16, generator=torch.Generator().manual_seed(13))
    graph = to_hls4ml(decoder, (16,), output_dir=str(tmp_path))
    report = verify_bit_exact(decoder, graph, x)
    assert report.passed and not report.exact
    assert report.tolerance == 64 * 2.0**-10  # 64 LSBs of ap_fixed<16,6>
    assert report.max_abs_error < report.tolerance
    # The same compiled graph against different weights: the comparison must fail.
    other = _UnflattenDecoder()
    mismatch = verify_bit_exact(other, graph, x)
    assert not mismatch.passed and mismatch.max_abs_error > 10 * report.max_abs_error
    # A stricter explicit tolerance is honoured.
    assert not verify_bit_exact(decoder, graph, x, tolerance=0.0).passed


@pytest.mark.slow
def test_nn_unflatten_converts_as_a_view_and_matches(tmp_path: Path) -> None:
    # The ECON-T dense decoder ends in nn.Unflatten, which hls4ml has no handler for.
    torch.manual_seed(1)
    decoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Unflatten(1, (8, 2, 2)), nn.Conv2d(8, 2, 1))
    x = torch.rand(50, 16, generator=torch.Generator().manual_seed(14))
    report = verify_bit_exact(decoder, to_hls4ml(decoder, (16,), output_dir=str(tmp_path)), x)
    assert report.passed and report.max_abs_error < report.tolerance
    assert isinstance(decoder[2], nn.Unflatten)  # the caller's model is left as it was


def test_bad_tolerance_and_input_are_refused_before_compiling(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 2))
    graph = to_hls4ml(model, (4,), output_dir=str(tmp_path))
    with pytest.raises(HWError, match=r"tolerance = -1\.0 is invalid; allowed: a number >= 0 or None"):
        verify_bit_exact(model, graph, np.zeros((3, 4)), tolerance=-1.0)
    with pytest.raises(HWError, match=r"x has shape \(4,\); expected \(N, \*input_shape\)"):
        verify_bit_exact(model, graph, np.zeros(4))
    assert not (tmp_path / "firmware").exists()
