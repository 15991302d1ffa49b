"""The fleet catalog: services, their URLs and their tools (for `GET /` and `fleet list`)."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP


def _summary(description: str | None) -> str:
    return (description or "").strip().split("\n", 1)[0]


async def service_entry(name: str, version: str, server: FastMCP, base_url: str) -> dict[str, Any]:
    tools = await server.list_tools()
    return {
        "name": name,
        "version": version,
        "mcp_url": f"{base_url}/{name}/mcp",
        "health_url": f"{base_url}/{name}/health",
        "tools": [{"name": tool.name, "description": _summary(tool.description)} for tool in tools],
    }


def render_table(catalog: dict[str, Any]) -> str:
    """A plain-text table: one row per tool, grouped by service."""
    rows = [("SERVICE", "URL", "TOOL", "DESCRIPTION")]
    for service in catalog["services"]:
        for index, tool in enumerate(service["tools"]):
            first = index == 0
            rows.append(
                (
                    service["name"] if first else "",
                    service["mcp_url"] if first else "",
                    tool["name"],
                    tool["description"],
                )
            )
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[col]) for col, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
