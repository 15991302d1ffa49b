"""HTTP hardening in front of the MCP endpoint: paths, sizes, versions, envelopes, deadlines.

API Gateway and the Web Adapter forward paths verbatim, so a redirect issued here
would carry a Location without the stage prefix and break clients; the endpoint
answers with and without a trailing slash instead. Every refusal is a 4xx with a
JSON body (a JSON-RPC error where the client speaks JSON-RPC), never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    """Bound the body (413), check MCP-Protocol-Version (400) and the JSON-RPC envelope (400)."""

    def __init__(self, app: ASGIApp, mcp_path: str, max_body_bytes: int) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.max_body_bytes = max_body_bytes

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
        problem = self._problem(body)
        if problem is not None:
            await _jsonrpc_error(400, INVALID_REQUEST, f"Invalid Request: {problem}")(
                scope, receive, send
            )
            return
        await self.app(scope, _replay(body, receive), send)

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

    @staticmethod
    def _problem(body: bytes) -> str | None:
        try:
            message = json.loads(body)
        except ValueError:
            return None  # unparseable: the transport answers -32700 Parse error
        return _envelope_problem(message)

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


class ToolDeadlineMiddleware(Middleware):
    """Every tool call answers within `seconds`: past it, the caller gets a tool error."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        # A sync tool runs in a worker thread that cannot be cancelled, so the call is
        # awaited in its own task and abandoned (not waited for) when the deadline passes.
        task = asyncio.ensure_future(call_next(context))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if not done:
            task.cancel()
            name = getattr(context.message, "name", "?")
            raise ToolError(
                f"tool {name!r} did not finish within {self.seconds:g} s; try again or narrow the request"
            )
        return task.result()
