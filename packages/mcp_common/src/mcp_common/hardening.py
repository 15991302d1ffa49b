"""HTTP hardening in front of the MCP endpoint: Host/Origin, paths, sizes, envelopes, deadlines.

All of it is plain ASGI: one pass over the body serves the size limit, the JSON-RPC
envelope check, the request log's method/tool fields and the tool-call deadline.

API Gateway and the Web Adapter forward paths verbatim, so a redirect issued here
would carry a Location without the stage prefix and break clients; the endpoint
answers with and without a trailing slash instead. Every refusal is a 4xx with a
JSON body (a JSON-RPC error where the client speaks JSON-RPC), never a 5xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from mcp_types.version import SUPPORTED_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_common import untrusted
from mcp_common.auth import principal_or_none
from mcp_common.logs import INVALID_NAME, UNKNOWN_TOOL, RequestRecord, current_request
from mcp_common.untrusted import decimal_length

if TYPE_CHECKING:
    from mcp_common.streaming import InFlightCalls

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
UNSUPPORTED_VERSION = -32022  # the 2026-07-28 revision's code; its data lists the versions


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
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def parse_host(value: str) -> str | None:
    """The host of a `Host` value or origin authority (RFC 9110 §7.2: `uri-host [":" port]`),
    lowercased, without port and brackets; None if it is malformed.

    A bracketed IPv6 literal must be a valid address (returned in its compressed form), a
    name may hold only letters, digits, `-`, `.` and `_`, and a port only digits, so no
    crafted value can pass as an allowed host.
    """
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        try:
            host = str(ipaddress.IPv6Address(value[1:end]))
        except ValueError:
            return None
        port = value[end + 1 :]
    else:
        host, colon, port = value.partition(":")
        port = colon + port
        if not host or not _NAME_CHARS.issuperset(host):
            return None
    digits = port[1:]
    if port and (port[0] != ":" or len(digits) > 5 or (digits and not digits.isdigit())):
        return None
    return host


def _allow_list_host(entry: str) -> str:
    """An allow-list entry in the form parse_host gives hosts (`*` wildcards kept as is)."""
    return parse_host(entry) or entry.strip().lower().strip("[]")


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
        hosts = {_allow_list_host(host) for host in allowed_hosts} | LOOPBACK_HOSTS
        self.exact_hosts = frozenset(host for host in hosts if "*" not in host and "?" not in host)
        self.host_patterns = tuple(host for host in hosts if host not in self.exact_hosts)
        self.origins = frozenset(_origin_key(origin) for origin in allowed_origins)

    def _host_allowed(self, host: str | None) -> bool:
        if host is None:
            return False
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
        if host_header is None or not self._host_allowed(parse_host(host_header)):
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
        origin_host = parse_host(key.split("://", 1)[-1])
        return origin_host in LOOPBACK_HOSTS and parse_host(host_header) in LOOPBACK_HOSTS


def _jsonrpc_error(
    status: int, code: int, message: str, request_id: Any = None, data: Any = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    body = {"jsonrpc": "2.0", "id": request_id, "error": error}
    return JSONResponse(body, status_code=status)


ENVELOPE_VERSION = "io.modelcontextprotocol/protocolVersion"
MAX_PROGRESS_TOKEN_BYTES = 256
"""Every progress notification echoes the token: a 1 MB token made an 81 MB answer."""


@dataclass
class _Refusal:
    error: dict[str, Any]
    response: JSONResponse


def _protocol_refusal(scope: Scope, message: dict[str, Any]) -> _Refusal | None:
    """An unsupported protocol version (answered with the versions this server speaks, as
    the 2026 revision's -32022 does) or an oversized progress token, refused with the
    request's id before the library parses anything."""
    request_id = request_id_of(message)
    version = _header(scope, b"mcp-protocol-version")
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    enveloped = isinstance(meta, dict) and ENVELOPE_VERSION in meta  # the library judges those
    if version and version not in SUPPORTED_PROTOCOL_VERSIONS and not enveloped:
        text = f"unsupported protocol version {version[:40]!r}; supported: " + ", ".join(
            SUPPORTED_PROTOCOL_VERSIONS
        )
        data = {"supported": list(SUPPORTED_PROTOCOL_VERSIONS), "requested": version[:40]}
        response = _jsonrpc_error(400, UNSUPPORTED_VERSION, text, request_id, data)
        return _Refusal({"message": text}, response)
    if isinstance(meta, dict) and "progressToken" in meta:
        size = len(json.dumps(meta["progressToken"]))
        if size > MAX_PROGRESS_TOKEN_BYTES:
            text = (
                f"progressToken is {size} bytes; at most {MAX_PROGRESS_TOKEN_BYTES} "
                "(every progress notification echoes it)"
            )
            return _Refusal({"message": text}, _jsonrpc_error(400, -32602, text, request_id))
    return None


def _406_with_id(send: Send, request_id: Any) -> Send:
    """The library's 406 (an Accept header it cannot answer) as a JSON-RPC error carrying
    the request's id, at every revision (it answered `"id": null`, or an empty body)."""
    state: dict[str, Any] = {"refused": False, "body": b""}

    async def guarded(message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status") == 406:
            state["refused"], state["start"] = True, message
            return
        if not state["refused"]:
            await send(message)
            return
        state["body"] += message.get("body", b"")
        if message.get("more_body"):
            return
        try:
            said = json.loads(state["body"] or b"{}").get("error", {}).get("message")
        except (ValueError, AttributeError):
            said = None
        text = said or "Not Acceptable: Accept must include application/json and text/event-stream"
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": INVALID_REQUEST, "message": text},
            }
        ).encode()
        headers = [
            (k, v)
            for k, v in state["start"].get("headers", [])
            if k.lower() not in (b"content-length", b"content-type")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({**state["start"], "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return guarded


def request_id_of(message: object) -> str | int | None:
    """The message's id if it has a valid one (a string or an integer), else None."""
    if isinstance(message, dict):
        request_id = message.get("id")
        if isinstance(request_id, str | int) and not isinstance(request_id, bool):
            return request_id
    return None


def _envelope_problem(message: object) -> str | None:
    """Why a parsed body is not a single JSON-RPC 2.0 message (None if it is one)."""
    if isinstance(message, list):
        return "JSON-RPC batches are not supported; send one message per request"
    if not isinstance(message, dict):
        return "a JSON-RPC message must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'missing or wrong "jsonrpc" member: must be "2.0"'
    if "id" in message and request_id_of(message) is None:
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
    """Bound the body (413), check the JSON-RPC envelope (400), name the method and tool for
    the request log, and answer every tools/call by its deadline.

    It runs after authentication, so an unauthenticated client cannot make the server
    buffer or parse anything. Protocol versions, protocol headers and unparseable bodies
    are left to the MCP library, which knows every revision's rules (SEP-2575's
    UnsupportedProtocolVersionError and HeaderMismatch among them). Only a malformed
    envelope is answered here, because the library's answer for the handshake-era
    revisions is wrong (-32602, a 202 for a boolean id); every such answer carries the
    request's id when it has a valid one.
    """

    def __init__(
        self,
        app: ASGIApp,
        mcp_path: str,
        max_body_bytes: int,
        tool_timeout_seconds: float,
        tool_names: Iterable[str] = (),
        body_timeout_seconds: float = 10.0,
        streamed_calls: InFlightCalls | None = None,
        calls_per_principal: int = 4,
        write_timeout_seconds: float = 30.0,
    ) -> None:
        self.write_timeout_seconds = write_timeout_seconds
        self.app = app
        self.calls_per_principal = calls_per_principal
        self._in_flight: dict[str, int] = {}
        """Tool calls in flight per principal (one event loop: no lock needed)."""
        self.streamed_calls = streamed_calls
        """A streaming service's calls in flight: the deadline is applied around the tool
        (streaming.py), and `notifications/cancelled` reaches the caller's own call."""
        self.mcp_path = mcp_path
        self.max_body_bytes = max_body_bytes
        self.tool_timeout_seconds = tool_timeout_seconds
        self.body_timeout_seconds = body_timeout_seconds
        self.tool_names = frozenset(tool_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.mcp_path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = next(
            (value for name, value in scope["headers"] if name == b"content-length"), None
        )
        if declared is not None:
            length = decimal_length(declared)
            if length is None or length > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        try:
            async with asyncio.timeout(self.body_timeout_seconds):
                body = await self._read_body(receive)
        except TimeoutError:
            await self._too_slow(scope, receive, send)
            return
        if body is None:
            await self._too_large(scope, receive, send)
            return
        record = current_request.get()
        message = untrusted.loads(body)
        if message is untrusted.UNPARSEABLE:
            if record is not None:
                record.error = "request body is not JSON"
            await self.app(scope, replay_body(body, receive), send)  # the library answers -32700
            return
        problem = _envelope_problem(message)
        if problem is not None:
            if record is not None:
                record.error = f"Invalid Request: {problem}"
            response = _jsonrpc_error(
                400, INVALID_REQUEST, f"Invalid Request: {problem}", request_id_of(message)
            )
            await response(scope, receive, send)
            return
        refusal = _protocol_refusal(scope, message)
        if refusal is not None:
            if record is not None:
                record.error = refusal.error["message"]
            await refusal.response(scope, receive, send)
            return
        send = _406_with_id(send, request_id_of(message))
        method = message.get("method")
        tool = _tool_name(message) if method == "tools/call" else None
        if record is not None:
            self._describe(record, method, tool)
        calls = self.streamed_calls
        if method == "tools/call" and "id" in message:
            principal = principal_or_none() or ""
            if self._in_flight.get(principal, 0) >= self.calls_per_principal:
                await self._too_many(scope, receive, send, message["id"], record)
                return
            self._in_flight[principal] = self._in_flight.get(principal, 0) + 1
            try:
                if calls is not None:  # streaming: the deadline is applied around the tool
                    session = _header(scope, b"mcp-session-id")
                    with calls.track(message["id"], session) as call:
                        silent = _silent_after_cancel(call, send)
                        bounded = _write_deadline(silent, self.write_timeout_seconds, call)
                        await self.app(scope, replay_body(body, receive), bounded)
                else:
                    await self._call_with_deadline(
                        scope, replay_body(body, receive), send, message["id"], tool
                    )
            finally:
                left = self._in_flight[principal] - 1
                if left:
                    self._in_flight[principal] = left
                else:
                    del self._in_flight[principal]
        else:
            if method == "notifications/cancelled" and calls is not None:
                calls.cancel(message.get("params"), _header(scope, b"mcp-session-id"))
            await self.app(scope, replay_body(body, receive), send)

    async def _too_many(
        self, scope: Scope, receive: Receive, send: Send, request_id: Any, record: object
    ) -> None:
        """A tool error, at once: this caller already has its share of calls running."""
        if isinstance(record, RequestRecord):
            record.error = "too many calls in flight"
        text = (
            f"this caller already has {self.calls_per_principal} calls running on this service; "
            "wait for one to finish (or cancel it) and try again"
        )
        await tool_error_response(scope, request_id, text)(scope, receive, send)

    def _describe(self, record: RequestRecord, method: object, tool: object) -> None:
        """Name the method and tool in the request log, never a hostile or unknown name whole."""
        if method is None:
            return  # a response posted by the client
        record.method = untrusted.loggable_name(method)
        if record.method is None:
            record.method = INVALID_NAME
            record.name_excerpt = untrusted.excerpt(method)
        elif method == "tools/call":
            if isinstance(tool, str) and tool in self.tool_names:
                record.tool = tool
            else:
                record.tool = UNKNOWN_TOOL
                record.name_excerpt = untrusted.excerpt(tool)

    async def _call_with_deadline(
        self, scope: Scope, receive: Receive, send: Send, request_id: Any, tool: object
    ) -> None:
        """Answer a tool error at the deadline if the tool has not answered by then, and stop
        the tool: an async tool is cancelled there. A synchronous tool runs in a worker
        thread that cannot be interrupted, so the answer cannot wait for it: its late answer
        is dropped."""
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
            record = current_request.get()  # the timer runs in the request's context
            if record is not None:
                record.error = "deadline"
            name = tool if tool in self.tool_names else "(unknown)"
            text = (
                f"tool {name!r} did not finish within {self.tool_timeout_seconds:g} s; "
                "try again or narrow the request"
            )
            response = tool_error_response(scope, request_id, text)
            pending.add(loop.create_task(response(scope, receive, send)))

        work = asyncio.ensure_future(self.app(scope, receive, guarded_send))

        def stop_the_tool() -> None:
            on_deadline()
            if state["timed_out"]:
                work.cancel()  # an async tool stops here; a thread's late answer is dropped

        timer = loop.call_later(self.tool_timeout_seconds, stop_the_tool)
        try:
            await work
        except asyncio.CancelledError:
            if not state["timed_out"]:  # the request itself was cancelled: the client left
                work.cancel()
                raise
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
        record = current_request.get()
        if record is not None:
            record.refusal = "size"
        response = _jsonrpc_error(
            413, INVALID_REQUEST, f"request body exceeds {self.max_body_bytes} bytes"
        )
        await response(scope, receive, send)

    async def _too_slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body did not arrive in time (a slow or stalled client): 408, connection closed."""
        record = current_request.get()
        if record is not None:
            record.refusal = "timeout"
            record.error = "body timeout"
        response = _jsonrpc_error(
            408,
            INVALID_REQUEST,
            f"request body not received within {self.body_timeout_seconds:g} s",
        )
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def bounded_h11_protocol(header_timeout_seconds: float) -> type:
    """uvicorn's HTTP/1.1 protocol, with a deadline on every request's head.

    uvicorn bounds the time between requests (`timeout_keep_alive`), not the time a request
    takes to arrive: a client sending one header line every few seconds held a connection
    open indefinitely (slowloris). Here the request line and headers must arrive within
    `header_timeout_seconds` of the connection, or of the previous answer, or the
    connection is closed. (h11 already bounds their size.) The body has its own deadline
    in RequestGuardMiddleware. Inside Lambda the Web Adapter is the only client; this
    matters wherever a service listens to others: `run.sh` on a host, `fleet dev`.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _head_scope: object = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm_head_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_deadline is not None and self.scope is not self._head_scope:
                self._disarm_head_deadline()  # a new request's head has arrived whole

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()  # the next request's head, if one comes

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self._head_scope = self.scope
            self._head_deadline = self.loop.call_later(header_timeout_seconds, self._too_slow)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _too_slow(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return BoundedH11Protocol


STATELESS_REVISIONS = ("2026-07-28",)
"""Revisions whose results carry `resultType` (a client validates its presence)."""


def tool_error_response(scope: Scope, request_id: Any, text: str) -> JSONResponse:
    """A tools/call answered by the edge (deadline, fairness) as a valid CallToolResult for
    the request's protocol revision: an error the model reads, not a transport failure."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if _header(scope, b"mcp-protocol-version") in STATELESS_REVISIONS:
        result["resultType"] = "complete"
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})


def _header(scope: Scope, name: bytes) -> str:
    return next((v for k, v in scope["headers"] if k == name), b"").decode("latin-1")


class ClientNotReading(Exception):
    """A streamed answer's write waited past MCP_WRITE_TIMEOUT_SECONDS."""


def _write_deadline(send: Send, seconds: float, call: Any) -> Send:
    """Every write of a streamed answer reaches the client within `seconds`, or the call is
    stopped and the connection dropped: a client that never reads would otherwise hold the
    tool (and its connection) until it left."""

    async def guarded(message: Message) -> None:
        try:
            async with asyncio.timeout(seconds):
                await send(message)
        except TimeoutError:
            record = current_request.get()
            if record is not None:
                record.outcome, record.error = "cancelled", "client not reading"
            if call.task is not None:
                call.task.cancel()
            raise ClientNotReading(f"no write reached the client in {seconds:g} s") from None

    return guarded


def _silent_after_cancel(call: Any, send: Send) -> Send:
    """A call its client cancelled ends its stream without a response: the spec says the
    receiver SHOULD NOT answer, and clients report an answer to a cancelled request as one
    for an unknown id."""

    async def guarded(message: Message) -> None:
        if (
            call.cancelled_by_client
            and message["type"] == "http.response.body"
            and b'"result"' in message.get("body", b"")
        ):
            message = {**message, "body": b""}
        await send(message)

    return guarded


def _tool_name(message: dict[str, Any]) -> object:
    params = message.get("params")
    return params.get("name") if isinstance(params, dict) else None


def replay_body(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app after the body was read: the body once, then what follows."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
