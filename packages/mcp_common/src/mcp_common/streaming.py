"""Streamed answers: what a service whose own stack says `ResponseTransferMode: STREAM` adds.

Such a service runs the MCP library in SSE mode (`json_response=False`), so a `tools/call`
is answered with an SSE stream: `notifications/progress` as they happen, keep-alive comments
every 15 s (the library's), then the result. At protocol 2026-07-28 the library commits to
SSE only once a call reports progress or runs 15 s, so a quick silent call is still one JSON
body; the handshake-era revisions (2025-*) get every answer as a short SSE stream.

What this module adds around the library, and only for streaming services:

- **Deadlines that stop the tool.** Once an SSE stream has started, the edge can no longer
  answer in the tool's place (buffered services do, see hardening.py), so the deadline is
  applied around the tool itself: at MCP_TOOL_TIMEOUT_SECONDS the tool's task is cancelled
  and the client gets a tool error on the same stream.
- **Cancellation.** A client that closes the stream cancels the call (the library watches
  the disconnect); `notifications/cancelled` for a call in flight in the same process
  cancels it too, but only for the principal that made the call: request ids are the
  client's to choose, so nobody can cancel another principal's work by guessing one.
  Either way the tool's task is cancelled at its next `await` and its cleanup runs; the
  request line logs `outcome: cancelled`. On Lambda neither arrives (Lambda does not pass a
  client's disconnect to a streaming invocation, and each instance serves one request, so a
  cancellation POST reaches another one): there the deadline bounds the call.
- **One JSON answer for clients that accept only JSON** (`JsonAnswersMiddleware`): the
  library would refuse them (406) in SSE mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.server.streamable_http import check_accept_headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_common.auth import current_principal
from mcp_common.logs import current_request

BOTH_ACCEPTED = b"application/json, text/event-stream"


@dataclass
class InFlightCall:
    """A `tools/call` being served, which its own principal may cancel."""

    key: tuple[str, str, str]
    task: asyncio.Task[Any] | None = None
    cancelled_by_client: bool = False

    def cancel(self) -> None:
        self.cancelled_by_client = True
        if self.task is not None:
            self.task.cancel()


_current_call: ContextVar[InFlightCall | None] = ContextVar("mcp_streamed_call", default=None)


def current_call() -> InFlightCall | None:
    """The tools/call this request serves, registered by the edge (None outside one)."""
    return _current_call.get()


def _key(principal: str, request_id: object, session: str = "") -> tuple[str, str, str]:
    """Ids compare as JSON values: 7 and "7" are different requests."""
    return principal, session, json.dumps(request_id, sort_keys=True)


@dataclass
class InFlightCalls:
    """The process's calls in flight, by (principal, client session, JSON-RPC id).

    Two clients under one principal (everyone under MCP_AUTH=none, people sharing a key) may
    both use id 1. With an `Mcp-Session-Id`, the session tells them apart; without one, a
    cancel that names two calls in flight is ambiguous and cancels neither: a cancel stops
    at most the sender's own call."""

    calls: dict[tuple[str, str, str], list[InFlightCall]] = field(default_factory=dict)

    @contextlib.contextmanager
    def track(self, request_id: object, session: str = "") -> Iterator[InFlightCall]:
        """Register the caller's call with this id while it is served."""
        call = InFlightCall(_key(_principal(), request_id, session))
        self.calls.setdefault(call.key, []).append(call)
        token = _current_call.set(call)
        try:
            yield call
        finally:
            _current_call.reset(token)
            same = self.calls[call.key]
            same.remove(call)
            if not same:
                del self.calls[call.key]

    def cancel(self, params: object, session: str = "") -> bool:
        """Cancel the caller's own call named by `notifications/cancelled` params, if it is in
        flight in this process and no other call shares its principal, session and id."""
        if not isinstance(params, dict) or "requestId" not in params:
            return False
        same = self.calls.get(_key(_principal(), params["requestId"], session), [])
        if len(same) != 1:
            return False  # none, or ambiguous: never stop another client's call
        same[0].cancel()
        return True


