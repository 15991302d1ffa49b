"""The app factory over real HTTP: routes, edges of the transport, all protocol revisions."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from fastmcp import Client
from mcp.client import Client as SDKClient

from fleet.testing import MCP_HEADERS, loopback_http

CALL_ECHO = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "hi"}},
}


def post(url: str, body: object | str, headers: dict[str, str] | None = None) -> httpx.Response:
    merged = {**MCP_HEADERS, **(headers or {})}
    if isinstance(body, str):
        return loopback_http().post(url, content=body, headers=merged, timeout=10)
    return loopback_http().post(url, json=body, headers=merged, timeout=10)


def test_health_reports_name_and_version(sample_url):
    response = loopback_http().get(f"{sample_url}/sample/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "sample", "version": "0+unknown"}


@pytest.mark.parametrize("path", ["/sample/mcp", "/sample/mcp/"])
def test_endpoint_answers_with_and_without_trailing_slash(sample_url, path):
    response = post(sample_url + path, CALL_ECHO, {"mcp-protocol-version": "2025-11-25"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["result"]["structuredContent"] == {"result": "hi"}


def test_no_redirects_anywhere(sample_url):
    for path in ("/sample/mcp/", "/sample/health/", "/sample/"):
        response = loopback_http().post(sample_url + path, json=CALL_ECHO, headers=MCP_HEADERS)
        assert response.status_code not in (301, 302, 307, 308), path


def test_get_is_method_not_allowed(sample_url):
    assert loopback_http().get(f"{sample_url}/sample/mcp", headers=MCP_HEADERS).status_code == 405


def test_malformed_json_is_a_parse_error(sample_url):
    response = post(f"{sample_url}/sample/mcp", "{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


def test_missing_accept_is_not_acceptable(sample_url):
    response = loopback_http().post(
        f"{sample_url}/sample/mcp",
        json=CALL_ECHO,
        headers={"content-type": "application/json", "accept": "text/html"},
    )
    assert response.status_code == 406


def test_notification_is_accepted_without_body(sample_url):
    response = post(
        f"{sample_url}/sample/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert response.status_code == 202
    assert response.content == b""


def test_unknown_tool_is_an_error_result(sample_url):
    body = {**CALL_ECHO, "params": {"name": "nope", "arguments": {}}}
    result = post(f"{sample_url}/sample/mcp", body).json()["result"]
    assert result["isError"] is True
    assert "Unknown tool" in result["content"][0]["text"]


def test_invalid_arguments_are_an_error_result(sample_url):
    body = {**CALL_ECHO, "params": {"name": "echo", "arguments": {"text": 5, "extra": 1}}}
    response = post(f"{sample_url}/sample/mcp", body)
    assert response.status_code == 200
    assert response.json()["result"]["isError"] is True


def test_tool_error_message_reaches_client(sample_url):
    body = {**CALL_ECHO, "params": {"name": "refuse", "arguments": {"reason": "too big"}}}
    result = post(f"{sample_url}/sample/mcp", body).json()["result"]
    assert result == {"content": [{"type": "text", "text": "refused: too big"}], "isError": True}


def test_unexpected_exception_is_masked_for_the_client(sample_url):
    body = {**CALL_ECHO, "params": {"name": "crash", "arguments": {}}}
    response = post(f"{sample_url}/sample/mcp", body)
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["isError"] is True
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert result["content"][0]["text"] == "Error calling tool 'crash'"


def test_protocol_2025_06_18_over_raw_http(sample_url):
    url = f"{sample_url}/sample/mcp"
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    result = post(url, init).json()["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"]["name"] == "sample"
    response = post(url, CALL_ECHO, {"mcp-protocol-version": "2025-06-18"})
    assert response.json()["result"]["structuredContent"] == {"result": "hi"}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_fastmcp_client_each_revision(sample_url, mode):
    async with Client(f"{sample_url}/sample/mcp", mode=mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.protocol_version == expected
        names = {tool.name for tool in await client.list_tools()}
        assert names == {"echo", "refuse", "sleepy", "napping", "crash"}
        result = await client.call_tool("echo", {"text": "über"})
        assert result.data == "über"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_official_sdk_client_each_revision(sample_url, mode):
    async with SDKClient(f"{sample_url}/sample/mcp", mode=mode) as client:
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} == {
            "echo",
            "refuse",
            "sleepy",
            "napping",
            "crash",
        }
        result = await client.call_tool("echo", {"text": "hi"})
        assert result.is_error is False
        assert result.structured_content == {"result": "hi"}
