"""Feature-map sizes through a conv stack: one computation shared by the shape rule and the model builder.

Conv layers pad by ``kernel // 2`` on each side ("same"-like: stride s turns an odd-kernel size H into
ceil(H/s)); an optional MaxPool2d(2) follows and floors. Square inputs only, so a size is one integer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import SpaceError


@dataclass(frozen=True)
class ConvLayer:
    """One encoder conv layer as the config describes it."""

    filters: int
    kernel: int
    stride: int
    pool: bool

    @property
    def padding(self) -> int:
        return self.kernel // 2


@dataclass(frozen=True)
class ConvStep:
    """Sizes around one conv layer: its input, after the convolution, after the optional pooling."""

    size_in: int
    size_conv: int
    size_out: int


def _positive_int(config: Mapping[str, Any], key: str, default: int | None = None) -> int:
    if key not in config:
        if default is None:
            raise SpaceError(f"config lacks {key!r}, which the conv layers it declares need")
        return default
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpaceError(f"config value {key}={value!r} must be a positive integer")
    return value


def conv_layers(config: Mapping[str, Any], count: str = "n_conv", prefix: str = "conv") -> list[ConvLayer]:
    """The ``count`` conv layers described by ``<prefix><i>_filters/_kernel/_stride/_pool`` (stride 1 and no
    pooling when those keys are absent). Raises SpaceError for a missing or non-positive value."""
    n_layers = config.get(count, 0)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 0:
        raise SpaceError(f"config value {count}={n_layers!r} must be a non-negative integer")
    layers = []
    for i in range(n_layers):
        pool = config.get(f"{prefix}{i}_pool", False)
        if not isinstance(pool, bool):
            raise SpaceError(f"config value {prefix}{i}_pool={pool!r} must be true or false")
        layers.append(
            ConvLayer(
                filters=_positive_int(config, f"{prefix}{i}_filters"),
                kernel=_positive_int(config, f"{prefix}{i}_kernel"),
                stride=_positive_int(config, f"{prefix}{i}_stride", default=1),
                pool=pool,
            )
        )
    return layers


def trace(input_size: int, layers: list[ConvLayer]) -> list[ConvStep]:
    """Sizes through every layer; a size below 1 means the stack is infeasible (see ``problem``)."""
    steps = []
    size = input_size
    for layer in layers:
        conv = (size + 2 * layer.padding - layer.kernel) // layer.stride + 1
        out = conv // 2 if layer.pool else conv
        steps.append(ConvStep(size, conv, out))
        size = out
    return steps


def problem(input_size: int, layers: list[ConvLayer], prefix: str = "conv") -> str | None:
    """Why the stack cannot be built, naming the first bad layer, or None when every map stays >= 1x1.

    With ``kernel // 2`` padding the padded input (size + 2*(k//2) >= k - 1 + size) is never smaller than
    the kernel and a convolution never yields less than 1x1; only max-pooling a 1x1 map can fail.
    """
    for i, step in enumerate(trace(input_size, layers)):
        if step.size_out < 1:
            return (
                f"{prefix}{i}: max-pooling its {step.size_conv}x{step.size_conv} output shrinks the "
                f"{input_size}x{input_size} input below 1x1"
            )
    return None
