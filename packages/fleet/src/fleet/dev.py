"""`fleet dev`: every service in one process, at the same paths as in Lambda.

Each service is the exact app `run.sh` serves (same factory, same middleware); this router
only picks the app by the first path segment and runs their lifespans. A service that cannot
start (a tools module that fails to import) is reported in one line and answers 503, while
the others serve; with `--reload` a service whose code changes is rebuilt in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.catalog import fleet_catalog, frontdoor_catalog
from fleet.template import lambda_environment
from fleet.workspace import ServiceDir, service_dirs
from mcp_common.app import AppSettings, create_app
from mcp_common.hardening import HostOriginGuardMiddleware
from mcp_common.settings import HttpSettings

WELL_KNOWN = ".well-known"
RELOAD_POLL_SECONDS = 0.3
DRAIN_MARGIN_SECONDS = 2.0
"""How long past its tool deadline a replaced app may take to answer the calls it holds."""
logger = logging.getLogger("fleet.dev")


@dataclass
class Broken:
    """A service that could not be built: why, in one line."""

    reason: str


@dataclass
class Served:
    """One service as `fleet dev` holds it: its folder, and its app or why there is none."""

    folder: ServiceDir
    app: Starlette | Broken
    lifespan: Lifespan | None = None
    sources: dict[Path, float] = field(default_factory=dict)


@dataclass
class Lifespan:
    """An app's lifespan, run by a task of its own: entered and left in one context, as
    fastmcp's context variables require (a rebuild starts the new app before the old stops).

    It counts the requests the app is serving: a rebuild stops the old app only once the calls
    that reached it are answered (or after `drain_seconds`, the longest a call may take there),
    since its session manager stops with it."""

    task: asyncio.Task[None]
    stop: asyncio.Event
    drain_seconds: float
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.in_flight += 1
        self.idle.clear()
        try:
            await app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def close(self) -> None:
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), self.drain_seconds)
        self.stop.set()
        with contextlib.suppress(Exception):
            await self.task


def _sources(folder: ServiceDir) -> dict[Path, float]:
    """Every Python file of the service's package, with its modification time."""
    return {path: path.stat().st_mtime for path in folder.package_dir.rglob("*.py")}


def _forget_modules(package: str) -> None:
    for name in [name for name in sys.modules if name == package or name.startswith(f"{package}.")]:
        del sys.modules[name]


def build_service_app(folder: ServiceDir, settings: AppSettings) -> Starlette | Broken:
    """The service's app, or Broken with the error that stopped it (never an exception).

    The service's own stack sets its tool deadline and response mode, as on Lambda; a
    variable set in the environment wins (a test's shorter deadline)."""
    try:
        return create_app(folder.load_spec(), as_deployed(folder, settings))
    except Exception as exc:  # noqa: BLE001 - one broken service must not stop the fleet
        cause = exc.__cause__ if exc.__cause__ is not None and not str(exc) else None
        reason = f"{type(exc).__name__}: {exc}" if cause is None else f"{exc}: {cause}"
        logger.error("service %r cannot start: %s", folder.name, reason.splitlines()[0])
        return Broken(reason.splitlines()[0])


def as_deployed(folder: ServiceDir, settings: AppSettings) -> AppSettings:
    """`settings` with what the service's own stack sets (unless the environment does),
    validated as the service would read it from its environment."""
    own = {
        variable: value
        for variable, value in lambda_environment(folder.path).items()
        if variable not in os.environ
    }
    if not own:
        return settings
    fields = {spec.validation_alias: name for name, spec in HttpSettings.model_fields.items()}
    validated = HttpSettings.model_validate(own)
    update = {fields[variable]: getattr(validated, fields[variable]) for variable in own}
    return replace(settings, http=settings.http.model_copy(update=update))


FRONT_DOORS = {"/mcp": "", "/search/mcp": "/search"}
FRONT_DOOR_METADATA = frozenset(
    f"/{WELL_KNOWN}/oauth-protected-resource{path}" for path in FRONT_DOORS
)
"""The front door's paths (mcp_common.frontdoor), and the prefix each is served under."""


