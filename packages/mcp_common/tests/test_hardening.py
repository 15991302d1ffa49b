"""HTTP hardening over real HTTP: Host/Origin, CORS, body size, versions, envelopes, deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.testing import MCP_HEADERS, app_settings, loopback_http, serve
from mcp_common.app import create_app

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

ALLOWED_ORIGIN = "https://app.example.com"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture(scope="module")
def url(sample_spec) -> Iterator[str]:
    app = create_app(
        sample_spec,
        app_settings(
            MCP_AUTH="none",
            MCP_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
            MCP_ALLOWED_HOSTS="api.example.com,127.0.0.1",
            MCP_MAX_BODY_BYTES="2048",
            MCP_TOOL_TIMEOUT_SECONDS="0.5",
        ),
    )
    with serve(app) as base:
        yield base


def post(url: str, body: object = LIST_TOOLS, **headers: str) -> httpx.Response:
    merged = {**MCP_HEADERS, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if isinstance(body, bytes):
        return loopback_http().post(f"{url}/sample/mcp", content=body, headers=merged)
    return loopback_http().post(f"{url}/sample/mcp", json=body, headers=merged)


class TestHostAndOrigin:
    def test_allowed_host_passes(self, url):
        assert post(url, host="api.example.com").status_code == 200

    def test_unknown_host_is_rejected(self, url):
        response = post(url, host="evil.example.net")
        assert response.status_code == 421

    def test_allowed_origin_passes(self, url):
        response = post(url, origin=ALLOWED_ORIGIN)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    def test_foreign_origin_is_403(self, url):
        assert post(url, origin="https://evil.example.net").status_code == 403

    def test_health_answers_the_local_readiness_check(self, url):
        # The Web Adapter polls 127.0.0.1:$PORT; loopback hosts are always allowed.
        assert loopback_http().get(f"{url}/sample/health").status_code == 200


class TestCors:
    def preflight(self, url: str, origin: str) -> httpx.Response:
        return httpx.options(
            f"{url}/sample/mcp",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, authorization, mcp-protocol-version, mcp-method, mcp-name, x-api-key",
            },
        )

    def test_preflight_for_allowed_origin(self, url):
        response = self.preflight(url, ALLOWED_ORIGIN)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in (
            "authorization",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "x-api-key",
        ):
            assert header in allowed

    def test_preflight_for_foreign_origin_is_refused(self, url):
        response = self.preflight(url, "https://evil.example.net")
        assert response.status_code == 403  # the Origin guard answers before CORS
        assert "access-control-allow-origin" not in response.headers


class TestRequestGuard:
    def test_oversized_body_is_413(self, url):
        body = {**LIST_TOOLS, "params": {"pad": "x" * 4096}}
        response = post(url, body)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == -32600

    def test_oversized_chunked_body_is_413(self, url):
        def chunks() -> Iterator[bytes]:
            yield b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "'
            for _ in range(10):
                yield b"x" * 1024
            yield b'"}}'

        response = loopback_http().post(f"{url}/sample/mcp", content=chunks(), headers=MCP_HEADERS)
        assert response.status_code == 413

    @pytest.mark.parametrize(
        ("body", "message", "request_id"),
        [
            ([LIST_TOOLS], "batches are not supported", None),
            ({"id": 7, "method": "tools/list"}, '"jsonrpc"', 7),
            ({"jsonrpc": "2.0", "id": "a8"}, 'needs a "method"', "a8"),
            ({"jsonrpc": "2.0", "id": True, "method": "x"}, '"id"', None),
            ({"jsonrpc": "2.0", "id": 9, "method": 5}, '"method"', 9),
            ({"jsonrpc": "2.0", "id": 10, "method": "tools/list", "params": [1]}, '"params"', 10),
            ("just a string", "JSON object", None),
        ],
    )
    @pytest.mark.parametrize("version", [None, "2025-06-18", "2026-07-28"])
    def test_malformed_jsonrpc_is_invalid_request_with_its_id(
        self, url, body, message, request_id, version
    ):
        headers = {"mcp_protocol_version": version} if version else {}
        response = post(url, body, **headers)
        assert response.status_code == 400
        answer = response.json()
        assert answer["error"]["code"] == -32600
        assert message in answer["error"]["message"]
        assert answer["id"] == request_id

    def test_parse_error_still_minus_32700(self, url):
        response = post(url, b"{nope")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700


class TestProtocolVersions:
    """Versions are the MCP library's to judge; the edge lets its exact answers through."""

    @staticmethod
    def discover(url: str, header: str, envelope: str) -> httpx.Response:
        body = {
            "jsonrpc": "2.0",
            "id": 301,
            "method": "server/discover",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": envelope,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        }
        return post(url, body, mcp_protocol_version=header, mcp_method="server/discover")

    def test_unsupported_version_is_sep_2575_error_with_the_request_id(self, url):
        response = self.discover(url, "v999.0.0", "v999.0.0")
        assert response.status_code == 400
        answer = response.json()
        assert answer["id"] == 301
        assert answer["error"]["data"]["requested"] == "v999.0.0"
        assert "2026-07-28" in answer["error"]["data"]["supported"]

    @pytest.mark.parametrize(("header", "envelope"), [("2026-07-28", "v9"), ("v9", "2026-07-28")])
    def test_header_disagreeing_with_meta_is_header_mismatch(self, url, header, envelope):
        response = self.discover(url, header, envelope)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32020
        assert response.json()["id"] == 301

    def test_an_unknown_version_without_an_envelope_lists_the_supported_ones(self, url):
        """The report: MCP-Protocol-Version 2099-01-01 got -32602 about a missing `_meta`
        envelope; a client learns nothing from it. Now: -32022, the request's id, and the
        versions this server speaks."""
        body = {"jsonrpc": "2.0", "id": 77, "method": "tools/list"}
        response = post(url, body, mcp_protocol_version="2099-01-01")
        assert response.status_code == 400
        answer = response.json()
        assert answer["id"] == 77
        assert answer["error"]["code"] == -32022
        assert answer["error"]["data"]["requested"] == "2099-01-01"
        assert {"2025-06-18", "2026-07-28"} <= set(answer["error"]["data"]["supported"])

    @pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
    def test_a_406_carries_the_request_id(self, url, version):
        """The report: `Accept: text/event-stream` alone got `"id": null` at 2025-11-25 and an
        empty body at 2026-07-28."""
        body = {"jsonrpc": "2.0", "id": 78, "method": "tools/list"}
        if version == "2026-07-28":
            body["params"] = {"_meta": {
                "io.modelcontextprotocol/protocolVersion": version,
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }}  # fmt: skip
        response = post(url, body, accept="text/event-stream", mcp_protocol_version=version,
                        mcp_method="tools/list")  # fmt: skip
        assert response.status_code == 406
        assert response.json()["id"] == 78
        assert response.json()["error"]["message"]

    def test_an_oversized_progress_token_is_refused(self, url):
        """The report: a 1 MB progressToken made an 81 MB answer (every notification echoes it)."""
        body = {
            "jsonrpc": "2.0",
            "id": 79,
            "method": "tools/call",
            "params": {"name": "x", "arguments": {}, "_meta": {"progressToken": "t" * 300}},
        }
        response = post(url, body, mcp_protocol_version="2025-06-18")
        assert response.status_code == 400
        assert response.json()["id"] == 79
        assert "progressToken" in response.json()["error"]["message"]

    def test_supported_modern_version_is_served(self, url):
        response = self.discover(url, "2026-07-28", "2026-07-28")
        assert response.status_code == 200
        assert "2026-07-28" in response.json()["result"]["supportedVersions"]


HOSTILE_BODIES = {
    "deep nesting": b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "huge integer": b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":'
    + b"9" * 20_000
    + b"}}",
    "invalid UTF-8": b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":"\xff\xfe"}}',
    "lone surrogate": b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":"\\ud800"}}',
}


@pytest.fixture(scope="module", params=["buffered", "response_stream"])
def roomy_url(sample_spec, request) -> Iterator[str]:
    """The sample service with a body limit large enough for the hostile bodies, buffered
    and streaming (hostile input gets the same answers from both)."""
    settings = app_settings(
        MCP_AUTH="none", MCP_MAX_BODY_BYTES="400000", AWS_LWA_INVOKE_MODE=request.param
    )
    with serve(create_app(sample_spec, settings)) as base:
        yield base


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_json_is_a_4xx_jsonrpc_error_and_no_traceback(roomy_url, log_lines, name):
    response = post(roomy_url, HOSTILE_BODIES[name])
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in (-32700, -32600, -32602)
    assert "Traceback" not in log_lines.stream.getvalue()
    [line] = log_lines.requests()
    assert line["outcome"] == "protocol_error"
    assert post(roomy_url).status_code == 200  # still healthy


@pytest.mark.parametrize(
    "header", [b"x-amzn-request-context", b"x-amzn-lambda-context", b"x-amzn-trace-id"]
)
def test_hostile_json_headers_are_ignored(roomy_url, log_lines, header):
    response = loopback_http().post(
        f"{roomy_url}/sample/mcp",
        json=LIST_TOOLS,
        headers={**MCP_HEADERS, header.decode(): "[" * 12_000},
    )
    assert response.status_code == 200
    assert "Traceback" not in log_lines.stream.getvalue()


def test_absurd_content_length_is_refused_cleanly(roomy_url):
    import socket

    port = int(roomy_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /sample/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: " + b"9" * 5000 + b"\r\nconnection: close\r\n\r\n{}"
        )
        status_line = sock.recv(100).split(b"\r\n", 1)[0]
    assert int(status_line.split()[1]) in (400, 413)


def test_slow_tool_hits_the_deadline_as_a_tool_error(url):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "sleepy", "arguments": {"seconds": 3}},
    }
    started = time.monotonic()
    response = post(url, body)
    elapsed = time.monotonic() - started
    result = response.json()["result"]
    assert result["isError"] is True
    assert "did not finish within 0.5 s" in result["content"][0]["text"]
    assert elapsed < 2.5


