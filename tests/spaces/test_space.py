"""Space: conditions, validation, constraints, YAML/JSON schema, grids, hashing, sampling."""

from __future__ import annotations

import hashlib
import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spaces import BoolParam, ChoiceParam, Constraint, FloatParam, Infeasible, IntParam, Space, SpaceError

EXAMPLE_YAML = textwrap.dedent(
    """
    name: tiny
    parameters:
      n_conv: {type: int, low: 0, high: 2}
      conv0_filters: {type: choice, choices: [4, 8, 16], ordered: true, active_if: {n_conv: {">": 0}}}
      conv0_kernel: {type: choice, choices: [1, 3], active_if: {n_conv: {">": 0}}}
      conv1_filters: {type: choice, choices: [4, 8, 16], ordered: true, active_if: {n_conv: {">": 1}}}
      conv1_kernel: {type: choice, choices: [1, 3], active_if: {n_conv: {">": 1}}}
      decoder: {type: choice, choices: [convtranspose, upsample], active_if: {n_conv: {">=": 1}}}
      lr: {type: float, low: 1e-4, high: 1.0e-2, log: true}
      sparsity: {type: float, low: 0.0, high: 0.5, step: 0.25}
      quantize: {type: bool}
      weight_bits: {type: int, low: 3, high: 4, active_if: {quantize: true}}
    constraints:
      - {expr: "conv1_filters >= conv0_filters", reason: "filters must not shrink"}
      - {builtin: conv_shape, input_size: 8}
    """
)


@pytest.fixture
def tiny() -> Space:
    return Space.from_yaml(EXAMPLE_YAML)


def test_validate_returns_a_new_canonical_dict_in_declaration_order(tiny: Space) -> None:
    raw = {
        "quantize": False,
        "lr": 0.001,
        "n_conv": 1.0,  # an optimiser's float
        "conv0_filters": np.int64(8),
        "conv0_kernel": 3,
        "conv1_filters": 4,  # inactive (n_conv = 1): dropped
        "decoder": "upsample",
        "sparsity": 0.25,
        "weight_bits": 3,  # inactive (quantize off): dropped
    }
    canonical = tiny.validate(raw)
    assert canonical == {
        "n_conv": 1,
        "conv0_filters": 8,
        "conv0_kernel": 3,
        "decoder": "upsample",
        "lr": 0.001,
        "sparsity": 0.25,
        "quantize": False,
    }
    assert list(canonical) == [
        "n_conv",
        "conv0_filters",
        "conv0_kernel",
        "decoder",
        "lr",
        "sparsity",
        "quantize",
    ]
    assert type(canonical["n_conv"]) is int and type(canonical["conv0_filters"]) is int
    assert tiny.validate(canonical) == canonical and tiny.validate(canonical) is not canonical
    assert "conv1_filters" in raw  # the input is not modified


def test_validate_errors_name_the_parameter_value_and_allowed(tiny: Space) -> None:
    base = {"n_conv": 0, "lr": 0.001, "sparsity": 0.0, "quantize": False}
    with pytest.raises(
        SpaceError, match=r"unknown parameter\(s\) \['lr_rate'\]; this space defines \['n_conv'"
    ):
        tiny.validate({**base, "lr_rate": 0.1})
    with pytest.raises(
        SpaceError, match=r"missing value for active parameter 'conv0_filters' \(active because n_conv > 0\)"
    ):
        tiny.validate({**base, "n_conv": 1})
    with pytest.raises(SpaceError, match=r"missing value for active parameter 'lr'$"):
        tiny.validate({k: v for k, v in base.items() if k != "lr"})
    with pytest.raises(SpaceError, match=r"parameter 'n_conv': expected an integer in \[0, 2\], got 3"):
        tiny.validate({**base, "n_conv": 3})
    with pytest.raises(SpaceError, match=r"parameter 'quantize': expected true or false, got 'yes'"):
        tiny.validate({**base, "quantize": "yes"})
    with pytest.raises(SpaceError, match="a config must be a mapping"):
        tiny.validate([("n_conv", 0)])  # type: ignore[arg-type]


