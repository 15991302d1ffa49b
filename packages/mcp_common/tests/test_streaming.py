"""A streaming service (AWS_LWA_INVOKE_MODE=response_stream) over real HTTP on loopback:
progress before the result, JSON for quick calls and JSON-only clients, deadlines and
cancellation that stop the tool, and the edge unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.client import Client as SDKClient
from mcp.client.streamable_http import streamable_http_client

from fleet.testing import MCP_HEADERS, app_settings, loopback_http, serve, write_tools_package
from mcp_common.apikeys import hash_key
from mcp_common.service import ServiceSpec

STREAMING_TOOLS = '''
import asyncio
import time

from fastmcp import Context
from fastmcp.tools import tool

STARTED: dict[str, int] = {}
CLEANED: dict[str, int] = {}


@tool(annotations={"readOnlyHint": True})
async def count(label: str, steps: int, ctx: Context, delay: float = 0.05) -> str:
    """Report progress at each step; record that its cleanup ran."""
    STARTED[label] = STARTED.get(label, 0) + 1
    try:
        for step in range(1, steps + 1):
            await asyncio.sleep(delay)
            await ctx.report_progress(step, steps, f"step {step}")
        return f"counted {steps}"
    finally:
        CLEANED[label] = CLEANED.get(label, 0) + 1


@tool(annotations={"readOnlyHint": True})
def quick() -> str:
    """Answer at once, silently."""
    return "quick"


@tool(annotations={"readOnlyHint": True})
def block(seconds: float) -> str:
    """Block a worker thread, which nothing can interrupt."""
    time.sleep(seconds)
    return "unblocked"
'''
DEADLINE = 1.5
KEYS = {"alice": "mcpk_alice_0123456789abcdef", "mallory": "mcpk_mallory_0123456789abcdef"}
RECORDS = [{"name": name, "sha256": hash_key(key), "services": ["*"]} for name, key in KEYS.items()]


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Any:
    root = tmp_path_factory.mktemp("streaming_service")
    sys.path.insert(0, str(root))
    package = write_tools_package(root, "streaming_sample_tools", {"tools": STREAMING_TOOLS})
    return importlib.import_module(f"{package}.tools"), package


@pytest.fixture(scope="module")
def base(tools) -> Iterator[str]:
    from mcp_common.app import create_app

    _, package = tools
    settings = app_settings(
        AWS_LWA_INVOKE_MODE="response_stream",
        MCP_TOOL_TIMEOUT_SECONDS=str(DEADLINE),
        MCP_AUTH="api_key",
        MCP_API_KEYS=json.dumps(RECORDS),
    )
    with serve(create_app(ServiceSpec(name="streamer", tools_package=package), settings)) as url:
        yield url


def client(base: str, who: str = "alice") -> Client:
    transport = StreamableHttpTransport(f"{base}/streamer/mcp", headers={"x-api-key": KEYS[who]})
    return Client(transport)


async def wait_until(condition: Any, within: float = 2.0) -> float:
    """Seconds until `condition()` held; fails after `within`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_progress_arrives_in_order_before_the_result(base):
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async with client(base) as mcp:
        result = await mcp.call_tool(
            "count", {"label": "order", "steps": 5}, progress_handler=on_progress
        )
    assert result.data == "counted 5"
    assert seen == [1, 2, 3, 4, 5]


async def test_the_official_sdk_client_gets_progress_in_both_revisions(base):
    for mode in ("legacy", "2026-07-28"):
        seen: list[float] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            seen.append(done)  # noqa: B023 - awaited within this iteration

        http = httpx.AsyncClient(headers={"x-api-key": KEYS["alice"]})
        transport = streamable_http_client(f"{base}/streamer/mcp", http_client=http)
        async with http, SDKClient(transport, mode=mode) as sdk:
            result = await sdk.call_tool(
                "count", {"label": f"sdk-{mode}", "steps": 3}, progress_callback=on_progress
            )
        assert not result.is_error
        assert seen == [1, 2, 3], mode


MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.mark.parametrize(
    ("version", "content_type"),
    [(MODERN, "application/json"), ("2025-06-18", "text/event-stream")],
)
def test_what_a_quick_silent_call_gets_at_each_revision(base, version, content_type):
    """At 2026-07-28 a quick call is still one JSON body (the library commits to SSE only for
    progress or after 15 s); the handshake-era revisions get a short SSE stream."""
    params: dict[str, Any] = {"name": "quick", "arguments": {}}
    headers = {**MCP_HEADERS, "x-api-key": KEYS["alice"], "mcp-protocol-version": version}
    if version == MODERN:
        params["_meta"] = MODERN_META
        headers |= {"mcp-method": "tools/call", "mcp-name": "quick"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    response = loopback_http().post(f"{base}/streamer/mcp", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert '"text":"quick"' in response.text


def test_a_json_only_client_gets_one_json_answer_without_progress(base):
    body = {
        "jsonrpc": "2.0",
        "id": "j",
        "method": "tools/call",
        "params": {
            "name": "count",
            "arguments": {"label": "json", "steps": 3},
            "_meta": {"progressToken": 1},
        },
    }
    headers = {
        **MCP_HEADERS,
        "accept": "application/json",
        "x-api-key": KEYS["alice"],
        "mcp-protocol-version": "2025-06-18",
    }
    response = loopback_http().post(f"{base}/streamer/mcp", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["id"] == "j"
    assert response.json()["result"]["structuredContent"] == {"result": "counted 3"}


def test_a_json_only_client_is_kept_alive_with_white_space(base, monkeypatch):
    """A JSON-only client of a long call gets the headers at once and a space for each
    keep-alive comment, so no idle timeout cuts it; the body still parses as JSON."""
    from mcp.server import _streamable_http_modern

    monkeypatch.setattr(_streamable_http_modern, "_SSE_PING_INTERVAL", 0.2)
    params = {
        "name": "count",
        "arguments": {"label": "json-alive", "steps": 1, "delay": 1.0},
        "_meta": MODERN_META,
    }
    headers = {
        **MCP_HEADERS,
        "accept": "application/json",
        "x-api-key": KEYS["alice"],
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "count",
    }
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{base}/streamer/mcp", json=body, headers=headers) as response,
    ):
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_bytes() if chunk]
        content_type = response.headers["content-type"]
    assert content_type == "application/json"
    text = b"".join(chunk for _, chunk in chunks)
    assert text.startswith(b" ")  # at least one keep-alive before the answer
    assert json.loads(text)["result"]["structuredContent"] == {"result": "counted 1"}
    assert chunks[-1][0] - chunks[0][0] > 0.5  # the spaces came while the tool ran


def test_auth_answers_before_anything_streams(base):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "quick"}}
    response = loopback_http().post(f"{base}/streamer/mcp", json=body, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "resource_metadata" in response.headers["www-authenticate"]


async def test_the_deadline_cancels_a_tool_and_answers_on_the_stream(base, tools, log_lines):
    module, _ = tools
    started = time.monotonic()
    async with client(base) as mcp:
        result = await mcp.call_tool(
            "count", {"label": "deadline", "steps": 100, "delay": 0.1}, raise_on_error=False
        )
    elapsed = time.monotonic() - started
    assert result.is_error
    assert f"did not finish within {DEADLINE:g} s" in result.content[0].text
    assert DEADLINE <= elapsed < DEADLINE + 1
    await wait_until(lambda: module.CLEANED.get("deadline") == 1)
    [line] = [r for r in log_lines.requests() if r.get("tool") == "count"]
    assert (line["outcome"], line["error"]) == ("tool_error", "deadline")
    # One line, its duration measured to the last byte of the stream.
    assert line["duration_ms"] >= DEADLINE * 1000


async def test_a_blocking_tool_is_answered_at_the_deadline(base):
    started = time.monotonic()
    async with client(base) as mcp:
        result = await mcp.call_tool("block", {"seconds": DEADLINE + 2}, raise_on_error=False)
    assert result.is_error
    assert time.monotonic() - started < DEADLINE + 1  # its thread is abandoned, not awaited


async def test_closing_the_stream_cancels_the_tool(base, tools, log_lines):
    module, _ = tools
    progressed = asyncio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with client(base) as mcp:
        call = asyncio.create_task(
            mcp.call_tool(
                "count",
                {"label": "closed", "steps": 100, "delay": 0.05},
                progress_handler=on_progress,
            )
        )
        await asyncio.wait_for(progressed.wait(), 2)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        stopped_within = await wait_until(lambda: module.CLEANED.get("closed") == 1, within=1.0)
    assert stopped_within < 0.5
    await wait_until(lambda: any(r.get("tool") == "count" for r in log_lines.requests()))
    [line] = [r for r in log_lines.requests() if r.get("tool") == "count"]
    assert (line["outcome"], line["error"]) == ("cancelled", "client disconnected")


LEGACY = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18", "x-api-key": KEYS["alice"]}


def legacy_call(label: str, steps: int, delay: float) -> dict[str, Any]:
    arguments = {"label": label, "steps": steps, "delay": delay}
    params = {"name": "count", "arguments": arguments, "_meta": {"progressToken": "p"}}
    return {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}


async def test_a_handshake_era_client_that_leaves_cancels_the_tool(base, tools, log_lines):
    """At 2025-* the answer is SSE from the first byte; closing it stops the tool too, and the
    request line says so (not `ok`)."""
    module, _ = tools
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST", f"{base}/streamer/mcp", json=legacy_call("left", 100, 0.05), headers=LEGACY
        ) as stream,
    ):
        async for line in stream.aiter_lines():
            if "notifications/progress" in line:
                break  # leaving the block closes the connection mid-stream
    await wait_until(lambda: module.CLEANED.get("left") == 1, within=1.0)
    await wait_until(lambda: any(r.get("tool") == "count" for r in log_lines.requests()))
    [line] = [r for r in log_lines.requests() if r.get("tool") == "count"]
    assert line["outcome"] == "cancelled"


