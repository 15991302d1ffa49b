"""A small sample service, served over real HTTP on loopback for the library's tests.

The app factory is imported inside its fixture: pytest loads every conftest in the
xdist controller too, which runs no test and should not import fastmcp (~2 s).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from fleet.testing import app_settings, serve, write_tools_package
from mcp_common.logs import JsonFormatter
from mcp_common.service import ServiceSpec

SAMPLE_TOOLS = '''
from fastmcp.exceptions import ToolError
from fastmcp.tools import tool


@tool(annotations={"readOnlyHint": True})
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@tool
def refuse(reason: str) -> str:
    """Fail the way a tool reports a user error."""
    raise ToolError(f"refused: {reason}")


@tool
def sleepy(seconds: float) -> str:
    """Block a worker thread, the way a slow synchronous tool does."""
    import time

    time.sleep(seconds)
    return "awake"


STOPPED: list[str] = []


@tool
async def napping(seconds: float, label: str = "") -> str:
    """Wait without a thread, the way an async tool waits on I/O; note when it is stopped."""
    import asyncio

    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        STOPPED.append(label)
        raise
    return "rested"


@tool
def crash() -> str:
    """Fail the way a bug does."""
    raise RuntimeError("internal detail: db password is hunter2")
'''


@pytest.fixture(scope="session")
def sample_spec(tmp_path_factory: pytest.TempPathFactory) -> ServiceSpec:
    root = tmp_path_factory.mktemp("sample_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "sample_service_tools", {"tools": SAMPLE_TOOLS})
    return ServiceSpec(name="sample", tools_package=package)


@pytest.fixture(scope="session")
def sample_url(sample_spec: ServiceSpec) -> Iterator[str]:
    """Base URL of the sample service (no auth) served by uvicorn on a free loopback port."""
    from mcp_common.app import create_app

    with serve(create_app(sample_spec, app_settings(MCP_AUTH="none"))) as base:
        yield base


class LogLines:
    """JSON lines written through the root logger while a test runs."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def requests(self) -> list[dict]:
        return [entry for entry in self.entries() if entry["logger"] == "mcp_common.request"]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    lines = LogLines()
    handler = logging.StreamHandler(lines.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