def test_constraints_make_configs_infeasible_with_reasons(tiny: Space) -> None:
    config = {
        "n_conv": 2,
        "conv0_filters": 16,
        "conv0_kernel": 1,
        "conv1_filters": 4,
        "conv1_kernel": 1,
        "decoder": "convtranspose",
        "lr": 0.001,
        "sparsity": 0.5,
        "quantize": True,
        "weight_bits": 4,
    }
    assert tiny.validate(config) == Infeasible("filters must not shrink")
    # With one conv layer the expression names an inactive parameter and does not apply.
    one_layer = {k: v for k, v in config.items() if not k.startswith("conv1")} | {"n_conv": 1}
    assert isinstance(tiny.validate(one_layer), dict)


def test_conditions_on_inactive_parents_deactivate_children() -> None:
    space = Space(
        [
            BoolParam("quantize"),
            IntParam("bits", 2, 8, active_if={"quantize": True}),
            BoolParam("per_channel", active_if={"bits": {">=": 4}}),
        ]
    )
    assert space.validate({"quantize": False, "bits": 6, "per_channel": True}) == {"quantize": False}
    assert space.validate({"quantize": True, "bits": 3}) == {"quantize": True, "bits": 3}
    assert space.validate({"quantize": True, "bits": 6, "per_channel": False}) == {
        "quantize": True,
        "bits": 6,
        "per_channel": False,
    }


