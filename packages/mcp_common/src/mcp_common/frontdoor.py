"""The whole fleet at one MCP endpoint: the front door.

`/mcp` serves every tool the caller may call, named `<service>_<tool>`, with the schema,
annotations and description its service declares; `/search/mcp` serves the same tools behind
fastmcp's BM25 search transform (a search tool and a call tool, whatever the fleet's size).

- **A catalog, not a fetch.** The tool list comes from a catalog built from the services' own
  discovery (`fleet dev` builds it in-process; `fleet catalog` writes it for a build), so
  listing never calls a service.
- **Calls go to the service.** A call is forwarded to `<service>/mcp` as one stateless
  `tools/call`, with the caller's own credential, protocol version and trace header: the
  service authenticates it as it would a direct call, so the front door grants nothing a
  direct call would not. A streaming service's progress is relayed; cancelling the call
  closes the upstream request.
- **Each caller sees what it may call.** The caller's credential is checked against every
  service with the same authenticators the services use (mcp_common.auth): a key for `math`
  lists math's tools only, a token the services its scopes and groups name; calling a tool of
  another service is "unknown tool". A credential no service accepts gets the 401 a service
  would give.

Not here yet (issue 31): the deployed front door (a Lambda invoking each service's `serving`
alias directly), its template resources, and its benchmark.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from mcp_common.auth import Denied, build_authenticator
from mcp_common.settings import AuthSettings

FORWARDED_HEADERS = ("authorization", "x-api-key", "mcp-protocol-version", "x-amzn-trace-id")
"""What a forwarded call carries from the caller: its credential, protocol and trace."""
DEFAULT_PROTOCOL = "2025-06-18"
VISIBILITY_TTL_SECONDS = 30.0
VISIBILITY_CACHE = 1024
SEPARATOR = "_"

_allowed: ContextVar[frozenset[str] | None] = ContextVar("frontdoor_allowed", default=None)
_headers: ContextVar[dict[str, str]] = ContextVar("frontdoor_headers", default={})  # noqa: B039


class Upstream(Protocol):
    """How a call reaches a service: its messages (notifications, then the response)."""

    def call(
        self, service: str, message: dict[str, Any], headers: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]: ...


class HttpUpstream:
    """The services over HTTP at `<base>/<service>/mcp` (fleet dev in-process, or run.sh)."""

    def __init__(self, client: Any, base_url: str = "") -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def call(
        self, service: str, message: dict[str, Any], headers: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        request_headers = {
            **headers,
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-method": message["method"],  # the 2026-07-28 revision routes on these
            "mcp-name": message["params"]["name"],
        }
        url = f"{self.base_url}/{service}/mcp"
        async with self.client.stream(
            "POST", url, content=json.dumps(message), headers=request_headers
        ) as response:
            if response.status_code in (401, 403):
                detail = (await response.aread()).decode(errors="replace")[:300]
                raise Refused(response.status_code, detail)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip():
                        yield json.loads(line[5:])
                return
            body = await response.aread()
            if body.strip():
                yield json.loads(body)


class Refused(Exception):
    """The service refused the forwarded credential (HTTP 401 or 403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


def tool_name(service: str, tool: str) -> str:
    return f"{service}{SEPARATOR}{tool}"


def _forwarded_tool(service: str, definition: dict[str, Any], upstream: Upstream) -> Any:
    from fastmcp.exceptions import ToolError
    from fastmcp.server.dependencies import get_context
    from fastmcp.tools.base import Tool, ToolResult
    from mcp.shared.exceptions import MCPError
    from mcp.types import CallToolResult, ToolAnnotations

    class ForwardedTool(Tool):
        """One service's tool, run by its service."""

        async def run(self, arguments: dict[str, Any]) -> ToolResult:
            message = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": definition["name"], "arguments": arguments},
            }
            context = get_context()
            token = _progress_token(context)
            meta = _request_meta(context)  # the caller's envelope (protocol, capabilities)
            meta.pop("progressToken", None)
            if token is not None:
                meta["progressToken"] = "frontdoor"  # relayed under the caller's own token
            if meta:
                message["params"]["_meta"] = meta
            try:
                async for reply in upstream.call(service, message, _headers.get()):
                    if reply.get("method") == "notifications/progress" and token is not None:
                        params = reply.get("params") or {}
                        await context.report_progress(
                            params.get("progress", 0), params.get("total"), params.get("message")
                        )
                    elif "error" in reply:
                        error = reply["error"]
                        raise MCPError(error["code"], error["message"], error.get("data"))
                    elif "result" in reply:
                        return ToolResult.from_mcp_result(
                            CallToolResult.model_validate(reply["result"])
                        )
            except Refused as refused:
                raise ToolError(f"service {service!r} refused the credential ({refused})") from None
            raise ToolError(f"service {service!r} ended the call without an answer")

    annotations = definition.get("annotations")
    return ForwardedTool(
        name=tool_name(service, definition["name"]),
        title=definition.get("title"),
        description=definition.get("description"),
        parameters=definition.get("inputSchema") or {"type": "object"},
        output_schema=definition.get("outputSchema"),
        annotations=ToolAnnotations(**annotations) if annotations else None,
        tags={service},
    )