@pytest.mark.parametrize("client", ["fastmcp", "sdk-legacy", "sdk-2026-07-28"])
async def test_the_deadline_answer_is_a_tool_result_both_clients_read(url, client):
    """The report: the buffered deadline answer lacked `resultType`, so fastmcp's client and
    the SDK's raised a ValidationError at 2026-07-28 instead of showing the message."""
    from fastmcp import Client
    from mcp.client import Client as SDKClient
    from mcp.client.streamable_http import streamable_http_client

    if client == "fastmcp":
        async with Client(f"{url}/sample/mcp") as mcp:
            result = await mcp.call_tool("sleepy", {"seconds": 3}, raise_on_error=False)
        assert result.is_error
        assert "did not finish within 0.5 s" in result.content[0].text
        return
    async with httpx.AsyncClient() as http:
        transport = streamable_http_client(f"{url}/sample/mcp", http_client=http)
        async with SDKClient(transport, mode=client.removeprefix("sdk-")) as sdk:
            result = await sdk.call_tool("sleepy", {"seconds": 3})
    assert result.is_error
    assert "did not finish within 0.5 s" in result.content[0].text


HEADER_NAMES = st.sampled_from(
    [
        "content-type",
        "accept",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "origin",
        "host",
        "authorization",
        "x-api-key",
        "content-encoding",
        "x-amzn-request-context",
        "x-amzn-lambda-context",
        "x-amzn-trace-id",
    ]
)
HEADER_VALUES = st.one_of(
    st.from_regex(r"[!-~]([ -~]{0,38}[!-~])?", fullmatch=True),
    st.sampled_from(['{"domainName": 5, "stage": []}', "[" * 3000, "[::1]:x", r'"\u2028"']),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGES = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0"]),
        "method": st.sampled_from(["tools/call", "tools/list", "initialize", "ping", "x"]),
    },
    optional={"id": JSON_VALUES, "params": JSON_VALUES},
)


