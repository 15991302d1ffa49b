"""The fleet catalog: services, their URLs and their tools (for `GET /` and `fleet list`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp import FastMCP

from mcp_common.service import ServiceSpec


def _summary(description: str | None) -> str:
    return (description or "").strip().split("\n", 1)[0]


async def fleet_catalog(
    servers: Sequence[tuple[ServiceSpec, FastMCP]], base_url: str
) -> dict[str, Any]:
    """Each service's name, version, URLs and tools, as `GET /` on `fleet dev` answers."""
    services = []
    for spec, server in servers:
        tools = await server.list_tools()
        services.append(
            {
                "name": spec.name,
                "version": spec.version,
                "mcp_url": f"{base_url}{spec.mcp_path}",
                "health_url": f"{base_url}{spec.health_path}",
                "tools": [
                    {"name": tool.name, "description": _summary(tool.description)} for tool in tools
                ],
            }
        )
    return {"services": services}


async def frontdoor_catalog(servers: Sequence[tuple[ServiceSpec, FastMCP]]) -> dict[str, Any]:
    """{service: {"tools": [MCP tool definition]}}: what the front door serves, from the same
    discovery the services run (their schemas, annotations and descriptions as declared)."""
    catalog: dict[str, Any] = {}
    for spec, server in servers:
        tools = await server.list_tools()
        catalog[spec.name] = {
            "tools": [
                tool.to_mcp_tool().model_dump(mode="json", by_alias=True, exclude_none=True)
                for tool in tools
            ]
        }
    return catalog


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
