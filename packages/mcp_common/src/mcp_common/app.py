"""The app factory: one FastMCP server and its ASGI app per service.

Lambda (through `run.sh`) and `fleet dev` both build services here, so what runs
locally is what runs deployed: same routes, same middleware, same settings.
"""

from __future__ import annotations

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_common.discovery import discover_tools
from mcp_common.hardening import TrailingSlashMiddleware
from mcp_common.logs import RequestLogASGIMiddleware, RequestLogMiddleware, configure_logging
from mcp_common.service import ServiceSpec
from mcp_common.settings import RuntimeSettings


def build_server(spec: ServiceSpec) -> FastMCP:
    """A FastMCP server holding every tool discovered in the service's tools package."""
    server = FastMCP(
        name=spec.name,
        version=spec.version,
        instructions=spec.instructions,
        # Unexpected exceptions reach the client as a short message; the log keeps the traceback.
        mask_error_details=True,
        on_duplicate="error",
        middleware=[RequestLogMiddleware()],
    )
    for discovered in discover_tools(spec.tools_package):
        server.add_tool(discovered.tool)

    health_body = {"status": "ok", "service": spec.name, "version": spec.version}

    @server.custom_route(spec.health_path, methods=["GET"], include_in_schema=False)
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(health_body)

    return server


def create_app(spec: ServiceSpec, runtime: RuntimeSettings | None = None) -> Starlette:
    """The service's ASGI app: Streamable HTTP (stateless, JSON) at `/<name>/mcp`, plus health."""
    runtime = runtime or RuntimeSettings()
    configure_logging(runtime.log_level)
    server = build_server(spec)
    app = server.http_app(
        path=spec.mcp_path,
        stateless_http=True,
        json_response=True,
        host_origin_protection=False,
        middleware=[
            Middleware(RequestLogASGIMiddleware, service=spec.name, mcp_path=spec.mcp_path),
            Middleware(TrailingSlashMiddleware, paths=(spec.mcp_path,)),
        ],
    )
    app.router.redirect_slashes = False
    app.state.mcp_server = server
    app.state.service = spec
    return app
