"""A safe arithmetic evaluator over Python's `ast`, never `eval`.

Accepted: numbers, + - * / // % **, parentheses, unary +/-, and calls to a fixed
set of named functions. Anything else (names, attributes, subscripts, strings,
other calls, comprehensions...) is refused with the offending construct named.
Input length, nesting depth and result size are bounded, so `9**9**9**9` is
refused in microseconds instead of exhausting memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from fastmcp.exceptions import ToolError

from math_service.numbers import MAX_INT_BITS, Number, checked, divide, power, sqrt

MAX_EXPRESSION_LENGTH = 500
MAX_DEPTH = 40


def _floor_div(a: Number, b: Number) -> Number:
    if b == 0:
        raise ToolError("division by zero")
    return checked(a // b)


def _mod(a: Number, b: Number) -> Number:
    if b == 0:
        raise ToolError("modulo by zero")
    return checked(a % b)


def _log(value: Number, base: Number | None = None) -> float:
    if value <= 0:
        raise ToolError(f"logarithm of a non-positive number ({value}) is undefined")
    if base is None:
        return math.log(value)
    if base <= 0 or base == 1:
        raise ToolError(f"logarithm base must be positive and not 1 (got {base})")
    return math.log(value, base)


def _log10(value: Number) -> float:
    return _log(value, 10)


def _exp(value: Number) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        raise ToolError("result is too large to represent (overflow)") from None


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return checked(round(value))
    if not float(digits).is_integer() or abs(digits) > 100:
        raise ToolError("round() digits must be a whole number between -100 and 100")
    return checked(round(value, int(digits)))


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: divide,
    ast.FloorDiv: _floor_div,
    ast.Mod: _mod,
    ast.Pow: power,
}

_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}

FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    # name: (function, minimum arguments, maximum arguments)
    "sqrt": (sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "exp": (_exp, 1, 1),
    "log": (_log, 1, 2),
    "log10": (_log10, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "min": (min, 1, 100),
    "max": (max, 1, 100),
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    if isinstance(node, ast.Constant):
        return f"constant {node.value!r}"
    return type(node).__name__


class _Evaluator:
    def __init__(self) -> None:
        self.depth = 0

    def eval(self, node: ast.AST) -> Number:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
        try:
            return checked(self._eval(node))
        finally:
            self.depth -= 1

    def _eval(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ToolError(f"unsupported {_describe(node)}: only numbers are allowed")
            return value
        if isinstance(node, ast.BinOp):
            binary = _BINARY.get(type(node.op))
            if binary is None:
                raise ToolError(f"unsupported operator {type(node.op).__name__}")
            left, right = self.eval(node.left), self.eval(node.right)
            try:
                return binary(left, right)
            except OverflowError:
                raise ToolError("result is too large to represent (overflow)") from None
        if isinstance(node, ast.UnaryOp):
            unary = _UNARY.get(type(node.op))
            if unary is None:
                raise ToolError(f"unsupported operator {type(node.op).__name__}")
            return unary(self.eval(node.operand))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ToolError(f"unsupported {_describe(node)} in expression")

    def _call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ToolError(
                f"unsupported call to {_describe(node.func)}; allowed functions: {allowed}"
            )
        if node.keywords:
            raise ToolError(f"{node.func.id}() takes no keyword arguments")
        function, least, most = FUNCTIONS[node.func.id]
        if not least <= len(node.args) <= most:
            raise ToolError(
                f"{node.func.id}() takes {least}"
                + (f" to {most}" if most != least else "")
                + f" argument(s), got {len(node.args)}"
            )
        args = [self.eval(arg) for arg in node.args]
        try:
            return function(*args)
        except (OverflowError, ValueError) as exc:
            raise ToolError(f"{node.func.id}() failed: {exc}") from None


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression safely, raising ToolError on anything else."""
    text = expression.strip()
    if not text:
        raise ToolError("expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ToolError(
            f"expression is too long ({len(text)} characters; at most {MAX_EXPRESSION_LENGTH})"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression syntax: {exc.msg} (at column {exc.offset})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolError("expression cannot be parsed (too complex)") from None
    return _Evaluator().eval(tree.body)


__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_EXPRESSION_LENGTH", "MAX_INT_BITS", "evaluate"]
