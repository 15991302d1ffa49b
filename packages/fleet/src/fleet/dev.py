"""`fleet dev`: every service in one process, at the same paths as in Lambda.

Each service is the exact app `run.sh` serves (same factory, same middleware);
this router only picks the app by the first path segment and runs their
lifespans together.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from fleet.catalog import service_entry
from fleet.workspace import ServiceDir
from mcp_common.app import create_app
from mcp_common.settings import RuntimeSettings

WELL_KNOWN = ".well-known"


class FleetApp:
    """ASGI router over per-service apps, plus `GET /` answering the catalog."""

    def __init__(self, apps: dict[str, Starlette]) -> None:
        self.apps = apps

    async def catalog(self, base_url: str) -> dict[str, Any]:
        services = []
        for name, app in self.apps.items():
            spec = app.state.service
            services.append(await service_entry(name, spec.version, app.state.mcp_server, base_url))
        return {"services": services}

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
        if scope["path"] == "/":
            host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
            body = await self.catalog(f"{scope.get('scheme', 'http')}://{host}")
            await _send_json(send, 200, body)
            return
        app = self.apps.get(self._service_for(scope["path"]) or "")
        if app is None:
            await _send_json(
                send,
                404,
                {"error": "not found", "services": [f"/{name}/mcp" for name in self.apps]},
            )
            return
        await app(scope, receive, send)

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


async def _send_json(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body, indent=2).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def build_fleet_app(services: list[ServiceDir], runtime: RuntimeSettings | None = None) -> FleetApp:
    """One app per service folder, through the same factory Lambda uses."""
    runtime = runtime or RuntimeSettings()
    return FleetApp(
        {service.name: create_app(service.load_spec(), runtime) for service in services}
    )
