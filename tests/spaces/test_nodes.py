"""Node pruning to an exact width: the keep keys, the gates, and the rebuilt network's widths and outputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from spaces import Autoencoder, ModelInput, Space, SpaceError, build_model, get_preset, keep_problems
from spaces._nodes import gates_of, pruner_loss, widths

WAVEFORM = ModelInput((48,), bits=12, signed=True)
ECONT = ModelInput((1, 8, 8), bits=10, signed=False)
TRIGGER = ModelInput((1, 4, 96), bits=1, signed=False)


def trained_gates(model: Autoencoder, seed: int = 0) -> None:
    """Gates as training leaves them: distinct logits and a sharpness above 1 (what the fold must carry)."""
    generator = torch.Generator().manual_seed(seed)
    for gate in gates_of(model.encoder):
        gate.logits.data = torch.randn(gate.width, generator=generator)
        gate.sharpness = 4.0


def econt_config(**extra: Any) -> dict[str, Any]:
    return {**get_preset("econt_baseline"), "n_dense": 1, "dense0_units": 32, **extra}


CASES = [
    (
        "dense_autoencoder",
        WAVEFORM,
        {**get_preset("waveform_baseline"), "hidden0_keep": 20, "hidden1_keep": 0.25},
        [96, 48, 12],
        [20, 12, 12],
    ),
    ("conv_autoencoder", ECONT, econt_config(conv0_keep=3, dense0_keep=0.5), [8, 32, 16], [3, 16, 16]),
    (
        "conv_autoencoder",
        ECONT,
        econt_config(conv0_pool=True, conv0_stride=1, conv0_keep=5),  # a pooled map flattens per channel
        [8, 32, 16],
        [5, 32, 16],
    ),
    (
        "strip_cnn",
        TRIGGER,
        {
            "n_conv": 2,
            "conv0_filters": 6,
            "conv0_kernel": 5,
            "conv0_stride": 2,
            "conv0_keep": 4,
            "conv1_filters": 8,
            "conv1_kernel": 3,
            "conv1_keep": 0.5,
            "n_dense": 1,
            "dense0_units": 8,
            "dense0_keep": 3,
            "outputs": 2,
        },
        [6, 8, 8, 2],
        [4, 4, 3, 2],
    ),
]


@pytest.mark.parametrize(("family", "model_input", "config", "full", "kept"), CASES)
def test_rebuilt_network_has_the_requested_widths_and_the_gated_outputs(
    family: str, model_input: ModelInput, config: dict[str, Any], full: list[int], kept: list[int]
) -> None:
    torch.manual_seed(0)
    model = build_model(family, config, model_input)
    assert widths(model.encoder) == full and model.gated
    trained_gates(model)
    pruned = model.prune_nodes()
    assert widths(pruned.encoder) == kept
    assert not pruned.gated and not gates_of(pruned)
    assert [g.keep for g in gates_of(model.encoder)] == [
        k for k, f in zip(kept, full, strict=False) if k != f
    ]
    x = torch.rand(64, *model_input.shape) * (2 if model_input.signed else 1) - (
        1 if model_input.signed else 0
    )
    model.eval(), pruned.eval()
    with torch.no_grad():
        hardened, rebuilt = model(x), pruned(x)
        assert torch.allclose(hardened, rebuilt, rtol=1e-5, atol=1e-5)  # float32 folding, outputs up to ~9
        # The hardened gates really cut nodes: reopening them changes the outputs.
        for gate in gates_of(model.encoder):
            gate.mask.fill_(1.0)
        assert not torch.allclose(model(x), rebuilt, rtol=1e-3, atol=1e-4)
    assert sum(p.numel() for p in pruned.encoder.parameters()) < sum(
        p.numel() for n, p in model.encoder.named_parameters() if not n.endswith("logits")
    )


def test_quantized_model_rebuilds_with_quantized_layers_of_the_kept_widths() -> None:
    config = econt_config(conv0_keep=4, quantize=True, weight_bits=6, act_bits=8, output_bits=9)
    model = build_model("conv_autoencoder", config, ECONT)
    trained_gates(model)
    pruned = model.prune_nodes()
    layer_types = [type(m).__name__ for m in pruned.encoder]
    assert layer_types[:2] == ["QuantIdentity", "QuantConv2d"] and "QuantLinear" in layer_types
    assert widths(pruned.encoder) == [4, 32, 16]
    model._set_quantization(False), pruned._set_quantization(False)  # gating trains in float
    x = torch.rand(16, 1, 8, 8)
    model.eval(), pruned.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), pruned(x), rtol=1e-5, atol=1e-6)


def test_keep_counts_fractions_and_their_errors() -> None:
    def built(keep: object) -> list[int]:
        config = {**get_preset("waveform_baseline"), "hidden1_keep": keep}
        return widths(build_model("dense_autoencoder", config, WAVEFORM).prune_nodes().encoder)

    assert built(7) == [96, 7, 12]
    assert built(0.1) == [96, 5, 12]  # round(4.8)
    assert built(0.001) == [96, 1, 12]  # never below 1 node
    assert built(1.0) == [96, 48, 12]  # a fraction of 1 keeps the layer whole (no gate)
    for bad, problem in [
        (49, "hidden1_keep=49 is larger than the layer's 48 nodes"),
        (0, "hidden1_keep=0 is not a count of 48 nodes"),
        (-3, "hidden1_keep=-3 is not a count of 48 nodes"),
        (1.5, "hidden1_keep=1.5 is not a count of 48 nodes"),
        ("half", "hidden1_keep='half' is not a count"),
    ]:
        with pytest.raises(SpaceError, match=r"allowed: an integer count 1\.\.48 or a fraction") as caught:
            built(bad)
        assert problem in str(caught.value)


def test_pruner_loss_is_zero_at_the_target_ratio_and_pulls_towards_it() -> None:
    model = build_model(
        "dense_autoencoder", {**get_preset("waveform_baseline"), "hidden0_keep": 48}, WAVEFORM
    )
    (gate,) = gates_of(model.encoder)
    assert float(pruner_loss([gate]).detach()) == pytest.approx(0.0)  # zero logits: every gate 1/2 = 48/96
    gate.logits.data.fill_(2.0)
    loss = pruner_loss([gate])
    loss.backward()
    assert float(loss.detach()) == pytest.approx((torch.sigmoid(torch.tensor(2.0)).item() - 0.5) ** 2)
    assert bool((gate.logits.grad > 0).all())  # gradient descent closes gates that are too open
    assert float(model.regularization().detach()) == pytest.approx(float(loss.detach()))


def test_keep_problems_name_the_parameter_and_the_width() -> None:
    space = Space.from_dict(
        {
            "parameters": {
                "hidden0_units": {"type": "choice", "choices": [16, 32]},
                "hidden0_keep": {"type": "int", "low": 4, "high": 40},
                "hidden1_units": {"type": "int", "low": 8, "high": 16},
                "hidden1_keep": {"type": "float", "low": 0.25, "high": 1.5},
                "dense0_keep": {"type": "choice", "choices": [2, 0.5]},
                "conv0_filters": {"type": "choice", "choices": [4, 8]},
                "conv0_keep": {"type": "choice", "choices": [0.5, 8]},
            }
        }
    )
    problems = keep_problems(space)
    assert problems == [
        "parameter 'hidden0_keep': keep 40 is outside what hidden0_units (at most 32) allows; allowed: an "
        "integer count 1..32 or a float fraction in (0, 1]",
        "parameter 'hidden1_keep': keep 1.5 is outside what hidden1_units (at most 16) allows; allowed: an "
        "integer count 1..16 or a float fraction in (0, 1]",
        "parameter 'dense0_keep': the space has no 'dense0_units', the width it prunes",
    ]
