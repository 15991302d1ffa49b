"""The front door (mcp_common.frontdoor) in front of a streaming service, both over real HTTP
on loopback: the service's progress reaches the caller through it, in order, before the
result, and the caller's credential is what the service checks."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator

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
