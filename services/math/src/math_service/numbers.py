"""Number guards shared by the tools and the evaluator.

Every result passes through `checked`, so no tool can return an infinity, a NaN
(neither survives JSON) or an integer too large to be useful, and `power` refuses
an oversized exponent *before* computing it.
"""

from __future__ import annotations

import math

from fastmcp.exceptions import ToolError

Number = int | float

MAX_INT_BITS = 4096
"""Largest integer result, about 1,233 decimal digits."""


def checked(value: Number) -> Number:
    """Return `value` if it is finite and bounded, else raise a ToolError saying why."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ToolError(
                f"result is too large (more than {MAX_INT_BITS} bits, about 1233 digits)"
            )
        return value
    if math.isnan(value):
        raise ToolError("result is not a number (NaN)")
    if math.isinf(value):
        raise ToolError("result is too large to represent (overflow)")
    return value


def power(base: Number, exponent: Number) -> Number:
    """`base ** exponent`, refused up front when the result would be oversized."""
    if base == 0 and exponent < 0:
        raise ToolError("cannot raise zero to a negative power (division by zero)")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ToolError(
                f"result of {base} ** {exponent} is too large "
                f"(more than {MAX_INT_BITS} bits); use a smaller exponent"
            )
        return base**exponent
    if base < 0 and not float(exponent).is_integer():
        raise ToolError("a negative number raised to a fractional power is not a real number")
    try:
        result = math.pow(base, exponent)
    except OverflowError:
        raise ToolError("result is too large to represent (overflow)") from None
    except ValueError as exc:
        raise ToolError(f"power is undefined here: {exc}") from None
    return checked(result)


def divide(dividend: Number, divisor: Number) -> Number:
    """True division with a clear error for zero and a float overflow."""
    if divisor == 0:
        raise ToolError("division by zero")
    try:
        return checked(dividend / divisor)
    except OverflowError:
        raise ToolError("result is too large to represent (overflow)") from None


def sqrt(value: Number) -> float:
    """Square root with a clear error for negatives."""
    if value < 0:
        raise ToolError(f"square root of a negative number ({value}) is not a real number")
    try:
        return math.sqrt(value)
    except OverflowError:
        raise ToolError("number is too large for a square root") from None
