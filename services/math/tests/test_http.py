"""The math service started as Lambda starts it (run.sh, $PORT), spoken to over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastmcp import Client
from mcp.client import Client as SDKClient

from fleet.testing import MCP_HEADERS, RunningService, dev_env, loopback_http, start_service

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
CALL_ADD = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
}


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    """run.sh started with $PORT, exactly what the Web Adapter runs."""
    with start_service(RUN_SH, "/math/health", env=dev_env()) as running:
        yield running


@pytest.fixture(scope="module")
def base_url(service: RunningService) -> str:
    return service.base


def test_run_sh_is_executable():
    assert os.access(RUN_SH, os.X_OK)


def test_tools_list_over_raw_http(base_url):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = loopback_http().post(
        f"{base_url}/math/mcp",
        json=body,
        headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
    )
    assert response.status_code == 200
    names = {tool["name"] for tool in response.json()["result"]["tools"]}
    assert {"add", "evaluate", "stdev"} <= names


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_fastmcp_client(base_url, mode):
    async with Client(f"{base_url}/math/mcp", mode=mode) as client:
        result = await client.call_tool("evaluate", {"expression": "2 ** 10 - 24"})
        assert result.data == 1000
        failure = await client.call_tool("divide", {"a": 1, "b": 0}, raise_on_error=False)
        assert failure.is_error
        assert failure.content[0].text == "division by zero"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_official_sdk_client(base_url, mode):
    async with SDKClient(f"{base_url}/math/mcp/", mode=mode) as client:
        result = await client.call_tool("median", {"values": [3, 1, 2]})
        assert result.structured_content == {"result": 2}


def test_unsupported_version_gets_sep_2575_error_with_its_id(base_url):
    """Regression: our own pre-check answered -32600 with id null, hiding the library's answer."""
    body = {
        "jsonrpc": "2.0",
        "id": 301,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "v999.0.0",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    headers = {**MCP_HEADERS, "mcp-protocol-version": "v999.0.0", "mcp-method": "server/discover"}
    response = loopback_http().post(f"{base_url}/math/mcp", json=body, headers=headers)
    assert response.status_code == 400
    answer = response.json()
    assert answer["id"] == 301
    assert answer["error"]["data"]["requested"] == "v999.0.0"
    assert answer["error"]["data"]["supported"]


def test_deeply_nested_json_is_a_4xx_and_the_service_stays_healthy(service):
    """Regression: 100,000 nested `[` in params crashed the guard's json.loads (500)."""
    nested = b"[" * 100_000 + b"]" * 100_000
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"x":' + nested + b"}}"
    response = loopback_http().post(f"{service.base}/math/mcp", content=body, headers=MCP_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert (
        loopback_http()
        .post(f"{service.base}/math/mcp", json=CALL_ADD, headers=MCP_HEADERS)
        .is_success
    )
    assert "Traceback" not in service.output()
    protocol_errors = [
        line
        for line in service.request_lines()
        if line["outcome"] == "protocol_error" and line.get("http_status") == 400
    ]
    assert protocol_errors


def test_stdout_is_json_lines_only(service):
    """Every line the process prints is one JSON object (CloudWatch-ready), including request lines."""
    loopback_http().post(f"{service.base}/math/mcp", json=CALL_ADD, headers=MCP_HEADERS)
    requests = service.request_lines()  # log_entries() fails on any non-JSON line
    described = [(r.get("mcp_method"), r.get("tool"), r["outcome"]) for r in requests]
    assert ("tools/call", "add", "ok") in described


def test_what_the_client_sent_reaches_neither_the_error_field_nor_a_terminal(tmp_path):
    """Regressions, through run.sh with LOG_FORMAT=text: the evaluator's message echoed the
    client's value into the log's `error` (`unsupported constant 'sk_live_...'`), and text
    lines printed a client's terminal escapes raw."""
    secret = "sk_live_51HxYzNotARealKey"
    with start_service(RUN_SH, "/math/health", env=dev_env(LOG_FORMAT="text")) as running:
        headers = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"}
        call = {**CALL_ADD, "params": {"name": "evaluate", "arguments": {"expression": secret}}}
        answer = loopback_http().post(f"{running.base}/math/mcp", json=call, headers=headers)
        assert secret in answer.json()["result"]["content"][0]["text"]  # the client is told
        hostile = {"jsonrpc": "2.0", "id": 2, "method": "\x1b]0;pwned\x07\x1b[2Kforged"}
        loopback_http().post(f"{running.base}/math/mcp", json=hostile, headers=headers)
        output = running.output()
    assert secret not in output
    assert "evaluate tool_error" in output
    assert "error=ToolError" in output
    assert "\x1b" not in output
    assert "\x07" not in output


def test_slow_clients_are_cut_off_within_their_deadlines():
    """Regressions (slowloris), through run.sh: a client sending one header line every 2 s
    kept its connection 30+ s; a request with Content-Length: 100 and 1 byte of body got no
    answer for 25 s. Now the head must arrive within MCP_HEADER_TIMEOUT_SECONDS and the body
    within MCP_BODY_TIMEOUT_SECONDS (1.5 s each here)."""
    import socket
    import time

    limits = {"MCP_HEADER_TIMEOUT_SECONDS": "1.5", "MCP_BODY_TIMEOUT_SECONDS": "1.5"}
    with start_service(RUN_SH, "/math/health", env=dev_env(**limits)) as running:
        port = int(running.base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as dripping:
            started = time.monotonic()
            dripping.sendall(b"POST /math/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            closed_after = None
            for line in range(20):
                time.sleep(0.4)
                try:
                    dripping.sendall(f"x-drip-{line}: 1\r\n".encode())
                except OSError:
                    closed_after = time.monotonic() - started
                    break
            if closed_after is None:
                dripping.settimeout(5)
                assert dripping.recv(1024) == b""
                closed_after = time.monotonic() - started
        assert closed_after < 4.0

        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            started = time.monotonic()
            stalled.sendall(
                b"POST /math/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"accept: application/json, text/event-stream\r\ncontent-length: 100\r\n\r\n{"
            )
            answer = b""
            while chunk := stalled.recv(4096):  # the server closes the connection after it
                answer += chunk
            assert time.monotonic() - started < 4.0
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"request body not received within 1.5 s" in answer
        # An ordinary client on a new connection is served as before.
        assert loopback_http().get(f"{running.base}/math/health").status_code == 200
