"""The app factory: one FastMCP server and its ASGI app per service.

Lambda (through `run.sh`) and `fleet dev` both build services here, so what runs
locally is what runs deployed: same routes, same middleware, same settings.
"""

from __future__ import annotations

import logging

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_common.auth import Authenticator, AuthMiddleware, build_authenticator
from mcp_common.discovery import DiscoveredTool, discover_tools
from mcp_common.hardening import (
    MCP_CORS_HEADERS,
    HostOriginGuardMiddleware,
    RequestGuardMiddleware,
    TrailingSlashMiddleware,
)
from mcp_common.logs import RequestLogASGIMiddleware, configure_logging
from mcp_common.service import ServiceSpec
from mcp_common.settings import AppSettings


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

    health_body = {"status": "ok", "service": spec.name, "version": spec.version}

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
    middleware = [
        Middleware(RequestLogASGIMiddleware, service=spec.name, mcp_path=spec.mcp_path),
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
        logging.getLogger(__name__).warning(
            "MCP_AUTH=none for service %r: every request is accepted; local development only",
            spec.name,
        )
    middleware.append(
        Middleware(
            AuthMiddleware,
            authenticator=authenticator,
            service=spec.name,
            mcp_path=spec.mcp_path,
            open_paths=(spec.health_path,),
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
        )
    )
    return middleware


def create_app(spec: ServiceSpec, settings: AppSettings | None = None) -> Starlette:
    """The service's ASGI app: Streamable HTTP (stateless, JSON) at `/<name>/mcp`, plus health."""
    settings = settings or AppSettings()
    configure_logging(settings.runtime.log_level)
    tools = discover_tools(spec.tools_package)
    server = build_server(spec, tools)
    authenticator = build_authenticator(settings.auth)
    tool_names = frozenset(t.tool.name for t in tools)
    app = server.http_app(
        path=spec.mcp_path,
        stateless_http=True,
        json_response=True,
        host_origin_protection=False,  # the strict guard is placed explicitly below
        middleware=_http_middleware(spec, settings, tool_names, authenticator),
    )
    app.router.redirect_slashes = False
    app.state.mcp_server = server
    app.state.service = spec
    app.state.authenticator = authenticator
    return app
