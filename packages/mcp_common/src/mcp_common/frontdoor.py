"""The whole fleet at one MCP endpoint: the front door.

`/mcp` serves every tool the caller may call, named `<service>_<tool>`, with the schema,
annotations and description its service declares; `/search/mcp` serves the same tools behind
fastmcp's BM25 search transform (a search tool and a call tool, whatever the fleet's size).

- **A catalog, not a fetch.** The tool list comes from a catalog built from the services' own
  discovery (`fleet dev` builds it in-process; `fleet build --frontdoor` writes it at `sam
  build`), so listing never calls a service.
- **Calls go to the service.** A call is forwarded as one stateless `tools/call`, with the
  caller's own credential, protocol version and trace header: the service authenticates it
  as it would a direct call, so the front door grants nothing a direct call would not.
  Deployed, it invokes the service's `serving` alias directly (LambdaUpstream); locally it
  posts to `<service>/mcp` (HttpUpstream). A streaming service's progress is relayed;
  cancelling the call drops the upstream stream.
- **Each caller sees what it may call.** The caller's credential is checked against every
  service with the same authenticators the services use (mcp_common.auth): a key for `math`
  lists math's tools only, a token the services its scopes and groups name; calling a tool of
  another service is "unknown tool". A credential no service accepts gets the 401 a service
  would give.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_common.auth import (
    LOCAL_PRINCIPAL,
    PROTECTED_RESOURCE_PREFIX,
    Denied,
    acting_as,
    build_authenticator,
    public_base_url,
    request_credential,
)
from mcp_common.settings import AppSettings, AuthSettings, running_in_lambda

logger = logging.getLogger(__name__)

FORWARDED_HEADERS = (
    "authorization",
    "x-api-key",
    "mcp-protocol-version",
    "x-amzn-trace-id",
    "host",
)
"""What a forwarded call carries from the caller: its credential, protocol, trace and Host
(which a Lambda invoke passes on, and an HTTP upstream replaces with its own)."""
DEFAULT_PROTOCOL = "2025-06-18"
VISIBILITY_TTL_SECONDS = 30.0
VISIBILITY_CACHE = 1024
SEPARATOR = "_"
DEFAULT_DEADLINE_SECONDS = 20.0
"""A service's deadline when the catalog does not say (MCP_TOOL_TIMEOUT_SECONDS's default)."""
DEADLINE_MARGIN_SECONDS = 2.0
"""What the front door waits beyond a service's own deadline (MCP_TOOL_TIMEOUT_SECONDS, in
the catalog): the service's own answer at its deadline reaches the caller first."""
META_KEY = "fleet"
"""A listed tool's `_meta` key naming its service and its own name there (`fleet list`)."""
FRONT_DOOR = "mcp"
"""The front door's name where a service's would go (a reserved service name)."""

_allowed: ContextVar[frozenset[str] | None] = ContextVar("frontdoor_allowed", default=None)
_headers: ContextVar[dict[str, str]] = ContextVar("frontdoor_headers", default={})  # noqa: B039


