"""Parameter types: inclusive bounds, coercion to the canonical type, and named errors."""

from __future__ import annotations

import numpy as np
import pytest

from spaces import BoolParam, ChoiceParam, FloatParam, IntParam, SpaceError


def test_int_bounds_are_inclusive_and_sampling_reaches_both_ends() -> None:
    param = IntParam("n", 0, 3)
    assert [param.coerce(v) for v in (0, 3)] == [0, 3]
    drawn = {param.sample(np.random.default_rng(seed)) for seed in range(200)}
    assert drawn == {0, 1, 2, 3}
    assert list(param.finite_domain()) == [0, 1, 2, 3]


def test_int_coercion_accepts_integral_values_only() -> None:
    param = IntParam("n", 0, 8, step=2)
    assert param.coerce(np.int64(4)) == 4 and type(param.coerce(np.int64(4))) is int
    assert param.coerce(6.0) == 6 and type(param.coerce(6.0)) is int
    for bad in (3, 2.5, True, "4", 10, -2):
        with pytest.raises(SpaceError, match=r"parameter 'n': expected an integer in \[0, 8\] in steps of 2"):
            param.coerce(bad)


def test_int_log_sampling_stays_in_range_and_favours_small_values() -> None:
    param = IntParam("units", 1, 128, log=True)
    draws = [param.sample(np.random.default_rng(seed)) for seed in range(400)]
    assert min(draws) >= 1 and max(draws) <= 128
    # log-uniform: half of the draws fall below sqrt(128) ~ 11
    assert 0.35 < np.mean(np.array(draws) <= 11) < 0.65


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 3, "high": 1}, r"low \(3\) must be <= high \(1\)"),
        ({"low": 0, "high": 4, "log": True}, r"log scale needs low >= 1, got low=0"),
        ({"low": 1, "high": 4, "step": 2}, r"high - low \(3\) must be a multiple of step \(2\)"),
        ({"low": 1, "high": 5, "step": 2, "log": True}, r"log scale needs step 1"),
        ({"low": 1.5, "high": 4}, r"low must be an integer, got 1.5"),
        ({"low": 0, "high": 4, "step": 0}, r"step must be >= 1, got 0"),
    ],
)
def test_int_definition_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        IntParam("n", **kwargs)


def test_float_bounds_inclusive_with_tolerance_for_rounding() -> None:
    param = FloatParam("lr", 1e-4, 1e-2, log=True)
    assert param.coerce(1e-2) == 1e-2 and param.coerce(1e-4) == 1e-4
    assert param.coerce(0.010000000000000002) == 1e-2  # an optimiser's exp(log(x)) round trip
    with pytest.raises(
        SpaceError, match=r"parameter 'lr': expected a number in \[0.0001, 0.01\], got 0.0101"
    ):
        param.coerce(0.0101)
    for bad in (float("nan"), float("inf"), "0.001", True):
        with pytest.raises(SpaceError, match="parameter 'lr'"):
            param.coerce(bad)
    assert type(FloatParam("x", 0, 1).coerce(1)) is float


def test_float_step_grid_canonicalises_rounding_noise() -> None:
    param = FloatParam("sparsity", 0.0, 0.9, step=0.1)
    assert param.finite_domain() == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert param.coerce(0.1 + 0.2) == 0.3
    assert param.coerce(3 * 0.3) == 0.9
    with pytest.raises(SpaceError, match=r"on a grid of step 0\.1, got 0\.25"):
        param.coerce(0.25)
    assert {param.sample(np.random.default_rng(s)) for s in range(300)} == set(param.finite_domain())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 1.0, "high": 0.5}, r"low \(1.0\) must be <= high \(0.5\)"),
        ({"low": 0.0, "high": 1.0, "log": True}, r"log scale needs low > 0, got low=0.0"),
        ({"low": 0.0, "high": 1.0, "step": 0.3}, r"must be a multiple of step \(0.3\)"),
        ({"low": 0.1, "high": 1.0, "step": 0.1, "log": True}, "log scale and step cannot be combined"),
        ({"low": 0.0, "high": float("inf")}, "high must be a finite number"),
    ],
)
def test_float_definition_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        FloatParam("x", **kwargs)


def test_float_grid_values() -> None:
    assert FloatParam("x", 0.0, 1.0).grid_values(3) == (0.0, 0.5, 1.0)
    assert FloatParam("x", 1e-4, 1e-2, log=True).grid_values(3) == pytest.approx((1e-4, 1e-3, 1e-2))
    with pytest.raises(SpaceError, match=r"parameter 'x' is a continuous range .* give float_points"):
        FloatParam("x", 0.0, 1.0).grid_values(None)
    with pytest.raises(SpaceError, match="float_points must be an integer >= 2, got 1"):
        FloatParam("x", 0.0, 1.0).grid_values(1)


def test_choice_coercion_returns_the_exact_choice_and_respects_types() -> None:
    param = ChoiceParam("filters", [2, 4, 8], ordered=True)
    assert param.coerce(4.0) == 4 and type(param.coerce(4.0)) is int
    assert param.coerce(np.int32(8)) == 8
    for bad in (True, "4", 3):
        with pytest.raises(SpaceError, match=r"parameter 'filters': expected one of \[2, 4, 8\]"):
            param.coerce(bad)
    flags = ChoiceParam("flag", [True, 1])  # bool and int are different values
    assert flags.coerce(True) is True and flags.coerce(1) == 1 and flags.coerce(1) is not True


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([], "choices must not be empty"),
        ("abc", "choices must be a list"),
        ([1, 1.0], "choice 1.0 is listed twice"),
        ([None], "choice None must be an int, a finite float, a string or a bool"),
        ([float("nan")], "choice nan must be"),
    ],
)
def test_choice_definition_errors(choices: object, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        ChoiceParam("c", choices)  # type: ignore[arg-type]


def test_bool_accepts_only_bools() -> None:
    param = BoolParam("pool")
    assert param.coerce(np.bool_(True)) is True
    for bad in (0, 1, "true", None):
        with pytest.raises(SpaceError, match="parameter 'pool': expected true or false"):
            param.coerce(bad)


def test_names_must_be_identifiers_and_conditions_normalise() -> None:
    with pytest.raises(SpaceError, match="must be a Python identifier"):
        IntParam("conv-0", 0, 1)
    param = BoolParam("w", active_if={"quantize": True, "n": {">=": 1, "<": 3}})
    assert param.active_if == {"quantize": [True], "n": {">=": 1, "<": 3}}
    assert [c.describe() for c in param.conditions] == ["quantize in [True]", "n >= 1", "n < 3"]
    with pytest.raises(SpaceError, match=r"unknown operator '=>' in active_if.n"):
        BoolParam("w", active_if={"n": {"=>": 1}})
    with pytest.raises(SpaceError, match=r"active_if\.n is an empty list"):
        BoolParam("w", active_if={"n": []})
