"""The built-in spaces ("econt", "waveform", "trigger") and the reference models as presets.

Parameter names are the contract with `build_model`. Layer ``i`` of a stack is active when the layer count
exceeds ``i``, so absent layers carry no parameters. Compression knobs (both spaces): ``quantize`` with,
when on, ``weight_bits``/``act_bits`` (3..16) and the encoded-output ``output_bits``; ``sparsity`` (target
of iterative magnitude pruning, 0..0.9); ``l1_reg`` with, when on, the L1 strength ``l1`` (log 1e-6..1e-3;
econt 1e-6..1e-4: under Adam, stronger L1 drove small ECON-T encoders to 0 right after the warm-up,
benchmarks/collapse.txt after-v5). The econt learning rate is log-uniform in 1e-3..1e-2 (lower rates collapse
in short runs), the waveform one in 1e-4..1e-2; the econt batch size is at most 500 (at 1024, 20,000 rows
give 200 Adam steps in 10 epochs: 5 of 16 such draws of benchmarks/collapse.txt after-v5 collapsed, 3 of the
other 44). The econt conv layers obey ``conv_coverage`` (stride at most the kernel): a stride-4 kernel-1
layer sees 3 of the 48 cells; of the 20-draw sample in benchmarks/collapse.txt, 5 draws had a stride above
the kernel and 3 of them collapsed (draws 2, 7 and 12).
"""

from __future__ import annotations

from typing import Any

from ._constraints import Constraint
from ._errors import SpaceError
from ._params import BoolParam, ChoiceParam, FloatParam, IntParam, Param
from ._space import Space

SPACE_NAMES = ("econt", "waveform", "trigger")
PRESET_NAMES = ("econt_baseline", "waveform_baseline", "trigger_baseline")
_MAX_CONV = 3
_MAX_DENSE = 3
_MAX_HIDDEN = 4
_ECONT_L1_HIGH = 1e-4


def _compression(output_bits: Param, *, input_bits: bool, l1_high: float = 1e-3) -> list[Param]:
    quantized = {"quantize": True}
    params: list[Param] = [
        BoolParam("quantize"),
        IntParam("weight_bits", 3, 16, active_if=quantized),
        IntParam("act_bits", 3, 16, active_if=quantized),
    ]
    if input_bits:
        params.append(ChoiceParam("input_bits", [8, 10, 12, 16], ordered=True, active_if=quantized))
    params += [
        output_bits,
        FloatParam("sparsity", 0.0, 0.9),
        BoolParam("l1_reg"),
        FloatParam("l1", 1e-6, l1_high, log=True, active_if={"l1_reg": True}),
    ]
    return params


def _econt() -> Space:
    params: list[Param] = [IntParam("n_conv", 0, _MAX_CONV)]
    for i in range(_MAX_CONV):
        layer = {"n_conv": {">": i}}
        params += [
            ChoiceParam(f"conv{i}_filters", [2, 4, 8, 16, 32, 64], ordered=True, active_if=layer),
            ChoiceParam(f"conv{i}_kernel", [1, 3, 5], ordered=True, active_if=layer),
            ChoiceParam(f"conv{i}_stride", [1, 2, 4], ordered=True, active_if=layer),
            BoolParam(f"conv{i}_pool", active_if=layer),
        ]
    params.append(IntParam("n_dense", 0, _MAX_DENSE))
    params += [
        ChoiceParam(f"dense{i}_units", [8, 16, 32, 64], ordered=True, active_if={"n_dense": {">": i}})
        for i in range(_MAX_DENSE)
    ]
    params += [
        # 16 encoded outputs is the ECON-T design point (the e-link budgets are per output); fewer trade quality
        # for bandwidth.
        ChoiceParam("latent", [8, 12, 16], ordered=True),
        ChoiceParam("decoder", ["convtranspose", "upsample"], active_if={"n_conv": {">": 0}}),
        # lr 1e-4 never leaves the constant-output plateau in a short run, whatever the output layer or
        # schedule (benchmarks/collapse.txt); 1e-3 is the floor.
        FloatParam("lr", 1e-3, 1e-2, log=True),
        ChoiceParam("batch_size", [128, 256, 500], ordered=True),
    ]
    # 2/3/4/5 e-links carry 3/5/7/9 bits per encoded output.
    output_bits = ChoiceParam("output_bits", [3, 5, 7, 9], ordered=True, active_if={"quantize": True})
    params += _compression(output_bits, input_bits=True, l1_high=_ECONT_L1_HIGH)
    constraints = [Constraint.builtin("conv_shape", input_size=8), Constraint.builtin("conv_coverage")]
    return Space(params, constraints, name="econt")


