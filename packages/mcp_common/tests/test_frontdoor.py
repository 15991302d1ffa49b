"""The front door (mcp_common.frontdoor) in front of a streaming service, both over real HTTP
on loopback: the service's progress reaches the caller through it, in order, before the
result, and the caller's credential is what the service checks."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from fleet.testing import app_settings, serve, write_tools_package
from mcp_common.apikeys import hash_key
from mcp_common.service import ServiceSpec

TOOLS = '''
import asyncio

from fastmcp import Context
from fastmcp.tools import tool


@tool(annotations={"readOnlyHint": True})
async def count(steps: int, ctx: Context) -> str:
    """Report progress at each step."""
    for step in range(1, steps + 1):
        await asyncio.sleep(0.02)
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted {steps}"
'''
KEY = "mcpk_frontdoor_stream_0123456789"
RECORDS = json.dumps([{"name": "alice", "sha256": hash_key(KEY), "services": ["*"]}])


@pytest.fixture(scope="module")
def door(tmp_path_factory) -> Iterator[str]:
    from mcp_common.app import create_app
    from mcp_common.frontdoor import HttpUpstream, frontdoor_app

    root = tmp_path_factory.mktemp("frontdoor_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "frontdoor_sample_tools", {"tools": TOOLS})
    importlib.import_module(f"{package}.tools")
    settings = app_settings(
        AWS_LWA_INVOKE_MODE="response_stream", MCP_AUTH="api_key", MCP_API_KEYS=RECORDS
    )
    service = create_app(ServiceSpec(name="streamer", tools_package=package), settings)
    with serve(service) as service_base:
        definition = {
            "name": "count",
            "description": "Report progress at each step.",
            "inputSchema": {
                "type": "object",
                "properties": {"steps": {"type": "integer"}},
                "required": ["steps"],
            },
        }
        upstream = HttpUpstream(httpx.AsyncClient(timeout=10), service_base)
        app = frontdoor_app({"streamer": {"tools": [definition]}}, upstream, settings.auth)
        with serve(app) as door_base:
            yield door_base


def client(base: str) -> Client:
    return Client(StreamableHttpTransport(f"{base}/mcp", headers={"x-api-key": KEY}))


async def test_a_streaming_services_progress_passes_through_in_order(door):
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async with client(door) as mcp:
        result = await mcp.call_tool("streamer_count", {"steps": 4}, progress_handler=on_progress)
    assert result.data == "counted 4"
    assert seen == [1, 2, 3, 4]


async def test_without_a_progress_token_the_call_still_answers(door):
    async with client(door) as mcp:
        result = await mcp.call_tool("streamer_count", {"steps": 2})
    assert result.data == "counted 2"


def test_a_service_whose_name_holds_the_separator_is_refused_its_neighbours_tools():
    """Regression (four teams in CI): service `deps_team`'s tools were taken for a service
    `deps`, so a key for another service reached them through the front door (the service
    itself refused it: no call ran, but the front door must say "unknown tool")."""
    import asyncio

    from fastmcp import Client as InProcess

    from mcp_common.frontdoor import _allowed, build_frontdoor

    tool = {"name": "t", "inputSchema": {"type": "object"}}
    server = build_frontdoor({"deps_team": {"tools": [tool]}, "math": {"tools": [tool]}}, None)

    async def call() -> Any:
        token = _allowed.set(frozenset({"math"}))
        try:
            async with InProcess(server) as mcp:
                listed = {t.name for t in await mcp.list_tools()}
                refused = await mcp.call_tool("deps_team_t", {}, raise_on_error=False)
                return listed, refused
        finally:
            _allowed.reset(token)

    listed, refused = asyncio.run(call())
    assert listed == {"math_t"}
    assert refused.is_error
    assert "Unknown tool" in refused.content[0].text


def test_two_tools_with_one_front_door_name_are_refused_at_build():
    from mcp_common.frontdoor import build_frontdoor

    catalog = {"a": {"tools": [{"name": "b_c"}]}, "a_b": {"tools": [{"name": "c"}]}}
    with pytest.raises(ValueError, match="both have a tool the front door would name 'a_b_c'"):
        build_frontdoor(catalog, None)
