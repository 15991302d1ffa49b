"""HTTP hardening over real HTTP: Host/Origin, CORS, body size, versions, envelopes, deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.testing import MCP_HEADERS, app_settings, serve
from mcp_common.app import create_app

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
        return httpx.post(f"{url}/sample/mcp", content=body, headers=merged)
    return httpx.post(f"{url}/sample/mcp", json=body, headers=merged)


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
        assert httpx.get(f"{url}/sample/health").status_code == 200


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
        assert response.status_code == 400
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

        response = httpx.post(f"{url}/sample/mcp", content=chunks(), headers=MCP_HEADERS)
        assert response.status_code == 413

    def test_unsupported_protocol_version_is_400(self, url):
        response = post(url, mcp_protocol_version="1999-01-01")
        assert response.status_code == 400
        assert "unsupported MCP-Protocol-Version" in response.json()["error"]["message"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([LIST_TOOLS], "batches are not supported"),
            ({"id": 1, "method": "tools/list"}, '"jsonrpc"'),
            ({"jsonrpc": "2.0", "id": 1}, 'needs a "method"'),
            ({"jsonrpc": "2.0", "id": True, "method": "x"}, '"id"'),
            ({"jsonrpc": "2.0", "id": 1, "method": 5}, '"method"'),
            ({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}, '"params"'),
            ("just a string", "JSON object"),
        ],
    )
    def test_malformed_jsonrpc_is_invalid_request(self, url, body, message):
        response = post(url, body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == -32600
        assert message in error["message"]

    def test_parse_error_still_minus_32700(self, url):
        response = post(url, b"{nope")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700


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


HEADER_NAMES = st.sampled_from(
    [
        "content-type",
        "accept",
        "mcp-protocol-version",
        "origin",
        "authorization",
        "x-api-key",
        "mcp-method",
        "content-encoding",
    ]
)
HEADER_VALUES = st.from_regex(r"[!-~]([ -~]{0,38}[!-~])?", fullmatch=True)
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
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda v: httpx.Request("POST", "/", json=v).content),
    MESSAGES.map(lambda v: httpx.Request("POST", "/", json=v).content),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4))
def test_no_input_produces_a_server_error(url, body, headers):
    merged = {**MCP_HEADERS, **headers}
    with httpx.Client(timeout=10) as client:
        for method in ("POST", "PUT"):
            response = client.request(method, f"{url}/sample/mcp", content=body, headers=merged)
            assert response.status_code < 500, (response.status_code, response.text)
            assert "Traceback" not in response.text


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
            ("abc123.execute-api.us-east-1.amazonaws.com", 421),
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
