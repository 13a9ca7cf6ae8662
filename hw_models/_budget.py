"""Hardware budgets such as ``bops <= 50000`` checked against a CostReport."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from ._cost import COST_QUANTITIES, CostReport
from ._errors import HWError

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_BUDGET = re.compile(r"^\s*(?P<quantity>\w+)\s*(?P<operator><=|>=|<|>)\s*(?P<limit>\S+)\s*$")


@dataclass(frozen=True)
class Budget:
    """An inequality on one total of a CostReport, e.g. ``Budget.parse("bops <= 50000")``."""

    quantity: str
    operator: str
    limit: float

    def __post_init__(self) -> None:
        if self.quantity not in COST_QUANTITIES:
            raise HWError(f"unknown budget quantity {self.quantity!r}; allowed: {', '.join(COST_QUANTITIES)}")
        if self.operator not in _COMPARISONS:
            raise HWError(f"unknown budget operator {self.operator!r}; allowed: {', '.join(_COMPARISONS)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int | float) or math.isnan(self.limit):
            raise HWError(f"budget limit {self.limit!r} is invalid; allowed: a number")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parse ``"<quantity> <op> <number>"`` with op one of <=, <, >=, >.

        Raises:
            HWError: naming the bad text, the allowed quantities and operators.
        """
        match = _BUDGET.match(text) if isinstance(text, str) else None
        if match is None:
            raise HWError(
                f"budget {text!r} is not '<quantity> <op> <number>'; operators: {', '.join(_COMPARISONS)}; "
                f"quantities: {', '.join(COST_QUANTITIES)}"
            )
        quantity = match["quantity"]
        if quantity not in COST_QUANTITIES:
            raise HWError(
                f"budget {text!r} names unknown quantity {quantity!r}; allowed: {', '.join(COST_QUANTITIES)}"
            )
        try:
            limit = float(match["limit"])
        except ValueError:
            raise HWError(f"budget {text!r} has limit {match['limit']!r}, which is not a number") from None
        if math.isnan(limit):
            raise HWError(f"budget {text!r} has limit NaN; allowed: a number")
        return cls(quantity, match["operator"], limit)

    def check(self, report: CostReport) -> str | None:
        """None when `report` satisfies the budget, else a reason such as
        ``"bops = 61234 exceeds budget bops <= 50000"``."""
        value = report.value(self.quantity)
        if _COMPARISONS[self.operator](value, self.limit):
            return None
        verb = "exceeds" if self.operator in ("<=", "<") else "falls short of"
        return f"{self.quantity} = {_number(value)} {verb} budget {self}"

    def __str__(self) -> str:
        return f"{self.quantity} {self.operator} {_number(self.limit)}"


def _number(value: float) -> str:
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"
