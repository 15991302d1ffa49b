"""`python -m <service_package>`: serve one service with uvicorn on $PORT.

This is what `run.sh` execs, under the Lambda Web Adapter and locally alike.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mcp_common.logs import FIELDS_ATTRIBUTE, configure_logging
from mcp_common.metrics import startup_document
from mcp_common.service import ServiceSpec

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mcp_common.settings import AppSettings


def serve(spec: ServiceSpec) -> None:
    """Build the service's app and serve it until the process is told to stop."""
    # Start-up builds hundreds of thousands of objects that live as long as the process;
    # letting the cyclic collector scan them again and again while they are being built is
    # wasted cold-start time. Collection resumes once the app exists.
    with long_lived_heap():
        app, settings = _build(spec)
    run_app(app, settings, lambda: _log_ready(spec, app, settings))


def run_app(app: Any, settings: AppSettings, on_ready: Callable[[], None] | None = None) -> None:
    """Serve `app` with uvicorn as every process of the fleet is served (a service, the front
    door): a deadline on every request's head, no access log, `on_ready` once listening."""
    import uvicorn

    from mcp_common.hardening import bounded_h11_protocol

    config = uvicorn.Config(
        app,
        http=bounded_h11_protocol(settings.http.header_timeout_seconds),
        host=settings.runtime.bind_host(),
        port=settings.runtime.port,
        log_config=None,  # keep our JSON handlers; uvicorn's records propagate to them
        access_log=False,  # the MCP request line is the access log
        ws="none",  # MCP is plain HTTP: no WebSocket protocol (artifacts ship no websockets)
        lifespan="on",
        timeout_graceful_shutdown=5,
    )

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_ready is not None:  # listening: readiness can succeed
                on_ready()

    ReadyServer(config).run()


@contextlib.contextmanager
def long_lived_heap() -> Iterator[None]:
    """Build what lives as long as the process inside this block: no cyclic collection while
    it is built, then frozen out of every future collection, and the young generation
    collected less often (per-request garbage is freed by reference counting)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        gc.enable()


def invalid_configuration(error: Exception) -> NoReturn:
    """Stop a process whose settings are invalid: one CRITICAL line naming the variables,
    never their values (which may hold key material), and exit status 2."""
    configure_logging("INFO")
    logging.getLogger(__name__).critical("invalid configuration: %s", _summary(error))
    raise SystemExit(2) from None


def process_age() -> float:
    """Seconds since this process started (Linux: /proc, 10 ms resolution), else since this
    module was imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def _log_ready(spec: ServiceSpec, app: Starlette, settings: AppSettings) -> None:
    """The one start-up line: process start → ready, and what each phase took (with its
    CloudWatch metric, so cold-start regressions show on a graph)."""
    startup_ms = round(process_age() * 1000, 1)
    phases = {name: round(seconds * 1000, 1) for name, seconds in app.state.startup_phases.items()}
    fields = {
        "service": spec.name,
        "version": spec.version,
        **spec.build(),
        "startup_ms": startup_ms,
        "phases_ms": phases,
    }
    if settings.metrics.enabled:
        fields["_aws"] = startup_document(settings.metrics.namespace, time.time())
    logging.getLogger("mcp_common.lifecycle").info(
        "service ready", extra={FIELDS_ATTRIBUTE: fields}
    )


def _build(spec: ServiceSpec) -> tuple[Starlette, AppSettings]:
    from pydantic import ValidationError

    from mcp_common.settings import AppSettings, ServiceEnvironmentError, apply_service_environment

    try:
        apply_service_environment()
    except ServiceEnvironmentError as exc:
        configure_logging("INFO")
        logging.getLogger(__name__).critical("invalid configuration: %s", exc)
        raise SystemExit(2) from None
    try:
        settings = AppSettings()
        if spec.settings is not None:
            spec.settings()
    except ValidationError as exc:
        # A misconfigured service must not start (and must not start open): say why, exit.
        invalid_configuration(exc)
    from mcp_common.app import create_app  # fastmcp: imported once the settings are valid
    from mcp_common.discovery import ToolDiscoveryError

    imports = process_age()
    try:
        app = create_app(spec, settings)
    except ToolDiscoveryError as exc:
        # One line that names the module and the error; the traceback only at DEBUG.
        log = logging.getLogger(__name__)
        log.critical("cannot start service %r: %s", spec.name, exc)
        log.debug("the tools module's traceback", exc_info=exc.__cause__ or exc)
        raise SystemExit(2) from None
    app.state.startup_phases = {"imports": imports, **app.state.startup_phases}
    return app, settings


def _summary(error: Exception) -> str:
    """Validation messages without the offending input (which may hold key material)."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
        for item in errors(include_input=False)
    )
