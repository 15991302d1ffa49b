"""`python -m <service_package>`: serve one service with uvicorn on $PORT.

This is what `run.sh` execs, under the Lambda Web Adapter and locally alike.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

from mcp_common.logs import configure_logging
from mcp_common.service import ServiceSpec

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mcp_common.settings import RuntimeSettings


def serve(spec: ServiceSpec) -> None:
    """Build the service's app and serve it until the process is told to stop."""
    # Start-up builds hundreds of thousands of objects that live as long as the process;
    # letting the cyclic collector scan them again and again while they are being built is
    # wasted cold-start time. Collection resumes once the app exists.
    gc.disable()
    try:
        app, runtime = _build(spec)
    finally:
        # What exists now lives as long as the process: keep it out of every future
        # collection, and collect the young generation less often (per-request garbage is
        # freed by reference counting), which lowers per-request CPU on the warm path.
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        gc.enable()
    import uvicorn

    uvicorn.run(
        app,
        host=runtime.bind_host(),
        port=runtime.port,
        log_config=None,  # keep our JSON handlers; uvicorn's records propagate to them
        access_log=False,  # the MCP request line is the access log
        ws="none",  # MCP is plain HTTP: no WebSocket protocol (artifacts ship no websockets)
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def _build(spec: ServiceSpec) -> tuple[Starlette, RuntimeSettings]:
    from pydantic import ValidationError

    from mcp_common.settings import AppSettings

    try:
        settings = AppSettings()
    except ValidationError as exc:
        # A misconfigured service must not start (and must not start open): say why, exit.
        configure_logging("INFO")
        logging.getLogger(__name__).critical("invalid configuration: %s", _summary(exc))
        raise SystemExit(2) from None
    from mcp_common.app import create_app  # fastmcp: imported once the settings are valid

    return create_app(spec, settings), settings.runtime


def _summary(error: Exception) -> str:
    """Validation messages without the offending input (which may hold key material)."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
        for item in errors(include_input=False)
    )
