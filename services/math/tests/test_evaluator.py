"""The safe evaluator: arithmetic works, everything else is refused quickly."""

from __future__ import annotations

import time

import pytest
from fastmcp.exceptions import ToolError

from math_service.evaluator import MAX_DEPTH, MAX_EXPRESSION_LENGTH, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-3 ** 2", -9),
        ("2 ** -1", 0.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("10 / 4", 2.5),
        ("+5 - -5", 10),
        ("1e3 + 0.5", 1000.5),
        ("abs(-2.5)", 2.5),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("sqrt(2) ** 2", pytest.approx(2.0)),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log(8, 2)", pytest.approx(3.0)),
        ("log10(1000)", pytest.approx(3.0)),
        ("2 ** 100", 2**100),
    ],
)
def test_arithmetic(expression, expected):
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "unsupported call"),
        ("x + 1", "name 'x'"),
        ("(1).real", "attribute access '.real'"),
        ("'a' * 3", "constant 'a'"),
        ("True + 1", "constant True"),
        ("[1, 2]", "List"),
        ("1 if 1 else 2", "IfExp"),
        ("1 < 2", "Compare"),
        ("1 & 2", "BitAnd"),
        ("not 1", "Not"),
        ("lambda: 1", "Lambda"),
        ("sqrt(x=4)", "keyword"),
        ("sqrt()", "takes 1 argument(s), got 0"),
        ("round(1, 2, 3)", "takes 1 to 2 argument(s), got 3"),
        ("eval('1')", "unsupported call to name 'eval'"),
        ("1 +", "invalid expression syntax"),
        ("", "empty"),
        ("1j * 2", "constant 1j"),
        ("sqrt(-1)", "square root of a negative number"),
        ("log(0)", "non-positive"),
        ("log(8, 1)", "base must be positive and not 1"),
        ("5 % 0", "modulo by zero"),
        ("5 // 0", "division by zero"),
        ("exp(1000)", "too large"),
        ("1e308 * 10", "too large to represent"),
        ("1e999", "too large to represent"),
        ("10 ** 400 * 1.0", "too large to represent"),
    ],
)
def test_refusals(expression, message):
    with pytest.raises(ToolError, match=None) as excinfo:
        evaluate(expression)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9**9",
        "9**9**9",
        "2**100000",
        "(10**1000) * (10**1000)",
        "10**1000 * 10**1000 * 10**1000",
    ],
)
def test_huge_results_are_refused_quickly(expression):
    started = time.perf_counter()
    with pytest.raises(ToolError, match="too large"):
        evaluate(expression)
    assert time.perf_counter() - started < 0.5


def test_length_is_bounded():
    with pytest.raises(ToolError, match="too long"):
        evaluate("1+" * MAX_EXPRESSION_LENGTH + "1")


def test_nesting_is_bounded():
    with pytest.raises(ToolError, match="nested too deeply"):
        evaluate(
            "(" * (MAX_DEPTH + 5)
            + "1"
            + ")" * (MAX_DEPTH + 5)
            + "+1" * 0
            + "-" * (MAX_DEPTH + 1)
            + "1"
        )


def test_deep_unary_chain_is_bounded():
    with pytest.raises(ToolError, match="nested too deeply"):
        evaluate("-" * (MAX_DEPTH + 1) + "1")
