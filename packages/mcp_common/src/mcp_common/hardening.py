"""HTTP hardening in front of the MCP endpoint.

API Gateway and the Web Adapter forward paths verbatim, so a redirect issued
here would carry a Location without the stage prefix and break clients; the
endpoint answers with and without a trailing slash instead.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


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
