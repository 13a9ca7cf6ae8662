"""build_model (float models): reference parameter counts, shapes for every feasible config, pruning, L1.

Quantized models are in test_quantized.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spaces import (
    Autoencoder,
    ConvAutoencoder,
    DenseAutoencoder,
    ModelInput,
    SpaceError,
    build_model,
    get_preset,
    get_space,
)

Build = Callable[[str, Mapping[str, Any]], Autoencoder]  # the conftest fixture: built-in space name, config


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_econt_baseline_is_the_reference_model_layer_for_layer(build: Build) -> None:
    model = build("econt", get_preset("econt_baseline"))
    assert isinstance(model, ConvAutoencoder) and isinstance(model, Autoencoder)
    assert _count(model) == 4977 and _count(model.encoder) == 2144 and _count(model.decoder) == 2833
    conv, linear = model.encoder[0], model.encoder[3]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (
        1,
        8,
        (3, 3),
        (2, 2),
        (1, 1),
    )
    assert (linear.in_features, linear.out_features) == (128, 16)
    assert [type(m).__name__ for m in model.encoder] == ["Conv2d", "ReLU", "Flatten", "Linear", "ReLU"]
    assert [type(m).__name__ for m in model.decoder] == [
        "Linear",
        "ReLU",
        "Unflatten",
        "ConvTranspose2d",
        "ReLU",
        "ConvTranspose2d",
    ]  # a linear output by default; the reference's sigmoid with output="sigmoid" (no parameters)
    assert (model.input_shape, model.latent_width, model.quantized) == ((1, 8, 8), 16, False)
    reference = build("econt", {**get_preset("econt_baseline"), "output": "sigmoid"})
    assert type(reference.decoder[-1]).__name__ == "Sigmoid" and _count(reference) == 4977
    with pytest.raises(SpaceError, match=r"output='tanh'; allowed: \['linear', 'sigmoid'\]"):
        build("econt", {**get_preset("econt_baseline"), "output": "tanh"})


def test_waveform_baseline_is_the_reference_model(build: Build) -> None:
    model = build("waveform", get_preset("waveform_baseline"))
    assert isinstance(model, DenseAutoencoder)
    assert _count(model) == 20088
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [(48, 96), (96, 48), (48, 12), (12, 12), (12, 48), (48, 96), (96, 48)]
    assert (model.input_shape, model.latent_width) == ((48,), 12)
    x = torch.rand(5, 48)
    assert model.encoder(x).shape == (5, 12) and model(x).shape == (5, 48)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), task=st.sampled_from(["econt", "waveform"]))
def test_property_every_sampled_float_config_builds_with_the_right_shapes(
    seed: int, task: str, check_shapes: Callable[[str, dict], Autoencoder]
) -> None:
    space = get_space(task)
    config = space.validate({**space.sample(np.random.default_rng(seed)), "quantize": False})
    assert isinstance(config, dict)
    model = check_shapes(task, config)
    if task == "econt":
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 1, 8, 8)
        sigmoid = check_shapes(task, {**config, "output": "sigmoid"})
        out = sigmoid(torch.rand(2, 1, 8, 8))
        assert ((out >= 0) & (out <= 1)).all()  # float32 saturates a large logit to exactly 0 or 1


@pytest.mark.parametrize("decoder", ["convtranspose", "upsample"])
@pytest.mark.parametrize(
    "layers",
    [
        [(3, 1, False)],
        [(5, 4, False), (3, 2, False)],
        [(1, 2, True), (3, 1, True), (5, 4, False)],
        [(2, 1, False), (4, 2, True)],  # even kernels (user spaces): 'same'-like padding grows the map
        [(3, 2, True), (3, 1, True), (3, 1, False)],
    ],
)
def test_conv_stacks_always_reconstruct_8x8(
    layers: list[tuple[int, int, bool]], decoder: str, check_shapes: Callable[[str, dict], Autoencoder]
) -> None:
    config = {"n_conv": len(layers), "n_dense": 1, "dense0_units": 8, "latent": 12, "decoder": decoder}
    for i, (kernel, stride, pool) in enumerate(layers):
        config.update({f"conv{i}_filters": 4 + i, f"conv{i}_kernel": kernel, f"conv{i}_stride": stride})
        config[f"conv{i}_pool"] = pool
    model = check_shapes("econt", {**config, "quantize": False})
    if decoder == "upsample":  # synthesizable decoder: no ConvTranspose
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.decoder.modules())


def test_econt_without_conv_layers_uses_a_dense_decoder(
    check_shapes: Callable[[str, dict], Autoencoder],
) -> None:
    config = {
        "n_conv": 0,
        "n_dense": 2,
        "dense0_units": 64,
        "dense1_units": 32,
        "latent": 16,
        "quantize": False,
    }
    model = check_shapes("econt", config)
    assert [type(m).__name__ for m in model.encoder] == [
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
    ]
    assert not any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.decoder.modules())
    assert model.encoder[1].in_features == 64


def test_build_model_errors_name_the_problem(build: Build) -> None:
    preset = get_preset("econt_baseline")
    with pytest.raises(
        SpaceError, match=r"unknown model family 'conv'; allowed: conv_autoencoder, dense_autoencoder"
    ):
        build_model("conv", preset, ModelInput((1, 8, 8), bits=10, signed=False))
    with pytest.raises(SpaceError, match=r"build_model\('conv_autoencoder'\): config lacks 'latent'"):
        build("econt", {k: v for k, v in preset.items() if k != "latent"})
    with pytest.raises(
        SpaceError, match="config lacks 'conv0_kernel', which the conv layers it declares need"
    ):
        build("econt", {k: v for k, v in preset.items() if k != "conv0_kernel"})
    with pytest.raises(SpaceError, match=r"decoder='deconv'; allowed: \['convtranspose', 'upsample'\]"):
        build("econt", {**preset, "decoder": "deconv"})
    with pytest.raises(SpaceError, match="infeasible config: conv0: max-pooling its 1x1 output"):
        # kernel 1, stride 8: 8x8 -> 1x1, then max-pooling -> 0x0
        build("econt", {**preset, "conv0_kernel": 1, "conv0_stride": 8, "conv0_pool": True})
    with pytest.raises(
        SpaceError, match=r"build_model\('conv_autoencoder'\): weight_bits=0 must be an integer >= 1"
    ):
        build("econt", {**preset, "quantize": True, "weight_bits": 0, "act_bits": 8, "output_bits": 9})
    with pytest.raises(
        SpaceError, match=r"build_model\('dense_autoencoder'\): n_hidden=0 must be an integer >= 1"
    ):
        build("waveform", {**get_preset("waveform_baseline"), "n_hidden": 0})
    with pytest.raises(SpaceError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        build("waveform", {**get_preset("waveform_baseline"), "sparsity": 1.0})


# -- pruning and L1 --------------------------------------------------------------------------------
def test_pruning_schedule_starts_dense_ramps_cubically_and_fine_tunes_at_the_target(build: Build) -> None:
    model = build("waveform", {**get_preset("waveform_baseline"), "sparsity": 0.8})
    # 10 epochs: 3 dense epochs (30 %), a 5-epoch cubic ramp reaching the target at epoch 8 (80 %), then
    # 2 fine-tuning epochs at the target. Expected values written out from s = 0.8 * (1 - (1 - j/5)^3).
    schedule = [model.scheduled_sparsity(epoch, 10) for epoch in range(1, 11)]
    ramp = [0.8 * (1 - (1 - j / 5) ** 3) for j in range(1, 6)]
    assert schedule[:3] == [0.0, 0.0, 0.0]
    assert schedule[3:8] == pytest.approx(ramp)
    assert schedule[3] == pytest.approx(0.8 * 0.488) and schedule[7] == 0.8
    assert schedule[8:] == [0.8, 0.8]
    assert all(a < b for a, b in itertools.pairwise(schedule[2:8]))
    assert model.compression_epochs(10) == (3, 8)
    assert model.final_form_epoch(10) == 8
    # Short runs still start dense when they can and always end at the target.
    assert [model.scheduled_sparsity(e, 2) for e in (1, 2)] == [0.0, 0.8]
    assert [model.scheduled_sparsity(e, 3) for e in (1, 2, 3)] == [0.0, 0.8, 0.8]
    assert model.scheduled_sparsity(1, 1) == 0.8
    for n_epochs in range(2, 40):
        values = [model.scheduled_sparsity(e, n_epochs) for e in range(1, n_epochs + 1)]
        assert values[0] == 0.0 and values[-1] == 0.8
        assert all(a <= b for a, b in itertools.pairwise(values))
    with pytest.raises(SpaceError, match=r"epoch must be an integer >= 1 \(1-based\), got 0"):
        model.before_epoch(0, 9)
    with pytest.raises(SpaceError, match="n_epochs must be an integer >= 1, got 0"):
        model.before_epoch(1, 0)
    plain = build("waveform", get_preset("waveform_baseline"))
    assert plain.final_form_epoch(10) == 1  # nothing to wait for without compression


def test_pruning_reaches_the_target_sparsity_through_training(build: Build) -> None:
    torch.manual_seed(0)
    config = {**get_preset("econt_baseline"), "sparsity": 0.75}
    model = build("econt", config)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(32, 1, 8, 8)
    n_epochs = 6
    measured = []
    for epoch in range(1, n_epochs + 1):
        model.before_epoch(epoch, n_epochs)
        for _ in range(3):
            optimiser.zero_grad()
            nn.functional.mse_loss(model(x), x).backward()
            optimiser.step()
            model.after_step()
        measured.append(model.weight_sparsity())
    assert measured[0] == 0.0 and measured[-1] == pytest.approx(0.75, abs=0.01)
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(measured))
    # Every encoder weight tensor holds exactly round(0.75 * size) zeros: counted directly. The ECON-T
    # decoder runs off-detector in float and is not pruned.
    for module in model.encoder.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            assert int((module.weight == 0).sum()) == round(0.75 * module.weight.numel())
            assert type(module.weight) is nn.Parameter  # plain weights, no parametrisation
    for module in model.decoder.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            assert int((module.weight == 0).sum()) == 0
    assert any(name.startswith("pruning_masks.encoder") for name in model.state_dict())
    assert not any(name.startswith("pruning_masks.decoder") for name in model.state_dict())


def test_waveform_pruning_covers_the_whole_model(build: Build) -> None:
    # The fADC250 study deploys (and pruned) the whole autoencoder: decoder weights are pruned too.
    model = build("waveform", {**get_preset("waveform_baseline"), "sparsity": 0.5})
    model.before_epoch(10, 10)
    for module in [*model.encoder.modules(), *model.decoder.modules()]:
        if isinstance(module, nn.Linear):
            assert int((module.weight == 0).sum()) == round(0.5 * module.weight.numel())
    assert model.weight_sparsity() == pytest.approx(0.5, abs=0.01)


def test_hooks_are_no_ops_without_pruning(build: Build) -> None:
    model = build("waveform", get_preset("waveform_baseline"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.before_epoch(3, 3)
    model.after_step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not list(model.pruning_masks.buffers())


def test_regularization_is_the_l1_term(build: Build) -> None:
    plain = build("waveform", get_preset("waveform_baseline"))
    assert torch.equal(plain.regularization(), torch.zeros(()))
    model = build("waveform", {**get_preset("waveform_baseline"), "l1_reg": True, "l1": 1e-4})
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    expected = 1e-4 * sum(float(w.detach().abs().sum()) for w in weights)
    penalty = model.regularization()
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-6)
    penalty.backward()
    assert torch.allclose(weights[0].grad, 1e-4 * torch.sign(weights[0].detach()))
    assert model.encoder[0].bias.grad is None  # biases are not regularised


def test_l1_starts_with_compression_and_spares_the_econt_decoder(build: Build) -> None:
    # From the first step, the space's upper strengths (~5e-4) crushed every weight of an ECON-T model to 0
    # before it had learnt anything (benchmarks/collapse.txt, after-v5).
    model = build("econt", {**get_preset("econt_baseline"), "l1_reg": True, "l1": 5e-4})
    dense_epochs, _ = model.compression_epochs(10)
    model.before_epoch(dense_epochs, 10)
    assert torch.equal(model.regularization(), torch.zeros(()))
    model.before_epoch(dense_epochs + 1, 10)
    penalty = model.regularization()
    encoder = [m.weight for m in model.encoder.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert float(penalty.detach()) == pytest.approx(
        5e-4 * sum(float(w.detach().abs().sum()) for w in encoder)
    )
    penalty.backward()
    assert all(torch.allclose(w.grad, 5e-4 * torch.sign(w.detach())) for w in encoder)
    assert all(p.grad is None for p in model.decoder.parameters())  # off-detector: no L1
    model.set_stage("train")
    model.before_epoch(1, 2)
    assert torch.equal(model.regularization(), torch.zeros(()))
    model.set_stage("prune")
    model.before_epoch(1, 2)
    assert float(model.regularization().detach()) > 0


def test_the_first_layer_starts_non_negative_on_charges_only(build: Build) -> None:
    # A first-layer unit with only negative weights is dead on every row of non-negative inputs.
    torch.manual_seed(3)
    econt = build("econt", {**get_preset("econt_baseline"), "conv0_filters": 2, "conv0_kernel": 1})
    weighted = [m for m in econt.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    assert bool((weighted[0].weight >= 0).all()) and float(weighted[0].weight.detach().abs().sum()) > 0
    assert bool((weighted[1].weight < 0).any())  # the later layers stay zero-mean
    waveform = build("waveform", get_preset("waveform_baseline"))  # baseline-subtracted: signed inputs
    assert bool((next(m for m in waveform.modules() if isinstance(m, nn.Linear)).weight < 0).any())
