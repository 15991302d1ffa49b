"""The memory tools through fastmcp's in-memory client."""

from __future__ import annotations

from fastmcp import Client

from mcp_common.app import build_server
from memory_service import service


async def test_greet():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {"name": "Ada"})
        assert result.data == "Hello, Ada!"


async def test_greet_refuses_an_empty_name():
    async with Client(build_server(service)) as client:
        result = await client.call_tool("greet", {"name": " "}, raise_on_error=False)
        assert result.is_error
        assert result.content[0].text == "name is empty"
