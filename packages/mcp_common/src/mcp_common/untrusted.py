"""Reading hostile input without raising: JSON bodies and headers, names for the log.

Everything a client sends can be crafted to break a parser (nesting deeper than the
recursion limit, integers longer than Python converts, invalid UTF-8) or to flood the
log (megabyte method names, control characters). The edge reads client data only
through these helpers, so no input reaches a code path that raises or logs it raw.
"""

from __future__ import annotations

import json
from typing import Any, Final

NAME_LOG_LIMIT: Final = 64
"""Method and tool names longer than this are never logged whole."""
EXCERPT_LIMIT: Final = 40
"""Characters of a refused name that the log keeps, escaped."""
UNPARSEABLE: Final = object()
"""What `loads` returns for data that is not JSON (a sentinel: `None` is valid JSON)."""


def loads(data: bytes | str) -> Any:
    """`json.loads`, or UNPARSEABLE for anything it rejects.

    json.loads raises more than ValueError on hostile input: RecursionError on deep
    nesting, and ValueError subclasses for invalid UTF-8 and over-long integers.
    """
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return UNPARSEABLE


def json_object(data: bytes | str | None) -> dict[str, Any]:
    """A JSON object from untrusted data, or {} if absent, unparseable or not an object."""
    if not data:
        return {}
    value = loads(data)
    return value if isinstance(value, dict) else {}


def loggable_name(value: object) -> str | None:
    """`value` if it is a short, printable string that may be logged as is, else None."""
    if isinstance(value, str) and 0 < len(value) <= NAME_LOG_LIMIT and value.isprintable():
        return value
    return None


def excerpt(value: object, limit: int = EXCERPT_LIMIT) -> str:
    """A short, escaped excerpt of a value from a client: ASCII only, never a whole payload."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    text = ascii(value[:limit])[1:-1]
    if len(text) > limit or len(value) > limit:
        return text[:limit] + "..."
    return text


def decimal_length(value: bytes, max_digits: int = 15) -> int | None:
    """A Content-Length value as an int, or None if it is not a plain decimal of sane size."""
    if not value or len(value) > max_digits or not value.isdigit():
        return None
    return int(value)