def test_children_may_be_declared_before_their_parents() -> None:
    space = Space([IntParam("units", 1, 4, active_if={"dense": True}), BoolParam("dense")])
    assert [p.name for p in space.evaluation_order] == ["dense", "units"]
    assert space.validate({"units": 2, "dense": True}) == {"units": 2, "dense": True}
    assert list(space.validate({"dense": True, "units": 2})) == ["units", "dense"]  # declaration order


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([IntParam("a", 0, 1), IntParam("a", 0, 2)], "parameter 'a' is defined twice"),
        (
            [IntParam("a", 0, 1, active_if={"b": [1]})],
            r"parameter 'a': active_if.b: parent 'b' is not a parameter; defined: \['a'\]",
        ),
        (
            [ChoiceParam("d", ["x", "y"]), IntParam("a", 0, 1, active_if={"d": ["z"]})],
            r"active_if.d: 'z' is not a value of 'd'",
        ),
        (
            [ChoiceParam("d", ["x", "y"]), IntParam("a", 0, 1, active_if={"d": {">": 1}})],
            r"active_if.d: '>' needs a numeric parent, 'd' is not numeric",
        ),
        (
            [IntParam("n", 0, 3), IntParam("a", 0, 1, active_if={"n": {">": "1"}})],
            r"active_if.n: '>' needs a number, got '1'",
        ),
        (
            [
                IntParam("a", 0, 1, active_if={"c": [1]}),
                IntParam("b", 0, 1, active_if={"a": [1]}),
                IntParam("c", 0, 1, active_if={"b": [1]}),
                IntParam("d", 0, 1),
            ],
            r"conditions form a cycle: a -> b -> c -> a",
        ),
        ([IntParam("a", 0, 1, active_if={"a": [1]})], r"conditions form a cycle: a -> a"),
    ],
)
def test_space_definition_errors(params: list, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        Space(params)


def test_constraint_naming_an_unknown_parameter_is_rejected() -> None:
    with pytest.raises(SpaceError, match=r"constraints\[0\] .* names unknown parameter\(s\) \['b'\]"):
        Space([IntParam("a", 0, 1)], [Constraint.expression("a + b < 2")])
    with pytest.raises(SpaceError, match=r"names unknown parameter\(s\) \['n_conv'\]"):
        Space([IntParam("a", 0, 1)], [Constraint.builtin("conv_shape")])


def test_python_constraints() -> None:
    space = Space(
        [IntParam("a", 0, 3), IntParam("b", 0, 3)], [Constraint(lambda c: c["a"] + c["b"] <= 3, "a+b<=3")]
    )
    assert space.validate({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert space.validate({"a": 2, "b": 2}) == Infeasible("a+b<=3")
    with pytest.raises(SpaceError, match="is a Python callable and cannot be serialised"):
        space.to_dict()
    with pytest.raises(SpaceError, match="constraint reason must be a non-empty string"):
        Constraint(lambda c: True, "")


def test_every_violated_constraint_is_reported() -> None:
    space = Space(
        [IntParam("a", 0, 9)],
        [Constraint.expression("a < 5", "a too big"), Constraint.expression("a % 2 == 0", "a odd")],
    )
    assert space.validate({"a": 7}) == Infeasible("a too big; a odd")
    assert space.validate({"a": 3}) == Infeasible("a odd")


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ("a * 2 + b ** 2 <= 10", {"a": 3, "b": 2}, True),
        ("a * 2 + b ** 2 <= 10", {"a": 4, "b": 2}, False),
        ("1 <= a < b", {"a": 1, "b": 2}, True),
        ("1 <= a < b", {"a": 2, "b": 2}, False),
        ("kind in ('x', 'y') and not flag", {"kind": "x", "flag": False}, True),
        ("kind not in ['x']", {"kind": "x"}, False),
        ("max(a, b) // 2 == abs(-1)", {"a": 3, "b": 2}, True),
        ("(a if flag else b) == 3", {"a": 3, "b": 1, "flag": True}, True),
        ("a / b > 1.5 or a == 0", {"a": 4, "b": 2}, True),
    ],
)
def test_expression_language(expr: str, values: dict, expected: bool) -> None:
    constraint = Constraint.expression(expr, "r")
    assert (constraint.violation(values) is None) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os').system('true')", r"only calls to \['abs', 'max', 'min'\]"),
        ("a.real > 0", "Attribute is not allowed"),
        ("[x for x in a]", "ListComp is not allowed"),
        ("a[0] > 1", "Subscript is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("a >", "is not valid"),
        ("", "must be a non-empty string"),
        ("a == None", "Constant is not allowed"),
    ],
)
def test_expression_language_rejects_everything_else(expr: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        Constraint.expression(expr)


def test_expression_runtime_errors_and_huge_powers_are_space_errors() -> None:
    with pytest.raises(SpaceError, match=r"constraint 'a / b > 1' failed on .*division by zero"):
        Constraint.expression("a / b > 1").violation({"a": 1, "b": 0})
    with pytest.raises(SpaceError, match="exponent 99 exceeds 64"):
        Constraint.expression("a ** 99 > 1").violation({"a": 9})
    assert Constraint.expression("a > 1").violation({"a": 0}) == "violates a > 1"


def test_builtin_and_dict_constraint_errors() -> None:
    with pytest.raises(
        SpaceError,
        match=r"unknown builtin constraint 'shape'; allowed: \['conv_coverage', 'conv_shape', 'strip_shape'\]",
    ):
        Constraint.builtin("shape")
    with pytest.raises(SpaceError, match=r"builtin constraint 'conv_shape': bad options \{'size': 8\}"):
        Constraint.builtin("conv_shape", size=8)
    with pytest.raises(SpaceError, match="input_size must be a positive integer, got 0"):
        Constraint.builtin("conv_shape", input_size=0)
    with pytest.raises(SpaceError, match=r"unknown key\(s\) \['why'\] in an expression constraint"):
        Constraint.from_dict({"expr": "a > 1", "why": "x"})
    with pytest.raises(SpaceError, match="a constraint needs 'expr' or 'builtin'"):
        Constraint.from_dict({"rule": "a > 1"})


# -- YAML schema -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "parameters: {a: {type: int, low: 0, high: 1}}\nextra: 1",
            r"unknown key\(s\) \['extra'\] in the space",
        ),
        ("parameters: {}", "parameters: must be a non-empty mapping"),
        (
            "parameters: {a: {type: integer, low: 0, high: 1}}",
            r"parameters.a.type: must be one of \['int', 'float'",
        ),
        (
            "parameters: {a: {type: int, low: 0, hi: 1}}",
            r"parameters.a: unknown key\(s\) \['hi'\] for a int parameter",
        ),
        ("parameters: {a: {type: int, low: 0}}", r"parameters.a: missing key\(s\) \['high'\]"),
        (
            "parameters: {a: {type: int, low: 5, high: 1}}",
            r"parameters.a: parameter 'a': low \(5\) must be <= high",
        ),
        (
            "parameters: {a: {type: int, low: 0.5, high: 1}}",
            r"parameters.a: .*low must be an integer, got 0.5",
        ),
        (
            "parameters: {a: {type: float, low: 0, high: 1, log: true}}",
            r"parameters.a: .*log scale needs low > 0",
        ),
        (
            "parameters: {a: {type: float, low: abc, high: 1}}",
            r"parameters.a: .*low must be a finite number, got 'abc'",
        ),
        (
            "parameters: {a: {type: int, low: 1, high: 2, log: yes please}}",
            r"parameters.a.log: must be true or false",
        ),
        ("parameters: {a: {type: choice, choices: []}}", r"parameters.a: .*choices must not be empty"),
        (
            "parameters: {a: {type: bool, active_if: {b: [true]}}}",
            r"active_if.b: parent 'b' is not a parameter",
        ),
        (
            "parameters:\n  a: {type: bool, active_if: {b: [true]}}\n  b: {type: bool, active_if: {a: [true]}}",
            "conditions form a cycle",
        ),
        (
            "parameters: {a: {type: bool}}\nconstraints: [{expr: 'a and c'}]",
            r"names unknown parameter\(s\) \['c'\]",
        ),
        (
            "parameters: {a: {type: bool}}\nconstraints: [{builtin: nope}]",
            r"constraints\[0\]: unknown builtin",
        ),
        ("parameters: {a: [1, 2", "space YAML is not valid"),
        ("- 1\n- 2", "a space must be a mapping"),
    ],
)
def test_yaml_errors_name_the_key_path(text: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        Space.from_yaml(text)


def test_yaml_file_and_round_trips(tiny: Space, tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(EXAMPLE_YAML)
    assert Space.from_yaml(path) == tiny
    assert Space.from_yaml(str(path)) == tiny
    assert Space.from_dict(tiny.to_dict()) == tiny
    assert Space.from_json(tiny.to_json()) == tiny
    assert tiny.to_dict()["parameters"]["lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert tiny.to_dict()["constraints"][1] == {"builtin": "conv_shape", "input_size": 8}
    with pytest.raises(SpaceError, match=r"space file '.*missing\.yaml' does not exist"):
        Space.from_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(SpaceError, match="space JSON is not valid"):
        Space.from_json("{")


# -- grids ---------------------------------------------------------------------------------------
def _brute_force_grid(space: Space, float_points: int) -> list[dict]:
    """Independent reference: the full product of all values, canonicalised, de-duplicated."""
    values = [p.grid_values(float_points) for p in space.params]
    seen: dict[str, dict] = {}
    for combo in itertools.product(*values):
        canonical = space.canonicalize(dict(zip(space.names, combo, strict=True)))
        seen.setdefault(json.dumps(canonical, sort_keys=True), canonical)
    return list(seen.values())


def test_grid_enumerates_each_canonical_config_once(tiny: Space) -> None:
    configs = list(tiny.grid(float_points=2))
    expected = _brute_force_grid(tiny, 2)
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert sorted(map(key, configs)) == sorted(map(key, expected))
    assert len(configs) == tiny.grid_size(float_points=2) == len(expected)
    # Inactive parameters are not expanded: n_conv = 0 configs carry no conv parameters.
    assert all("conv0_filters" not in c for c in configs if c["n_conv"] == 0)
    assert configs[0] == {"n_conv": 0, "lr": 1e-4, "sparsity": 0.0, "quantize": False}
    assert configs == list(tiny.grid(float_points=2))  # deterministic order


def test_grid_needs_float_points_for_continuous_floats(tiny: Space) -> None:
    with pytest.raises(SpaceError, match=r"parameter 'lr' is a continuous range .* give float_points"):
        tiny.grid()
    with pytest.raises(SpaceError, match="parameter 'lr' is a continuous range"):
        tiny.grid_size()
    stepped = Space([FloatParam("s", 0.0, 1.0, step=0.5), BoolParam("b")])
    assert list(stepped.grid()) == [{"s": s, "b": b} for s in (0.0, 0.5, 1.0) for b in (False, True)]


def test_grid_size_of_large_conditional_space_without_enumerating() -> None:
    params = [IntParam("n", 0, 5)]
    params += [IntParam(f"w{i}", 1, 100, active_if={"n": {">": i}}) for i in range(5)]
    space = Space(params)
    assert space.grid_size() == sum(100**k for k in range(6))


# -- hashing and sampling ------------------------------------------------------------------------
def test_config_hash_is_sha256_of_sorted_canonical_json(tiny: Space) -> None:
    config = {"n_conv": 0, "lr": 0.001, "sparsity": 0.25, "quantize": False}
    text = json.dumps(
        {"lr": 0.001, "n_conv": 0, "quantize": False, "sparsity": 0.25}, sort_keys=True, separators=(",", ":")
    )
    assert tiny.config_hash(config) == hashlib.sha256(text.encode()).hexdigest()
    # Golden value: the same in every process and version (stored in the trials table).
    assert tiny.config_hash(config) == "e9f053593952551b6a4b0473d55c7d00e52857d68578c8ade22213cbdeb884c5"
    reordered = {"quantize": False, "sparsity": 0.25 + 1e-15, "lr": 0.001, "n_conv": 0.0, "weight_bits": 3}
    assert tiny.config_hash(reordered) == tiny.config_hash(config)
    assert tiny.config_hash({**config, "lr": 0.002}) != tiny.config_hash(config)


def test_sample_returns_feasible_canonical_configs(tiny: Space) -> None:
    rng = np.random.default_rng(0)
    configs = [tiny.sample(rng) for _ in range(200)]
    for config in configs:
        assert tiny.validate(config) == config
    assert {c["n_conv"] for c in configs} == {0, 1, 2}
    assert all(c.get("conv1_filters", 99) >= c.get("conv0_filters", 0) for c in configs)
    again = np.random.default_rng(0)
    assert [tiny.sample(again) for _ in range(200)] == configs  # deterministic for a seed


def test_sample_returns_an_infeasible_draw_when_feasibility_is_rare(caplog: pytest.LogCaptureFixture) -> None:
    space = Space([IntParam("a", 0, 1000)], [Constraint.expression("a == 1000", "rare")])
    config = space.sample(np.random.default_rng(1), max_attempts=5)
    assert space.validate(config) == Infeasible("rare")
    assert "no feasible config in 5 draws" in caplog.text


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_property_sampled_configs_are_canonical_and_hash_stably(seed: int) -> None:
    space = Space.from_yaml(EXAMPLE_YAML)
    config = space.sample(np.random.default_rng(seed))
    canonical = space.validate(config)
    assert canonical == config
    assert list(canonical) == [n for n in space.names if n in canonical]
    assert json.loads(json.dumps(canonical)) == canonical  # JSON-safe for the store
    assert space.config_hash(config) == space.config_hash(dict(reversed(list(config.items()))))


def test_the_schema_example_in_the_module_docs_loads() -> None:
    from spaces import _space

    doc = _space.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\n\n", 1)[0]
    space = Space.from_yaml(textwrap.dedent(example))
    assert space.name == "tiny-econt" and len(space.constraints) == 2
    assert space.validate({"n_conv": 0, "lr": 1e-3, "sparsity": 0.1, "quantize": False}) == {
        "n_conv": 0,
        "lr": 1e-3,
        "sparsity": 0.1,
        "quantize": False,
    }