def _waveform() -> Space:
    params: list[Param] = [IntParam("n_hidden", 1, _MAX_HIDDEN)]
    params += [
        ChoiceParam(
            f"hidden{i}_units",
            [8, 12, 16, 24, 32, 48, 64, 96, 128],
            ordered=True,
            active_if={"n_hidden": {">": i}},
        )
        for i in range(_MAX_HIDDEN)
    ]
    params += [
        ChoiceParam("latent", [4, 6, 8, 12, 16, 24], ordered=True),
        FloatParam("lr", 1e-4, 1e-2, log=True),
        ChoiceParam("batch_size", [32, 64, 128, 256, 512], ordered=True),
    ]
    params += _compression(IntParam("output_bits", 3, 16, active_if={"quantize": True}), input_bits=False)
    return Space(params, name="waveform")


def _trigger() -> Space:
    """The muon-trigger CNN (`strip_cnn` on 4 x 384 hit images): 1-3 convs along the strips, 0-2 dense.

    Hits are 1-bit, so there is no input_bits knob; the network ends in linear outputs (no output_bits).
    """
    params: list[Param] = [IntParam("n_conv", 1, _MAX_CONV)]
    for i in range(_MAX_CONV):
        layer = {"n_conv": {">": i}}
        params += [
            ChoiceParam(f"conv{i}_filters", [2, 4, 8, 16], ordered=True, active_if=layer),
            ChoiceParam(f"conv{i}_kernel", [3, 5, 8, 12, 16], ordered=True, active_if=layer),
            ChoiceParam(f"conv{i}_stride", [1, 2, 4, 8], ordered=True, active_if=layer),
            BoolParam(f"conv{i}_pool", active_if=layer),
        ]
    params.append(IntParam("n_dense", 0, 2))
    params += [
        ChoiceParam(f"dense{i}_units", [4, 8, 16, 32], ordered=True, active_if={"n_dense": {">": i}})
        for i in range(2)
    ]
    params += [
        FloatParam("lr", 1e-4, 1e-2, log=True),
        ChoiceParam("batch_size", [64, 128, 256, 500], ordered=True),
    ]
    params += [
        p for p in _compression(IntParam("output_bits", 3, 16), input_bits=False) if p.name != "output_bits"
    ]
    return Space(params, [Constraint.builtin("strip_shape", width=384)], name="trigger")


_SPACES = {"econt": _econt, "waveform": _waveform, "trigger": _trigger}

_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # "8x8_c8_S2_tele": Conv(1->8, 3x3, stride 2) -> Dense16 | Dense128 -> ConvT(8) -> ConvT(1); 4,977 params.
    "econt_baseline": (
        "econt",
        {
            "n_conv": 1,
            "conv0_filters": 8,
            "conv0_kernel": 3,
            "conv0_stride": 2,
            "conv0_pool": False,
            "n_dense": 0,
            "latent": 16,
            "decoder": "convtranspose",
            "lr": 1e-3,
            "batch_size": 500,
            "quantize": False,
            "sparsity": 0.0,
            "l1_reg": False,
        },
    ),
    # JLab fADC250 dense AE 48-96-48-12 | 12-48-96-48, Adam lr 1e-3; 20,088 params. The study gives no batch
    # size; 32 is the Keras default it most likely ran with.
    "waveform_baseline": (
        "waveform",
        {
            "n_hidden": 2,
            "hidden0_units": 96,
            "hidden1_units": 48,
            "latent": 12,
            "lr": 1e-3,
            "batch_size": 32,
            "quantize": False,
            "sparsity": 0.0,
            "l1_reg": False,
        },
    ),
    # The level-0 muon trigger CNN of ~1k parameters: Conv(1->4, 4x8 over all layers, stride 8) -> pool 2
    # -> Flatten(96) -> Dense8 -> 3 outputs (pT, charge, muon present); 935 params, ~350 ns at 200 MHz.
    "trigger_baseline": (
        "trigger",
        {
            "n_conv": 1,
            "conv0_filters": 4,
            "conv0_kernel": 8,
            "conv0_stride": 8,
            "conv0_pool": True,
            "n_dense": 1,
            "dense0_units": 8,
            "lr": 3e-3,
            "batch_size": 128,
            "quantize": False,
            "sparsity": 0.0,
            "l1_reg": False,
        },
    ),
}


def get_space(name: str) -> Space:
    """The built-in space ``name`` (one of SPACE_NAMES); SpaceError listing them otherwise."""
    if name not in _SPACES:
        raise SpaceError(f"unknown space {name!r}; built-in spaces: {list(SPACE_NAMES)}")
    return _SPACES[name]()


def get_preset(name: str) -> dict[str, Any]:
    """A fresh canonical config of the reference model ``name`` (one of PRESET_NAMES), valid in its
    built-in space; SpaceError listing the presets otherwise."""
    if name not in _PRESETS:
        raise SpaceError(f"unknown preset {name!r}; presets: {list(PRESET_NAMES)}")
    space_name, config = _PRESETS[name]
    return get_space(space_name).canonicalize(config)