def _request_meta(context: Any) -> dict[str, Any]:
    """A copy of the call's `_meta` as the caller sent it."""
    try:
        meta = context.request_context.meta
    except (AttributeError, LookupError, ValueError):
        return {}
    if meta is None:
        return {}
    return (
        dict(meta) if isinstance(meta, dict) else meta.model_dump(by_alias=True, exclude_none=True)
    )


def _progress_token(context: Any) -> Any:
    """The caller's progressToken for this call, if it asked for progress."""
    try:
        meta = context.request_context.meta
    except (AttributeError, LookupError, ValueError):
        return None
    if isinstance(meta, dict):
        return meta.get("progressToken")
    return getattr(meta, "progressToken", None)


class Visibility:
    """Which services a credential may call, checked as each service checks it, cached
    briefly by the credential's digest (a revocation shows within VISIBILITY_TTL_SECONDS)."""

    def __init__(self, services: list[str], settings: AuthSettings) -> None:
        self.services = services
        self.settings = settings
        self.open = settings.effective_mode == "none"
        self._authenticators = (
            {} if self.open else {s: build_authenticator(settings, s) for s in services}
        )
        self._cache: dict[str, tuple[float, frozenset[str], Denied | None]] = {}

    async def allowed(self, credential: str | None) -> tuple[frozenset[str], Denied | None]:
        """(services the credential may call, the refusal to answer when it may call none)."""
        if self.open:
            return frozenset(self.services), None
        digest = hashlib.sha256((credential or "").encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], None if cached[1] else cached[2]
        allowed, refusal = set(), None
        for service, authenticator in self._authenticators.items():
            try:
                await authenticator.authenticate(credential, service)
            except Denied as denied:
                if refusal is None or denied.status < refusal.status:
                    refusal = denied  # a 401 (no valid credential) over a 403
                continue
            allowed.add(service)
        if len(self._cache) >= VISIBILITY_CACHE:
            self._cache.clear()
        entry = (time.monotonic() + VISIBILITY_TTL_SECONDS, frozenset(allowed), refusal)
        self._cache[digest] = entry
        return entry[1], None if allowed else refusal


def build_frontdoor(catalog: Mapping[str, Any], upstream: Upstream, search: bool = False) -> Any:
    """The front door's FastMCP server over `catalog` ({service: {"tools": [MCP tool]}})."""
    from fastmcp import FastMCP
    from fastmcp.server.middleware import Middleware

    class OnlyAllowed(Middleware):
        """Lists and calls the tools of the caller's services only."""

        async def on_list_tools(self, context: Any, call_next: Callable[..., Awaitable[Any]]):
            tools = await call_next(context)
            allowed = _allowed.get()
            return [tool for tool in tools if allowed is None or tool.tags & allowed]

        async def on_call_tool(self, context: Any, call_next: Callable[..., Awaitable[Any]]):
            from fastmcp.exceptions import NotFoundError

            allowed = _allowed.get()
            service = context.message.name.split(SEPARATOR, 1)[0]
            if allowed is not None and service not in allowed and not search:
                raise NotFoundError(f"Unknown tool: {context.message.name!r}")
            return await call_next(context)

    server = FastMCP("mcp-fleet", middleware=[OnlyAllowed()])
    for service, entry in sorted(catalog.items()):
        for definition in entry.get("tools", []):
            server.add_tool(_forwarded_tool(service, definition, upstream))
    if search:
        from fastmcp.server.transforms.search.bm25 import BM25SearchTransform

        server.add_transform(BM25SearchTransform(max_results=5))
    return server


class _Edge:
    """ASGI middleware: the caller's services, found from its credential before the MCP layer
    sees the request; a credential no service accepts is answered as a service would."""

    def __init__(self, app: Any, visibility: Visibility) -> None:
        self.app = app
        self.visibility = visibility

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed, refusal = await self.visibility.allowed(credential_of(headers))
        if refusal is not None:
            body = {"error": refusal.error, "error_description": str(refusal)}
            challenge = f'Bearer error="{refusal.error}"'
            response = JSONResponse(
                body, status_code=refusal.status, headers={"www-authenticate": challenge}
            )
            await response(scope, receive, send)
            return
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        forwarded.setdefault("mcp-protocol-version", DEFAULT_PROTOCOL)
        allowed_token, headers_token = _allowed.set(allowed), _headers.set(forwarded)
        try:
            await self.app(scope, receive, send)
        finally:
            _allowed.reset(allowed_token)
            _headers.reset(headers_token)


def frontdoor_app(
    catalog: Mapping[str, Any], upstream: Upstream, settings: AuthSettings, search: bool = False
) -> Any:
    """The front door's Starlette app, its MCP endpoint at `/mcp`."""
    from starlette.middleware import Middleware as StarletteMiddleware

    server = build_frontdoor(catalog, upstream, search=search)
    edge = StarletteMiddleware(_Edge, visibility=Visibility(sorted(catalog), settings))
    return server.http_app(path="/mcp", stateless_http=True, middleware=[edge])


def credential_of(headers: Mapping[str, str]) -> str | None:
    """The bearer token or API key a request carries (lower-cased header names)."""
    authorization = headers.get("authorization", "").strip()
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return headers.get("x-api-key", "").strip() or None
