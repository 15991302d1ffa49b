"""The math service started as Lambda starts it (run.sh, $PORT), spoken to over real HTTP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastmcp import Client
from mcp.client import Client as SDKClient

from fleet.testing import MCP_HEADERS, run_script

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"


def _env() -> dict[str, str]:
    """This environment's interpreter first on PATH, as `uv run` or an activated venv has it."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """run.sh started with $PORT, exactly what the Web Adapter runs; yields its base URL."""
    with run_script(RUN_SH, "/math/health", env=_env()) as (base, _):
        yield base


def test_run_sh_is_executable():
    assert os.access(RUN_SH, os.X_OK)


def test_tools_list_over_raw_http(base_url):
    base = base_url
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(
        f"{base}/math/mcp", json=body, headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"}
    )
    assert response.status_code == 200
    names = {tool["name"] for tool in response.json()["result"]["tools"]}
    assert {"add", "evaluate", "stdev"} <= names


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_fastmcp_client(base_url, mode):
    base = base_url
    async with Client(f"{base}/math/mcp", mode=mode) as client:
        result = await client.call_tool("evaluate", {"expression": "2 ** 10 - 24"})
        assert result.data == 1000
        failure = await client.call_tool("divide", {"a": 1, "b": 0}, raise_on_error=False)
        assert failure.is_error
        assert failure.content[0].text == "division by zero"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_official_sdk_client(base_url, mode):
    base = base_url
    async with SDKClient(f"{base}/math/mcp/", mode=mode) as client:
        result = await client.call_tool("median", {"values": [3, 1, 2]})
        assert result.structured_content == {"result": 2}


def test_stdout_is_json_lines_only():
    """Every line the process prints is one JSON object (CloudWatch-ready), including request lines."""
    with run_script(RUN_SH, "/math/health", env=_env()) as (base, process):
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
        }
        httpx.post(f"{base}/math/mcp", json=body, headers=MCP_HEADERS)
        process.terminate()
        output, _ = process.communicate(timeout=10)
    lines = [line for line in output.decode().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # fails on any non-JSON line
    requests = [entry for entry in entries if entry["logger"] == "mcp_common.request"]
    assert [(r["mcp_method"], r["tool"], r["outcome"]) for r in requests] == [
        ("tools/call", "add", "ok")
    ]