class FleetApp:
    """ASGI router over per-service apps, plus `GET /` answering the catalog.

    What the router answers itself (the catalog, the 404 that lists the services, a broken
    service's 503) passes the same Host/Origin guard as every service: a DNS-rebinding page
    must not read it either."""

    def __init__(
        self,
        served: dict[str, Served],
        settings: AppSettings | None = None,
        reload: bool = False,
        root: Path | None = None,
    ) -> None:
        self.served = served
        self.settings = settings or AppSettings()
        self.reload = reload
        self.root = root
        """With --reload and no subset named: the workspace whose services/ is followed, so a
        service created or removed while it runs is served or dropped."""
        http = self.settings.http
        self.own = HostOriginGuardMiddleware(
            self._own, allowed_hosts=http.allowed_hosts, allowed_origins=http.allowed_origins
        )
        self.front_doors: dict[str, tuple[Any, Any, Lifespan]] = {}
        """{prefix: (the apps it was built from, its guarded app, its lifespan)}: `/mcp` and
        `/search/mcp`, rebuilt when a service is rebuilt, added or dropped."""
        self._front_door_lock = asyncio.Lock()
        self._visibility: Any = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def apps(self) -> dict[str, Starlette]:
        return {name: s.app for name, s in self.served.items() if isinstance(s.app, Starlette)}

    async def catalog(self, base_url: str) -> dict[str, Any]:
        servers = [(app.state.service, app.state.mcp_server) for app in self.apps.values()]
        catalog = await fleet_catalog(servers, base_url)
        catalog["services"] += [
            {"name": name, "status": "broken", "error": s.app.reason}
            for name, s in self.served.items()
            if isinstance(s.app, Broken)
        ]
        catalog["services"].sort(key=lambda service: service["name"])
        return catalog

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
        prefix = FRONT_DOORS.get(scope["path"])
        if prefix is not None:  # the whole fleet at one endpoint (mcp_common.frontdoor)
            app, lifespan = await self._front_door(prefix)
            inner = {**scope, "path": "/mcp", "root_path": scope.get("root_path", "") + prefix}
            await lifespan.serve(app, inner, receive, send)
            return
        if scope["path"] in FRONT_DOOR_METADATA:  # its RFC 9728 metadata, one resource
            app, lifespan = await self._front_door("")
            await lifespan.serve(app, scope, receive, send)
            return
        served = self.served.get(self._service_for(scope["path"]) or "")
        if served is not None and isinstance(served.app, Starlette):
            if served.lifespan is None:  # not started: its own answer says so
                await served.app(scope, receive, send)
            else:
                await served.lifespan.serve(served.app, scope, receive, send)
            return
        await self.own(scope, receive, send)

    async def _own(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The catalog at `/`, a broken service's 503, else a 404 that lists the services."""
        if scope["path"] == "/":
            allowed = await self._catalog_reader(scope, receive, send)
            if allowed is None:
                return
            host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
            body = await self.catalog(f"{scope.get('scheme', 'http')}://{host}")
            body["services"] = [s for s in body["services"] if s["name"] in allowed]
            await JSONResponse(body)(scope, receive, send)
            return
        served = self.served.get(self._service_for(scope["path"]) or "")
        if served is not None and isinstance(served.app, Broken):
            body = {"error": "service cannot start", "reason": served.app.reason}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        hint = {"error": "not found", "services": [f"/{name}/mcp" for name in self.served]}
        await JSONResponse(hint, status_code=404)(scope, receive, send)

    async def _catalog_reader(self, scope: Scope, receive: Receive, send: Send) -> set[str] | None:
        """The services whose part of `GET /` the caller may read, authenticated as every
        service authenticates (none: the refusal was sent, None returned)."""
        from mcp_common.auth import request_credential
        from mcp_common.frontdoor import Visibility

        names = sorted(self.served)
        if self._visibility is None or self._visibility.services != names:
            self._visibility = Visibility(names, self.settings.auth)
        caller = await self._visibility.caller(request_credential(dict(scope["headers"])))
        refusal = caller.refusal
        if refusal is not None:
            body = {"error": refusal.error, "error_description": str(refusal)}
            await JSONResponse(body, status_code=refusal.status)(scope, receive, send)
            return None
        return set(caller.services)

    async def _front_door(self, prefix: str) -> tuple[Any, Lifespan]:
        """The front door at `<prefix>/mcp` over the services as they are now, and its lifespan."""
        async with self._front_door_lock:
            apps = self.apps
            built = self.front_doors.get(prefix)
            if built is not None and built[0] == apps:
                return built[1], built[2]
            if built is not None:
                self._retire(built[2])
            import httpx2 as httpx

            from mcp_common.frontdoor import HttpUpstream, frontdoor_app

            servers = [(app.state.service, app.state.mcp_server) for app in apps.values()]
            catalog = await frontdoor_catalog(servers)
            for app in apps.values():  # each call waits as long as its service's own deadline
                service = app.state.service.name
                catalog[service]["deadline_seconds"] = app.state.settings.http.tool_timeout_seconds
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self), base_url="http://127.0.0.1", timeout=None
            )
            app = frontdoor_app(
                catalog, HttpUpstream(client), self.settings, search=prefix == "/search"
            )
            stop = asyncio.Event()
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def hold() -> None:
                async with app.router.lifespan_context(app):
                    started.set_result(None)
                    await stop.wait()
                await client.aclose()

            task = asyncio.create_task(hold())
            await started
            http = self.settings.http
            guarded = HostOriginGuardMiddleware(
                app, allowed_hosts=http.allowed_hosts, allowed_origins=http.allowed_origins
            )
            drain = max((entry["deadline_seconds"] for entry in catalog.values()), default=0)
            lifespan = Lifespan(task, stop, drain + 2 * DRAIN_MARGIN_SECONDS)
            self.front_doors[prefix] = (apps, guarded, lifespan)
            return guarded, lifespan

    async def _start(self, served: Served) -> None:
        """Start the service's lifespan (priming included) in a task that holds it until the
        service is replaced or stopped; mark the service broken if it does not start."""
        app = served.app
        if not isinstance(app, Starlette):
            return
        started: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                async with app.router.lifespan_context(app):
                    started.set_result(None)
                    await stop.wait()
            except Exception as exc:  # noqa: BLE001 - reported, and the service marked broken
                if not started.done():
                    started.set_result(exc)

        task = asyncio.create_task(hold())
        failure = await started
        if failure is not None:
            logger.error("service %r cannot start: %s", served.folder.name, failure)
            served.app = Broken(f"{type(failure).__name__}: {failure}")
            return
        deadline = app.state.settings.http.tool_timeout_seconds
        served.lifespan = Lifespan(task, stop, deadline + DRAIN_MARGIN_SECONDS)

    def _retire(self, lifespan: Lifespan) -> None:
        """Stop a replaced app once it has answered its calls, without holding up the caller
        (the watcher goes on following the other services meanwhile)."""
        task = asyncio.create_task(lifespan.close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        for served in self.served.values():
            await self._start(served)
        watcher = asyncio.create_task(self._watch()) if self.reload else None
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for served in self.served.values():
            if served.lifespan is not None:
                await served.lifespan.close()
        for _, _, lifespan in self.front_doors.values():
            await lifespan.close()
        await asyncio.gather(*self._retiring)
        await send({"type": "lifespan.shutdown.complete"})

    async def follow_folders(self) -> None:
        """Serve a service folder created since, drop one removed since."""
        if self.root is None:
            return
        folders = {folder.name: folder for folder in service_dirs(self.root)}
        for name in [name for name in self.served if name not in folders]:
            gone = self.served.pop(name)
            if gone.lifespan is not None:
                self._retire(gone.lifespan)
            logger.warning("service %r removed", name)
        for name, folder in folders.items():
            if name in self.served or not folder.package_dir.is_dir():
                continue
            source = str(folder.path / "src")
            if importlib.util.find_spec(folder.package) is None and source not in sys.path:
                sys.path.insert(0, source)  # not installed yet: `uv sync` comes later
            importlib.invalidate_caches()
            fresh = Served(folder, build_service_app(folder, self.settings))
            fresh.sources = _sources(folder)
            await self._start(fresh)
            self.served[name] = fresh
            state = "broken" if isinstance(fresh.app, Broken) else "added"
            logger.warning("service %r %s at /%s/mcp", name, state, name)

    async def _watch(self) -> None:
        """Rebuild a service whose Python files changed (new, edited or deleted); follow
        service folders created or removed meanwhile."""
        while True:
            await asyncio.sleep(RELOAD_POLL_SECONDS)
            try:
                await self.follow_folders()
            except Exception:  # a folder half-written by fleet new: try again next time
                logger.exception("following services/ failed")
            for served in list(self.served.values()):
                try:
                    now = _sources(served.folder)
                    if now != served.sources:
                        await self.rebuild(served.folder.name, now)
                except Exception:  # a folder renamed mid-edit, a file gone: keep watching
                    logger.exception("reloading service %r failed", served.folder.name)

    async def rebuild(self, name: str, sources: dict[Path, float] | None = None) -> None:
        """Build the service again from its current code and swap it in (its old app keeps
        answering until the new one has started)."""
        served = self.served[name]
        served.sources = sources if sources is not None else _sources(served.folder)
        _forget_modules(served.folder.package)
        fresh = Served(served.folder, build_service_app(served.folder, self.settings))
        fresh.sources = served.sources
        await self._start(fresh)
        old = served.lifespan
        served.app, served.lifespan = fresh.app, fresh.lifespan
        if old is not None:
            self._retire(old)
        state = "broken" if isinstance(served.app, Broken) else "reloaded"
        logger.warning("service %r %s", name, state)


def build_fleet_app(
    services: list[ServiceDir],
    settings: AppSettings | None = None,
    reload: bool = False,
    root: Path | None = None,
) -> FleetApp:
    """One app per service folder, through the same factory (and settings) Lambda uses."""
    settings = settings or AppSettings()
    served = {}
    for folder in services:
        served[folder.name] = Served(folder, build_service_app(folder, settings))
        served[folder.name].sources = _sources(folder)
    return FleetApp(served, settings, reload=reload, root=root)
