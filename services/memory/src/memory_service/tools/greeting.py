"""An example tool: replace it with your own (any module in this package is published)."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import tool
from pydantic import Field


@tool(annotations={"title": "Greet", "readOnlyHint": True, "idempotentHint": True})
def greet(name: Annotated[str, Field(description="Who to greet")]) -> str:
    """Return a greeting for `name`."""
    if not name.strip():
        raise ToolError("name is empty")
    return f"Hello, {name.strip()}!"
