"""CostReport serialisation and lookup; Budget parsing and checking."""

from __future__ import annotations

import json

import pytest
from torch import nn

from hw_models import COST_QUANTITIES, Budget, CostReport, HWError, HWSettings, estimate


@pytest.fixture(scope="module")
def report() -> CostReport:
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 16)
    )
    return estimate(model, (1, 8, 8), HWSettings(reuse_factor=2))


def test_report_round_trips_through_json(report: CostReport) -> None:
    restored = CostReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored == report
    assert restored.settings.reuse_factor == 2
    assert restored.to_dict()["is_estimate"] is True


def test_report_from_dict_names_missing_keys(report: CostReport) -> None:
    data = report.to_dict()
    del data["totals"]
    with pytest.raises(HWError, match=r"lacks keys \['totals'\]"):
        CostReport.from_dict(data)
    data = report.to_dict()
    del data["layers"][1]["bops"]
    with pytest.raises(HWError, match=r"layer 1 of the cost report has keys"):
        CostReport.from_dict(data)


def test_value_lists_quantities_for_an_unknown_name(report: CostReport) -> None:
    assert report.value("ops") == report.totals["ops"]
    with pytest.raises(HWError, match=r"unknown cost quantity 'flops'; allowed: params, nonzero_params"):
        report.value("flops")


def test_totals_are_the_sum_of_layer_rows(report: CostReport) -> None:
    for name in (
        "params",
        "nonzero_params",
        "multiplications",
        "ops",
        "bops",
        "multipliers",
        "dsp",
        "lut",
        "bram",
    ):
        assert report.value(name) == pytest.approx(sum(getattr(layer, name) for layer in report.layers))


@pytest.mark.parametrize(
    ("text", "quantity", "operator", "limit"),
    [
        ("bops <= 50000", "bops", "<=", 50000.0),
        ("  ops<6544 ", "ops", "<", 6544.0),
        ("latency_ns >= 1.5e2", "latency_ns", ">=", 150.0),
        ("dsp > -1", "dsp", ">", -1.0),
    ],
)
def test_budget_parse(text: str, quantity: str, operator: str, limit: float) -> None:
    budget = Budget.parse(text)
    assert (budget.quantity, budget.operator, budget.limit) == (quantity, operator, limit)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("flops <= 10", "names unknown quantity 'flops'; allowed: params"),
        ("bops == 10", "is not '<quantity> <op> <number>'"),
        ("bops <= ten", "has limit 'ten', which is not a number"),
        ("bops <= nan", "has limit NaN"),
        ("", "is not '<quantity> <op> <number>'"),
    ],
)
def test_budget_parse_errors_name_the_text(text: str, fragment: str) -> None:
    with pytest.raises(HWError) as error:
        Budget.parse(text)
    assert repr(text) in str(error.value) and fragment in str(error.value)


def test_budget_check(report: CostReport) -> None:
    ops = report.value("ops")
    assert Budget.parse(f"ops <= {ops:.0f}").check(report) is None
    assert Budget.parse(f"ops < {ops:.0f}").check(report) == f"ops = {ops:.0f} exceeds budget ops < {ops:.0f}"
    assert (
        Budget.parse("ops >= 100000").check(report) == f"ops = {ops:.0f} falls short of budget ops >= 100000"
    )
    assert Budget.parse("latency_ns > 0").check(report) is None
    assert str(Budget.parse("bops <= 5e4")) == "bops <= 50000"


def test_budget_constructor_validates() -> None:
    with pytest.raises(HWError, match="unknown budget quantity 'area'"):
        Budget("area", "<=", 1.0)
    with pytest.raises(HWError, match="unknown budget operator '=='"):
        Budget("ops", "==", 1.0)
    assert set(COST_QUANTITIES) >= {Budget.parse(f"{name} <= 1").quantity for name in COST_QUANTITIES}
