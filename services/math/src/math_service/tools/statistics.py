"""Descriptive statistics over a list of numbers."""

from __future__ import annotations

import math
import statistics
from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import tool
from pydantic import Field

from math_service.numbers import Number, checked
from math_service.tools.arithmetic import PURE

MAX_VALUES = 100_000

Values = Annotated[
    list[Number],
    Field(description="The data: a list of numbers", max_length=MAX_VALUES),
]


def _require(values: list[Number], least: int, what: str) -> None:
    if len(values) < least:
        raise ToolError(f"{what} needs at least {least} value(s), got {len(values)}")


@tool(annotations={"title": "Mean", **PURE})
def mean(values: Values) -> float:
    """Return the arithmetic mean (average) of a list of numbers."""
    _require(values, 1, "mean")
    count = len(values)
    try:
        # Divide before summing so values near the float limit average without overflowing.
        return checked(math.fsum(value / count for value in values))
    except OverflowError:
        raise ToolError("values are too large to average") from None


@tool(annotations={"title": "Median", **PURE})
def median(values: Values) -> Number:
    """Return the median (middle value) of a list of numbers; the mean of the two middle values for an even count."""
    _require(values, 1, "median")
    return checked(statistics.median(values))


@tool(annotations={"title": "Standard deviation", **PURE})
def stdev(values: Values) -> float:
    """Return the sample standard deviation of a list of numbers (n - 1 in the denominator).

    Needs at least two values.
    """
    _require(values, 2, "stdev")
    try:
        return checked(float(statistics.stdev(values)))
    except OverflowError:
        raise ToolError("values are too large for a standard deviation") from None