def _encode(value: object) -> bytes:
    return httpx.Request("POST", "/", json=value).content


def _hostile(text: bytes) -> st.SearchStrategy[bytes]:
    """Message bodies with a hostile fragment spliced in where a value belongs."""
    return MESSAGES.map(lambda m: _encode({**m, "params": "@"}).replace(b'"@"', text))


BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(_encode),
    MESSAGES.map(_encode),
    st.integers(min_value=1100, max_value=1500).flatmap(lambda d: _hostile(b"[" * d + b"]" * d)),
    st.integers(min_value=4400, max_value=6000).flatmap(lambda n: _hostile(b"7" * n)),
    _hostile(b'"\xff\xfe\xc3"'),
    _hostile(b'{"name": "echo", "name": 5, "arguments": {"text": 1}}'),  # duplicate keys
    _hostile(b'{"name": ["echo"], "arguments": "text"}'),  # wrong types
    MESSAGES.map(lambda m: _encode({**m, "method": "tools/call", "params": {"name": 5}})),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4))
def test_no_input_produces_a_server_error(roomy_url, log_lines, body, headers):
    merged = {**MCP_HEADERS, **headers}
    for method in ("POST", "PUT"):
        response = loopback_http().request(
            method, f"{roomy_url}/sample/mcp", content=body, headers=merged, timeout=10
        )
        assert response.status_code < 500, (response.status_code, response.text)
        assert "Traceback" not in response.text
    assert "Traceback" not in log_lines.stream.getvalue()


