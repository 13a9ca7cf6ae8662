"""Hardware settings for a conversion or an estimate, validated once at the edge."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from ._errors import HWError

IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("Latency", "Resource")
# The cost formulas follow the Vivado/Vitis HLS templates of hls4ml; other backends have other kernels.
BACKENDS = ("Vitis", "Vivado")

# ap_fixed<W,I>, fixed<W,I>, their unsigned forms (optionally with rounding/saturation modes), ap_int<W>.
_PRECISION = re.compile(
    r"^\s*(?:ap_)?(?P<kind>u?fixed|u?int)\s*<\s*(?P<width>\d+)\s*(?:,\s*(?P<integer>-?\d+)\s*)?"
    r"(?:,\s*[A-Z_]+\s*)*>\s*$"
)


def parse_precision(text: str) -> tuple[int, int]:
    """Return (width, integer bits) of an hls4ml precision string such as ``ap_fixed<16,6>``.

    Raises:
        HWError: the text is not a fixed-point or integer precision with a positive width.
    """
    match = _PRECISION.match(text) if isinstance(text, str) else None
    if match is None or int(match["width"]) < 1:
        raise HWError(
            f"precision {text!r} is not understood; allowed: ap_fixed<W,I>, ap_ufixed<W,I>, fixed<W,I>, "
            "ap_int<W>, ap_uint<W> with W >= 1"
        )
    width = int(match["width"])
    is_fixed = match["kind"].endswith("fixed")
    if is_fixed and match["integer"] is None:
        raise HWError(f"precision {text!r} needs integer bits: write {match['kind']}<{width},I>")
    return width, int(match["integer"]) if is_fixed else width


@dataclass(frozen=True)
class HWSettings:
    """How a model is converted and costed (hls4ml configuration knobs).

    Attributes:
        io_type: "io_parallel" (fully unrolled arrays) or "io_stream" (FIFOs, one pixel per beat).
        reuse_factor: how many multiplications share one multiplier (>= 1); hls4ml may round it to the
            closest valid value per layer under the Resource strategy, and the report shows the one used.
        strategy: "Latency" or "Resource" (weights in BRAM when the reuse factor is > 1).
        default_precision: precision of every tensor of a float model, and of tensors a quantized model
            leaves unquantized.
        clock_period_ns: target clock period; converts cycles into ns and sets how many adder-tree
            levels fit into one cycle.
        part: FPGA part name handed to hls4ml (recorded in exported projects).
        backend: hls4ml backend ("Vitis" or "Vivado").

    Raises:
        HWError: on construction, naming the field, the bad value and the allowed values.
    """

    io_type: str = "io_parallel"
    reuse_factor: int = 1
    strategy: str = "Latency"
    default_precision: str = "ap_fixed<16,6>"
    clock_period_ns: float = 5.0
    part: str = "xcvu13p-flga2577-2-e"
    backend: str = "Vitis"

    def __post_init__(self) -> None:
        _check_choice("io_type", self.io_type, IO_TYPES)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("backend", self.backend, BACKENDS)
        if (
            isinstance(self.reuse_factor, bool)
            or not isinstance(self.reuse_factor, int)
            or self.reuse_factor < 1
        ):
            raise HWError(f"reuse_factor = {self.reuse_factor!r} is invalid; allowed: an integer >= 1")
        try:
            parse_precision(self.default_precision)
        except HWError as error:
            raise HWError(f"default_precision: {error}") from None
        period = self.clock_period_ns
        if (
            isinstance(period, bool)
            or not isinstance(period, int | float)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise HWError(f"clock_period_ns = {period!r} is invalid; allowed: a finite number > 0")
        if not isinstance(self.part, str) or not self.part.strip():
            raise HWError(f"part = {self.part!r} is invalid; allowed: a non-empty FPGA part name")

    @property
    def default_width(self) -> int:
        """Bit width of ``default_precision``."""
        return parse_precision(self.default_precision)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable field values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HWSettings:
        """Inverse of :meth:`to_dict`.

        Raises:
            HWError: unknown keys or invalid values.
        """
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise HWError(f"unknown HWSettings keys {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise HWError(f"{field} = {value!r} is invalid; allowed: {', '.join(allowed)}")