def test_a_handshake_era_call_past_its_deadline_ends_its_stream_with_a_tool_error(base):
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{base}/streamer/mcp", json=legacy_call("old-deadline", 100, 0.1), headers=LEGACY
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "notifications/progress" in response.text
    assert f"did not finish within {DEADLINE:g} s" in response.text
    assert time.monotonic() - started < DEADLINE + 1


async def cancel_after_first_progress(base: str, label: str, canceller: str) -> int:
    """Start a call as alice on a raw stream, then post notifications/cancelled for its id as
    `canceller`; return the cancellation POST's status."""
    body = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "count",
            "arguments": {"label": label, "steps": 20, "delay": 0.05},
            "_meta": {"progressToken": "p"},
        },
    }
    headers = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"}
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/streamer/mcp"
        async with http.stream(
            "POST", url, json=body, headers={**headers, "x-api-key": KEYS["alice"]}
        ) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if "notifications/progress" in line:
                    break
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 42},
            }
            answer = await http.post(
                url, json=cancel, headers={**headers, "x-api-key": KEYS[canceller]}
            )
            rest = "".join([line async for line in lines])
    return answer.status_code, rest


async def test_a_principal_cancels_its_own_call(base, tools, log_lines):
    module, _ = tools
    status, rest = await cancel_after_first_progress(base, "own", canceller="alice")
    assert status == 202
    assert '"result"' not in rest  # no response follows a cancelled call (the spec's SHOULD NOT)
    assert module.CLEANED.get("own") == 1
    assert "step 20" not in rest
    [line] = [r for r in log_lines.requests() if r.get("tool") == "count"]
    assert line["outcome"] == "cancelled"


async def test_nobody_cancels_another_principals_call(base, tools):
    status, rest = await cancel_after_first_progress(base, "theirs", canceller="mallory")
    assert status == 202  # acknowledged, as any notification is, but it cancelled nothing
    assert "counted 20" in rest