class TestGuardRules:
    """The Host/Origin rules on their own, over ASGI (no network needed)."""

    @staticmethod
    def status(host: str | None, origin: str | None = None, scheme: str = "https") -> int:
        import asyncio

        from mcp_common.hardening import HostOriginGuardMiddleware

        async def ok(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        guard = HostOriginGuardMiddleware(
            ok,
            allowed_hosts=["*.execute-api.eu-west-1.amazonaws.com", "mcp.example.com"],
            allowed_origins=["https://app.example.com:443"],
        )
        headers = [(b"host", host.encode())] if host is not None else []
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http",
            "scheme": scheme,
            "headers": headers,
            "path": "/",
            "method": "POST",
        }
        asyncio.run(guard(scope, receive, send))
        return sent[0]["status"]

    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("abc123.execute-api.eu-west-1.amazonaws.com", 200),
            ("MCP.example.com:443", 200),
            ("127.0.0.1:8080", 200),
            ("[::1]:8080", 200),
            ("localhost", 200),
            ("[0:0:0:0:0:0:0:1]:8080", 200),
            ("abc123.execute-api.us-east-1.amazonaws.com", 421),
            ('[::1]", error="forged', 421),
            ("[::1]x", 421),
            ("[not-an-address]", 421),
            ("mcp.example.com:443:1", 421),
            ("mcp.example.com:http", 421),
            ("mcp.example.com@evil.net", 421),
            ("execute-api.eu-west-1.amazonaws.com.evil.net", 421),
            ("evil.example.net", 421),
            (None, 421),
        ],
    )
    def test_hosts(self, host, expected):
        assert self.status(host) == expected

    @pytest.mark.parametrize(
        ("origin", "expected"),
        [
            ("https://app.example.com", 200),  # allowed (default port normalised)
            ("https://mcp.example.com", 200),  # same origin as the Host
            ("https://mcp.example.com:443/", 200),
            ("http://mcp.example.com", 403),  # other scheme: another origin
            ("https://evil.example.net", 403),
            ("null", 403),
        ],
    )
    def test_origins(self, origin, expected):
        assert self.status("mcp.example.com", origin) == expected

    def test_loopback_origin_on_loopback_host(self):
        assert self.status("127.0.0.1:8080", "http://localhost:3000", scheme="http") == 200


def test_the_deadline_stops_an_async_tools_work(url):
    """The report: a buffered deadline answered the client but never cancelled the tool, so
    six abandoned reads kept the server computing for 41 s."""
    import importlib

    tools = importlib.import_module("sample_service_tools.tools")
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "napping", "arguments": {"seconds": 30, "label": "deadline"}},
    }
    started = time.monotonic()
    result = post(url, body).json()["result"]
    assert result["isError"] is True
    assert "did not finish within 0.5 s" in result["content"][0]["text"]
    while "deadline" not in tools.STOPPED:
        assert time.monotonic() - started < 10, "the tool kept running past its deadline"
        time.sleep(0.05)
