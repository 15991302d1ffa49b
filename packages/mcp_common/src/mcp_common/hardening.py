"""HTTP hardening in front of the MCP endpoint: paths, sizes, versions, envelopes, deadlines.

All of it is plain ASGI: one pass over the body serves the size limit, the JSON-RPC
envelope check, the request log's method/tool fields and the tool-call deadline.

API Gateway and the Web Adapter forward paths verbatim, so a redirect issued here
would carry a Location without the stage prefix and break clients; the endpoint
answers with and without a trailing slash instead. Every refusal is a 4xx with a
JSON body (a JSON-RPC error where the client speaks JSON-RPC), never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_common.logs import current_request

SUPPORTED_PROTOCOL_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
MCP_CORS_HEADERS = [
    "content-type",
    "authorization",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "mcp-session-id",
    "x-api-key",
    "last-event-id",
]
INVALID_REQUEST = -32600


class TrailingSlashMiddleware:
    """Serve `<path>/` as `<path>` for the given exact paths, never redirecting."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app = app
        self.slashed = {f"{path}/": path for path in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = self.slashed.get(scope["path"])
            if target is not None:
                scope = dict(scope, path=target, raw_path=target.encode())
        await self.app(scope, receive, send)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_name(value: str) -> str:
    """`Host` or origin authority without port and brackets, lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _origin_key(origin: str) -> str:
    """`scheme://host[:port]` with default ports dropped, for exact comparison."""
    origin = origin.strip().rstrip("/").lower()
    for default in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(default[0]) and origin.endswith(default[1]):
            return origin[: -len(default[1])]
    return origin


class HostOriginGuardMiddleware:
    """DNS-rebinding and cross-origin protection: `Host` must be allowed (else 421), and a
    request carrying an `Origin` must come from an allowed origin or the same origin (else 403).

    The allow-lists are normalised once here; fastmcp's equivalent guard re-derives them and
    parses addresses on every request, which was the largest cost on the warm path.
    Loopback hosts are always allowed (the Web Adapter's readiness check uses them).
    """

    def __init__(
        self, app: ASGIApp, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]
    ) -> None:
        self.app = app
        hosts = {_host_name(host) for host in allowed_hosts} | LOOPBACK_HOSTS
        self.exact_hosts = frozenset(host for host in hosts if "*" not in host and "?" not in host)
        self.host_patterns = tuple(host for host in hosts if host not in self.exact_hosts)
        self.origins = frozenset(_origin_key(origin) for origin in allowed_origins)

    def _host_allowed(self, host: str) -> bool:
        return host in self.exact_hosts or any(fnmatchcase(host, p) for p in self.host_patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host_header = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host_header = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if host_header is None or not self._host_allowed(_host_name(host_header)):
            await PlainTextResponse("Misdirected Request", status_code=421)(scope, receive, send)
            return
        if origin is not None and not self._origin_allowed(origin, scope, host_header):
            await PlainTextResponse("Forbidden Origin", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _origin_allowed(self, origin: str, scope: Scope, host_header: str) -> bool:
        key = _origin_key(origin)
        if key in self.origins:
            return True
        if key == _origin_key(f"{scope.get('scheme', 'http')}://{host_header}"):
            return True  # same origin
        origin_host = _host_name(key.split("://", 1)[-1])
        return origin_host in LOOPBACK_HOSTS and _host_name(host_header) in LOOPBACK_HOSTS


def _jsonrpc_error(status: int, code: int, message: str, request_id: Any = None) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status)


def _envelope_problem(message: object) -> str | None:
    """Why a parsed body is not a single JSON-RPC 2.0 message (None if it is one)."""
    if isinstance(message, list):
        return "JSON-RPC batches are not supported; send one message per request"
    if not isinstance(message, dict):
        return "a JSON-RPC message must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'missing or wrong "jsonrpc" member: must be "2.0"'
    request_id = message.get("id")
    if "id" in message and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        return '"id" must be a string or an integer'
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return '"method" must be a non-empty string'
        if "params" in message and not isinstance(message["params"], dict):
            return '"params" must be an object'
        return None
    if "id" in message and ("result" in message or "error" in message):
        return None  # a response from the client
    return 'a request needs a "method"'


class RequestGuardMiddleware:
    """Bound the body (413), check MCP-Protocol-Version (400) and the JSON-RPC envelope (400),
    name the method and tool for the request log, and answer every tools/call by its deadline.
    """

    def __init__(
        self,
        app: ASGIApp,
        mcp_path: str,
        max_body_bytes: int,
        tool_timeout_seconds: float,
        tool_names: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.max_body_bytes = max_body_bytes
        self.tool_timeout_seconds = tool_timeout_seconds
        self.tool_names = frozenset(tool_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.mcp_path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        version = headers.get(b"mcp-protocol-version")
        if version is not None and version.decode("latin-1") not in SUPPORTED_PROTOCOL_VERSIONS:
            supported = ", ".join(SUPPORTED_PROTOCOL_VERSIONS)
            response = _jsonrpc_error(
                400,
                INVALID_REQUEST,
                f"unsupported MCP-Protocol-Version {version.decode('latin-1')!r}; supported: {supported}",
            )
            await response(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        try:
            message = json.loads(body)
        except ValueError:
            await self.app(scope, _replay(body, receive), send)  # the transport answers -32700
            return
        problem = _envelope_problem(message)
        if problem is not None:
            await _jsonrpc_error(400, INVALID_REQUEST, f"Invalid Request: {problem}")(
                scope, receive, send
            )
            return
        method = message.get("method")
        tool = None
        if method == "tools/call":
            params = message.get("params") or {}
            tool = params.get("name") if isinstance(params.get("name"), str) else None
        record = current_request.get()
        if record is not None:
            record.method = method
            record.tool = tool
            record.unknown_tool = method == "tools/call" and tool not in self.tool_names
        if method == "tools/call" and "id" in message:
            await self._call_with_deadline(scope, _replay(body, receive), send, message["id"], tool)
        else:
            await self.app(scope, _replay(body, receive), send)

    async def _call_with_deadline(
        self, scope: Scope, receive: Receive, send: Send, request_id: Any, tool: str | None
    ) -> None:
        """Answer a tool error at the deadline if the tool has not answered by then.

        A synchronous tool runs in a worker thread that cannot be interrupted, so the
        answer cannot wait for it: a timer sends the error, and the tool's late answer
        is dropped. A timer costs far less per call than a task.
        """
        loop = asyncio.get_running_loop()
        state = {"started": False, "timed_out": False}
        pending: set[asyncio.Task[None]] = set()

        async def guarded_send(message: Message) -> None:
            if state["timed_out"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        def on_deadline() -> None:
            if state["started"]:
                return
            state["timed_out"] = True
            text = (
                f"tool {tool!r} did not finish within {self.tool_timeout_seconds:g} s; "
                "try again or narrow the request"
            )
            result = {"content": [{"type": "text", "text": text}], "isError": True}
            response = JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})
            pending.add(loop.create_task(response(scope, receive, send)))

        timer = loop.call_later(self.tool_timeout_seconds, on_deadline)
        try:
            await self.app(scope, receive, guarded_send)
        finally:
            timer.cancel()
            if pending:
                await asyncio.gather(*pending)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _jsonrpc_error(
            413, INVALID_REQUEST, f"request body exceeds {self.max_body_bytes} bytes"
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