def _request_headers(message: dict[str, Any], headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a forwarded tools/call: the caller's (FORWARDED_HEADERS), and what the
    message itself says (the 2026-07-28 revision routes on mcp-method and mcp-name)."""
    return {
        **headers,
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-method": message["method"],
        "mcp-name": message["params"]["name"],
    }


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
        # The upstream's own Host (the URL's), not the caller's.
        request_headers = {
            k: v for k, v in _request_headers(message, headers).items() if k != "host"
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


class LambdaUpstream:
    """The services' Lambda functions, called directly: `<stack>-<service>:serving`, as API
    Gateway calls them (a REST proxy event, which the Web Adapter turns into the request), with
    Invoke for a buffered service and InvokeWithResponseStream for a streaming one. No second
    API Gateway request, no second charge."""

    ALIAS = "serving"

    def __init__(
        self,
        stack: str,
        streaming: set[str],
        client: Any = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 900.0,
    ) -> None:
        self.stack = stack
        self.streaming = streaming
        self._client = client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def _lambda(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # A tools/call is not idempotent: never retried. Reads wait as long as a call may.
            config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"total_max_attempts": 1},
            )
            self._client = boto3.client("lambda", config=config)
        return self._client

    def event(self, service: str, message: dict[str, Any], headers: Mapping[str, str]) -> dict:
        """The REST API proxy event API Gateway would send for POST /<service>/mcp."""
        import uuid

        # The caller's Host: the API's (or the fleet's domain), which the service accepts as
        # it accepts a direct call's (MCP_ALLOWED_HOSTS).
        all_headers = _request_headers(message, headers)
        path = f"/{service}/mcp"
        return {
            "resource": f"/{service}/{{proxy+}}",
            "path": path,
            "httpMethod": "POST",
            "headers": all_headers,
            "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": "mcp"},
            "requestContext": {
                "resourcePath": f"/{service}/{{proxy+}}",
                "httpMethod": "POST",
                "path": path,
                "requestId": str(uuid.uuid4()),
                "stage": "frontdoor",
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "body": json.dumps(message),
            "isBase64Encoded": False,
        }

    async def call(
        self, service: str, message: dict[str, Any], headers: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        function = f"{self.stack}-{service}"
        payload = json.dumps(self.event(service, message, headers)).encode()
        if service not in self.streaming:
            answer = await asyncio.to_thread(
                self._lambda().invoke,
                FunctionName=function,
                Qualifier=self.ALIAS,
                Payload=payload,
            )
            response = json.loads(answer["Payload"].read() or b"{}")
            status = int(response.get("statusCode", 502))
            body = response.get("body") or ""
            if response.get("isBase64Encoded"):
                import base64

                body = base64.b64decode(body).decode()
            if status in (401, 403):
                raise Refused(status, body[:300])
            for reply in _messages(body, response.get("headers") or {}):
                yield reply
            return
        async for reply in self._stream(function, payload):
            yield reply

    async def _stream(self, function: str, payload: bytes) -> AsyncIterator[dict[str, Any]]:
        """InvokeWithResponseStream, read in a thread: the Web Adapter's prelude (status and
        headers as JSON, then eight NUL bytes), then the body's server-sent events as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def read() -> None:
            try:
                answer = self._lambda().invoke_with_response_stream(
                    FunctionName=function, Qualifier=self.ALIAS, Payload=payload
                )
                for event in answer["EventStream"]:
                    if stop.is_set():
                        break
                    chunk = (event.get("PayloadChunk") or {}).get("Payload")
                    if chunk:
                        loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        reader = asyncio.create_task(asyncio.to_thread(read))
        buffer, prelude = b"", None
        try:
            while True:
                chunk = await queue.get()
                if chunk is None:
                    break
                if isinstance(chunk, BaseException):
                    raise chunk
                buffer = (buffer + chunk).replace(b"\r\n", b"\n")  # SSE may end lines with CRLF
                if prelude is None:
                    if PRELUDE_END not in buffer:
                        continue
                    head, buffer = buffer.split(PRELUDE_END, 1)
                    prelude = json.loads(head or b"{}")
                    status = int(prelude.get("statusCode", 200))
                    if status in (401, 403):
                        raise Refused(status, buffer.decode(errors="replace")[:300])
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    for reply in _messages(block.decode(), {"content-type": "text/event-stream"}):
                        yield reply
            if prelude is not None and buffer.strip():
                headers = prelude.get("headers") or {}
                for reply in _messages(buffer.decode(), headers):
                    yield reply
        finally:
            stop.set()  # a cancelled call: the thread stops reading (the stream is dropped)
            reader.cancel()


PRELUDE_END = b"\x00" * 8
"""What ends the Web Adapter's response-stream prelude (Lambda's HTTP integration format)."""


