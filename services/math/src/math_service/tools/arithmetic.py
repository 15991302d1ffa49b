"""Single arithmetic operations on two numbers (or one, for sqrt)."""

from __future__ import annotations

from typing import Annotated

from fastmcp.tools import tool
from pydantic import Field

from math_service import numbers
from math_service.numbers import Number, checked

PURE = {
    "readOnlyHint": True,
    "idempotentHint": True,
    "destructiveHint": False,
    "openWorldHint": False,
}


@tool(annotations={"title": "Add", **PURE}, meta={"smoke": {"a": 2, "b": 3}})
def add(
    a: Annotated[Number, Field(description="First addend")],
    b: Annotated[Number, Field(description="Second addend")],
) -> Number:
    """Add two numbers and return a + b."""
    return checked(a + b)


@tool(annotations={"title": "Subtract", **PURE})
def subtract(
    a: Annotated[Number, Field(description="Number to subtract from (minuend)")],
    b: Annotated[Number, Field(description="Number to subtract (subtrahend)")],
) -> Number:
    """Subtract b from a and return a - b."""
    return checked(a - b)


@tool(annotations={"title": "Multiply", **PURE})
def multiply(
    a: Annotated[Number, Field(description="First factor")],
    b: Annotated[Number, Field(description="Second factor")],
) -> Number:
    """Multiply two numbers and return a * b."""
    try:
        return checked(a * b)
    except OverflowError:
        return checked(float("inf"))


@tool(annotations={"title": "Divide", **PURE})
def divide(
    a: Annotated[Number, Field(description="Dividend")],
    b: Annotated[Number, Field(description="Divisor; must not be zero")],
) -> Number:
    """Divide a by b and return the exact quotient a / b (a decimal, not a floor division).

    Dividing by zero is an error.
    """
    return numbers.divide(a, b)


@tool(annotations={"title": "Power", **PURE})
def power(
    base: Annotated[Number, Field(description="The base")],
    exponent: Annotated[Number, Field(description="The exponent; may be negative or fractional")],
) -> Number:
    """Raise base to the power of exponent (base ** exponent).

    Integer powers are exact; results beyond about 1,200 digits are refused.
    """
    return numbers.power(base, exponent)


@tool(annotations={"title": "Square root", **PURE})
def sqrt(x: Annotated[Number, Field(description="A non-negative number")]) -> float:
    """Return the square root of x. Negative numbers are an error (no complex results)."""
    return numbers.sqrt(x)
