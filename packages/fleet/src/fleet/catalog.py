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


async def deployed_catalog(base_url: str, credential: str | None) -> dict[str, Any]:
    """A deployed (or local) fleet's catalog, read through its front door at `<base>/mcp` with
    the caller's credential: the services and tools that credential may call, in the shape
    of `fleet_catalog` (each tool's service from its `_meta`, as the front door lists it)."""
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    from mcp_common.frontdoor import META_KEY

    transport = StreamableHttpTransport(f"{base_url}/mcp", auth=credential)  # key or token
    async with Client(transport, timeout=CATALOG_TIMEOUT_SECONDS) as client:
        listed = await client.list_tools()
    services: dict[str, list[dict[str, str]]] = {}
    for tool in listed:
        origin = (tool.meta or {}).get(META_KEY) or {}
        if not isinstance(origin, dict) or not isinstance(origin.get("service"), str):
            continue  # not one of a service's tools
        summary = {
            "name": str(origin.get("tool", tool.name)),
            "description": _summary(tool.description),
        }
        services.setdefault(origin["service"], []).append(summary)
    return {
        "services": [
            {
                "name": name,
                "mcp_url": f"{base_url}/{name}/mcp",
                "health_url": f"{base_url}/{name}/health",
                "tools": tools,
            }
            for name, tools in sorted(services.items())
        ]
    }


CATALOG_TIMEOUT_SECONDS = 30.0
"""The longest `fleet list --base-url` waits for the front door (a cold start included)."""


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