def _messages(body: str, headers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a body: one JSON document, or server-sent events."""
    content_type = str({k.lower(): v for k, v in headers.items()}.get("content-type", ""))
    if content_type.startswith("text/event-stream") or body.lstrip().startswith(
        ("event:", "data:")
    ):
        return [
            json.loads(line[5:])
            for line in body.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    return [json.loads(body)] if body.strip() else []


class Refused(Exception):
    """The service refused the forwarded credential (HTTP 401 or 403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


def tool_name(service: str, tool: str) -> str:
    return f"{service}{SEPARATOR}{tool}"


def _forwarded_tool(
    service: str, definition: dict[str, Any], upstream: Upstream, deadline: float
) -> Any:
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
                async with asyncio.timeout(deadline):
                    async for reply in upstream.call(service, message, _headers.get()):
                        if reply.get("method") == "notifications/progress" and token is not None:
                            params = reply.get("params") or {}
                            await context.report_progress(
                                params.get("progress", 0),
                                params.get("total"),
                                params.get("message"),
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
            except TimeoutError:
                raise ToolError(
                    f"service {service!r} did not answer within {deadline:g} s; try again"
                ) from None
            except MCPError:
                raise  # the service's own JSON-RPC error, kept as it is
            except Exception as failure:  # noqa: BLE001 - unreachable, or not an MCP answer
                logger.warning(
                    "front door: service %r failed the call: %s", service, type(failure).__name__
                )
                raise ToolError(
                    f"service {service!r} could not be reached ({type(failure).__name__})"
                ) from None
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
        meta={
            **(definition.get("_meta") or {}),
            META_KEY: {"service": service, "tool": definition["name"]},
        },
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


@dataclass(frozen=True)
class Caller:
    """What the caller's credential reaches: its services and who it is there, or the
    refusal a service would answer when it reaches none."""

    services: frozenset[str]
    principal: str | None = None
    refusal: Denied | None = None


class Visibility:
    """Which services a credential may call, checked as each service checks it, cached
    briefly by the credential's digest (a revocation shows within VISIBILITY_TTL_SECONDS).

    Each service's authenticator is built on first need, in parallel: with key records per
    service in SSM (MCP_API_KEYS_SSM_PREFIX, `<prefix>/<service>`), each reads its own."""

    def __init__(self, services: list[str], settings: AuthSettings) -> None:
        self.services = services
        self.settings = settings
        self.open = settings.effective_mode == "none"
        self._authenticators: dict[str, Any] = {}
        self._cache: dict[str, tuple[float, Caller]] = {}

    def _settings_for(self, service: str) -> AuthSettings:
        prefix = self.settings.api_keys_ssm_prefix
        if self.settings.effective_mode != "api_key" or not prefix:
            return self.settings
        return self.settings.model_copy(update={"api_keys_ssm_parameter": f"{prefix}/{service}"})

    async def _authenticator(self, service: str) -> Any:
        import asyncio

        if service not in self._authenticators:
            built = await asyncio.to_thread(
                build_authenticator, self._settings_for(service), service
            )
            self._authenticators.setdefault(service, built)
        return self._authenticators[service]

    async def caller(self, credential: str | None) -> Caller:
        """The services the credential may call and its principal there (the name each
        service's authenticator gives it), or the refusal to answer when it may call none."""
        if self.open:
            return Caller(frozenset(self.services), LOCAL_PRINCIPAL)
        digest = hashlib.sha256((credential or "").encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]

        async def check(service: str) -> str | Denied:
            try:
                return await (await self._authenticator(service)).authenticate(credential, service)
            except Denied as denied:
                return denied

        outcomes = await asyncio.gather(*(check(service) for service in self.services))
        principals = {
            service: outcome
            for service, outcome in zip(self.services, outcomes, strict=True)
            if not isinstance(outcome, Denied)
        }
        refusals = [outcome for outcome in outcomes if isinstance(outcome, Denied)]
        if principals:
            caller = Caller(frozenset(principals), min(principals.values()))
        else:  # 401 before 403: a credential nobody knows is answered as unknown
            caller = Caller(frozenset(), None, min(refusals, key=lambda denied: denied.status))
        if len(self._cache) >= VISIBILITY_CACHE:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + VISIBILITY_TTL_SECONDS, caller)
        return caller


def service_deadline(entry: Mapping[str, Any]) -> float:
    """How long the front door waits for one call to a service: the service's own deadline
    (its `deadline_seconds` in the catalog, MCP_TOOL_TIMEOUT_SECONDS's default without one),
    and a margin for its answer to travel."""
    own = entry.get("deadline_seconds")
    seconds = float(own) if isinstance(own, int | float) and own > 0 else DEFAULT_DEADLINE_SECONDS
    return seconds + DEADLINE_MARGIN_SECONDS


def build_frontdoor(catalog: Mapping[str, Any], upstream: Upstream, search: bool = False) -> Any:
    """The front door's FastMCP server over `catalog` ({service: {"tools": [MCP tool]}})."""
    from fastmcp import FastMCP
    from fastmcp.server.middleware import Middleware

    services = frozenset(catalog)
    owner: dict[str, str] = {}
    """{front-door tool name: its service}: a service's name may hold the separator itself."""
    for service, entry in sorted(catalog.items()):
        for definition in entry.get("tools", []):
            name = tool_name(service, definition["name"])
            if name in owner:
                raise ValueError(
                    f"{owner[name]!r} and {service!r} both have a tool the front door would "
                    f"name {name!r}: rename one of the tools"
                )
            owner[name] = service

    class OnlyAllowed(Middleware):
        """Lists and calls the tools of the caller's services only (search included: its
        catalog is this list); the search and call tools themselves belong to no service."""

        async def on_list_tools(self, context: Any, call_next: Callable[..., Awaitable[Any]]):
            tools = await call_next(context)
            allowed = _allowed.get()
            if allowed is None:
                return tools
            return [tool for tool in tools if not tool.tags & services or tool.tags & allowed]

        async def on_call_tool(self, context: Any, call_next: Callable[..., Awaitable[Any]]):
            from fastmcp.exceptions import NotFoundError

            allowed = _allowed.get()
            service = owner.get(context.message.name)
            if allowed is not None and service is not None and service not in allowed:
                raise NotFoundError(f"Unknown tool: {context.message.name!r}")
            return await call_next(context)

    server = FastMCP("mcp-fleet", middleware=[OnlyAllowed()])
    for service, entry in sorted(catalog.items()):
        for definition in entry.get("tools", []):
            server.add_tool(_forwarded_tool(service, definition, upstream, service_deadline(entry)))
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
        self.settings = visibility.settings

    def _metadata(self, base: str, scope: dict[str, Any]) -> dict[str, Any]:
        """The front door as one protected resource: a token from the hosted sign-in that
        carries what it asks for reaches every service the caller's groups name."""
        path = scope["path"][len(PROTECTED_RESOURCE_PREFIX) :] or "/mcp"  # /mcp, /search/mcp
        metadata: dict[str, Any] = {
            "resource": f"{base}{path}",
            "bearer_methods_supported": ["header"],
            "resource_name": "the MCP fleet",
        }
        if self.settings.effective_mode == "jwt":
            metadata["authorization_servers"] = [self.settings.jwt_issuer]
            metadata["scopes_supported"] = self.settings.scopes_for(FRONT_DOOR)
        return metadata

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw.items()}
        base = public_base_url(scope, raw, self.settings.public_base_url, running_in_lambda())
        if scope["path"].startswith(PROTECTED_RESOURCE_PREFIX):  # RFC 9728, one resource
            await JSONResponse(self._metadata(base, scope))(scope, receive, send)
            return
        caller = await self.visibility.caller(request_credential(raw))
        refusal = caller.refusal
        if refusal is not None:
            body = {"error": refusal.error, "error_description": str(refusal)}
            challenge = f'Bearer error="{refusal.error}"'
            if self.settings.effective_mode == "jwt":
                scopes = " ".join(self.settings.scopes_for(FRONT_DOOR))
                challenge += f', scope="{scopes}"' if scopes else ""
            metadata = f"{base}{PROTECTED_RESOURCE_PREFIX}{scope.get('root_path', '')}/mcp"
            challenge += f', resource_metadata="{metadata}"'
            response = JSONResponse(
                body, status_code=refusal.status, headers={"www-authenticate": challenge}
            )
            await response(scope, receive, send)
            return
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        forwarded.setdefault("mcp-protocol-version", DEFAULT_PROTOCOL)
        allowed_token, headers_token = _allowed.set(caller.services), _headers.set(forwarded)
        try:
            # The front door's own limits (calls in flight, cancellation) are the caller's,
            # under the name the services give it.
            with acting_as(caller.principal or ""):
                await self.app(scope, receive, send)
        finally:
            _allowed.reset(allowed_token)
            _headers.reset(headers_token)


def frontdoor_app(
    catalog: Mapping[str, Any], upstream: Upstream, settings: AppSettings, search: bool = False
) -> Any:
    """The front door's Starlette app, its MCP endpoint at `/mcp`, behind what guards every
    service (hardening.py, streaming.py): bounded bodies and envelopes, calls in flight per
    principal, each call's deadline, and cancellation by its own caller."""
    from starlette.middleware import Middleware as StarletteMiddleware

    from mcp_common.hardening import RequestGuardMiddleware
    from mcp_common.streaming import InFlightCalls, JsonAnswersMiddleware, StreamedCallMiddleware

    http = settings.http
    server = build_frontdoor(catalog, upstream, search=search)
    longest = max((service_deadline(entry) for entry in catalog.values()), default=0.0)
    server.add_middleware(StreamedCallMiddleware(longest + DEADLINE_MARGIN_SECONDS))
    names = [
        tool_name(s, t["name"]) for s, entry in catalog.items() for t in entry.get("tools", [])
    ]
    middleware = [
        StarletteMiddleware(_Edge, visibility=Visibility(sorted(catalog), settings.auth)),
        StarletteMiddleware(
            RequestGuardMiddleware,
            mcp_path="/mcp",
            max_body_bytes=http.max_body_bytes,
            tool_timeout_seconds=longest + DEADLINE_MARGIN_SECONDS,
            tool_names=[*names, "search_tools", "call_tool"] if search else names,
            body_timeout_seconds=http.body_timeout_seconds,
            streamed_calls=InFlightCalls(),
            calls_per_principal=http.calls_per_principal,
            write_timeout_seconds=http.write_timeout_seconds,
        ),
        StarletteMiddleware(JsonAnswersMiddleware, mcp_path="/mcp"),
    ]
    return server.http_app(
        path="/mcp", stateless_http=True, json_response=False, middleware=middleware
    )


def load_catalog(path: Any) -> dict[str, Any]:
    """The catalog `fleet build --frontdoor` wrote: {service: {"tools": [...], "streaming": b}}."""
    from pathlib import Path

    return json.loads(Path(path).read_text(encoding="utf-8"))["services"]


def fleet_app(catalog: Mapping[str, Any], upstream: Upstream, settings: Any) -> Any:
    """Both endpoints (`/mcp`, `/search/mcp`) and `/health`, behind the Host/Origin guard
    every service has: what the front door's run.sh serves."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from mcp_common.hardening import HostOriginGuardMiddleware

    direct = frontdoor_app(catalog, upstream, settings)
    search = frontdoor_app(catalog, upstream, settings, search=True)
    tools = sum(len(entry.get("tools", [])) for entry in catalog.values())

    async def health(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok", "services": len(catalog), "tools": tools})

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with direct.router.lifespan_context(direct), search.router.lifespan_context(search):
            yield

    app = Starlette(
        routes=[Route("/health", health), Mount("/search", app=search), Mount("/", app=direct)],
        lifespan=lifespan,
    )
    http = settings.http
    return HostOriginGuardMiddleware(
        app, allowed_hosts=http.allowed_hosts, allowed_origins=http.allowed_origins
    )


def main() -> None:
    """`python -m mcp_common.frontdoor` (its run.sh): serve the fleet on $PORT. In Lambda
    (MCP_FRONTDOOR_STACK) calls go to the services' functions; elsewhere to the services at
    MCP_FRONTDOOR_UPSTREAM (their run.sh, or fleet dev)."""
    import uvicorn

    from mcp_common.logs import configure_logging
    from mcp_common.settings import FrontDoorSettings

    settings, door = AppSettings(), FrontDoorSettings()
    configure_logging(settings.runtime.log_level)
    catalog = load_catalog(door.catalog)
    # Each call has its service's deadline (service_deadline); the clients wait no longer.
    longest = max((service_deadline(entry) for entry in catalog.values()), default=0.0)
    if door.stack:
        streaming = {name for name, entry in catalog.items() if entry.get("streaming")}
        upstream: Upstream = LambdaUpstream(
            door.stack,
            streaming,
            connect_timeout=door.connect_timeout_seconds,
            read_timeout=longest,
        )
    else:
        import httpx2 as httpx

        timeout = httpx.Timeout(longest, connect=door.connect_timeout_seconds)
        upstream = HttpUpstream(httpx.AsyncClient(timeout=timeout), door.upstream)
    uvicorn.run(
        fleet_app(catalog, upstream, settings),
        host=settings.runtime.bind_host(),
        port=settings.runtime.port,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
