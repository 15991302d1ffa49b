"""The whole fleet at one MCP endpoint: the front door.

`/mcp` serves every tool the caller may call, named `<service>_<tool>`, with the schema,
annotations and description its service declares; `/search/mcp` serves the same tools behind
fastmcp's BM25 search transform (a search tool and a call tool, whatever the fleet's size).

- **A catalog, not a fetch.** The tool list comes from a catalog built from the services' own
  discovery (`fleet dev` builds it in-process; `fleet build --frontdoor` writes it at `sam
  build`), so listing never calls a service.
- **Calls go to the service.** A `tools/call` is forwarded as the caller sent it (only the
  tool's name becomes the service's), with the caller's own credential, protocol version
  and trace header, and the service's answer comes back as it answers (_Forward): the
  service authenticates the call as it would a direct one, so the front door grants nothing
  a direct call would not, and a tool error, a JSON-RPC error or a 401/403 keeps its meaning.
  Deployed, it invokes the service's `serving` alias directly (LambdaUpstream); locally it
  posts to `<service>/mcp` (HttpUpstream). A streaming service's progress passes through
  under the caller's own token; a caller that leaves or cancels stops the forward.
- **Each caller sees what it may call.** The caller's credential is checked against every
  service with the same authenticators the services use (mcp_common.auth): a key for `math`
  lists math's tools only, a token the services its scopes and groups name; calling a tool of
  another service is "unknown tool". A credential no service accepts gets the 401 a service
  would give.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
    refusal_response,
    request_credential,
)
from mcp_common.hardening import STATELESS_REVISIONS
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
SEARCH_PREFIX = "/search"
"""Where the search endpoint's `/mcp` is mounted: `/search/mcp`."""
FRONT_DOOR = "mcp"
"""The front door's name where a service's would go (a reserved service name)."""

_allowed: ContextVar[frozenset[str] | None] = ContextVar("frontdoor_allowed", default=None)
_headers: ContextVar[dict[str, str]] = ContextVar("frontdoor_headers", default={})  # noqa: B039
_gateway: ContextVar[dict[str, str]] = ContextVar("frontdoor_gateway", default={})  # noqa: B039
"""The API's domain and stage the caller came through (deployed): a forwarded call carries
them, so the service names its public URLs (its RFC 9728 metadata) as a direct call would."""