def _principal() -> str:
    try:
        return current_principal()
    except RuntimeError:  # outside an authenticated request: a namespace nobody has
        return ""


class StreamedCallMiddleware(Middleware):
    """Run each tool call as a task the deadline and the client can cancel."""

    def __init__(self, tool_timeout_seconds: float) -> None:
        self.tool_timeout_seconds = tool_timeout_seconds

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, ToolResult]
    ) -> ToolResult:
        call = _current_call.get()
        task = asyncio.ensure_future(call_next(context))
        task.add_done_callback(_collect)
        if call is not None:
            call.task = task
            if call.cancelled_by_client:  # the cancellation arrived before the tool started
                task.cancel()
        record = current_request.get()
        try:
            done, _ = await asyncio.wait({task}, timeout=self.tool_timeout_seconds)
        except asyncio.CancelledError:  # the client closed the stream
            task.cancel()
            if record is not None:
                record.outcome, record.error = "cancelled", "client disconnected"
            raise
        if not done:
            task.cancel()  # a synchronous tool's thread cannot be stopped; its answer is dropped
            if record is not None:
                record.error = "deadline"
            name = getattr(context.message, "name", "(unknown)")
            raise ToolError(
                f"tool {name!r} did not finish within {self.tool_timeout_seconds:g} s; "
                "try again or narrow the request"
            )
        if task.cancelled():
            if record is not None:
                record.outcome, record.error = "cancelled", "cancelled by the client"
            raise ToolError("the call was cancelled by the client")
        return task.result()


def _collect(task: asyncio.Task[Any]) -> None:
    """Retrieve the outcome of a tool task nobody awaits any more (stopped at its deadline,
    or after its client left), so its late exception is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


class JsonAnswersMiddleware:
    """Give a client that accepts only `application/json` one JSON answer from an SSE service.

    The request reaches the library as if it accepted both. An SSE answer becomes one JSON
    body: its headers go out at once, each keep-alive comment becomes a space (JSON allows
    white space before a value, and API Gateway closes a connection idle for 5 minutes), and
    the JSON-RPC response the stream ends with is the body; progress notifications are
    dropped, since the client did not ask for them. A JSON answer passes through untouched.
    """

    def __init__(self, app: ASGIApp, mcp_path: str) -> None:
        self.app = app
        self.mcp_path = mcp_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.mcp_path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        has_json, has_sse = check_accept_headers(Request(scope))
        if has_sse or not has_json:
            await self.app(scope, receive, send)  # the library's rules apply (406 for neither)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"accept"]
        scope = dict(scope, headers=[*headers, (b"accept", BOTH_ACCEPTED)])
        streamed = False
        pending = b""  # an event not yet complete: the largest event is what is held
        answer = _NO_ANSWER

        async def collapse(message: Message) -> None:
            nonlocal streamed, pending, answer
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                streamed = content_type.startswith(b"text/event-stream")
                if streamed:
                    message = {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json")],
                    }
                await send(message)
                return
            if not streamed:
                await send(message)
                return
            pending += message.get("body", b"").replace(b"\r\n", b"\n")
            *complete, pending = pending.split(b"\n\n")
            for event in complete:
                found = _response_of(event)
                if found is not None:
                    answer = found
            if message.get("more_body"):
                if complete:  # a keep-alive or a dropped progress event: a byte on the wire
                    await send({"type": "http.response.body", "body": b" ", "more_body": True})
                return
            found = _response_of(pending)
            await send(
                {"type": "http.response.body", "body": found if found is not None else answer}
            )

        await self.app(scope, receive, collapse)


_NO_ANSWER = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"the call ended without an answer"}}'


def _response_of(event: bytes) -> bytes | None:
    """The JSON-RPC response (a result or an error) an SSE event carries, if it carries one."""
    data = b"\n".join(
        line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    )
    if not data:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if (
        isinstance(message, dict)
        and "id" in message
        and ("result" in message or "error" in message)
    ):
        return data
    return None
