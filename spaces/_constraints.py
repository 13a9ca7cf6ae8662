"""Feasibility rules over a canonical config.

Three kinds, all `Constraint`:

- a Python predicate: ``Constraint(lambda c: c["conv0_filters"] <= 32, "first layer at most 32 filters")``
  (called with the canonical config: inactive parameters are absent; not serialisable);
- an expression (YAML ``{expr: "...", reason: "..."}``) in a small safe language: parameter names,
  numbers, strings, True/False, lists/tuples of those, ``+ - * / // % **``, comparisons (also chained and
  ``in``/``not in``), ``and``/``or``/``not``, ``x if cond else y`` and the functions ``min``, ``max``,
  ``abs``. An expression only applies when every parameter it names is active; otherwise it is satisfied
  (so ``conv1_filters >= conv0_filters`` constrains configs with two conv layers and no others);
- a named built-in (YAML ``{builtin: NAME, ...options}``), see ``BUILTIN_CONSTRAINTS``:
  ``conv_shape`` (option ``input_size``, default 8): the conv stack described by ``n_conv`` and
  ``conv<i>_kernel/_stride/_pool`` must keep every feature map at least 1x1; the reason names the layer;
  ``strip_shape`` (option ``width``, default 384): the same along the strips of a ``strip_cnn``;
  ``conv_coverage`` (no options): every conv layer's stride is at most its kernel, so its windows leave no
  gaps between them (a kernel-1 stride-4 layer reads 1 pixel in 16, and a model cannot learn what it never
  sees; benchmarks/collapse.txt). The last windows may still stop short of the edge (kernel 5, stride 4 on
  8 rows never reads row 7): that costs a row, not the input.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

from . import _shapes
from ._errors import SpaceError

Check = Callable[[Mapping[str, Any]], str | None]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs}
# Keeps ``9 ** 9 ** 9`` from hanging the process: no search constraint needs a larger exponent.
_MAX_EXPONENT = 64


class _Expression:
    """A parsed expression; construction rejects every syntax outside the documented language."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise SpaceError(f"constraint expression must be a non-empty string, got {text!r}")
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as error:
            raise SpaceError(f"constraint expression {text!r} is not valid: {error.msg}") from None
        self.text = text
        self.names: set[str] = set()
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            if node.id not in _FUNCTIONS:
                self.names.add(node.id)
            return
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
                raise SpaceError(
                    f"constraint expression {self.text!r}: only calls to {sorted(_FUNCTIONS)} with positional "
                    "arguments are allowed"
                )
            for argument in node.args:
                self._check(argument)
            return
        allowed = (
            ast.BoolOp,
            ast.BinOp,
            ast.UnaryOp,
            ast.Compare,
            ast.IfExp,
            ast.Constant,
            ast.Tuple,
            ast.List,
            ast.Load,
            ast.And,
            ast.Or,
            *_BINARY,
            *_UNARY,
            *_COMPARE,
        )
        if not isinstance(node, allowed) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str | bool)
        ):
            raise SpaceError(
                f"constraint expression {self.text!r}: {type(node).__name__} is not allowed; use parameter "
                "names, numbers, strings, arithmetic, comparisons, and/or/not, if-else and min/max/abs"
            )
        for child in ast.iter_child_nodes(node):
            self._check(child)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return self._eval(self.tree, values)

    def _eval(self, node: ast.AST, values: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self._eval(item, values) for item in node.elts)
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(item, values) for item in node.values)
            return any(self._eval(item, values) for item in node.values)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, values))
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, values), self._eval(node.right, values)
            if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
                raise SpaceError(
                    f"constraint expression {self.text!r}: exponent {right} exceeds {_MAX_EXPONENT}"
                )
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, values) else node.orelse
            return self._eval(branch, values)
        if isinstance(node, ast.Call):
            function = _FUNCTIONS[cast(ast.Name, node.func).id]  # _check admitted only these calls
            return function(*(self._eval(a, values) for a in node.args))
        node = cast(ast.Compare, node)  # the only node type _check admits that is not handled above
        left = self._eval(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True


def _conv_shape(input_size: int = 8) -> Check:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise SpaceError(
            f"builtin constraint conv_shape: input_size must be a positive integer, got {input_size!r}"
        )

    def check(config: Mapping[str, Any]) -> str | None:
        if "n_conv" not in config:
            return None
        return _shapes.problem(input_size, _shapes.conv_layers(config))

    return check


def _strip_shape(width: int = 384) -> Check:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise SpaceError(f"builtin constraint strip_shape: width must be a positive integer, got {width!r}")

    def check(config: Mapping[str, Any]) -> str | None:
        from ._nets import strip_problem

        if "n_conv" not in config:
            return None
        return strip_problem(width, _shapes.conv_layers(config))

    return check


def _conv_coverage() -> Check:
    def check(config: Mapping[str, Any]) -> str | None:
        if "n_conv" not in config:
            return None
        for i, layer in enumerate(_shapes.conv_layers(config)):
            if layer.stride > layer.kernel:
                return (
                    f"conv{i}: stride {layer.stride} > kernel {layer.kernel} skips rows and columns of its "
                    "input (the layer never reads them)"
                )
        return None

    return check


# name -> (factory taking the YAML options, parameters the space must define)
BUILTIN_CONSTRAINTS: dict[str, tuple[Callable[..., Check], frozenset[str]]] = {
    "conv_shape": (_conv_shape, frozenset({"n_conv"})),
    "strip_shape": (_strip_shape, frozenset({"n_conv"})),
    "conv_coverage": (_conv_coverage, frozenset({"n_conv"})),
}


class Constraint:
    """A feasibility rule: ``violation(config)`` returns None or the human reason the config is infeasible.

    ``Constraint(predicate, reason)`` wraps a Python callable that returns True for feasible configs; use
    ``Constraint.expression`` / ``Constraint.builtin`` / ``Constraint.from_dict`` for serialisable ones.
    """

    def __init__(self, predicate: Callable[[Mapping[str, Any]], bool], reason: str) -> None:
        if not callable(predicate):
            raise SpaceError(f"constraint predicate must be callable, got {predicate!r}")
        if not isinstance(reason, str) or not reason:
            raise SpaceError(f"constraint reason must be a non-empty string, got {reason!r}")
        self._init(lambda config: None if predicate(config) else reason, reason, None, frozenset())

    def _init(
        self, check: Check, reason: str, spec: dict[str, Any] | None, parameters: frozenset[str]
    ) -> None:
        self.reason = reason
        self.parameters = parameters  # names the rule reads, checked against the space (empty: unknown)
        self._check = check
        self._spec = spec

    @classmethod
    def _make(cls, check: Check, reason: str, spec: dict[str, Any], parameters: frozenset[str]) -> Constraint:
        constraint = cls.__new__(cls)
        constraint._init(check, reason, spec, parameters)
        return constraint

    @classmethod
    def expression(cls, text: str, reason: str | None = None) -> Constraint:
        """A constraint from the safe expression language (module docstring); feasible when it is true.

        Raises SpaceError for syntax outside the language. The reason defaults to "violates <text>".
        """
        parsed = _Expression(text)
        reason = reason if reason is not None else f"violates {text}"

        def check(config: Mapping[str, Any]) -> str | None:
            if not parsed.names <= config.keys():
                return None
            try:
                return None if parsed.evaluate(config) else reason
            except (TypeError, ArithmeticError) as error:
                raise SpaceError(f"constraint {text!r} failed on {dict(config)!r}: {error}") from None

        return cls._make(check, reason, {"expr": text, "reason": reason}, frozenset(parsed.names))

    @classmethod
    def builtin(cls, name: str, **options: Any) -> Constraint:
        """A named built-in rule (``BUILTIN_CONSTRAINTS``) with its options; SpaceError for unknown names or
        options."""
        if name not in BUILTIN_CONSTRAINTS:
            raise SpaceError(f"unknown builtin constraint {name!r}; allowed: {sorted(BUILTIN_CONSTRAINTS)}")
        factory, parameters = BUILTIN_CONSTRAINTS[name]
        try:
            check = factory(**options)
        except TypeError as error:
            raise SpaceError(f"builtin constraint {name!r}: bad options {options!r} ({error})") from None
        return cls._make(check, f"builtin {name}", {"builtin": name, **options}, parameters)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Constraint:
        """``{expr: TEXT, reason: TEXT?}`` or ``{builtin: NAME, <options>}``; SpaceError otherwise."""
        if not isinstance(spec, Mapping):
            raise SpaceError(f"a constraint must be a mapping with 'expr' or 'builtin', got {spec!r}")
        if "expr" in spec:
            unknown = set(spec) - {"expr", "reason"}
            if unknown:
                raise SpaceError(
                    f"unknown key(s) {sorted(unknown)} in an expression constraint; allowed: expr, reason"
                )
            return cls.expression(spec["expr"], spec.get("reason"))
        if "builtin" in spec:
            options = {k: v for k, v in spec.items() if k != "builtin"}
            return cls.builtin(spec["builtin"], **options)
        raise SpaceError(f"a constraint needs 'expr' or 'builtin', got keys {sorted(spec)}")

    def violation(self, config: Mapping[str, Any]) -> str | None:
        """None when ``config`` satisfies the rule, else the reason."""
        return self._check(config)

    def to_dict(self) -> dict[str, Any]:
        """The serialisable form; SpaceError for a Python predicate (it has none)."""
        if self._spec is None:
            raise SpaceError(
                f"constraint {self.reason!r} is a Python callable and cannot be serialised; "
                "use Constraint.expression or Constraint.builtin"
            )
        return dict(self._spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constraint):
            return NotImplemented
        if self._spec is None or other._spec is None:
            return self is other
        return self._spec == other._spec

    def __hash__(self) -> int:
        return id(self) if self._spec is None else hash(repr(sorted(self._spec.items())))

    def __repr__(self) -> str:
        return (
            f"Constraint({self._spec!r})"
            if self._spec is not None
            else f"Constraint(<callable>, {self.reason!r})"
        )
