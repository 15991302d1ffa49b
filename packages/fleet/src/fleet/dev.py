"""`fleet dev`: every service in one process, at the same paths as in Lambda.

Each service is the exact app `run.sh` serves (same factory, same middleware);
this router only picks the app by the first path segment and runs their
lifespans together.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from fleet.catalog import fleet_catalog
from fleet.workspace import ServiceDir
from mcp_common.app import AppSettings, create_app
from mcp_common.hardening import HostOriginGuardMiddleware

WELL_KNOWN = ".well-known"


class FleetApp:
    """ASGI router over per-service apps, plus `GET /` answering the catalog.

    What the router answers itself (the catalog, the 404 that lists the services) passes the
    same Host/Origin guard as every service: a DNS-rebinding page must not read it either."""

    def __init__(self, apps: dict[str, Starlette], settings: AppSettings | None = None) -> None:
        self.apps = apps
        http = (settings or AppSettings()).http
        self.own = HostOriginGuardMiddleware(
            self._own, allowed_hosts=http.allowed_hosts, allowed_origins=http.allowed_origins
        )

    async def catalog(self, base_url: str) -> dict[str, Any]:
        servers = [(app.state.service, app.state.mcp_server) for app in self.apps.values()]
        return await fleet_catalog(servers, base_url)

    def _service_for(self, path: str) -> str | None:
        parts = path.split("/")
        # /<svc>/...  or  /.well-known/<kind>/<svc>/mcp  (RFC 9728 metadata)
        if len(parts) > 3 and parts[1] == WELL_KNOWN:
            return parts[3]
        return parts[1] if len(parts) > 1 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        app = self.apps.get(self._service_for(scope["path"]) or "")
        await (app or self.own)(scope, receive, send)

    async def _own(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The catalog at `/`, else a 404 that lists the services (Host already checked)."""
        if scope["path"] == "/":
            host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
            body = await self.catalog(f"{scope.get('scheme', 'http')}://{host}")
            await JSONResponse(body)(scope, receive, send)
            return
        hint = {"error": "not found", "services": [f"/{name}/mcp" for name in self.apps]}
        await JSONResponse(hint, status_code=404)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with AsyncExitStack() as stack:
            try:
                for app in self.apps.values():
                    await stack.enter_async_context(app.router.lifespan_context(app))
            except Exception as exc:  # noqa: BLE001 - reported to the server as a startup failure
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})


def build_fleet_app(services: list[ServiceDir], settings: AppSettings | None = None) -> FleetApp:
    """One app per service folder, through the same factory (and settings) Lambda uses."""
    settings = settings or AppSettings()
    return FleetApp(
        {service.name: create_app(service.load_spec(), settings) for service in services},
        settings,
    )
