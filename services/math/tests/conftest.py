"""Fixtures for the math service: an in-memory client over the real server object.

fastmcp is imported inside the fixtures: pytest loads every conftest in the xdist
controller too, which runs no test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fastmcp import Client, FastMCP


@pytest.fixture(scope="session")
def server() -> FastMCP:
    from math_service import service
    from mcp_common.app import build_server

    return build_server(service)


@pytest.fixture
async def client(server: FastMCP) -> AsyncIterator[Client]:
    from fastmcp import Client

    async with Client(server) as connected:
        yield connected