def _request_headers(message: dict[str, Any], headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a forwarded tools/call: the caller's (FORWARDED_HEADERS), and what the
    message itself says (the 2026-07-28 revision routes on mcp-method and mcp-name)."""
    return {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        **headers,
        "mcp-method": message["method"],
        "mcp-name": message["params"]["name"],
    }


@dataclass
class Answer:
    """A service's HTTP answer to a forwarded call: status, headers (lower-case names) and
    the body as it comes (a streaming service's events as they happen)."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]


class Upstream(Protocol):
    """How a call reaches a service: one POST to its MCP endpoint, answered as it answers."""

    def forward(
        self, service: str, body: bytes, headers: Mapping[str, str]
    ) -> contextlib.AbstractAsyncContextManager[Answer]: ...


class HttpUpstream:
    """The services over HTTP at `<base>/<service>/mcp` (fleet dev in-process, or run.sh)."""

    def __init__(self, client: Any, base_url: str = "") -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    @contextlib.asynccontextmanager
    async def forward(
        self, service: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Answer]:
        # The upstream's own Host (the URL's), not the caller's.
        sent = {name: value for name, value in headers.items() if name != "host"}
        url = f"{self.base_url}/{service}/mcp"
        async with self.client.stream("POST", url, content=body, headers=sent) as response:
            received = {name.lower(): value for name, value in response.headers.items()}
            yield Answer(response.status_code, received, response.aiter_bytes())


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

    def event(self, service: str, body: bytes, headers: Mapping[str, str]) -> dict:
        """The REST API proxy event API Gateway would send for POST /<service>/mcp, with the
        caller's Host: the API's (or the fleet's domain), which the service accepts as it
        accepts a direct call's (MCP_ALLOWED_HOSTS)."""
        import uuid

        path = f"/{service}/mcp"
        return {
            "resource": f"/{service}/{{proxy+}}",
            "path": path,
            "httpMethod": "POST",
            "headers": dict(headers),
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
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
                **_gateway.get(),  # the caller's API domain and stage
            },
            "body": body.decode(),
            "isBase64Encoded": False,
        }

    @contextlib.asynccontextmanager
    async def forward(
        self, service: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Answer]:
        function = f"{self.stack}-{service}"
        payload = json.dumps(self.event(service, body, headers)).encode()
        if service not in self.streaming:
            answer = await asyncio.to_thread(
                self._lambda().invoke, FunctionName=function, Qualifier=self.ALIAS, Payload=payload
            )
            response = json.loads(answer["Payload"].read() or b"{}")
            if answer.get("FunctionError"):
                raise UpstreamFailed(f"the function failed ({answer['FunctionError']})")
            text = response.get("body") or ""
            content = base64.b64decode(text) if response.get("isBase64Encoded") else text.encode()
            yield Answer(
                int(response.get("statusCode", 502)), _proxy_headers(response), _once(content)
            )
            return
        chunks = self._chunks(function, payload)
        try:
            buffer = b""
            async for chunk in chunks:
                buffer += chunk
                if PRELUDE_END in buffer:
                    break
            else:
                raise UpstreamFailed("the stream ended before its status and headers")
            head, rest = buffer.split(PRELUDE_END, 1)
            prelude = json.loads(head or b"{}")
            received = {k.lower(): str(v) for k, v in (prelude.get("headers") or {}).items()}
            status = int(prelude.get("statusCode", 200))
            yield Answer(status, received, _then(rest, chunks))
        finally:
            await chunks.aclose()

    async def _chunks(self, function: str, payload: bytes) -> AsyncIterator[bytes]:
        """InvokeWithResponseStream's payload chunks as they come, read in a thread: the Web
        Adapter's prelude (status and headers as JSON, then eight NUL bytes), then the body.
        Closing it (a cancelled call) stops the reading."""
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
        try:
            while (chunk := await queue.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk
        finally:
            stop.set()  # a cancelled call: the thread stops reading (the stream is dropped)
            reader.cancel()


def _proxy_headers(response: Mapping[str, Any]) -> dict[str, str]:
    """A REST proxy response's headers, lower-case: `multiValueHeaders` (where the Web
    Adapter puts them for a REST API) and `headers`, the latter winning."""
    merged = {
        name.lower(): ", ".join(map(str, values))
        for name, values in (response.get("multiValueHeaders") or {}).items()
        if isinstance(values, list)
    }
    merged.update({k.lower(): str(v) for k, v in (response.get("headers") or {}).items()})
    return merged


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


PRELUDE_END = b"\x00" * 8
"""What ends the Web Adapter's response-stream prelude (Lambda's HTTP integration format)."""


class UpstreamFailed(Exception):
    """The service's function failed, or its answer was not HTTP as the adapter writes it."""


async def call_service(
    upstream: Upstream, service: str, message: dict[str, Any], headers: Mapping[str, str]
) -> AsyncIterator[dict[str, Any]]:
    """One tools/call to a service, its JSON-RPC messages as they come (progress, then the
    response): for a call the front door makes itself (search's call tool)."""
    body = json.dumps(message).encode()
    async with upstream.forward(service, body, _request_headers(message, headers)) as answer:
        if answer.status in (401, 403):
            detail = b"".join([chunk async for chunk in answer.body]).decode(errors="replace")
            raise Refused(answer.status, detail[:300])
        if not answer.headers.get("content-type", "").startswith("text/event-stream"):
            content = b"".join([chunk async for chunk in answer.body]).decode()
            for reply in _messages(content, answer.headers):
                yield reply
            return
        buffer = b""
        async for chunk in answer.body:
            buffer = (buffer + chunk).replace(b"\r\n", b"\n")  # SSE may end lines with CRLF
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for reply in _messages(block.decode(), {"content-type": "text/event-stream"}):
                    yield reply
        for reply in _messages(buffer.decode(), {"content-type": "text/event-stream"}):
            yield reply


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
                    async for reply in call_service(upstream, service, message, _headers.get()):
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
                raise ToolError(_too_late(service, deadline)) from None
            except MCPError:
                raise  # the service's own JSON-RPC error, kept as it is
            except Exception as failure:  # noqa: BLE001 - unreachable, or not an MCP answer
                raise ToolError(_unreachable(service, failure)) from None
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


def _too_late(service: str, deadline: float) -> str:
    """The tool error of a call its service did not answer by its deadline."""
    return f"service {service!r} did not answer within {deadline:g} s; try again"


def _unreachable(service: str, failure: Exception) -> str:
    """The tool error of a call that failed on its way (logged by kind: never a URL or a
    value the failure may carry)."""
    logger.warning("front door: service %r failed the call: %s", service, type(failure).__name__)
    return f"service {service!r} could not be reached ({type(failure).__name__})"


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
    briefly by the credential's digest (VISIBILITY_TTL_SECONDS after its key records do).

    One authenticator answers for every service (a token's issuer, or one set of key
    records, is the fleet's), except with key records per service in SSM
    (MCP_API_KEYS_SSM_PREFIX, `<prefix>/<service>`): then each service's own records decide,
    read together for the whole fleet (SsmParameterBatch: ten parameters a call, one client).
    Each is built once, on first need."""

    def __init__(self, services: list[str], settings: AuthSettings) -> None:
        self.services = services
        self.settings = settings
        self.open = settings.effective_mode == "none"
        self._authenticators: dict[str, asyncio.Future[Any]] = {}
        self._cache: dict[str, tuple[float, Caller]] = {}
        prefix = settings.api_keys_ssm_prefix
        self.per_service = settings.effective_mode == "api_key" and bool(prefix)
        self._batch: Any = None
        if self.per_service:
            from mcp_common.apikeys import SsmParameterBatch

            self._batch = SsmParameterBatch([f"{prefix}/{service}" for service in services])

    async def _authenticator(self, service: str) -> Any:
        key = service if self.per_service else ""
        building = self._authenticators.get(key)
        if building is None:  # one build each, however many requests ask at once
            source = None
            if self.per_service:
                source = self._batch.source(f"{self.settings.api_keys_ssm_prefix}/{service}")
            building = asyncio.ensure_future(
                asyncio.to_thread(build_authenticator, self.settings, service, source)
            )
            self._authenticators[key] = building
        try:
            return await asyncio.shield(building)
        except Exception:
            self._authenticators.pop(key, None)  # built again by the next request
            raise

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

        services, outcomes = self.services, []
        if not self.per_service and services:
            # One authenticator for all: a credential it does not know (401) is unknown to
            # every service, so a forged token costs one check, not one per service.
            outcomes.append(await check(services[0]))
            if isinstance(outcomes[0], Denied) and outcomes[0].status == 401:
                return self._remember(digest, Caller(frozenset(), None, outcomes[0]))
        rest = services[len(outcomes) :]
        outcomes += await asyncio.gather(*(check(service) for service in rest))
        principals = {
            service: self._principal(service, outcome)
            for service, outcome in zip(services, outcomes, strict=True)
            if not isinstance(outcome, Denied)
        }
        refusals = [outcome for outcome in outcomes if isinstance(outcome, Denied)]
        if principals:
            caller = Caller(frozenset(principals), min(principals.values()))
        else:  # 401 before 403: a credential nobody knows is answered as unknown
            caller = Caller(frozenset(), None, min(refusals, key=lambda denied: denied.status))
        if any(refusal.status == 503 for refusal in refusals):
            return caller  # a key store that could not answer: asked again next time
        return self._remember(digest, caller)

    def _principal(self, service: str, name: str) -> str:
        """Who the caller is at the front door. With key records per service each team names
        its own keys, so a name is the caller only within its service (`<service>/<name>`;
        neither holds a `/`): two teams' keys that share a name never share calls in flight
        or cancel each other's calls here."""
        return f"{service}/{name}" if self.per_service else name

    def _remember(self, digest: str, caller: Caller) -> Caller:
        """Keep what a credential reaches for VISIBILITY_TTL_SECONDS, the oldest entry
        forgotten first when full (a flood of new credentials never empties it at once)."""
        if len(self._cache) >= VISIBILITY_CACHE:
            self._cache.pop(next(iter(self._cache)))
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
        if refusal is not None:  # answered as a service answers it (one resource: the door)
            metadata = f"{base}{PROTECTED_RESOURCE_PREFIX}{scope.get('root_path', '')}/mcp"
            jwt = self.settings.effective_mode == "jwt"
            scopes = self.settings.scopes_for(FRONT_DOOR) if jwt else []
            await refusal_response(refusal, metadata, scopes)(scope, receive, send)
            return
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        forwarded.setdefault("mcp-protocol-version", DEFAULT_PROTOCOL)
        allowed_token, headers_token = _allowed.set(caller.services), _headers.set(forwarded)
        gateway_token = _gateway.set(_gateway_context(raw) if running_in_lambda() else {})
        try:
            # The front door's own limits (calls in flight, cancellation) are the caller's,
            # under the name the services give it.
            with acting_as(caller.principal or ""):
                await self.app(scope, receive, send)
        finally:
            _allowed.reset(allowed_token)
            _headers.reset(headers_token)
            _gateway.reset(gateway_token)


RELAYED_HEADERS = frozenset({"content-type", "cache-control", "www-authenticate", "retry-after"})
"""What the caller receives of a service's answer headers (the body's framing is the front
door's own: its length or chunks)."""


@dataclass(frozen=True)
class Route:
    """Where a front-door tool name leads: its service, its name there, how long to wait."""

    service: str
    tool: str
    deadline: float


def routes(catalog: Mapping[str, Any]) -> dict[str, Route]:
    """{front-door tool name: Route} over the catalog."""
    return {
        tool_name(service, definition["name"]): Route(
            service, definition["name"], service_deadline(entry)
        )
        for service, entry in catalog.items()
        for definition in entry.get("tools", [])
    }


class _Forward:
    """ASGI: a `tools/call` of a service's tool the caller may call goes to the service as the
    caller sent it (only the tool's name becomes the service's), and the service's answer comes
    back as it answers: its status, its JSON or its events (progress under the caller's own
    token) as they come, a refusal as its 401/403. No MCP session, no parse of the answer: the
    front door's cost on the warm path is its edge and one hop. Anything else (initialize,
    tools/list, a tool the caller may not call) is the MCP layer's.

    It runs inside the edge's guard (RequestGuardMiddleware): the body is bounded and its
    envelope valid, the caller's calls in flight are counted, and its own
    `notifications/cancelled` cancels the forward (the service sees its caller leave)."""

    def __init__(self, app: Any, catalog: Mapping[str, Any], upstream: Upstream) -> None:
        self.app = app
        self.routes = routes(catalog)
        self.upstream = upstream

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/mcp":
            await self.app(scope, receive, send)
            return
        from mcp_common.hardening import replay_body

        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        route, call = self._route(body, scope)
        if route is None or call is None:
            await self.app(scope, replay_body(body, receive), send)
            return
        await self._forward(scope, receive, send, route, call)

    def _route(
        self, body: bytes, scope: dict[str, Any]
    ) -> tuple[Route | None, dict[str, Any] | None]:
        """The route of a tools/call (with an id) of a tool the caller may call, its headers
        saying what its body says, else None (the MCP layer answers, a 400 included)."""
        from mcp_common import untrusted

        message = untrusted.loads(body)  # deep nesting, bad UTF-8: the MCP layer answers
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return None, None
        params = message.get("params")
        if "id" not in message or not isinstance(params, dict):
            return None, None
        name = params.get("name")
        if not isinstance(name, str) or not _headers_agree(scope, name):
            return None, None
        route = self.routes.get(name)
        allowed = _allowed.get()
        if route is None or (allowed is not None and route.service not in allowed):
            return None, None  # the MCP layer answers "unknown tool", as for any other name
        return route, {**message, "params": {**params, "name": route.tool}}

    async def _forward(
        self, scope: dict[str, Any], receive: Any, send: Any, route: Route, call: dict[str, Any]
    ) -> None:
        from mcp_common.hardening import tool_error_response
        from mcp_common.streaming import current_call

        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"").decode("latin-1")
        headers = {**_request_headers(call, _headers.get()), "accept": accept}
        started: str | None = None  # the answer's content type, once it has begun

        async def relay() -> None:
            nonlocal started
            body = json.dumps(call).encode()
            async with self.upstream.forward(route.service, body, headers) as answer:
                relayed = [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in answer.headers.items()
                    if name in RELAYED_HEADERS
                ]
                await send(
                    {"type": "http.response.start", "status": answer.status, "headers": relayed}
                )
                started = answer.headers.get("content-type", "")
                async for chunk in answer.body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def answer_instead(text: str) -> None:
            """The call's answer when the service's cannot be: a tool error, as its own
            event when a stream has begun (its caller waits for a response), else whole."""
            if started is None:
                await tool_error_response(scope, call["id"], text)(scope, _nothing, send)
                return
            if started.startswith("text/event-stream"):
                error = tool_error_response(scope, call["id"], text).body
                event = b"\n\nevent: message\ndata: " + bytes(error) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def end_cancelled() -> None:
            """A call its caller cancelled gets no response (the spec's SHOULD NOT): an
            empty answer, or the end of the stream begun."""
            if started is None:
                await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        task = asyncio.ensure_future(relay())
        gone = asyncio.ensure_future(_disconnected(receive))
        gone.add_done_callback(lambda _: task.cancel())  # the caller left: so does the call
        in_flight = current_call()
        if in_flight is not None:
            in_flight.task = task  # the caller's notifications/cancelled cancels it
            if in_flight.cancelled_by_client:
                task.cancel()
        try:
            async with asyncio.timeout(route.deadline):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await answer_instead(_too_late(route.service, route.deadline))
        except asyncio.CancelledError:
            task.cancel()
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            if gone.done():
                return  # the caller left: nobody to answer
            if in_flight is not None and in_flight.cancelled_by_client:
                await end_cancelled()
                return
            raise
        except Exception as failure:  # noqa: BLE001 - unreachable, or not an answer
            await answer_instead(_unreachable(route.service, failure))
        finally:
            gone.cancel()


def _headers_agree(scope: dict[str, Any], name: object) -> bool:
    """The request's Mcp-Method and Mcp-Name say what its body says (the 2026-07-28 revision
    requires both; an earlier one that sends them must not contradict its body)."""
    headers = {
        k: v.decode("latin-1") for k, v in scope["headers"] if k in (b"mcp-method", b"mcp-name")
    }
    version = next((v for k, v in scope["headers"] if k == b"mcp-protocol-version"), b"")
    if version.decode("latin-1") in STATELESS_REVISIONS and len(headers) < 2:
        return False
    return (
        headers.get(b"mcp-method", "tools/call") == "tools/call"
        and headers.get(b"mcp-name", name) == name
    )


async def _disconnected(receive: Any) -> None:
    """Return once the caller has gone (its whole body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def _gateway_context(headers: dict[bytes, bytes]) -> dict[str, str]:
    """The domain and stage of the API request the Web Adapter passed on (its request
    context, which no client can forge)."""
    from mcp_common.logs import json_header

    context = json_header(headers, b"x-amzn-request-context")
    return {
        name: value
        for name in ("domainName", "stage")
        if isinstance(value := context.get(name), str) and value
    }


def frontdoor_app(
    catalog: Mapping[str, Any],
    upstream: Upstream,
    settings: AppSettings,
    search: bool = False,
    visibility: Visibility | None = None,
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
        StarletteMiddleware(
            _Edge, visibility=visibility or Visibility(sorted(catalog), settings.auth)
        ),
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
    if not search:  # search mode's only tools are its own: its calls go through the MCP layer
        middleware.insert(2, StarletteMiddleware(_Forward, catalog=catalog, upstream=upstream))
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

    visibility = Visibility(sorted(catalog), settings.auth)  # one for both endpoints
    direct = frontdoor_app(catalog, upstream, settings, visibility=visibility)
    search = frontdoor_app(catalog, upstream, settings, search=True, visibility=visibility)
    tools = sum(len(entry.get("tools", [])) for entry in catalog.values())

    async def endpoints(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """`/search/mcp` to the search endpoint as its own `/mcp` (so its edge guards it as
        the other's), everything else to `/mcp`'s."""
        path = scope.get("path", "")
        if path.startswith(SEARCH_PREFIX + "/"):
            root = scope.get("root_path", "") + SEARCH_PREFIX
            scope = {**scope, "path": path[len(SEARCH_PREFIX) :], "root_path": root}
            await search(scope, receive, send)
            return
        await direct(scope, receive, send)

    async def health(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok", "services": len(catalog), "tools": tools})

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with direct.router.lifespan_context(direct), search.router.lifespan_context(search):
            yield

    app = Starlette(
        routes=[Route("/health", health), Mount("/", app=endpoints)],
        lifespan=lifespan,
    )
    http = settings.http
    return HostOriginGuardMiddleware(
        app, allowed_hosts=http.allowed_hosts, allowed_origins=http.allowed_origins
    )


def main() -> None:
    """`python -m mcp_common.frontdoor` (its run.sh): serve the fleet on $PORT, as a service
    is served (mcp_common.entrypoint). In Lambda (MCP_FRONTDOOR_STACK) calls go to the
    services' functions; elsewhere to the services at MCP_FRONTDOOR_UPSTREAM."""
    from pydantic import ValidationError

    from mcp_common.entrypoint import invalid_configuration, long_lived_heap, run_app
    from mcp_common.logs import configure_logging
    from mcp_common.settings import FrontDoorSettings

    try:
        settings, door = AppSettings(), FrontDoorSettings()
    except ValidationError as exc:
        invalid_configuration(exc)
    configure_logging(settings.runtime.log_level, settings.runtime.log_format)
    with long_lived_heap():
        catalog = load_catalog(door.catalog)
        # Each call waits its service's deadline (service_deadline); the clients no longer.
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
        app = fleet_app(catalog, upstream, settings)
    run_app(app, settings)


if __name__ == "__main__":
    main()
