"""Evaluate a whole arithmetic expression in one call."""

from __future__ import annotations

from typing import Annotated

from fastmcp.tools import tool
from pydantic import Field

from math_service import evaluator
from math_service.numbers import Number
from math_service.tools.arithmetic import PURE


@tool(annotations={"title": "Evaluate expression", **PURE})
def evaluate(
    expression: Annotated[
        str,
        Field(
            description=(
                "An arithmetic expression, e.g. '(2 + 3) * 4 ** 2 / sqrt(16)'. Numbers, "
                "+ - * / // % **, parentheses and the functions "
                + ", ".join(sorted(evaluator.FUNCTIONS))
                + ". No variables."
            ),
            max_length=evaluator.MAX_EXPRESSION_LENGTH,
        ),
    ],
) -> Number:
    """Evaluate an arithmetic expression safely and return its numeric value.

    Prefer this for multi-step arithmetic. Division by zero, oversized results and
    anything that is not plain arithmetic are reported as errors.
    """
    return evaluator.evaluate(expression)
