"""The app factory: one FastMCP server and its ASGI app per service.

Lambda (through `run.sh`) and `fleet dev` both build services here, so what runs
locally is what runs deployed: same routes, same middleware, same settings.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_common import lifecycle
from mcp_common.auth import Authenticator, AuthMiddleware, build_authenticator
from mcp_common.discovery import DiscoveredTool, discover_tools
from mcp_common.hardening import (
    MCP_CORS_HEADERS,
    HostOriginGuardMiddleware,
    RequestGuardMiddleware,
    TrailingSlashMiddleware,
)
from mcp_common.logs import RequestLogASGIMiddleware, configure_logging
from mcp_common.metrics import RequestMetrics
from mcp_common.service import ServiceSpec
from mcp_common.settings import AppSettings
from mcp_common.streaming import InFlightCalls, JsonAnswersMiddleware, StreamedCallMiddleware


def build_server(spec: ServiceSpec, tools: list[DiscoveredTool] | None = None) -> FastMCP:
    """A FastMCP server holding every tool discovered in the service's tools package.

    No fastmcp middleware: logging, limits and deadlines live at the ASGI edge, where
    they cost a fraction of a middleware chain on every request.
    """
    server = FastMCP(
        name=spec.name,
        version=spec.version,
        instructions=spec.instructions,
        # Unexpected exceptions reach the client as a short message; the log keeps the traceback.
        mask_error_details=True,
        on_duplicate="error",
    )
    for discovered in tools if tools is not None else discover_tools(spec.tools_package):
        server.add_tool(discovered.tool)

    health_body = {"status": "ok", "service": spec.name, "version": spec.version, **spec.build()}

    @server.custom_route(spec.health_path, methods=["GET"], include_in_schema=False)
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(health_body)

    return server


def _http_middleware(
    spec: ServiceSpec,
    settings: AppSettings,
    tool_names: frozenset[str],
    authenticator: Authenticator,
) -> list[Middleware]:
    """Outermost first: request log, Host/Origin, CORS (if origins are allowed), path, auth,
    then size/envelope/deadline.

    Authentication comes before anything reads the body: an unauthenticated client learns
    nothing but 401 and cannot make the server buffer or parse a byte of what it sent.
    """
    http = settings.http
    metrics = (
        RequestMetrics(
            settings.metrics.namespace,
            per_tool=settings.metrics.per_tool,
            version=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        )
        if settings.metrics.enabled
        else None
    )
    middleware = [
        Middleware(
            RequestLogASGIMiddleware, service=spec.name, mcp_path=spec.mcp_path, metrics=metrics
        ),
        Middleware(
            HostOriginGuardMiddleware,
            allowed_hosts=http.allowed_hosts,
            allowed_origins=http.allowed_origins,
        ),
    ]
    if http.allowed_origins:  # no allowed origins: no CORS answers at all (preflights get 405)
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=http.allowed_origins,
                allow_methods=["POST", "DELETE", "GET", "OPTIONS"],
                allow_headers=MCP_CORS_HEADERS,
                expose_headers=["mcp-session-id", "mcp-protocol-version", "www-authenticate"],
                max_age=600,
            )
        )
    middleware.append(Middleware(TrailingSlashMiddleware, paths=(spec.mcp_path,)))
    if settings.auth.effective_mode == "none":
        _warn_open_once()
    middleware.append(
        Middleware(
            AuthMiddleware,
            authenticator=authenticator,
            service=spec.name,
            mcp_path=spec.mcp_path,
            metadata_path=spec.metadata_path,
            # Health for the readiness check; the SnapStart hooks check their caller themselves.
            open_paths=(
                spec.health_path,
                settings.lifecycle.before_checkpoint_path,
                settings.lifecycle.after_restore_path,
            ),
            settings=settings.auth,
        )
    )
    middleware.append(
        Middleware(
            RequestGuardMiddleware,
            mcp_path=spec.mcp_path,
            max_body_bytes=http.max_body_bytes,
            tool_timeout_seconds=http.tool_timeout_seconds,
            tool_names=tool_names,
            body_timeout_seconds=http.body_timeout_seconds,
            streamed_calls=InFlightCalls() if http.streaming else None,
            calls_per_principal=http.calls_per_principal,
            write_timeout_seconds=http.write_timeout_seconds,
        )
    )
    if http.streaming:
        middleware.append(Middleware(JsonAnswersMiddleware, mcp_path=spec.mcp_path))
    return middleware


@functools.cache
def _warn_open_once() -> None:
    """One warning per process, however many services it serves (`fleet dev`: all of them)."""
    logging.getLogger(__name__).warning(
        "MCP_AUTH=none: every request is accepted, as the principal 'local'; local development only"
    )


def create_app(spec: ServiceSpec, settings: AppSettings | None = None) -> Starlette:
    """The service's ASGI app: Streamable HTTP (stateless; JSON, or SSE for a streaming
    service's long calls) at `/<name>/mcp`, health,
    and the SnapStart hooks; primed before it reports ready (see lifecycle.py)."""
    settings = settings or AppSettings()
    configure_logging(settings.runtime.log_level, settings.runtime.log_format)
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    tools = discover_tools(spec.tools_package)
    phases["discovery"], clock = time.perf_counter() - clock, time.perf_counter()
    authenticator = build_authenticator(settings.auth, spec.name)  # api_key: first key read
    phases["auth"], clock = time.perf_counter() - clock, time.perf_counter()
    server = build_server(spec, tools)
    for phase, path in (
        ("before_checkpoint", settings.lifecycle.before_checkpoint_path),
        ("after_restore", settings.lifecycle.after_restore_path),
    ):
        server.custom_route(path, methods=["POST"], include_in_schema=False)(
            lifecycle.hook_endpoint(phase)
        )
    if settings.http.streaming:
        server.add_middleware(StreamedCallMiddleware(settings.http.tool_timeout_seconds))
    tool_names = frozenset(t.tool.name for t in tools)
    app = server.http_app(
        path=spec.mcp_path,
        stateless_http=True,
        # A streaming service answers long or progress-reporting calls with SSE (streaming.py).
        json_response=not settings.http.streaming,
        host_origin_protection=False,  # the strict guard is placed explicitly below
        middleware=_http_middleware(spec, settings, tool_names, authenticator),
    )
    phases["app"] = time.perf_counter() - clock
    app.state.startup_phases = phases
    app.router.redirect_slashes = False
    app.state.mcp_server = server
    app.state.service = spec
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.primable_tool = lifecycle.primable_tool(tools)
    if settings.lifecycle.prime:
        app.router.lifespan_context = _priming(app.router.lifespan_context)
    return app


def _priming(lifespan: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The app's lifespan, then priming, before the server reports ready."""

    @asynccontextmanager
    async def primed(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            app.state.startup_phases["priming"] = await lifecycle.prime(
                app, app.state.service, app.state.primable_tool
            )
            yield state

    return primed
