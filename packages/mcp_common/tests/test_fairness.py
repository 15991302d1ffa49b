"""One principal cannot starve the others of a service (MCP_MAX_CALLS_PER_PRINCIPAL).

The attack from the report: one caller opens many long streamed calls and never reads
them, holding every slot of the service's outbound pool (here a semaphore of 8, a stand-in
for weather's provider connections), so every other caller's call waits out its deadline.
Over real HTTP on loopback, with raw sockets that send and never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import socket
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from fleet.testing import app_settings, serve, write_tools_package
from mcp_common.apikeys import hash_key
from mcp_common.service import ServiceSpec

POOLED_TOOLS = '''
import asyncio

from fastmcp.tools import tool

POOL = asyncio.Semaphore(8)  # the service's outbound connections


@tool(annotations={"readOnlyHint": True})
async def fetch(seconds: float = 0.05) -> str:
    """Hold one outbound connection for `seconds`."""
    async with POOL:
        await asyncio.sleep(seconds)
    return "fetched"
'''
DEADLINE = 20.0
KEYS = {"alice": "mcpk_alice_0123456789abcdef", "mallory": "mcpk_mallory_0123456789abcdef"}
RECORDS = [{"name": name, "sha256": hash_key(key), "services": ["*"]} for name, key in KEYS.items()]
LIMIT = 4


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    from mcp_common.app import create_app

    root = tmp_path_factory.mktemp("pooled_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "pooled_sample_tools", {"tools": POOLED_TOOLS})
    importlib.import_module(f"{package}.tools")
    settings = app_settings(
        AWS_LWA_INVOKE_MODE="response_stream",
        MCP_TOOL_TIMEOUT_SECONDS=str(DEADLINE),
        MCP_AUTH="api_key",
        MCP_API_KEYS=json.dumps(RECORDS),
        MCP_MAX_CALLS_PER_PRINCIPAL=str(LIMIT),
    )
    with serve(create_app(ServiceSpec(name="pooled", tools_package=package), settings)) as url:
        yield url


@contextlib.contextmanager
def never_read_calls(base: str, key: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` long tools/call requests on their own connections, whose answers are never read."""
    url = urlsplit(base)
    sockets = []
    try:
        for n in range(count):
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {
                        "name": "fetch",
                        "arguments": {"seconds": 60},
                        "_meta": {
                            "progressToken": n,
                            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                            "io.modelcontextprotocol/clientInfo": {"name": "flood", "version": "1"},
                            "io.modelcontextprotocol/clientCapabilities": {},
                        },
                    },
                }
            ).encode()
            head = (
                f"POST /pooled/mcp HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"x-api-key: {key}\r\nmcp-protocol-version: 2026-07-28\r\n"
                f"mcp-method: tools/call\r\nmcp-name: fetch\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            sock = socket.create_connection((url.hostname, url.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.sendall(head + body)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def client(base: str, who: str) -> Client:
    transport = StreamableHttpTransport(f"{base}/pooled/mcp", headers={"x-api-key": KEYS[who]})
    return Client(transport)


async def test_a_flood_by_one_principal_leaves_the_others_their_share(base):
    with never_read_calls(base, KEYS["mallory"], 20):
        await asyncio.sleep(1.0)  # let the flood reach the tool
        started = time.monotonic()
        async with client(base, "alice") as alice:
            results = await asyncio.gather(*(alice.call_tool("fetch", {}) for _ in range(3)))
        elapsed = time.monotonic() - started
        assert [result.data for result in results] == ["fetched"] * 3
        # Normally a few milliseconds; far below the deadline the flood made it wait out.
        assert elapsed < DEADLINE / 4
        async with client(base, "mallory") as mallory:
            refused = await mallory.call_tool("fetch", {}, raise_on_error=False)
        assert refused.is_error
        assert f"already has {LIMIT} calls running" in refused.content[0].text


def test_the_bound_is_a_setting_with_a_safe_default():
    from mcp_common.settings import HttpSettings

    assert HttpSettings().calls_per_principal == LIMIT
    assert HttpSettings(MCP_MAX_CALLS_PER_PRINCIPAL="12").calls_per_principal == 12  # type: ignore[call-arg]
