"""`python -m <service_package>`: serve one service with uvicorn on $PORT.

This is what `run.sh` execs, under the Lambda Web Adapter and locally alike.
"""

from __future__ import annotations

import logging

from mcp_common.logs import configure_logging
from mcp_common.service import ServiceSpec


def serve(spec: ServiceSpec) -> None:
    """Build the service's app and serve it until the process is told to stop."""
    import uvicorn
    from pydantic import ValidationError

    from mcp_common.app import AppSettings, create_app

    try:
        settings = AppSettings()
    except ValidationError as exc:
        # A misconfigured service must not start (and must not start open): say why, exit.
        configure_logging("INFO")
        logging.getLogger(__name__).critical("invalid configuration: %s", _summary(exc))
        raise SystemExit(2) from None
    runtime = settings.runtime
    app = create_app(spec, settings)
    uvicorn.run(
        app,
        host=runtime.bind_host(),
        port=runtime.port,
        log_config=None,  # keep our JSON handlers; uvicorn's records propagate to them
        access_log=False,  # the MCP request line is the access log
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def _summary(error: Exception) -> str:
    """Validation messages without the offending input (which may hold key material)."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
        for item in errors(include_input=False)
    )
