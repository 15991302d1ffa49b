"""Fixtures for the math service: an in-memory client over the real server object."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastmcp import Client, FastMCP

from math_service import service
from mcp_common.app import build_server


@pytest.fixture(scope="session")
def server() -> FastMCP:
    return build_server(service)


@pytest.fixture
async def client(server: FastMCP) -> AsyncIterator[Client]:
    async with Client(server) as connected:
        yield connected