async def test_a_cancel_never_stops_another_clients_call_under_the_same_principal(base, tools):
    """The report: two clients under one key both used id 1; B's cancel stopped A's call
    (the first registered), and B's ran on. Without a session to tell them apart, a cancel
    that names two calls in flight is ambiguous and stops neither."""
    module, _ = tools
    headers = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18", "x-api-key": KEYS["alice"]}
    url = f"{base}/streamer/mcp"

    def call(label: str) -> dict:
        arguments = {"label": label, "steps": 10, "delay": 0.05}
        params = {"name": "count", "arguments": arguments, "_meta": {"progressToken": label}}
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}

    async with httpx.AsyncClient(timeout=10) as http:

        async def run(label: str, started: asyncio.Event) -> str:
            async with http.stream("POST", url, json=call(label), headers=headers) as stream:
                lines = stream.aiter_lines()
                async for line in lines:
                    if "notifications/progress" in line:
                        started.set()
                        break
                return "".join([line async for line in lines])

        a_started, b_started = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(run("client-a", a_started))
        b = asyncio.create_task(run("client-b", b_started))
        await asyncio.wait_for(asyncio.gather(a_started.wait(), b_started.wait()), 5)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        assert (await http.post(url, json=cancel, headers=headers)).status_code == 202
        a_rest, b_rest = await asyncio.gather(a, b)
    assert "counted 10" in a_rest  # A's call was not stopped by B's cancel
    assert "counted 10" in b_rest  # nor B's: which one it named cannot be told
    assert module.CLEANED.get("client-a") == module.CLEANED.get("client-b") == 1


async def test_a_json_only_client_gets_bytes_while_progress_flows_at_every_revision(base):
    """The report: at 2026-07-28 a JSON-only client got nothing while progress flowed (its
    connection looked idle); the answer it finally gets is the call's JSON alone."""
    for version in ("2025-06-18", MODERN):
        params: dict[str, Any] = {
            "name": "count",
            "arguments": {"label": f"json-progress-{version}", "steps": 4, "delay": 0.2},
            "_meta": {"progressToken": 7},
        }
        headers = {**MCP_HEADERS, "accept": "application/json", "x-api-key": KEYS["alice"],
                   "mcp-protocol-version": version}  # fmt: skip
        if version == MODERN:
            params["_meta"] |= MODERN_META
            headers |= {"mcp-method": "tools/call", "mcp-name": "count"}
        body = {"jsonrpc": "2.0", "id": "p", "method": "tools/call", "params": params}
        chunks: list[bytes] = []
        async with httpx.AsyncClient(timeout=10) as http:  # noqa: SIM117
            async with http.stream("POST", f"{base}/streamer/mcp", json=body, headers=headers) as r:
                assert r.headers["content-type"] == "application/json"
                chunks = [chunk async for chunk in r.aiter_raw()]
        whole = b"".join(chunks)
        assert whole.startswith(b" "), (version, chunks[:3])  # bytes before the answer
        answer = json.loads(whole)
        assert answer["id"] == "p"
        assert answer["result"]["structuredContent"] == {"result": "counted 4"}


@pytest.fixture(scope="module")
def impatient_base(tools) -> Iterator[str]:
    """The streaming service with a long tool deadline and a 1 s write deadline."""
    from mcp_common.app import create_app

    _, package = tools
    settings = app_settings(
        AWS_LWA_INVOKE_MODE="response_stream",
        MCP_TOOL_TIMEOUT_SECONDS="60",
        MCP_WRITE_TIMEOUT_SECONDS="1",
        MCP_AUTH="api_key",
        MCP_API_KEYS=json.dumps(RECORDS),
    )
    with serve(create_app(ServiceSpec(name="streamer", tools_package=package), settings)) as url:
        yield url


async def test_a_client_that_never_reads_is_cut_off_and_its_call_stopped(impatient_base, tools):
    """The report: a client that never read stalled its tool, and the request stayed open
    until the client left (12 connections still open after the deadline). Now every write
    has a deadline: the call is stopped and the connection dropped."""
    import socket
    from urllib.parse import urlsplit

    module, _ = tools
    url = urlsplit(impatient_base)
    body = json.dumps({
        "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "count", "arguments": {"label": "unread", "steps": 200_000, "delay": 0},
                   "_meta": {"progressToken": "u" * 200}},
    }).encode()  # fmt: skip
    head = (
        f"POST /streamer/mcp HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"x-api-key: {KEYS['alice']}\r\nmcp-protocol-version: 2025-06-18\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.sendall(head + body)
    try:
        await wait_until(lambda: module.CLEANED.get("unread") == 1, within=20)
        sock.settimeout(10)
        while sock.recv(65536):  # what was sent before the cut, then the end
            pass
    finally:
        sock.close()
    assert module.STARTED.get("unread") == 1
